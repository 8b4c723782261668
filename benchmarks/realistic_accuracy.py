"""Accuracy of `Predictor.read` (what `predict` answers) on realistic MNIST test renderings.

Each MNIST test digit is re-drawn as a browser-canvas stroke, a phone photo of ink on
paper, a tiny scan and a large photo (tests/realistic_images.py), so labels are known.
The reference is the model's accuracy on the same raw MNIST test images; the goal is to
stay within about one point of it.

    python benchmarks/realistic_accuracy.py [--model PATH] [--count 1000] [--large 60]

Needs the MNIST test files (default: ../shared/data/mnist next to the repository, or
--mnist DIR). Writes benchmarks/results/realistic_accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digitctl.data import read_idx  # noqa: E402
from digitctl.errors import ImageError  # noqa: E402
from digitctl.inference import load_predictor  # noqa: E402
from tests import realistic_images  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from framing_sets import machine_info  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model (default: bundled)")
    parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    parser.add_argument("--count", type=int, default=1000, help="test digits per style")
    parser.add_argument("--large", type=int, default=60, help="test digits as large photos")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reader", choices=("rules", "line"), default="rules", help="what reads each image"
    )
    parser.add_argument(
        "--reader-model",
        type=Path,
        default=None,
        help="the line reader (.tflite) for --reader line",
    )
    parser.add_argument("--styles", default=",".join(realistic_images.STYLES))
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/realistic_accuracy.json"
    )
    args = parser.parse_args()

    x = read_idx(args.mnist / "t10k-images-idx3-ubyte.gz").astype(np.float32) / 255
    y = read_idx(args.mnist / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    from digitctl.config import Settings

    models_dir = args.reader_model.parent if args.reader_model else None
    settings = Settings(reader=args.reader, models_dir=models_dir)
    predictor = load_predictor(settings, model=args.model)
    print(f"model {predictor.path} ({predictor.backend}), reader {args.reader}", file=sys.stderr)

    full = float(np.mean(predictor.predict_views(x).argmax(1) == y))
    rows = {"mnist_test_raw_10000": {"images": len(x), "accuracy": full}}
    print(f"{'MNIST test set, raw (10000)':34s} {full:.2%}", file=sys.stderr)

    def measure(name: str, count: int, encode) -> None:
        count = min(count, len(x))
        rng = np.random.default_rng(args.seed)
        failures = 0
        render_s = prep_s = 0.0
        right = 0
        for i in range(count):
            t0 = time.perf_counter()
            data = encode(x[i], rng)
            t1 = time.perf_counter()
            try:
                # What a user gets: the whole reading must be exactly this one digit.
                right += predictor.read(data).text == str(int(y[i]))
            except ImageError:
                failures += 1
            prep_s += time.perf_counter() - t1
            render_s += t1 - t0
        raw = float(np.mean(predictor.predict_views(x[:count]).argmax(1) == y[:count]))
        accuracy = right / count  # no digit, not a digit or several digits count as wrong
        rows[name] = {
            "images": count,
            "accuracy": accuracy,
            "raw_mnist_accuracy_same_digits": raw,
            "gap_points": round(100 * (raw - accuracy), 2),
            "unreadable": failures,
            "read_ms_per_image": round(1000 * prep_s / count, 2),
        }
        print(
            f"{name:34s} {accuracy:.2%}  (raw MNIST on the same digits {raw:.2%}, "
            f"gap {100 * (raw - accuracy):+.2f} pt, {failures} unreadable, "
            f"{1000 * prep_s / count:.1f} ms/img read)",
            file=sys.stderr,
        )

    def as_png(digit: np.ndarray, rng: np.random.Generator) -> bytes:
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray((digit * 255).astype(np.uint8), "L").save(buffer, "PNG")
        return buffer.getvalue()

    measure("mnist_png (clean, through the reader)", args.count, as_png)
    for style in args.styles.split(","):
        count = args.large if style == "large" else args.count

        def encode(digit, rng, style=style):
            return realistic_images.render(style, digit, rng)

        measure(style, count, encode)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "model": str(predictor.path),
        "sequence_model": str(predictor.sequence_model or ""),
        "reader": args.reader,
        "line_model": str(predictor.line_model or ""),
        "backend": predictor.backend,
        "seed": args.seed,
        "results": rows,
        "machine": machine_info(),  # the CPU model above all: speeds differ between machines
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
