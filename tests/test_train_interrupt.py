"""Interrupted training (SIGINT, SIGKILL) in a real process, then --resume finishes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _train_command(workspace: Path, mirror: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "digitctl", "--workspace", str(workspace),
        "--cache-dir", str(workspace / "cache"), "train", "--mirror", str(mirror),
        "--recipe", "fast", "--epochs", "6", "--batch-size", "16", *extra,
    ]  # fmt: skip


def _wait_for_epochs(state: Path, process: subprocess.Popen[bytes], epochs: int) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, "training ended before it could be interrupted"
        try:
            if json.loads(state.read_text())["epochs_done"] >= epochs:
                return
        except (FileNotFoundError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError("no epoch finished in time")


def _assert_loadable_model(path: Path) -> None:
    from digitctl.modelfiles import load_keras_model

    model = load_keras_model(path)
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_training_keeps_the_best_model_and_resumes(
    workspace: Path, mnist_mirror: Path, sig: signal.Signals
) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    state = workspace / "models" / "train_state.json"
    process = subprocess.Popen(
        _train_command(workspace, mnist_mirror),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_epochs(state, process, 2)
        process.send_signal(sig)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = err.decode()
    if sig == signal.SIGINT:
        assert process.returncode == 130, stderr[-2000:]
        assert "digitctl train --resume" in stderr and "Traceback" not in stderr
    else:
        assert process.returncode == -signal.SIGKILL
    interrupted_at = json.loads(state.read_text())["epochs_done"]
    assert 2 <= interrupted_at < 6
    _assert_loadable_model(workspace / "models" / "best_model.keras")

    resumed = subprocess.run(
        _train_command(workspace, mnist_mirror, "--resume", "--json"),
        env=env,
        capture_output=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    result = json.loads(resumed.stdout)
    assert result["resumed_from"] == interrupted_at
    assert result["epochs_run"] > interrupted_at
    assert json.loads(state.read_text())["finished"] is True
    _assert_loadable_model(workspace / "models" / "best_model.keras")
