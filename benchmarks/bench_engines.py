"""Issue 33: which engine? Ray against Dask distributed, on the same reading work.

One fresh process per run starts a local cluster of ``--workers`` processes (Ray:
``ray.init(num_cpus=N)``; Dask: ``LocalCluster(n_workers=N, threads_per_worker=1)``),
then reads the first ``--count`` images of ``--images`` in chunks of ``--chunk``, each
process loading the model once (a Ray actor per worker; a Dask task keeps it in its
worker process). It reports the engine's import and start-up time (until a first trivial
task came back), 200 trivial tasks (the engine's own overhead), the reading time and
images/s, the largest sum of RSS over this process and its descendants while reading,
and shutdown. Run it with the Python that has the engine installed:

    python benchmarks/bench_engines.py dask --workers 2 --images .bench/cluster-20000 --count 4000
    ray-venv/bin/python benchmarks/bench_engines.py ray --workers 2 --images ... --count 4000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

_PREDICTOR = None  # per worker process: the model is loaded once


def read_chunk(paths: list[str]) -> list[str]:
    global _PREDICTOR
    from digitctl.errors import ImageError
    from digitctl.inference import load_predictor

    if _PREDICTOR is None:
        from digitctl.process import tune_process

        # as digitctl's own reading processes do (OpenCV on one thread, freed memory
        # kept): without it a Dask worker, whose nanny sets MALLOC_TRIM_THRESHOLD_=65536,
        # reads 25% slower than a Ray actor (--untuned)
        if os.environ.get("BENCH_UNTUNED") != "1":
            tune_process(predicting=True)
        _PREDICTOR = load_predictor()
    texts = []
    for path in paths:
        try:
            texts.append(_PREDICTOR.read(path).text)
        except ImageError:
            texts.append("error")
    return texts


def square(x: int) -> int:
    return x * x


def tree_rss_mib() -> float:
    """RSS of this process and every descendant (from ps: no psutil in a bare venv)."""
    rows = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,rss="], capture_output=True, text=True)
    table = [tuple(map(int, line.split())) for line in rows.stdout.splitlines() if line.strip()]
    children: dict[int, list[int]] = {}
    rss = {}
    for pid, ppid, kib in table:
        children.setdefault(ppid, []).append(pid)
        rss[pid] = kib
    todo, total = [os.getpid()], 0
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total / 1024


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, tree_rss_mib())
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", choices=["ray", "dask"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--untuned", action="store_true", help="workers as the engine starts them")
    options = parser.parse_args()
    if options.untuned:
        os.environ["BENCH_UNTUNED"] = "1"  # before the workers start: they inherit it
    files = sorted(str(p) for p in options.images.iterdir() if p.suffix in (".png", ".jpg"))
    files = files[: options.count]
    chunks = [files[i : i + options.chunk] for i in range(0, len(files), options.chunk)]
    n = options.workers
    started = time.perf_counter()
    if options.engine == "dask":
        import distributed

        imported = time.perf_counter() - started
        cluster = distributed.LocalCluster(
            n_workers=n, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
        )
        client = distributed.Client(cluster)
        client.gather(client.map(square, range(n)))
    else:
        import ray

        imported = time.perf_counter() - started
        ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False)
        remote_square = ray.remote(square)
        ray.get([remote_square.remote(i) for i in range(n)])
    startup = time.perf_counter() - started

    t = time.perf_counter()
    if options.engine == "dask":
        client.gather(client.map(square, range(1000, 1200)))
    else:
        ray.get([remote_square.remote(i) for i in range(1000, 1200)])
    trivial = time.perf_counter() - t

    sampler = Sampler()
    sampler.start()
    t = time.perf_counter()
    if options.engine == "dask":
        futures = client.map(read_chunk, chunks, pure=False)
        answers = sum(len(r) for r in client.gather(futures))
    else:
        from ray.util import ActorPool

        Reader = ray.remote(num_cpus=1)(type("Reader", (), {"read": lambda self, c: read_chunk(c)}))
        pool = ActorPool([Reader.remote() for _ in range(n)])
        answers = sum(len(r) for r in pool.map(lambda actor, c: actor.read.remote(c), chunks))
    reading = time.perf_counter() - t
    sampler.stop.set()
    sampler.join()

    t = time.perf_counter()
    if options.engine == "dask":
        client.close()
        cluster.close()
    else:
        ray.shutdown()
    shutdown = time.perf_counter() - t
    row = {
        "engine": options.engine,
        "workers": n,
        "images": answers,
        "import_s": round(imported, 2),
        "startup_s": round(startup, 2),
        "trivial_200_tasks_s": round(trivial, 2),
        "reading_s": round(reading, 1),
        "images_per_s": round(answers / reading, 1),
        "peak_mib": round(sampler.peak),
        "shutdown_s": round(shutdown, 2),
        "python": sys.version.split()[0],
    }
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
