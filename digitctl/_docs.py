"""The command reference in docs/commands.md, generated from the Typer app itself."""

from __future__ import annotations


def command_reference() -> str:
    """Markdown for every command and option, as Typer's own doc generator renders it."""
    import typer
    import typer.cli
    import typer.main

    from digitctl.cli import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command, info_name="digitctl")
    body = typer.cli.get_docs_for_click(
        obj=command, ctx=ctx, name="digitctl", title="Command reference"
    )
    return body.rstrip() + "\n"


if __name__ == "__main__":  # python -m digitctl._docs > docs/commands.md
    import sys

    sys.stdout.write(command_reference())
