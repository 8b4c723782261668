"""Issues 11 and 12: one `digitctl predict --json DIR` over 1,000 photos, and 1,000 numbers.

The sets (benchmarks/framing_sets.py): ``batch_photos``, 1,000 phone photos of one MNIST
test digit in ink on paper (160-640 px a side, JPEG), and ``batch_numbers``, 1,000
images of 2-6 digits (canvas and paper, separated and touching). Each run is one fresh
``digitctl predict --json <folder>`` process, timed as a whole (wall, CPU with workers,
peak RSS from wait4); one untimed warm-up run first, then ``--runs`` runs, median.
Accuracy comes from the JSON Lines of the last run (``text`` where the output has it,
else ``label``). For reference it also times decoding the files alone in this process.

    python benchmarks/bench_batch.py [--runs 5] [--count 1000] [--sets batch_photos,batch_numbers]

To time another checkout's code, put its package first: ``PYTHONPATH=/tmp/head python
benchmarks/bench_batch.py`` (the children inherit it). Targets on 2 cores: <= 3 s
(photos), <= 5 s (numbers). Writes benchmarks/results/bench_batch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import framing_sets as fs  # noqa: E402

TARGETS_S = {"batch_photos": 3.0, "batch_numbers": 5.0}
# Children may write bytecode (see bench_predict.py): an editable install would otherwise
# recompile digitctl on every start.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def digitctl_command() -> list[str]:
    script = Path(sys.executable).with_name("digitctl")
    if script.exists() and "PYTHONPATH" not in os.environ:
        return [str(script)]
    return [sys.executable, "-m", "digitctl"]


def run_once(args: list[str], stdout) -> tuple[float, float, float, int]:
    """(wall s, CPU s with children, peak RSS MiB, exit status) of one fresh process."""
    start = time.perf_counter()
    # cwd elsewhere: with ``python -m`` the current directory comes first on sys.path, and
    # a checkout's digitctl there would shadow the one PYTHONPATH names.
    process = subprocess.Popen(
        args, stdout=stdout, stderr=subprocess.DEVNULL, env=CHILD_ENV, cwd=tempfile.gettempdir()
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def decode_seconds(paths: list[Path]) -> float:
    from PIL import Image

    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            image.convert("L").load()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model (default: bundled)")
    parser.add_argument("--mnist", type=Path, default=fs.DEFAULT_MNIST)
    parser.add_argument("--root", type=Path, default=fs.DEFAULT_ROOT, help="where sets live")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sets", default=",".join(fs.BATCH_SETS))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_batch.json")
    args = parser.parse_args()
    info = fs.machine_info()
    data = fs.load_mnist_test(args.mnist)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        for name in args.sets.split(","):
            folder = fs.write_set(name, args.count, args.seed, args.root, data=data)
            items = fs.read_labels(folder)["items"]
            # Only the images: labels.json must not be among the inputs.
            inputs = Path(tmp) / name
            inputs.mkdir()
            for item in items:
                os.symlink(folder / item["file"], inputs / item["file"])
            argv = [*digitctl_command(), "predict", "--json", str(inputs)]
            if args.model:
                argv[-1:-1] = ["--model", str(args.model)]
            out = Path(tmp) / f"{name}.jsonl"
            runs = []
            for k in range(args.runs + 1):
                load = round(os.getloadavg()[0], 2)
                with open(out, "wb") as handle:
                    wall, cpu, rss, status = run_once(argv, handle.fileno())
                if k:  # the first run warms the file cache and bytecode
                    runs.append(
                        {
                            "wall_s": round(wall, 3),
                            "cpu_s": round(cpu, 2),
                            "load_before": load,
                            "peak_rss_mib": round(rss, 1),
                            "exit_status": status,
                        }
                    )
                print(
                    f"{name}: run {k}{' (warm-up)' if not k else ''}: {wall:.2f} s wall, "
                    f"{cpu:.2f} s CPU, load {load}, exit {status}",
                    file=sys.stderr,
                )
            lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
            by_file = {Path(line["path"]).name: line for line in lines}
            right = 0
            for item in items:
                line = by_file.get(item["file"], {})
                read = line.get("text")
                if read is None:
                    read = "" if line.get("label") is None else str(line["label"])
                right += read == item["label"]
            wall = statistics.median(r["wall_s"] for r in runs)
            results[name] = {
                "images": len(items),
                "folder": str(folder.relative_to(fs.ROOT))
                if folder.is_relative_to(fs.ROOT)
                else str(folder),
                "wall_s_median": wall,
                "wall_s_min": min(r["wall_s"] for r in runs),
                "cpu_s_median": statistics.median(r["cpu_s"] for r in runs),
                "images_per_s": round(len(items) / wall, 1),
                "target_s": TARGETS_S.get(name),
                "target_met": bool(wall <= TARGETS_S[name]) if name in TARGETS_S else None,
                "accuracy": right / len(items),
                "output_has_text": any("text" in line for line in lines),
                "decode_only_s": round(decode_seconds([folder / i["file"] for i in items]), 3),
                "runs": runs,
            }
            r = results[name]
            print(
                f"{name}: median {wall:.2f} s (min {r['wall_s_min']:.2f} s, CPU "
                f"{r['cpu_s_median']:.2f} s) for {len(items)} images, accuracy "
                f"{r['accuracy']:.2%}, decoding alone {r['decode_only_s']:.2f} s",
                file=sys.stderr,
            )
    document = {
        "machine": info,
        "command": " ".join(argv[:-1] + ["DIR"]),
        "seed": args.seed,
        "results": results,
    }
    fs.write_results(document, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
