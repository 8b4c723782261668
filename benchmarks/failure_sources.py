"""Where the reader's failures come from, set by set: a diagnosis, not a score.

For every image of the framing, number and non-digit sets of benchmarks/framing_sets.py
that ``predictor.read`` gets wrong, one cause:

- ``only_lines``: the layout kept nothing but lines or a box ("not a digit: only lines");
- ``rejected``: the model answered "not a digit" (or nothing was found);
- ``length``: a reading of the wrong number of digits (dropped, merged or split);
- ``view``: the right number of digits, one or more wrong, although the model reads
  every one of those MNIST digits right as its raw 28×28 image (so what the reader made
  of the image, not the digit, is the difference);
- ``digit``: the same, but the model misreads a wrong digit's raw MNIST image too.

For the non-digits that pass, how many digits they were read as and how sure the
model was (not-a-digit probability below 0.1: a confident digit), by kind.

    python benchmarks/failure_sources.py [--seed 1] [--count 500] [--model PATH]
        [--sets plain,box,...] [--out benchmarks/results/failure_sources.json]

Seed 1 (the validation sets) by default: this is for deciding what to work on, which
must not look at the seed-0 sets the benchmarks report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import framing_sets as fs  # noqa: E402

CAUSES = ("only_lines", "rejected", "length", "view", "digit")
CONFIDENT_BELOW = 0.1  # a passing non-digit read with less not-a-digit probability than this


def mnist_indices(item: dict) -> list[int]:
    """The MNIST test indices of an item's digits, left to right, lines top to bottom."""
    index = item["mnist_index"]
    if isinstance(index, int):
        return [index]
    return [i for line in index for i in line]


def cause(reading, label: str, raw_right: list[bool]) -> str:
    """Why ``reading`` is not ``label`` (see the module docstring)."""
    if reading.status != "ok":
        reason = reading.reason or ""
        return "only_lines" if "only lines" in reason else "rejected"
    read, truth = reading.text.replace("\n", ""), label.replace("\n", "")
    if len(read) != len(truth) or reading.text.count("\n") != label.count("\n"):
        return "length"
    wrong = [k for k, (a, b) in enumerate(zip(read, truth, strict=True)) if a != b]
    return "view" if all(raw_right[k] for k in wrong) else "digit"


def digit_set_causes(predictor, folder: Path, images, labels) -> dict:
    from digitctl.errors import ImageError

    items = fs.read_labels(folder)["items"]
    indices = sorted({i for item in items for i in mnist_indices(item)})
    raw = predictor.predict_views(images[indices]).argmax(1) == labels[indices]
    raw_right = dict(zip(indices, raw.tolist(), strict=True))
    counts: Counter = Counter()
    examples: dict[str, list[str]] = {c: [] for c in CAUSES}
    right = 0
    for item in items:
        try:
            reading = predictor.read(folder / item["file"])
        except ImageError:
            counts["rejected"] += 1
            continue
        if reading.status == "ok" and reading.text == item["label"]:
            right += 1
            continue
        found = cause(reading, item["label"], [raw_right[i] for i in mnist_indices(item)])
        counts[found] += 1
        if len(examples[found]) < 8:
            examples[found].append(
                f"{item['file']}: {item['label']!r} -> {reading.text or reading.status!r}"
            )
    return {
        "images": len(items),
        "right": right,
        "failures": len(items) - right,
        "causes": {c: counts[c] for c in CAUSES},
        "examples": {c: e for c, e in examples.items() if e},
    }


def non_digit_passes(predictor, folder: Path) -> dict:
    from digitctl.errors import ImageError

    items = fs.read_labels(folder)["items"]
    by_kind: dict[str, Counter] = {}
    for item in items:
        kind = item.get("kind", "?")
        row = by_kind.setdefault(kind, Counter())
        row["images"] += 1
        try:
            reading = predictor.read(folder / item["file"])
        except ImageError:
            continue
        if reading.status != "ok":
            continue
        row["passed"] += 1
        row["as_several_digits"] += len(reading.digits) > 1
        row["confident"] += reading.not_digit < CONFIDENT_BELOW
    total = sum(by_kind.values(), Counter())
    return {
        "images": len(items),
        "passed": total["passed"],
        "as_several_digits": total["as_several_digits"],
        "confident": total["confident"],
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model (default: bundled)")
    parser.add_argument("--mnist", type=Path, default=fs.DEFAULT_MNIST)
    parser.add_argument("--root", type=Path, default=fs.DEFAULT_ROOT, help="where sets live")
    parser.add_argument("--count", type=int, default=500, help="images per set")
    parser.add_argument("--seed", type=int, default=1, help="1: the validation sets")
    parser.add_argument(
        "--sets", default=",".join((*fs.FRAMING_SETS, *fs.NUMBER_SETS, fs.NON_DIGIT_SET))
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "failure_sources.json")
    args = parser.parse_args()

    from digitctl.inference import load_predictor

    data = fs.load_mnist_test(args.mnist)
    images, labels = data
    predictor = load_predictor(model=args.model)
    if not hasattr(predictor, "read"):
        sys.exit("this digitctl has no Predictor.read: nothing to diagnose")
    started = time.perf_counter()
    result: dict[str, dict] = {}
    print(f"{'set':18s} {'right':>9s}  " + " ".join(f"{c:>10s}" for c in CAUSES), file=sys.stderr)
    for name in filter(None, args.sets.split(",")):
        folder = fs.write_set(name, args.count, args.seed, args.root, data=data)
        if name == fs.NON_DIGIT_SET:
            row = non_digit_passes(predictor, folder)
            result[name] = row
            print(
                f"{name:18s} {row['images'] - row['passed']:4d}/{row['images']:<4d} rejected; "
                f"of the {row['passed']} passing, {row['confident']} confident digits, "
                f"{row['as_several_digits']} read as several digits",
                file=sys.stderr,
            )
            continue
        row = digit_set_causes(predictor, folder, images, labels)
        result[name] = row
        print(
            f"{name:18s} {row['right']:4d}/{row['images']:<4d}  "
            + " ".join(f"{row['causes'][c]:10d}" for c in CAUSES),
            file=sys.stderr,
        )
    document = {
        "command": "python benchmarks/failure_sources.py " + " ".join(sys.argv[1:]),
        "model": str(predictor.path),
        "sequence_model": str(predictor.sequence_model or ""),
        "seed": args.seed,
        "images_per_set": args.count,
        "sets": result,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": fs.machine_info(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
