"""Start-up and data benchmark: `digitctl --help`, `preprocess` on the full 70,000
images from a fresh cache, and the cached rerun.

    python benchmarks/bench_data.py --mirror ../shared/data/mnist [--repeat 5]

Every figure is the wall time of the real command in a subprocess (median of --repeat
runs), so it includes Python start-up. Results: a Markdown table on stdout and
benchmarks/results/bench_data.json, with the load average seen before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "bench_data.json"
DIGITCTL = [sys.executable, "-m", "digitctl"]
# As after a pip install, which compiles every module: where PYTHONDONTWRITEBYTECODE is
# set (this machine), an editable checkout would otherwise recompile digitctl each run.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=CHILD_ENV)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", required=True, help="folder or URL with the MNIST .gz files")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if Path(args.mirror).is_dir():  # the commands run in a scratch folder
        args.mirror = str(Path(args.mirror).resolve())

    figures: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "python": sys.version.split()[0],
        "load_before": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory() as scratch:
        workspace = Path(scratch)
        timed([*DIGITCTL, "--help"], workspace)  # warm-up, not timed: bytecode, file cache
        figures["help_seconds"] = statistics.median(
            timed([*DIGITCTL, "--help"], workspace) for _ in range(args.repeat)
        )
        cache = ["--cache-dir", str(workspace / "cache")]
        figures["download_seconds"] = timed(
            [*DIGITCTL, *cache, "download", "--mirror", args.mirror], workspace
        )
        fresh = []
        for _index in range(args.repeat):
            # A fresh processed cache each time; the raw download stays cached.
            for stale in (workspace / "cache" / "processed").glob("*"):
                stale.unlink()
            for stale in (workspace / "artifacts").glob("*"):
                stale.unlink()
            fresh.append(timed([*DIGITCTL, *cache, "preprocess"], workspace))
        figures["preprocess_fresh_seconds"] = statistics.median(fresh)
        figures["preprocess_cached_seconds"] = statistics.median(
            timed([*DIGITCTL, *cache, "preprocess"], workspace) for _ in range(args.repeat)
        )
    figures["load_after"] = os.getloadavg()[0]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print("| figure | seconds |\n| --- | --- |")
    for key in (
        "help_seconds",
        "download_seconds",
        "preprocess_fresh_seconds",
        "preprocess_cached_seconds",
    ):
        print(f"| {key} | {figures[key]:.2f} |")
    print(f"\nload average {figures['load_before']:.1f} → {figures['load_after']:.1f}")


if __name__ == "__main__":
    main()
