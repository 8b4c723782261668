"""`predict --out` and `digitctl.read_many`: shards, resumption, and the Dask engine.

The Dask tests share one local cluster of two worker processes on 127.0.0.1, whose
workers import this checkout (PYTHONPATH is set for them explicitly). Every answer is
compared with what `digitctl predict --json` writes for the same inputs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import realistic_images as ri
from PIL import Image
from typer.testing import CliRunner

import digitctl
from digitctl.batch import BatchProgress, expand_paths, read_batch
from digitctl.cli import app
from digitctl.config import Settings
from digitctl.errors import ConfigError, DigitctlError

ROOT = Path(__file__).resolve().parent.parent
distributed = pytest.importorskip("distributed", reason='needs pip install "digitctl[cluster]"')


def _number(labels: tuple[int, ...]) -> Image.Image:
    glyphs = [ri.draw_digit(label, size=96) for label in labels]
    strip = np.concatenate([np.pad(g, ((16, 16), (8, 8))) for g in glyphs], axis=1)
    return Image.fromarray((255 - strip * 255).astype(np.uint8), "L")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 images: single digits and numbers, drawn and on paper, and one unreadable file."""
    folder = tmp_path_factory.mktemp("batch-images")
    rng = np.random.default_rng(5)
    for index in range(16):
        label = (0, 1, 3, 4, 7)[index % 5]
        style = ("canvas", "paper", "scan")[index % 3]
        (folder / f"digit{index:02d}.png").write_bytes(ri.render(style, ri.draw_digit(label), rng))
    for index in range(7):
        labels = tuple(int(rng.choice([0, 1, 3, 4, 7])) for _ in range(2 + index % 3))
        _number(labels).save(folder / f"num{index}.png")
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


