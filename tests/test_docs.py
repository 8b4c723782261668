"""The documentation keeps up with the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from digitctl._docs import command_reference

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [
    "config",
    "download",
    "preprocess",
    "train",
    "evaluate",
    "predict",
    "export",
    "serve",
    "feedback",
    "feedback add",
    "feedback list",
    "feedback clear",
    "finetune",
]


def test_command_reference_is_generated_from_the_current_cli() -> None:
    committed = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    assert committed == command_reference(), (
        "docs/commands.md is stale: run `python -m digitctl._docs > docs/commands.md`"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_documented(command: str) -> None:
    assert f"## `digitctl {command}`" in command_reference()
    assert f"digitctl {command}" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_page_in_the_nav_exists() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [line.split(": ", 1)[1].strip() for line in nav.splitlines() if line.endswith(".md")]
    assert pages and all((ROOT / "docs" / page).is_file() for page in pages)
