"""`digitctl train --recipe reader`: the line reader trains, writes its files and card,
resumes an interrupted run, and refuses the CNN-only options."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from digitctl import reader_training
from digitctl.cli import app
from digitctl.linereader import BLANK, LineModel
from digitctl.model import resolve_dtype_policy


def test_the_reader_recipe_trains_writes_its_files_and_resumes(
    cli_args: list[str], mnist_mirror: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = [*cli_args, "train", "--mirror", str(mnist_mirror), "--recipe", "reader"]
    command += ["--limit", "64", "--epochs", "2", "--batch-size", "32", "--json"]
    # Interrupted after the first epoch: the second epoch's validation fails.
    real = reader_training.validation_figures
    calls: list[int] = []

    def failing_second_time(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(reader_training, "validation_figures", failing_second_time)
    interrupted = CliRunner().invoke(app, command)
    assert interrupted.exit_code != 0
    models = workspace / "models"
    state = json.loads((models / ".reader-run" / "state.json").read_text())
    assert len(state["history"]) == 1, "the first epoch was saved"
    assert not (models / "digitctl_reader.keras").exists(), "nothing half-written"

    monkeypatch.setattr(reader_training, "validation_figures", real)
    resumed = CliRunner().invoke(app, [*command, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    card = json.loads((models / "digitctl_reader_card.json").read_text())
    assert [h["epoch"] for h in card["history"]] == [1, 2]
    assert card["history"][0] == state["history"][0], "the first epoch was not run again"
    assert card["recipe"]["train_scenes"] == 64 and card["charset"] == "0123456789.,-/:"
    assert json.loads(resumed.stdout)["kept_epoch"] == card["kept_epoch"]
    assert not (models / ".reader-run").exists(), "the run's state is cleared when done"
    # Trained in bfloat16 where the CPU has it, served in float32 either way.
    assert card["trained_in"] == resolve_dtype_policy("auto")
    config = json.loads(zipfile.ZipFile(models / "digitctl_reader.keras").read("config.json"))
    policies = {json.dumps(layer["config"].get("dtype")) for layer in config["config"]["layers"]}
    assert not any("bfloat16" in policy for policy in policies), policies

    # The LiteRT export reads strips of any width, TF-free.
    model = LineModel(models / "digitctl_reader.tflite")
    for width in (64, 192):
        out = model.probabilities(np.zeros((2, 32, width), np.float32))
        assert out.shape == (2, width // 4, BLANK + 1)
        np.testing.assert_allclose(out.sum(axis=2), 1.0, atol=1e-4)

    nothing = CliRunner().invoke(app, [*command, "--resume"])
    assert nothing.exit_code == 2 and "nothing to resume" in nothing.output
    refused = CliRunner().invoke(app, [*command, "--augment"])
    assert refused.exit_code == 2
    assert "--augment does not apply to the reader recipe" in refused.output
