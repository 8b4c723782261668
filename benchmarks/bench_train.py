"""Training benchmark: the `fast` recipe's throughput and time to >= 99.0% test accuracy
over several seeds, and (with --best) the default recipe's epochs and wall time.

Every figure comes from the real command line (`digitctl train`, then `digitctl
evaluate`) run as a subprocess, so it includes what a user waits for: Python and
TensorFlow start-up, data loading, training, saving, the LiteRT export and the plots.
The data cache is warmed first (`digitctl preprocess` per seed) so that no run pays for
parsing the IDX files.

    python benchmarks/bench_train.py --mirror ../shared/data/mnist            # fast x 3 seeds
    python benchmarks/bench_train.py --mirror ../shared/data/mnist --best     # + default recipe
    python benchmarks/bench_train.py --mirror ../shared/data/mnist \
        --variant b256= --variant "b128=--batch-size 128"    # candidates, seeds interleaved

Results: printed as a Markdown table and written to benchmarks/results/bench_train.json.
The machine is shared: the load average before each run is recorded with it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "bench_train.json"
DIGITCTL = [sys.executable, "-m", "digitctl"]


def machine() -> dict[str, object]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tensorflow as tf, keras, numpy, digitctl;"
            "print(tf.__version__, keras.__version__, numpy.__version__, digitctl.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "tensorflow": versions[0],
        "keras": versions[1],
        "numpy": versions[2],
        "digitctl": versions[3],
    }


def run(args: list[str]) -> tuple[dict, float, float, float]:
    """Run one digitctl command with --json; (its JSON, wall seconds, peak RSS MiB, CPU
    seconds). On a shared machine the CPU seconds are the steadier figure."""
    # Output goes to files, not pipes: a full pipe would block the child.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(args, stdout=out, stderr=err, text=True)
        # wait4 gives this child's own peak RSS (RUSAGE_CHILDREN would keep the maximum
        # over every child so far).
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(args)} failed:\n{stderr[-3000:]}")
    return json.loads(stdout), wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def bench_recipe(
    recipe: str, seed: int, mirror: str, cache: Path, root: Path, variant: str = "", flags=()
) -> dict:
    workspace = root / f"{recipe}-{variant}-seed{seed}"
    common = [*DIGITCTL, "--workspace", str(workspace), "--cache-dir", str(cache)]
    subprocess.run(
        [*common, "preprocess", "--mirror", mirror, "--seed", str(seed), "--json"],
        check=True,
        capture_output=True,
    )
    load = os.getloadavg()[0]
    trained, wall, peak, cpu = run(
        [
            *common,
            "train",
            "--mirror",
            mirror,
            "--recipe",
            recipe,
            "--seed",
            str(seed),
            *flags,
            "--json",
        ]
    )
    evaluated, _, _, _ = run([*common, "evaluate", "--mirror", mirror, "--json"])
    card = json.loads(Path(trained["record"]).read_text())
    record = card.get("training", card)  # the model card holds the run record
    images = trained["train_images"] * trained["epochs_run"]
    return {
        "recipe": recipe,
        "variant": variant,
        "flags": list(flags),
        "seed": seed,
        "epochs": trained["epochs_run"],
        "best_epoch": trained["best_epoch"],
        # Wall time of the fit call: every epoch with its validation and checkpoints.
        "train_seconds": record["timings"]["fit_seconds"],
        "epochs_seconds": trained["train_seconds"],
        "export_seconds": record["timings"]["export_seconds"],
        "process_seconds": round(wall, 2),
        "process_cpu_seconds": round(cpu, 2),
        "images_per_second": round(images / trained["train_seconds"]),
        "val_accuracy": trained["best"]["val_accuracy"],
        "test_accuracy": evaluated["accuracy"],
        "peak_rss_mib": round(peak),
        "epoch_seconds": record["timings"]["epoch_seconds"],
        "load_average_before": round(load, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", required=True, help="folder holding the MNIST .gz files")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--best", action="store_true", help="also run the default recipe once")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=FLAGS",
        help="a candidate: extra `digitctl train` flags (repeat; runs alternate by seed)",
    )
    options = parser.parse_args()
    mirror = str(Path(options.mirror).resolve()) if "://" not in options.mirror else options.mirror

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp)
        cache = root / "cache"
        variants = [v.split("=", 1) for v in options.variant] or [["fast", ""]]
        for seed in options.seeds:
            # Candidates alternate, seed by seed: a change in the shared machine's load
            # then falls on all of them alike.
            for label, flags in variants:
                rows.append(
                    bench_recipe("fast", seed, mirror, cache, root, label, shlex.split(flags))
                )
                print(json.dumps(rows[-1]), flush=True)
        if options.best:
            rows.append(bench_recipe("best", options.seeds[0], mirror, cache, root))
            print(json.dumps(rows[-1]), flush=True)

    document = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "runs": rows,
    }
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(document, indent=2) + "\n")
    print(
        "\n| recipe | variant | seed | epochs | training s | process s | process CPU s | img/s "
        "| val acc | test acc | peak RSS MiB | load before |"
    )
    print("| --- " * 12 + "|")
    for r in rows:
        print(
            f"| {r['recipe']} | {r['variant']} | {r['seed']} | {r['epochs']} | "
            f"{r['train_seconds']:.1f} | "
            f"{r['process_seconds']:.1f} | {r['process_cpu_seconds']:.1f} | "
            f"{r['images_per_second']:,} | {r['val_accuracy']:.2%} | {r['test_accuracy']:.2%} | "
            f"{r['peak_rss_mib']} | {r['load_average_before']} |"
        )
    print("\nmedians: | variant | training s | process s | CPU s | test acc (min) | peak RSS MiB |")
    for label in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == label]

        def median(key: str, mine: list[dict] = mine) -> float:
            return statistics.median(r[key] for r in mine)

        print(
            f"| {label} | {median('train_seconds'):.1f} | {median('process_seconds'):.1f} | "
            f"{median('process_cpu_seconds'):.1f} | {median('test_accuracy'):.2%} "
            f"({min(r['test_accuracy'] for r in mine):.2%}) | {median('peak_rss_mib'):.0f} |"
        )
    print(f"\nwritten to {options.output}")


if __name__ == "__main__":
    main()
