"""What a model needs beyond MNIST to read real inputs and to say "not a digit".

Three parts, used by ``digitctl train`` for recipes with ``num_classes == 11``:

- **Synthetic views** (:func:`synthetic_splits`): MNIST *training* digits rendered in
  boxes, on ruled and squared paper, underlined, tightly cropped, at low resolution
  (:mod:`digitctl.synth`), and negatives (letters, symbols, scribbles, photo crops, empty
  boxes), each passed through the product's own preprocessing so the model learns from
  exactly what it will see, remnants of lines and boxes included. Pieces of digits (a
  digit cut where touching digits are wrongly split) are negatives too: the classifier
  that scores candidate cuts must reject half digits. Views are cached in the cache
  directory, keyed by what made them.
- **Initial weights** (:func:`load_initial_weights`): a fine-tuning start from a digits
  model (10 outputs) whose last layer grows an 11th column.
- **Calibration** (:func:`calibrate`): temperature scaling on validation data, then the
  not-a-digit threshold that keeps false rejections of MNIST validation digits at 0.2%.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitctl.atomic import write_with
from digitctl.errors import DigitctlError

if TYPE_CHECKING:
    from rich.progress import Progress

NOT_A_DIGIT = 10
NOT_A_DIGIT_CLASS = "not a digit"  # its name in the model card's classes
CACHE_VERSION = 2  # 2: STIX and pen-traced glyphs, spirals, a second photo, touching pairs
VALIDATION_SHARE = 0.1  # of the synthetic views, held out with MNIST's validation split
FALSE_REJECTION_TARGET = 0.002  # of MNIST validation digits, when choosing the threshold


@dataclass
class SyntheticSplits:
    x_train: np.ndarray  # float32 (N, 28, 28, 1)
    y_train: np.ndarray  # uint8, 10 for "not a digit"
    x_val: np.ndarray
    y_val: np.ndarray
    path: Path
    sources: list[str]


def _cache_key(
    framed: int, negatives: int, pieces: int, pairs: int, seed: int, fingerprint: str
) -> str:
    from digitctl import __version__

    counts = [framed, negatives, pieces, pairs]
    text = json.dumps([CACHE_VERSION, __version__, *counts, seed, fingerprint])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def digit_pieces(x: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Views of pieces of digits: a left or right 25–60% of one digit, or the right part
    of one digit joined to the left part of the next (a cut in the wrong place)."""
    from digitctl.errors import NoDigitFound
    from digitctl.glyph import view_from_ink

    rng = np.random.default_rng([seed, 7])
    views = []
    shapes = x.reshape(len(x), 28, 28)
    while len(views) < count:
        first = shapes[rng.integers(len(shapes))]
        cols = np.nonzero(first.max(axis=0) > 0.2)[0]
        if cols.size < 6:
            continue
        left, right = int(cols[0]), int(cols[-1]) + 1
        width = right - left
        share = rng.uniform(0.25, 0.6)
        if rng.random() < 0.6:
            cut = left + int(width * share)
            piece = (
                first[:, left:cut] if rng.random() < 0.5 else first[:, right - (cut - left) : right]
            )
        else:
            second = shapes[rng.integers(len(shapes))]
            cols2 = np.nonzero(second.max(axis=0) > 0.2)[0]
            if cols2.size < 6:
                continue
            a = first[:, right - int(width * share) : right]
            b = second[:, cols2[0] : cols2[0] + int((cols2[-1] - cols2[0]) * rng.uniform(0.2, 0.5))]
            piece = np.concatenate([a, b], axis=1)
        try:
            views.append(view_from_ink(np.ascontiguousarray(piece, dtype=np.float32)))
        except NoDigitFound:
            continue
    return np.stack(views)


def synthetic_splits(
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    framed: int,
    negatives: int,
    pieces: int,
    seed: int,
    fingerprint: str,
    cache_dir: Path,
    pairs: int = 0,
    progress: Progress | None = None,
) -> SyntheticSplits:
    """The synthetic training and validation views for a run (built once, then cached)."""
    key = _cache_key(framed, negatives, pieces, pairs, seed, fingerprint)
    path = cache_dir / f"synthetic-{key}.npz"
    if path.exists():
        try:
            with np.load(path) as stored:
                return SyntheticSplits(
                    stored["x_train"],
                    stored["y_train"],
                    stored["x_val"],
                    stored["y_val"],
                    path,
                    list(stored["sources"]),
                )
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a damaged cache is rebuilt
    from digitctl.synth import render_views

    task = None
    if progress is not None:
        task = progress.add_task(
            "rendering framed digits and negatives", total=framed + negatives + pairs, status=""
        )

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress.update(task, completed=done)

    result = render_views(
        x_train.reshape(len(x_train), 28, 28),
        y_train,
        framed,
        negatives,
        seed,
        progress=report,
        count_pairs=pairs,
    )
    views = result.views
    labels = result.labels.astype(np.uint8)
    sources = list(result.sources)
    if pieces:
        cut = digit_pieces(x_train, pieces, seed)
        views = np.concatenate([views, cut])
        labels = np.concatenate([labels, np.full(len(cut), NOT_A_DIGIT, np.uint8)])
        sources += ["negative:piece"] * len(cut)
    order = np.random.default_rng([seed, 9]).permutation(len(views))
    views, labels = views[order][..., np.newaxis].astype(np.float32), labels[order]
    sources = [sources[i] for i in order]
    held = int(len(views) * VALIDATION_SHARE)
    splits = SyntheticSplits(
        views[held:], labels[held:], views[:held], labels[:held], path, sources
    )
    cache_dir.mkdir(parents=True, exist_ok=True)

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                x_train=splits.x_train,
                y_train=splits.y_train,
                x_val=splits.x_val,
                y_val=splits.y_val,
                sources=np.array(sources),
            )

    write_with(path, save)
    return splits