@pytest.fixture(scope="module")
def expected(images: Path) -> dict[str, str]:
    """What `digitctl predict --json` writes for the folder, line by line, by path."""
    result = CliRunner().invoke(app, ["predict", "--json", str(images)])
    assert result.exit_code == 1  # the broken file
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 24
    return {json.loads(line)["path"]: line for line in lines}


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    """Two single-thread worker processes on 127.0.0.1 that import this checkout."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), saved]))
    try:
        with distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=50,
        ) as local:
            yield local
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


@pytest.fixture
def on_cluster(cluster: distributed.LocalCluster) -> Settings:
    return Settings(cluster_address=cluster.scheduler_address)


def shard_lines(out: Path) -> list[str]:
    return [
        line
        for shard in sorted(out.glob("part-*.jsonl"))
        for line in shard.read_text().splitlines()
    ]


def assert_same_answers(out: Path, expected: dict[str, str]) -> None:
    lines = shard_lines(out)
    paths = [json.loads(line)["path"] for line in lines]
    assert sorted(paths) == sorted(expected), "every input answered exactly once"
    assert {json.loads(line)["path"]: line for line in lines} == expected


# --------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------
def test_globs_and_manifests_name_their_paths(tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.jpg"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "list.txt").write_text("# scans\na.png\n\n/abs/x.png\n")
    (tmp_path / "list.csv").write_text("id,path\n1,b.png\n2,c.jpg\n")
    (tmp_path / "bare.csv").write_text("a.png,1\n")
    assert expand_paths([str(tmp_path / "*.png")]) == [
        str(tmp_path / "a.png"),
        str(tmp_path / "b.png"),
    ]
    assert expand_paths([str(tmp_path / "list.txt")]) == [str(tmp_path / "a.png"), "/abs/x.png"]
    assert expand_paths([str(tmp_path / "list.csv")]) == [
        str(tmp_path / "b.png"),
        str(tmp_path / "c.jpg"),
    ]
    assert expand_paths([str(tmp_path / "bare.csv")]) == [str(tmp_path / "a.png")]
    assert expand_paths([str(tmp_path / "*.gif")]) == [str(tmp_path / "*.gif")]
    with pytest.raises(ConfigError, match="stdin"):
        expand_paths(["-"])


# --------------------------------------------------------------------------------------
# the local engine, through the CLI
# --------------------------------------------------------------------------------------
def test_predict_out_writes_the_json_lines_of_predict_json(
    images: Path, expected: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "answers"
    args = ["predict", str(images), "--out", str(out), "--shard-size", "10", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output  # the broken file is an error line
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["total"], summary["answered"], summary["shards"], summary["errors"]) == (
        24,
        24,
        3,
        1,
    )
    assert sorted(p.name for p in out.iterdir()) == [f"part-00000{i}.jsonl" for i in range(3)]
    assert_same_answers(out, expected)
    again = json.loads(CliRunner().invoke(app, args).stdout.strip().splitlines()[-1])
    assert (again["answered_before"], again["answered"], again["errors_before"]) == (24, 0, 1)


def test_engine_needs_an_output_folder(images: Path) -> None:
    result = CliRunner().invoke(app, ["predict", str(images), "--engine", "dask"])
    assert result.exit_code == 2 and "--out" in result.output


# --------------------------------------------------------------------------------------
# the Dask engine
# --------------------------------------------------------------------------------------
def test_without_the_extra_the_dask_engine_says_what_to_install(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(DigitctlError, match=r'pip install "digitctl\[cluster\]"'):
        read_batch([str(images)], tmp_path / "answers", engine="dask")
    assert not list((tmp_path / "answers").iterdir())


def test_workers_import_this_checkout(cluster: distributed.LocalCluster) -> None:
    with distributed.Client(cluster) as client:
        files = client.run(lambda: __import__("digitctl").__file__)
    assert len(files) == 2
    assert all(Path(f).resolve().is_relative_to(ROOT) for f in files.values())


def test_dask_engine_gives_the_answers_of_predict_json(
    images: Path, expected: dict[str, str], on_cluster: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "answers"
    summary = digitctl.read_many(
        [str(images)], out, engine="dask", settings=on_cluster, shard_size=4
    )
    assert (summary.engine, summary.workers, summary.answered, summary.shards) == ("dask", 2, 24, 6)
    assert summary.errors == 1 and summary.complete
    assert_same_answers(out, expected)


def test_an_interrupted_driver_reruns_only_the_rest(
    images: Path, expected: dict[str, str], on_cluster: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "answers"

    def ctrl_c_after_two_shards(step: BatchProgress) -> None:
        if step.done >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        read_batch(
            [str(images)],
            out,
            engine="dask",
            settings=on_cluster,
            shard_size=3,
            on_progress=ctrl_c_after_two_shards,
        )
    kept = shard_lines(out)
    assert len(kept) == 6 and not list(out.glob(".*"))  # two whole shards, no temp file

    summary = read_batch([str(images)], out, engine="dask", settings=on_cluster, shard_size=3)
    assert (summary.answered_before, summary.answered) == (6, 18)
    assert_same_answers(out, expected)


def test_ctrl_c_stops_the_driver_and_the_rerun_reads_the_rest(
    images: Path, on_cluster: Settings, tmp_path: Path
) -> None:
    batch = tmp_path / "batch"  # 144 inputs, two a shard: a run of a few seconds
    batch.mkdir()
    for copy in range(6):
        for image in images.iterdir():
            os.link(image, batch / f"{copy}-{image.name}")
    out = tmp_path / "answers"
    args = [sys.executable, "-m", "digitctl", "predict", str(batch), "--out", str(out)]
    args += ["--engine", "dask", "--address", str(on_cluster.cluster_address)]
    args += ["--shard-size", "2", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    deadline = time.monotonic() + 120
    while len(list(out.glob("part-*.jsonl"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    driver.send_signal(signal.SIGINT)
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130 and "interrupted" in stderr
    kept = len(shard_lines(out))
    assert 4 <= kept < 144

    rerun = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    summary = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert (summary["answered_before"], summary["answered"]) == (kept, 144 - kept)
    paths = [json.loads(line)["path"] for line in shard_lines(out)]
    assert len(paths) == 144 and len(set(paths)) == 144


def test_a_killed_worker_loses_no_input(
    images: Path,
    expected: dict[str, str],
    cluster: distributed.LocalCluster,
    on_cluster: Settings,
    tmp_path: Path,
) -> None:
    out = tmp_path / "answers"
    killed: dict[str, list[str]] = {}  # the worker killed: the shards it was reading

    def kill_a_busy_worker(step: BatchProgress) -> None:
        if killed or step.done == 0:
            return
        with distributed.Client(cluster) as client:
            busy = {w: keys for w, keys in client.processing().items() if keys}
            pids = client.run(os.getpid)
        if not busy:  # the next shards are not handed out yet: try at the next shard
            return
        victim = sorted(busy)[0]
        os.kill(pids[victim], signal.SIGKILL)
        killed[victim] = list(busy[victim])

    summary = read_batch(
        [str(images)],
        out,
        engine="dask",
        settings=on_cluster,
        shard_size=2,
        on_progress=kill_a_busy_worker,
    )
    (lost,) = killed.values()
    assert lost, "the killed worker had shards to read"
    assert summary.answered == 24 and summary.shards == 12
    assert_same_answers(out, expected)
    with distributed.Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)  # the nanny started a new one
        assert set(killed).isdisjoint(client.scheduler_info(n_workers=-1)["workers"])
