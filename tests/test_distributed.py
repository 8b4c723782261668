"""Distributed training: TF_CONFIG parsing, and two real workers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from digitctl.distribute import cluster_from_environment, is_chief_task
from digitctl.errors import ConfigError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_missing_tf_config_explains_what_is_needed() -> None:
    with pytest.raises(ConfigError, match="needs TF_CONFIG"):
        cluster_from_environment({})


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        json.dumps({"cluster": {"worker": ["a:1"]}}),
        json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}),
        json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}),
    ],
)
def test_bad_tf_config_is_a_clear_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        cluster_from_environment({"TF_CONFIG": raw})


def test_chief_is_the_chief_task_else_worker_zero() -> None:
    workers = {"worker": ["a:1", "b:1"]}
    assert is_chief_task({"cluster": workers, "task": {"type": "worker", "index": 0}})
    assert not is_chief_task({"cluster": workers, "task": {"type": "worker", "index": 1}})
    with_chief = {**workers, "chief": ["c:1"]}
    assert is_chief_task({"cluster": with_chief, "task": {"type": "chief", "index": 0}})
    assert not is_chief_task({"cluster": with_chief, "task": {"type": "worker", "index": 0}})


def test_two_workers_train_one_epoch_and_only_the_chief_writes(
    tmp_path: Path, mnist_mirror: Path
) -> None:
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    workspaces = [tmp_path / "worker0", tmp_path / "worker1"]
    runs = []
    for index, workspace in enumerate(workspaces):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
            "CUDA_VISIBLE_DEVICES": "-1",
            "COLUMNS": "120",
        }
        command = [
            sys.executable, "-m", "digitctl", "--workspace", str(workspace),
            "--cache-dir", str(tmp_path / f"cache{index}"), "train",
            "--mirror", str(mnist_mirror), "--strategy", "multi-worker", "--recipe", "fast",
            "--epochs", "1", "--batch-size", "32", "--json",
        ]  # fmt: skip
        runs.append(
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        )
    outputs = []
    try:
        for run in runs:
            outputs.append(run.communicate(timeout=300))
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
    for run, (_, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err.decode()[-3000:]
    chief = json.loads(outputs[0][0])
    assert chief["replicas"] == 2 and chief["is_chief"] is True
    assert (workspaces[0] / "models" / "best_model.keras").is_file()
    assert (workspaces[0] / "artifacts" / "history.json").is_file()
    worker = json.loads(outputs[1][0])
    assert worker["is_chief"] is False
    written = [p for p in workspaces[1].rglob("*") if p.is_file()]
    assert written == []


def test_mirrored_strategy_trains_on_the_local_devices(tmp_path: Path, mnist_mirror: Path) -> None:
    command = [
        sys.executable, "-m", "digitctl", "--workspace", str(tmp_path / "ws"),
        "--cache-dir", str(tmp_path / "cache"), "train", "--mirror", str(mnist_mirror),
        "--strategy", "mirrored", "--recipe", "fast", "--epochs", "1", "--json",
    ]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1"}
    done = subprocess.run(command, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    result = json.loads(done.stdout)
    assert result["strategy"] == "mirrored" and result["replicas"] >= 1
    assert (tmp_path / "ws" / "models" / "best_model.keras").is_file()


def test_multi_worker_without_tf_config_is_one_clear_line(
    tmp_path: Path, mnist_mirror: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    command = [
        sys.executable, "-m", "digitctl", "--workspace", str(tmp_path / "ws"),
        "--cache-dir", str(tmp_path / "cache"), "train", "--mirror", str(mnist_mirror),
        "--strategy", "multi-worker", "--epochs", "1",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "needs TF_CONFIG" in done.stderr and "Traceback" not in done.stderr
