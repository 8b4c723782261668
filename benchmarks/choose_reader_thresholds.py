"""Issue 31: choose the line reader's second-opinion thresholds on validation sets.

Where the line model reads nothing, ``digitctl.linereading`` asks the digit model to read
all the ink as one digit and keeps that reading when the digit model is sure
(``sure_above``) and does not call it "not a digit" (``not_digit_below``). The two
thresholds live in the line model's card (``reading.digit_model``); this script chooses
them on validation (seed-1) sets and MNIST *validation* digits, never the held-out test
seed:

- every image is read by the line pipeline without a second opinion; where it reads
  nothing, the digit model's opinion is recorded;
- each pair of thresholds on a grid is scored by the mean whole-string accuracy over the
  sets (negatives right when nothing is read), subject to the negatives still rejected
  falling by at most half a point;
- the best pair (and what it changes) is printed, and written into the card with
  ``--write``.

    python benchmarks/choose_reader_thresholds.py [--reader-model PATH.tflite]
        [--count 300] [--mnist-count 2000] [--write]
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import product
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_reader as br  # noqa: E402
import framing_sets as fs  # noqa: E402
import reader_sets as rs  # noqa: E402

SETS = (
    "non_digit,shapes,plain,box,ruled,grid,underline,tight,tiny,mouse,canvas_one,ledger,"
    "cheque,printed,numbers_canvas"
)
NEGATIVE_SETS = ("non_digit", "shapes")
NOT_DIGIT_GRID = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
SURE_GRID = (0.9, 0.95, 0.98, 0.99, 0.995)
MOST_NEGATIVES_LOST = 0.005


def observe(images, truths, predictor, model) -> list[dict]:
    """Each image's truth, the line pipeline's digits (no second opinion) and, where it
    read nothing, the digit model's opinion (label, sure, not_digit)."""
    from digitctl.imaging import decode_page
    from digitctl.linereader import ink_signal, to_grey
    from digitctl.linereading import digit_opinion, read_image

    rows = []
    for image, truth in zip(images, truths, strict=True):
        grey, size, window = decode_page(str(image) if isinstance(image, Path) else image)
        answer = read_image(grey, size, model, predictor.classify, 0.6, window)
        text = br.digits(answer.text) if answer.status == "ok" else ""
        opinion = None
        if answer.status == "not_a_digit":
            seen = digit_opinion(ink_signal(to_grey(grey)), predictor.classify)
            if seen is not None:
                opinion = [seen.label, seen.sure, seen.not_digit]
        rows.append({"truth": truth, "text": text, "opinion": opinion})
    return rows


def answer(row: dict, not_digit_below: float, sure_above: float) -> str:
    opinion = row["opinion"]
    if row["text"] or opinion is None:
        return row["text"]
    label, sure, not_digit = opinion
    return str(label) if not_digit < not_digit_below and sure > sure_above else ""


def score(observed: dict[str, list[dict]], not_digit_below: float, sure_above: float) -> dict:
    accuracy = {
        name: float(np.mean([answer(r, not_digit_below, sure_above) == r["truth"] for r in rows]))
        for name, rows in observed.items()
    }
    negatives = [r for name in NEGATIVE_SETS for r in observed.get(name, []) if not r["truth"]]
    digits = [r for rows in observed.values() for r in rows if r["truth"]]
    return {
        "mean_accuracy": float(np.mean(list(accuracy.values()))),
        "negatives_rejected": float(
            np.mean([answer(r, not_digit_below, sure_above) == "" for r in negatives])
        ),
        "digits_falsely_rejected": float(
            np.mean([answer(r, not_digit_below, sure_above) == "" for r in digits])
        ),
        "sets": {k: round(v, 4) for k, v in accuracy.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reader-model", type=Path, default=br.BUNDLED_READER)
    parser.add_argument("--count", type=int, default=300, help="images per set")
    parser.add_argument("--mnist-count", type=int, default=2000, help="MNIST validation digits")
    parser.add_argument("--sets", default=SETS)
    parser.add_argument("--mirror", type=Path, default=rs.DEFAULT_MNIST)
    parser.add_argument("--write", action="store_true", help="write the choice into the card")
    args = parser.parse_args()

    from digitctl.config import Settings
    from digitctl.data import load_splits
    from digitctl.inference import load_predictor
    from digitctl.linereader import LineModel

    predictor = load_predictor()
    model = LineModel(args.reader_model)
    model.card = {k: v for k, v in model.card.items() if k != "reading"}
    data = fs.load_mnist_test(args.mirror)
    observed: dict[str, list[dict]] = {}
    for name in args.sets.split(","):
        write = rs.write_set if name in rs.SETS else fs.write_set
        folder = write(name, args.count, 1, rs.DEFAULT_ROOT, data=data)
        items = fs.read_labels(folder)["items"]
        images = [folder / item["file"] for item in items]
        truths = [br.digits(item["label"] or "") for item in items]
        observed[name] = observe(images, truths, predictor, model)
        print(f"{name}: {len(items)} images read", file=sys.stderr)
    splits = load_splits(Settings(mirror=str(args.mirror)))
    images = np.asarray(splits.x_val[: args.mnist_count]).reshape(-1, 28, 28)
    if images.dtype != np.uint8:
        images = np.round(images * 255).astype(np.uint8)
    truths = [str(int(label)) for label in splits.y_val[: args.mnist_count]]
    observed["mnist_validation"] = observe(list(images), truths, predictor, model)

    before = score(observed, 0.0, 1.0)  # no second opinion
    floor = before["negatives_rejected"] - MOST_NEGATIVES_LOST
    candidates = []
    for not_digit_below, sure_above in product(NOT_DIGIT_GRID, SURE_GRID):
        figures = score(observed, not_digit_below, sure_above)
        if figures["negatives_rejected"] >= floor:
            candidates.append((figures["mean_accuracy"], not_digit_below, sure_above, figures))
    _, not_digit_below, sure_above, after = max(candidates, key=lambda c: (c[0], -c[1], c[2]))
    print(json.dumps({"before": before, "after": after, "chosen": [not_digit_below, sure_above]}))
    print(
        f"chosen: not_digit_below {not_digit_below}, sure_above {sure_above}: mean accuracy "
        f"{before['mean_accuracy']:.2%} -> {after['mean_accuracy']:.2%}, digits falsely "
        f"rejected {before['digits_falsely_rejected']:.2%} -> "
        f"{after['digits_falsely_rejected']:.2%}, negatives rejected "
        f"{before['negatives_rejected']:.2%} -> {after['negatives_rejected']:.2%}",
        file=sys.stderr,
    )
    if args.write:
        from digitctl.atomic import write_json

        card_path = args.reader_model.with_name(f"{args.reader_model.stem}_card.json")
        card = json.loads(card_path.read_text())
        card.setdefault("reading", {})["digit_model"] = {
            "not_digit_below": not_digit_below,
            "sure_above": sure_above,
            "chosen_on": (
                f"seed-1 sets ({args.sets}; {args.count} each) and {args.mnist_count} MNIST "
                "validation digits, by benchmarks/choose_reader_thresholds.py"
            ),
            "validation": {
                "before": {k: round(v, 4) for k, v in before.items() if k != "sets"},
                "after": {k: round(v, 4) for k, v in after.items() if k != "sets"},
            },
        }
        write_json(card_path, card)
        print(f"wrote {card_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
