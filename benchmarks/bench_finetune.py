"""Teach the bundled model a handwriting it reads badly, through the real CLI, and time it.

    python benchmarks/bench_finetune.py --mnist /work/shared/data/mnist

The "writer" letters every digit in outline ("bubble") style: MNIST *test* digits,
enlarged 4×, each stroke drawn as its outline only (a double line around where the stroke
was, as with an outline marker). The bundled model reads these far below its MNIST
accuracy. (An earlier stencil writer, strokes cut by horizontal gaps, is no longer a
digit the layout stage keeps whole: its bands read as separate lines of writing, which
fine-tuning the classifier cannot change.) For each digit, ``--per-digit`` (20) of them become
feedback through ``digitctl feedback add --label D``; ``--eval-per-digit`` (100) *other*
ones measure the writer's accuracy before and after ``digitctl finetune --json``, which
runs as its own process and is timed whole (start-up, LiteRT export included). MNIST
test accuracy before/after comes from finetune's own summary: the full 10k test set,
because the benchmark puts MNIST in the workspace's cache first (``--no-cache`` measures
on the shipped subset instead). Results: ``benchmarks/results/bench_finetune.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from digitctl.data import read_idx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "bench_finetune.json"
SCALE = 4
OUTLINE = 11  # the outline's outer reach, in pixels of the enlarged digit (stroke ≈ 4 px)


def outline(image: np.ndarray, rng: np.random.Generator) -> bytes:
    """A 28×28 MNIST digit as a 112×112 PNG lettered in outline: the stroke's rim only."""
    from PIL import ImageFilter

    big = Image.fromarray(image).resize((28 * SCALE, 28 * SCALE), Image.Resampling.BILINEAR)
    ink = big.point(lambda v: 255 if v > 100 else 0)
    grow = OUTLINE + 2 * int(rng.integers(0, 2))  # 11 or 13: the pen's width varies a little
    rim = np.asarray(ink.filter(ImageFilter.MaxFilter(grow)), np.int16) - np.asarray(
        ink.filter(ImageFilter.MaxFilter(3)), np.int16
    )
    buffer = io.BytesIO()
    Image.fromarray(np.clip(rim, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def digitctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "digitctl", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def accuracy(settings_workspace: Path, paths: list[Path], labels: list[int]) -> float:
    """The writer's accuracy with the model `predict` would use in that workspace."""
    from digitctl.config import Settings
    from digitctl.inference import load_predictor

    predictor = load_predictor(Settings(workspace=settings_workspace))
    answers = [getattr(r, "text", None) for r in predictor.read_many(paths)]
    return float(np.mean([a == str(label) for a, label in zip(answers, labels, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    parser.add_argument("--per-digit", type=int, default=20)
    parser.add_argument("--eval-per-digit", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--no-cache", action="store_true", help="MNIST figure on the subset")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("finetune_args", nargs="*", help="extra arguments for finetune")
    args = parser.parse_args()

    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    workspace.mkdir(parents=True, exist_ok=True)
    top = ["--workspace", str(workspace), "--cache-dir", str(workspace / "cache")]
    x = read_idx(args.mnist / "t10k-images-idx3-ubyte.gz")
    y = read_idx(args.mnist / "t10k-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(args.seed)
    feedback_files: dict[int, list[Path]] = {}
    eval_files, eval_labels = [], []
    for digit in range(10):
        picks = rng.permutation(np.flatnonzero(y == digit))[: args.per_digit + args.eval_per_digit]
        folder = workspace / "writer" / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for index in picks:
            path = folder / f"test{index:05d}.png"
            path.write_bytes(outline(x[index], rng))
            paths.append(path)
        feedback_files[digit] = paths[: args.per_digit]
        eval_files += paths[args.per_digit :]
        eval_labels += [digit] * (len(paths) - args.per_digit)

    if not args.no_cache:
        digitctl(*top, "download", "--mirror", str(args.mnist))
    for digit, paths in feedback_files.items():
        # Exit 1: some images had no readable glyph (they are reported and skipped).
        added = digitctl(
            *top, "feedback", "add", "--label", str(digit), *map(str, paths), check=False
        )
        if added.returncode not in (0, 1):
            sys.exit(f"feedback add failed ({added.returncode}):\n{added.stderr[-3000:]}")
    feedback_list = json.loads(digitctl(*top, "feedback", "list", "--json").stdout)

    before = accuracy(workspace, eval_files, eval_labels)
    feedback_before = accuracy(
        workspace,
        [p for ps in feedback_files.values() for p in ps],
        [d for d, ps in feedback_files.items() for _ in ps],
    )
    import resource

    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()
    started = time.perf_counter()
    run = digitctl(*top, "finetune", "--json", *args.finetune_args, check=False)
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if run.returncode not in (0, 1):
        sys.exit(f"finetune failed ({run.returncode}):\n{run.stderr[-3000:]}")
    summary = json.loads(run.stdout)
    after = accuracy(workspace, eval_files, eval_labels) if summary["installed"] else None

    import keras
    import tensorflow as tf

    result = {
        "command": "python benchmarks/bench_finetune.py " + " ".join(sys.argv[1:]),
        "writer": f"outline lettering: MNIST test digits ×{SCALE}, the stroke's rim only "
        f"(outer reach {OUTLINE}-{OUTLINE + 2} px); seed {args.seed}",
        "feedback_per_digit": args.per_digit,
        "feedback_stored": feedback_list["total"],
        "feedback_read_right_before": round(feedback_before, 4),
        "writer_eval_images": len(eval_files),
        "writer_accuracy_before": round(before, 4),
        "writer_accuracy_after": None if after is None else round(after, 4),
        "mnist_test": summary["mnist_test"],
        "holdout": summary["holdout"],
        "replay": {
            "source": summary.get("replay_source"),
            "images": summary["replay_images"],
            "negatives": summary["negative_replay"],
            "piece_negatives": summary.get("piece_negatives"),
        },
        "installed": summary["installed"],
        "refused": summary["refused"],
        "finetune_exit_code": run.returncode,
        "finetune_process_seconds": round(wall, 2),
        # CPU time of that process: on an otherwise idle machine its wall time is about
        # this divided by the cores it keeps busy (a shared machine's wall time is not).
        "finetune_process_cpu_seconds": round(cpu, 2),
        "finetune_peak_rss_mib": round(cpu_after.ru_maxrss / 1024, 1),
        "load_average_at_start": [round(v, 2) for v in load_before],
        "finetune_seconds": summary["seconds"],
        "finetune_settings": summary["settings"],
        "machine": {
            "cpu": cpu_model(),
            "cpus": len(os.sched_getaffinity(0)),
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    text = json.dumps(result, indent=2)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
