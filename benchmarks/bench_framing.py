"""Issue 11: digits however they are framed, and "not a digit" instead of a guess.

For each framing set of benchmarks/framing_sets.py (box, ruled, grid, underline, tight,
tiny, plus plain photos as the control) and the existing realistic styles of
tests/realistic_images.py, the accuracy of ``predictor.read`` against the model's
plain-MNIST accuracy on the SAME test digits (raw 28x28 through ``predict_views``); for
the non-digit set the rejection rate; over all digit images the false-rejection rate and
the AUROC of the not-a-digit score.

    python benchmarks/bench_framing.py [--model PATH] [--count 500] [--non-digit-count 1000]
        [--realistic-count 500] [--sets box,ruled,...] [--out benchmarks/results/bench_framing.json]

Without ``Predictor.read`` (before issue 11) it measures ``predict`` instead: a
prediction is "ok", "no digit found" is a rejection, the not-a-digit score is
1 - confidence. To measure the code of another checkout (the "before" column), put its
package first: ``PYTHONPATH=/tmp/head python benchmarks/bench_framing.py``; the JSON
records which digitctl ran.

Targets: each framing set within 1.5 points of plain MNIST on the same digits; >= 95% of
non-digits rejected; <= 1% of real digits falsely rejected. A rejection is a status other
than "ok"; "rejected or uncertain" also counts answers flagged uncertain.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parent))  # for tests.realistic_images; digitctl comes from the install

import framing_sets as fs  # noqa: E402

REALISTIC = ("canvas", "canvas_thin", "paper", "scan")
BREAKDOWN_KEYS = (
    "medium",
    "margin",
    "box_px",
    "comb",
    "hand_drawn",
    "paper",
    "line_colour",
    "pen",
    "touching",
    "polarity",
    "levels",
    "stretched",
    "kind",
    "presentation",
)


def realistic_set(style: str, count: int, seed: int, data, root: Path) -> Path:
    """The realistic style written like the other sets (digits 0..count-1, as
    realistic_accuracy.py renders them)."""
    import json
    import os
    import shutil

    from tests import realistic_images

    folder = root / f"realistic_{style}-n{count}-s{seed}-v{fs.VERSION}"
    if (folder / "labels.json").exists():
        return folder
    images, labels = data
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    items = []
    for i in range(count):
        blob = realistic_images.render(style, images[i], rng)
        ext = "jpg" if blob[:2] == b"\xff\xd8" else "png"
        items.append({"file": f"{i:05d}.{ext}", "label": str(int(labels[i])), "mnist_index": i})
        (tmp / items[-1]["file"]).write_bytes(blob)
    document = {"set": f"realistic_{style}", "count": count, "seed": seed, "items": items}
    (tmp / "labels.json").write_text(json.dumps(document, indent=1) + "\n")
    os.replace(tmp, folder)
    return folder


def breakdown(items: list[dict], good: np.ndarray) -> dict[str, dict[str, dict]]:
    """Rate of ``good`` per value of each parameter with a few distinct values."""
    out: dict[str, dict[str, dict]] = {}
    for key in BREAKDOWN_KEYS:
        values = [item.get(key) for item in items]
        distinct = {v for v in values if v is not None and not isinstance(v, list | dict)}
        if not distinct or len(distinct) > 12:
            continue
        out[key] = {}
        for value in sorted(distinct, key=str):
            mask = np.array([v == value for v in values])
            out[key][str(value)] = {"images": int(mask.sum()), "rate": float(good[mask].mean())}
    return out


def measure(predictor, folder: Path) -> tuple[list[dict], list[fs.Answer]]:
    items = fs.read_labels(folder)["items"]
    answers = [fs.answer(predictor, folder / item["file"]) for item in items]
    return items, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model (default: bundled)")
    parser.add_argument("--mnist", type=Path, default=fs.DEFAULT_MNIST)
    parser.add_argument("--root", type=Path, default=fs.DEFAULT_ROOT, help="where sets live")
    parser.add_argument("--count", type=int, default=500, help="images per framing set")
    parser.add_argument("--non-digit-count", type=int, default=1000)
    parser.add_argument("--realistic-count", type=int, default=500, help="0: skip them")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sets", default=",".join(fs.FRAMING_SETS))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_framing.json")
    args = parser.parse_args()

    from digitctl.inference import load_predictor

    data = fs.load_mnist_test(args.mnist)
    images, labels = data
    predictor = load_predictor(model=args.model)
    mode = fs.api_mode(predictor)
    info = fs.machine_info()
    print(f"model {predictor.path} ({predictor.backend}), API: {mode}", file=sys.stderr)
    print(f"digitctl from {info['digitctl_code']}; CPU {info['cpu_model']}", file=sys.stderr)

    sets = [
        (name, fs.write_set(name, args.count, args.seed, args.root, data=data))
        for name in args.sets.split(",")
        if name
    ]
    if args.realistic_count:
        for style in REALISTIC:
            folder = realistic_set(style, args.realistic_count, args.seed, data, args.root)
            sets.append((f"realistic_{style}", folder))

    rows: dict[str, dict] = {}
    digit_scores, digit_rejected, digit_rejected_or_uncertain = [], [], []
    header = (
        f"{'set':22s} {'images':>6s} {'acc':>7s} {'MNIST':>7s} {'gap pt':>7s} "
        f"{'rejected':>8s} {'+uncert':>8s} {'ms/img':>7s}"
    )
    print(header, file=sys.stderr)
    for name, folder in sets:
        started = time.perf_counter()
        items, answers = measure(predictor, folder)
        wall = time.perf_counter() - started
        truth = [item["label"] for item in items]
        correct = np.array(
            [a.text == t and a.status == "ok" for a, t in zip(answers, truth, strict=True)]
        )
        rejected = np.array([a.status != "ok" for a in answers])
        uncertain = np.array([a.uncertain for a in answers])
        index = np.array([item["mnist_index"] for item in items])
        raw = predictor.predict_views(images[index]).argmax(1) == labels[index]
        accuracy, reference = float(correct.mean()), float(raw.mean())
        digit_scores += [a.not_digit for a in answers]
        digit_rejected += list(rejected)
        digit_rejected_or_uncertain += list(rejected | uncertain)
        statuses = {s: sum(a.status == s for a in answers) for s in {a.status for a in answers}}
        rows[name] = {
            "images": len(items),
            "folder": str(folder.relative_to(fs.ROOT))
            if folder.is_relative_to(fs.ROOT)
            else str(folder),
            "accuracy": accuracy,
            "raw_mnist_accuracy_same_digits": reference,
            "gap_points": round(100 * (reference - accuracy), 2),
            "within_1_5_points": bool(100 * (reference - accuracy) <= 1.5),
            "accuracy_where_mnist_right": float(correct[raw].mean()) if raw.any() else None,
            "rejected": float(rejected.mean()),
            "rejected_or_uncertain": float((rejected | uncertain).mean()),
            "statuses": statuses,
            "multi_digit_answers": int(sum(a.count > 1 for a in answers)),
            "ms_per_image_median": round(1000 * float(np.median([a.seconds for a in answers])), 2),
            "ms_per_image_mean": round(1000 * wall / len(items), 2),
            "accuracy_by": breakdown(items, correct),
        }
        r = rows[name]
        print(
            f"{name:22s} {len(items):6d} {accuracy:7.2%} {reference:7.2%} {r['gap_points']:+7.2f} "
            f"{r['rejected']:8.2%} {r['rejected_or_uncertain']:8.2%} {r['ms_per_image_mean']:7.1f}",
            file=sys.stderr,
        )

    folder = fs.write_set(fs.NON_DIGIT_SET, args.non_digit_count, args.seed, args.root, data=data)
    items, answers = measure(predictor, folder)
    rejected = np.array([a.status != "ok" for a in answers])
    uncertain = np.array([a.uncertain for a in answers])
    confident = np.array([a.status == "ok" and not a.uncertain for a in answers])
    non_digit = {
        "images": len(items),
        "folder": str(folder.relative_to(fs.ROOT))
        if folder.is_relative_to(fs.ROOT)
        else str(folder),
        # The font letters and symbols are drawn from these (they vary between machines).
        "fonts": fs.read_labels(folder).get("fonts"),
        "rejected": float(rejected.mean()),
        "rejected_or_uncertain": float((rejected | uncertain).mean()),
        "answered_a_confident_digit": float(confident.mean()),
        "rejected_by": breakdown(items, rejected),
        "rejected_or_uncertain_by": breakdown(items, rejected | uncertain),
        "ms_per_image_median": round(1000 * float(np.median([a.seconds for a in answers])), 2),
    }
    print(
        f"{'non_digit':22s} {len(items):6d} rejected {non_digit['rejected']:.2%}, rejected or "
        f"uncertain {non_digit['rejected_or_uncertain']:.2%}, a confident digit "
        f"{non_digit['answered_a_confident_digit']:.2%}",
        file=sys.stderr,
    )
    for kind, row in non_digit["rejected_or_uncertain_by"].get("kind", {}).items():
        strict = non_digit["rejected_by"]["kind"][kind]["rate"]
        print(
            f"    {kind:20s} {row['images']:5d}  rejected {strict:7.2%}  "
            f"+uncertain {row['rate']:7.2%}",
            file=sys.stderr,
        )

    from sklearn.metrics import roc_auc_score

    scores = np.array(digit_scores + [a.not_digit for a in answers])
    is_non_digit = np.r_[np.zeros(len(digit_scores)), np.ones(len(answers))]
    summary = {
        "false_rejection_rate": float(np.mean(digit_rejected)),
        "false_rejection_or_uncertain_rate": float(np.mean(digit_rejected_or_uncertain)),
        "non_digit_rejection_rate": non_digit["rejected"],
        "non_digit_rejection_or_uncertain_rate": non_digit["rejected_or_uncertain"],
        "auroc_not_digit_score": float(roc_auc_score(is_non_digit, scores)),
        "digit_images": len(digit_scores),
        "targets": {
            "framing_gap_points_max": 1.5,
            "non_digit_rejection_min": 0.95,
            "false_rejection_max": 0.01,
        },
        "framing_sets_within_target": {
            name: row["within_1_5_points"]
            for name, row in rows.items()
            if not name.startswith("realistic_")
        },
    }
    print(
        f"over {len(digit_scores)} digit images: false rejections "
        f"{summary['false_rejection_rate']:.2%} "
        f"(with uncertain {summary['false_rejection_or_uncertain_rate']:.2%}); "
        f"AUROC of the not-a-digit score {summary['auroc_not_digit_score']:.4f}",
        file=sys.stderr,
    )
    document = {
        "model": str(predictor.path),
        "sequence_model": str(predictor.sequence_model or ""),
        "backend": predictor.backend,
        "api": mode,
        "machine": info,
        "seed": args.seed,
        "digit_sets": rows,
        "non_digit": non_digit,
        "summary": summary,
    }
    fs.write_results(document, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
