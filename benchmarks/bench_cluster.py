"""Issue 33: a big batch read by one process, and by Dask with 1 and 2 local workers.

The batch is ``--count`` files (default 20,000) in ``.bench/cluster-<count>/``: the first
half of them items of framing_sets.py's ``batch_photos`` (phone photos of one digit,
160-640 px, JPEG), the rest ``batch_numbers`` (2-6 digits, canvas and paper), seed 0,
rendered once (items already in ``.bench/sets`` are hard-linked, not rendered again).
Each configuration is one fresh ``digitctl`` process, timed whole:

- ``predict --json``: today's path (forked readers, one per core, above 400 images);
- ``local, 1 worker``: ``predict --out --workers 1``, one process;
- ``dask, N workers``: ``predict --out --engine dask --workers N``, a local cluster.

Peak memory is the largest sum of RSS over the process and all its descendants (the
scheduler, nannies and workers), sampled every 0.1 s. Start-up is the engine's own
(``startup_seconds`` of the summary). images/s counts the reading only (wall - start-up).

    python benchmarks/bench_cluster.py [--count 20000] [--workers 1,2] [--skip-predict]

Writes benchmarks/results/bench_cluster.json with the CPU model and whether the machine
was shared (a training job running).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SETS = ROOT / ".bench" / "sets"
sys.path.insert(0, str(HERE))

import framing_sets as fs  # noqa: E402


def _existing(name: str) -> dict[int, Path]:
    """Items of set ``name`` (seed 0) already rendered by framing_sets.py, by index."""
    found: dict[int, Path] = {}
    for folder in SETS.glob(f"{name}-n*-s0-v{fs.VERSION}*"):
        for file in folder.iterdir():
            if file.stem.isdigit() and file.suffix in (".png", ".jpg"):
                found[int(file.stem)] = file
    return found


_DATA: tuple = ()


def _load(mnist: Path) -> None:
    global _DATA
    _DATA = fs.load_mnist_test(mnist)


def _render(job: tuple[str, int]) -> tuple[str, int, bytes, str]:
    name, index = job
    blob, ext, _ = fs.render_item(name, index, 0, *_DATA)
    return name, index, blob, ext


def build_batch(count: int, mnist: Path) -> Path:
    """``count`` files: items 0.. of batch_photos and batch_numbers (seed 0), half each."""
    folder = ROOT / ".bench" / f"cluster-{count}"
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    todo = []
    for name, n in (("batch_photos", count - count // 2), ("batch_numbers", count // 2)):
        have = _existing(name)
        for i in range(n):
            target = f"{name.split('_')[1]}-{i:05d}"
            if any(folder.glob(target + ".*")):
                continue
            if i in have:
                os.link(have[i], folder / (target + have[i].suffix))
            else:
                todo.append((name, i))
    print(f"rendering {len(todo)} images into {folder}", file=sys.stderr, flush=True)
    with multiprocessing.Pool(os.cpu_count(), initializer=_load, initargs=(mnist,)) as pool:
        for name, i, blob, ext in pool.imap_unordered(_render, todo, chunksize=20):
            (folder / f"{name.split('_')[1]}-{i:05d}.{ext}").write_bytes(blob)
    (folder / ".complete").write_text("")
    return folder


def cpu_model() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return f"unknown, {os.cpu_count()} cores"


def machine_shared() -> bool:
    return subprocess.run(["pgrep", "-f", "recipe reader"], capture_output=True).returncode == 0


def run(args: list[str]) -> dict:
    """Wall seconds, peak tree RSS (MiB), exit status and stdout of one fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the dask workers import this checkout
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout:
        process = subprocess.Popen(args, stdout=stdout, stderr=subprocess.DEVNULL, env=env)
        peak = 0.0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            root = psutil.Process(process.pid)
            while not done.is_set():
                total = 0
                try:
                    for p in [root, *root.children(recursive=True)]:
                        try:
                            total += p.memory_info().rss
                        except psutil.Error:
                            pass
                except psutil.Error:
                    break
                peak = max(peak, total / 2**20)
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        status = process.wait()
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        stdout.seek(0)
        return {"wall_s": wall, "peak_mib": peak, "status": status, "stdout": stdout.read()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--mnist", type=Path, default=fs.DEFAULT_MNIST)
    parser.add_argument("--build-only", action="store_true", help="render the batch, no runs")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--skip-predict", action="store_true", help="no predict --json run")
    options = parser.parse_args()
    batch = build_batch(options.count, options.mnist)
    if options.build_only:
        return
    digitctl = [sys.executable, "-m", "digitctl"]
    configs: list[tuple[str, int, list[str]]] = []
    if not options.skip_predict:
        configs.append(("predict --json", 0, [*digitctl, "predict", "--json", str(batch)]))
    common = ["--shard-size", str(options.shard_size), "--json"]
    configs.append(("local", 1, [*digitctl, "predict", str(batch), "--workers", "1", *common]))
    for n in (int(w) for w in options.workers.split(",")):
        configs.append(
            (
                "dask",
                n,
                [
                    *digitctl,
                    "predict",
                    str(batch),
                    "--engine",
                    "dask",
                    "--workers",
                    str(n),
                    *common,
                ],
            )
        )
    shared_at_start = machine_shared()
    results = []
    for engine, workers, args in configs:
        with tempfile.TemporaryDirectory() as out:
            if engine != "predict --json":
                args = [*args, "--out", out]
            measured = run(args)
            shards = Path(out).glob("part-*.jsonl")
            lines = sum(len(p.read_text().splitlines()) for p in shards)
        startup = 0.0
        if engine == "predict --json":
            lines = measured["stdout"].count("\n")
        else:
            startup = json.loads(measured["stdout"].strip().splitlines()[-1])["startup_seconds"]
        reading = measured["wall_s"] - startup
        row = {
            "engine": engine,
            "workers": workers,
            "images": options.count,
            "answers": lines,
            "wall_s": round(measured["wall_s"], 1),
            "startup_s": round(startup, 2),
            "images_per_s": round(options.count / reading, 1),
            "peak_mib": round(measured["peak_mib"]),
            "exit": measured["status"],
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    report = {
        "cpu": cpu_model(),
        "shared_machine": shared_at_start or machine_shared(),
        "command": " ".join(["python benchmarks/bench_cluster.py", *sys.argv[1:]]),
        "results": results,
    }
    target = HERE / "results" / "bench_cluster.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "results"}))


if __name__ == "__main__":
    main()
