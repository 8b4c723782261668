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


def python_examples(page: Path) -> list[str]:
    """The ```python blocks of a docs page, in order."""
    blocks, current = [], None
    for line in page.read_text(encoding="utf-8").splitlines():
        if current is None and line.strip() == "```python":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append("\n".join(current) + "\n")
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_python_api_examples_run(
    tmp_path: Path, mnist_mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import shutil
    import subprocess
    import sys

    examples = python_examples(ROOT / "docs" / "python-api.md")
    assert len(examples) >= 4
    shutil.copytree(mnist_mirror, tmp_path / "mnist")  # the folder the train example names
    monkeypatch.setenv("DIGITCTL_CACHE_DIR", str(tmp_path / "cache"))
    # One fresh process for all of them (each in its own namespace): one start-up, not four.
    runner = (
        "import json, sys\n"
        "for number, code in enumerate(json.loads(sys.argv[1]), start=1):\n"
        "    print(f'--- example {number}', file=sys.stderr, flush=True)\n"
        "    exec(compile(code, f'example {number}', 'exec'), {'__name__': '__main__'})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", runner, json.dumps(examples)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("--- example") == len(examples)
    assert (tmp_path / "run1" / "models" / "best_model_card.json").is_file()


def test_benchmarks_page_keeps_current_figures_and_the_history_stays_out_of_the_site() -> None:
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert len(page.splitlines()) < 200  # current numbers, one table per area
    assert "stop 1" not in page and "Not adopted" not in page  # experiments live in NOTES
    assert "Model name" in page or "AMD EPYC" in page  # the CPU is named
    notes = ROOT / "benchmarks" / "NOTES.md"
    assert notes.is_file() and "not adopted" in notes.read_text(encoding="utf-8").lower()
    assert "NOTES.md" not in (ROOT / "mkdocs.yml").read_text(encoding="utf-8")


def test_changelog_entries_are_a_line_or_two() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in text
    bullets = [line for line in text.splitlines() if line.startswith("- ")]
    words = [len(line.split()) for line in bullets]
    assert sum(words) / len(words) < 35 and max(words) <= 60, max(words)
