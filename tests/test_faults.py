"""Faults: a writer killed mid-write, and concurrent processes on one workspace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from digitctl import data
from digitctl.config import Settings

SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from digitctl.atomic import write_with

    def slow(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            for _ in range(1000):
                handle.write(b"new" * 1000)
                handle.flush()
                print("writing", flush=True)
                time.sleep(0.01)

    write_with(Path(sys.argv[1]), slow)
    """
)


def test_a_writer_killed_mid_write_leaves_the_previous_file_intact(tmp_path: Path) -> None:
    target = tmp_path / "model.keras"
    target.write_bytes(b"previous complete content")
    writer = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    for _ in range(5):  # let it get well into the write
        assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"previous complete content"


def test_an_exception_mid_write_removes_the_temporary_file(tmp_path: Path) -> None:
    from digitctl.atomic import write_with

    target = tmp_path / "artifact.png"
    target.write_bytes(b"old")

    def failing(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_with(target, failing)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact.png"]


def test_atomic_files_get_normal_permissions(tmp_path: Path) -> None:
    from digitctl.atomic import write_text

    path = write_text(tmp_path / "x.json", "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_two_concurrent_preprocess_runs_share_one_valid_cache(
    workspace: Path, mnist_mirror: Path
) -> None:
    command = [
        sys.executable, "-m", "digitctl", "--workspace", str(workspace),
        "--cache-dir", str(workspace / "cache"), "preprocess", "--mirror", str(mnist_mirror),
    ]  # fmt: skip
    env = {**os.environ, "COLUMNS": "120"}
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    deadline = time.monotonic() + 120
    outputs = [run.communicate(timeout=max(1, deadline - time.monotonic())) for run in runs]
    for run, (_, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err.decode()
    settings = Settings(
        workspace=workspace, cache_dir=workspace / "cache", mirror=str(mnist_mirror)
    )
    splits = data.load_splits(settings)
    assert splits.x_train.shape == (360, 28, 28, 1) and splits.y_test.shape == (100,)
    assert np.isfinite(splits.x_train).all()
    leftovers = [
        p.name for p in (workspace / "cache").rglob("*") if ".tmp" in p.name or "staging" in p.name
    ]
    assert leftovers == []
    cached = data.download_mnist(settings)
    assert [f.status for f in cached.files] == ["cached"] * 4


def test_two_concurrent_predict_runs_on_one_workspace(
    workspace: Path, tiny_lite_model: Path
) -> None:
    import json

    import realistic_images as ri

    image = workspace / "seven.png"
    image.write_bytes(ri.render("canvas", ri.draw_digit(7), np.random.default_rng(1)))
    views = workspace / "views"
    command = [
        sys.executable, "-m", "digitctl", "--workspace", str(workspace), "predict", "--json",
        "--model", str(tiny_lite_model), "--save-view", str(views), "--plot", str(image),
    ]  # fmt: skip
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workspace)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    answers = []
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err.decode()
        answers.append(json.loads(out))
    assert answers[0]["probabilities"] == answers[1]["probabilities"]
    from PIL import Image

    saved = sorted(views.iterdir())
    assert [p.suffix for p in saved] == [".png"]
    with Image.open(saved[0]) as view:
        assert view.size == (28, 28)
    with Image.open(workspace / "artifacts" / "prediction_result.png") as plot:
        plot.verify()
    leftovers = [p.name for p in workspace.rglob("*.tmp*")]
    assert leftovers == []