def load_initial_weights(model: Any, path: Path, unsafe: bool = False) -> None:
    """Copy a trained model's weights into ``model`` (same architecture).

    A digits model (10 outputs) can start an 11-class one: its last layer's weights are
    kept for the digits, and the "not a digit" column starts at zero weight and a bias
    that makes it unlikely until training says otherwise.
    """
    from digitctl.modelfiles import load_keras_model

    source = load_keras_model(path, unsafe=unsafe)
    weights = source.get_weights()
    target = model.get_weights()
    if len(weights) != len(target):
        raise DigitctlError(
            f"{path} has a different architecture from this recipe's; "
            "pass a model trained with the same recipe to --init-model"
        )
    for i, (have, want) in enumerate(zip(weights, target, strict=True)):
        if have.shape == want.shape:
            continue
        if have.ndim == 2 and have.shape[0] == want.shape[0] and have.shape[1] + 1 == want.shape[1]:
            weights[i] = np.concatenate([have, np.zeros((have.shape[0], 1), have.dtype)], axis=1)
        elif have.ndim == 1 and have.shape[0] + 1 == want.shape[0]:
            weights[i] = np.concatenate([have, np.array([have.min() - 2.0], have.dtype)])
        else:
            raise DigitctlError(
                f"{path} has a different architecture from this recipe's (layer {i}: "
                f"{have.shape} vs {want.shape}); pass a model trained with the same recipe"
            )
    model.set_weights(weights)


def calibrate(
    probabilities: np.ndarray, labels: np.ndarray, clean: np.ndarray | None = None
) -> dict[str, float]:
    """Temperature (minimising validation NLL) and the not-a-digit threshold.

    ``probabilities``: (N, 11) softmax outputs on validation data; ``labels``: 0-9 or 10;
    ``clean``: which rows are plain MNIST validation digits. The threshold is the lowest
    that falsely rejects at most FALSE_REJECTION_TARGET of those clean digits: the
    synthetic digit views include the preprocessing's own failures (a box outline kept in
    place of the digit it surrounded, labelled as that digit), so they are reported, not
    used to choose.
    """
    logits = np.log(np.maximum(probabilities.astype(np.float64), 1e-12))
    labels = labels.astype(np.int64)
    is_digit = labels != NOT_A_DIGIT
    clean = is_digit if clean is None else (np.asarray(clean, bool) & is_digit)

    def nll(temperature: float) -> float:
        scaled = logits / temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scaled).sum(axis=1))
        return float(np.mean(log_norm - scaled[np.arange(len(labels)), labels]))

    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 121))
    temperature = float(min(grid, key=nll))
    scaled = logits / temperature
    scaled = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    not_digit = (scaled / scaled.sum(axis=1, keepdims=True))[:, NOT_A_DIGIT]
    clean_scores = np.sort(not_digit[clean])
    if clean_scores.size:
        rank = min(
            clean_scores.size - 1, int(np.ceil((1 - FALSE_REJECTION_TARGET) * clean_scores.size))
        )
        threshold = float(min(0.99, max(0.05, clean_scores[rank])))
    else:
        threshold = 0.5
    negatives = not_digit[~is_digit]
    synthetic_digits = is_digit & ~clean
    from sklearn.metrics import roc_auc_score

    def share(mask: np.ndarray) -> float | None:
        return round(float(np.mean(not_digit[mask] > threshold)), 5) if mask.any() else None

    auroc = (
        float(roc_auc_score(~is_digit, not_digit)) if negatives.size and is_digit.any() else None
    )
    return {
        "temperature": round(temperature, 4),
        "reject_threshold": round(threshold, 4),
        "validation_false_rejection_mnist": share(clean),
        "validation_false_rejection_synthetic_digits": share(synthetic_digits),
        "validation_rejection": share(~is_digit),
        "validation_auroc": round(auroc, 5) if auroc is not None else None,
        "validation_nll_before": round(nll(1.0), 5),
        "validation_nll_after": round(nll(temperature), 5),
    }
