"""Rich helpers shared by the commands: consoles, progress bars, tables, error lines.

Messages and progress go to stderr so that stdout stays clean for ``--json`` output.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table
    from rich.text import Text

# Created on first use so that importing digitctl has no side effects.
_consoles: dict[str, Console] = {}


# Rich is imported on first use, not with this module: it costs ~45 ms of start-up, and a
# `predict --json` that prints no message, table or bar needs none of it.
def err_console() -> Console:
    if "err" not in _consoles:
        from rich.console import Console

        _consoles["err"] = Console(stderr=True, highlight=False, emoji=False)
    return _consoles["err"]


def out_console() -> Console:
    if "out" not in _consoles:
        from rich.console import Console

        _consoles["out"] = Console(highlight=False, emoji=False)
    return _consoles["out"]


def reset_consoles() -> None:
    """Forget cached consoles (tests swap sys.stdout/sys.stderr between runs)."""
    _consoles.clear()


def info(message: str) -> None:
    err_console().print(message)


def warn(message: str) -> None:
    err_console().print(f"[yellow]Warning:[/yellow] {message}")


def error_line(message: str) -> None:
    # markup=False: user paths and messages may contain square brackets.
    err_console().print("Error: " + message, style="bold red", markup=False, soft_wrap=True)


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, default=str) + "\n")
    sys.stdout.flush()


def transfer_progress() -> Progress:
    """A progress bar for downloads: bytes, speed and time left."""
    # rich.progress is imported on use: predict, the start-up-critical command, has no bar.
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console(),
        transient=False,
    )


def task_progress(transient: bool = False, redirect_stdout: bool = True) -> Progress:
    """A progress bar for counted work: n of total, elapsed and remaining time.

    ``redirect_stdout=False`` when stdout carries data (``--json``) while the bar runs:
    Rich would otherwise route what is printed there to the bar's console (stderr)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=err_console(),
        transient=transient,
        redirect_stdout=redirect_stdout,
    )


PROGRESS_AFTER_S = 1.0  # a counted task shows its bar once it has run this long


class DelayedProgress:
    """A counted task's progress bar on stderr that appears only in a terminal, and only
    once the task has run past PROGRESS_AFTER_S: quick runs print nothing extra."""

    def __init__(self, description: str, total: int) -> None:
        import time

        self._clock = time.perf_counter
        self.started = self._clock()
        self.description, self.total, self.done = description, total, 0
        self._progress: Progress | None = None
        self._task: Any = None
        self._shows: bool | None = None  # asked once it matters: a quick run needs no Rich

    def __enter__(self) -> DelayedProgress:
        return self

    def advance(self, status: str = "") -> None:
        self.done += 1
        if self._progress is None:
            if self._shows is False or self._clock() - self.started < PROGRESS_AFTER_S:
                return
            self._shows = err_console().is_terminal
            if not self._shows:
                return
            self._progress = task_progress(transient=True, redirect_stdout=False)
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, status="")
        self._progress.update(self._task, completed=self.done, status=status)

    @property
    def seconds(self) -> float:
        return self._clock() - self.started

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def short_path(path: str | os.PathLike[str]) -> str:
    """``path`` as a person reads it best: relative to the current folder when it is
    inside it, else under ``~`` when in the home folder, else as given."""
    text = str(path)
    if text == "-" or "://" in text:
        return text
    try:
        absolute = Path(text).expanduser().absolute()
        here = Path.cwd()
    except (OSError, RuntimeError, ValueError):
        return text
    if absolute.is_relative_to(here):
        return str(absolute.relative_to(here)) or "."
    home = Path.home()
    if absolute.is_relative_to(home):
        return str(Path("~") / absolute.relative_to(home))
    return text


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A table of plain cells: a path like ``scan[1].png`` is shown as is, not as markup.

    Pass a ``rich.text.Text`` cell for styled content. A cell too long for its column
    wraps (at spaces, else anywhere: a path is folded), never cut to "…".
    """
    from rich.table import Table

    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column, overflow="fold")
    if list(columns) == ["", ""]:  # labels and values: the short labels never wrap
        result.columns[0].no_wrap = True
    for row in rows:
        result.add_row(*(_cell(cell) for cell in row))
    return result


def _cell(value: Any) -> Text:
    from rich.text import Text

    if isinstance(value, Text):
        return value
    return Text("" if value is None else str(value))
