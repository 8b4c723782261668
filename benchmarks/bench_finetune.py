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


def continental(image: np.ndarray, label: int, rng: np.random.Generator) -> bytes:
    """A 28×28 MNIST digit as a 112×112 PNG in a continental hand: a 1 with a long flag
    (and sometimes a foot), a 7 crossed through its stem, a 4 closed at the top; the other
    digits as they were written. Strokes are added where the digit's own ink is."""
    from PIL import ImageDraw

    big = Image.fromarray(image).resize((28 * SCALE, 28 * SCALE), Image.Resampling.BILINEAR)
    ink = np.asarray(big) > 100
    rows, cols = np.nonzero(ink)
    if rows.size and label in (1, 4, 7):
        top, bottom = int(rows.min()), int(rows.max())
        height = bottom - top + 1
        pen = int(rng.integers(8, 11))
        draw = ImageDraw.Draw(big)

        def centre_of_row(y: int) -> int:
            xs = np.flatnonzero(ink[y])
            return int(xs.mean()) if xs.size else int(cols.mean())

        if label == 1:
            x = centre_of_row(top)
            length = height * rng.uniform(0.3, 0.45)
            angle = np.radians(rng.uniform(30, 50))  # down and to the left
            end = (x - length * np.cos(angle), top + length * np.sin(angle))
            draw.line([(x, top), end], fill=255, width=pen)
            if rng.random() < 0.5:  # a foot
                x = centre_of_row(bottom)
                half = height * rng.uniform(0.15, 0.25)
                draw.line([(x - half, bottom), (x + half, bottom)], fill=255, width=pen)
        elif label == 7:
            y = top + int(height * rng.uniform(0.5, 0.6))
            x = centre_of_row(y)
            half = height * rng.uniform(0.18, 0.26)
            draw.line([(x - half, y), (x + half, y)], fill=255, width=pen)
        else:  # 4: the two arms joined at the top
            middle = int(np.median(cols))
            left = [(int(x), int(y)) for y, x in zip(rows, cols, strict=True) if x < middle]
            right = [(int(x), int(y)) for y, x in zip(rows, cols, strict=True) if x >= middle]
            if left and right:
                a = min(left, key=lambda p: p[1])
                b = min(right, key=lambda p: p[1])
                draw.line([a, b], fill=255, width=pen)
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    return buffer.getvalue()


WRITERS = {
    "outline": f"outline lettering: MNIST test digits ×{SCALE}, the stroke's rim only "
    f"(outer reach {OUTLINE}-{OUTLINE + 2} px)",
    "continental": f"a continental hand: MNIST test digits ×{SCALE}, every 1 with a long "
    "flag (half of them with a foot), every 7 crossed, every 4 closed at the top",
}


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


def read_right(settings_workspace: Path, paths: list[Path], labels: list[int]) -> np.ndarray:
    """Whether each image is read as its digit, with the model `predict` would use in
    that workspace."""
    from digitctl.config import Settings
    from digitctl.inference import load_predictor

    predictor = load_predictor(Settings(workspace=settings_workspace))
    answers = [getattr(r, "text", None) for r in predictor.read_many(paths)]
    return np.array([a == str(label) for a, label in zip(answers, labels, strict=True)])


def accuracy(settings_workspace: Path, paths: list[Path], labels: list[int]) -> float:
    """The writer's accuracy with the model `predict` would use in that workspace."""
    return float(np.mean(read_right(settings_workspace, paths, labels)))


def by_digit(right: np.ndarray, labels: list[int]) -> dict[str, float]:
    digits = np.array(labels)
    return {str(d): round(float(right[digits == d].mean()), 4) for d in sorted(set(labels))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    parser.add_argument("--per-digit", type=int, default=20)
    parser.add_argument("--eval-per-digit", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--writer", choices=sorted(WRITERS), default="outline")
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
            if args.writer == "outline":
                path.write_bytes(outline(x[index], rng))
            else:
                path.write_bytes(continental(x[index], digit, rng))
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

    right_before = read_right(workspace, eval_files, eval_labels)
    before = float(right_before.mean())
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
    right_after = read_right(workspace, eval_files, eval_labels) if summary["installed"] else None
    after = None if right_after is None else float(right_after.mean())

    import keras
    import tensorflow as tf

    result = {
        "command": "python benchmarks/bench_finetune.py " + " ".join(sys.argv[1:]),
        "writer": f"{WRITERS[args.writer]}; seed {args.seed}",
        "feedback_per_digit": args.per_digit,
        "feedback_stored": feedback_list["total"],
        "feedback_read_right_before": round(feedback_before, 4),
        "writer_eval_images": len(eval_files),
        "writer_accuracy_before": round(before, 4),
        "writer_accuracy_after": None if after is None else round(after, 4),
        "writer_accuracy_by_digit": {
            "before": by_digit(right_before, eval_labels),
            "after": None if right_after is None else by_digit(right_after, eval_labels),
        },
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
