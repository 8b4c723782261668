"""Every table and help text is readable on an 80-column terminal: nothing cut to "…",
no line wider than 80, paths shown relative to the current folder and never broken while
they fit (the widest other column gives way first)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from digitctl import ui
from digitctl.cli import _finetune_table, app

COLUMNS = {"COLUMNS": "80"}
SAMPLES = Path(__file__).resolve().parent.parent / "digitctl" / "assets" / "samples"
HELP = [
    [],
    ["config"],
    ["download"],
    ["preprocess"],
    ["train"],
    ["evaluate"],
    ["predict"],
    ["export"],
    ["serve"],
    ["feedback"],
    ["feedback", "add"],
    ["feedback", "list"],
    ["feedback", "clear"],
    ["finetune"],
]


def assert_fits(text: str, *whole: str) -> None:
    lines = text.splitlines()
    assert lines, "nothing was printed"
    assert "…" not in text, text
    assert max(len(line.rstrip()) for line in lines) <= 80, text
    for part in whole:  # on one line, unbroken
        assert any(part in line for line in lines), f"{part!r} is broken or missing:\n{text}"


@pytest.mark.parametrize("command", HELP, ids=lambda c: " ".join(c) or "digitctl")
def test_help_fits_80_columns(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env=COLUMNS)
    assert result.exit_code == 0, result.output
    assert_fits(result.stdout)


def test_the_quickstart_table_keeps_file_names_whole(workspace: Path) -> None:
    folder = workspace / "digitctl" / "assets" / "samples"
    shutil.copytree(SAMPLES, folder)
    paths = sorted(str(p) for p in folder.glob("*.png"))  # absolute: shown relative
    result = CliRunner().invoke(app, ["predict", *paths], env=COLUMNS)
    assert result.exit_code == 0, result.output
    assert_fits(result.stdout, *(str(Path(p).relative_to(workspace)) for p in paths))
    assert "4: 100.0%" in result.stdout and str(workspace) not in result.stdout


def test_a_path_too_long_for_the_terminal_folds_and_is_never_cut(workspace: Path) -> None:
    folder = workspace / ("a-very-long-folder-name-" * 4) / "deeper"
    folder.mkdir(parents=True)
    shutil.copy(SAMPLES / "four_scan.png", folder / "four_scan.png")
    result = CliRunner().invoke(app, ["predict", str(folder / "four_scan.png")], env=COLUMNS)
    assert result.exit_code == 0, result.output
    assert_fits(result.stdout, "4: 100.0%")
    assert "".join(line.strip("│ ") for line in result.stdout.splitlines()).count("deeper") == 1


def test_evaluate_shows_its_paths_relative(workspace: Path, monkeypatch) -> None:  # noqa: ANN001
    from digitctl import evaluation

    models = workspace / "models"
    result = evaluation.Evaluation(
        model_path=models / "best_model.keras",
        images=10_000,
        accuracy=0.9912,
        loss=0.03,
        errors=88,
        confusion=np.eye(10, dtype=int) * 1000,
        report={
            name: {"precision": 0.99, "recall": 0.99, "f1-score": 0.99, "support": 1000}
            for name in [*map(str, range(10)), "macro avg", "weighted avg"]
        },
        metrics_path=workspace / "artifacts" / "evaluation_metrics.json",
        card_path=models / "best_model_card.json",
    )
    monkeypatch.setattr(evaluation, "evaluate_model", lambda settings, progress=None: result)
    shown = CliRunner().invoke(app, ["evaluate", "--report"], env=COLUMNS)
    assert shown.exit_code == 0, shown.output
    assert_fits(shown.stdout, "model     models/best_model.keras", "Confusion matrix")
    assert_fits(shown.stderr, "wrote models/best_model_card.json")


def test_serve_shows_its_model_relative(workspace: Path, monkeypatch) -> None:  # noqa: ANN001
    from digitctl import serve

    plan = serve.ServePlan(
        command=[],
        env={},
        url="http://127.0.0.1:8501",
        health_url="http://127.0.0.1:8501/_stcore/health",
        model=workspace / "models" / "fine-tuned" / "digitctl_cnn_finetuned.keras",
    )
    monkeypatch.setattr(serve, "plan_serve", lambda settings: plan)
    monkeypatch.setattr(serve, "run_server", lambda plan, open_browser, on_ready: None)
    shown = CliRunner().invoke(app, ["serve"], env=COLUMNS)
    assert shown.exit_code == 0, shown.output
    assert_fits(shown.stderr, "models/fine-tuned/digitctl_cnn_finetuned.keras")


def test_the_finetune_table_keeps_the_base_model_path(workspace: Path) -> None:
    figures = SimpleNamespace(accuracy=0.99, images=3000)
    result = SimpleNamespace(
        base_model=workspace / "models" / "previous" / "best_model-20261207T201300Z.keras",
        feedback_counts={1: 12},
        train_counts={1: 10},
        holdout_counts={1: 2},
        replay_images=3000,
        holdout_before=figures,
        holdout_after=figures,
        mnist_before=figures,
        mnist_after=figures,
        mnist_source="shipped subset",
        seconds={"total": 12.5},
        installed=True,
    )
    buffer = io.StringIO()
    Console(file=buffer, width=80).print(_finetune_table(result))
    assert_fits(buffer.getvalue(), "models/previous/best_model-20261207T201300Z.keras")


def test_short_path(workspace: Path) -> None:
    assert ui.short_path(workspace / "models" / "m.keras") == "models/m.keras"
    assert ui.short_path("models/m.keras") == "models/m.keras"
    assert ui.short_path(Path.home() / "x.png").startswith("~")
    assert ui.short_path("/somewhere/else.png") == "/somewhere/else.png"
    assert ui.short_path("-") == "-"
