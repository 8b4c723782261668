"""Fine-tuning on the user's corrections (the feedback store) without forgetting MNIST.

:func:`finetune_model` starts from the model in use (``settings.model``, else the
workspace model, else the bundled one), holds out a stratified part of the feedback,
trains on the rest (augmented) mixed with a replay of MNIST training digits (from the full
training set when it is in the cache, else those shipped in the package,
``assets/replay/mnist_replay.npz``: no download), and measures before and after:
accuracy on the held-out feedback, and MNIST test accuracy (the full test set when it is
in the cache, else the stratified test subset shipped beside the replay).

It installs the result as the workspace model (``models/best_model.keras``, its LiteRT
export and its card) only when the MNIST accuracy drops by at most
:data:`MAX_MNIST_DROP` and the held-out feedback is read better than before, unless
``force``. Everything is written to temporary files first and moved into place at the
very end, with Ctrl-C held off for those few renames: an interrupted run leaves the
previous model as it was. The previous workspace model is kept in ``models/previous/``.

What is trained, and how long, was decided by measurement: see docs/finetune.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitctl.atomic import write_json
from digitctl.data import sha256_of
from digitctl.errors import DigitctlError, ModelError, TrainingInterrupted
from digitctl.modelfiles import (
    card_path_for,
    lite_path_for,
    load_keras_model,
    resolve_model_path,
    workspace_model_path,
)

if TYPE_CHECKING:
    from rich.progress import Progress

    from digitctl.config import Settings

REPLAY_PATH = Path(__file__).resolve().parent / "assets" / "replay" / "mnist_replay.npz"
# MNIST figures of the bundled model's export, measured when the replay was built
# (benchmarks/make_replay_subset.py), keyed like the workspace's cache of them.
SHIPPED_FIGURES_PATH = REPLAY_PATH.parent / "mnist_figures.json"
MIN_PER_DIGIT = 5  # fewer corrections of a digit than this cannot be held out and learnt
MAX_MNIST_DROP = 0.003  # 0.3 percentage points
NOT_A_DIGIT = 10  # the 11th output of models that can say "not a digit"
PREVIOUS_DIR = "previous"
TRAIN_CHOICES = ("all", "top", "head")

# Measured on outline-lettering writers built from MNIST training digits (a validation
# writer; benchmarks/bench_finetune.py letters test digits), see docs/finetune.md.
DEFAULTS = {
    "epochs": 2,
    "batch_size": 64,
    "learning_rate": 2e-3,
    "holdout": 0.2,
    "feedback_share": 0.5,  # of every batch, on average
    "train": "all",  # "all" layers (batch-norm statistics frozen) or "head" only
    "piece_negatives": 300,  # pieces of the corrections replayed as "not a digit" (11 outputs)
    "steps_per_execution": 8,
    # MNIST training digits replayed: from the full training set when it is in the cache
    # (`digitctl download`), else the 3,000 shipped ones.
    "replay_images": 10000,
    "steps_per_epoch": 100,  # batches; 2 epochs: 12,800 images, half of them corrections
}


@dataclass
class Figures:
    """Accuracy (and mean loss) of one model on one set of images."""

    accuracy: float
    loss: float
    images: int

    def as_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "loss": round(self.loss, 6), "images": self.images}


@dataclass
class FinetuneResult:
    """What ``finetune`` measured and whether it installed the new model."""

    installed: bool
    refused: str | None  # why the model was not installed (None when it was)
    forced: bool
    base_model: Path
    model_path: Path
    lite_path: Path | None
    card_path: Path | None
    output_classes: int
    feedback_counts: dict[int, int]
    train_counts: dict[int, int]
    holdout_counts: dict[int, int]
    replay_images: int
    negative_replay: int  # "not a digit" examples replayed (11-output models only)
    holdout_before: Figures
    holdout_after: Figures
    mnist_before: Figures
    mnist_after: Figures
    mnist_source: str  # "full test set" or "shipped subset"
    settings: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    replay_source: str = "shipped subset"  # or "cached training set"
    piece_negatives: int = 0  # pieces of the corrections replayed as "not a digit"
    # Where the base model's MNIST figure came from: "measured" now, or "recorded" (a
    # figure measured earlier on the same export and the same images, by SHA-256).
    mnist_before_from: str = "measured"

    @property
    def mnist_drop(self) -> float:
        return self.mnist_before.accuracy - self.mnist_after.accuracy

    def as_dict(self) -> dict[str, Any]:
        def counts(values: dict[int, int]) -> dict[str, int]:
            return {str(d): n for d, n in sorted(values.items())}

        return {
            "installed": self.installed,
            "refused": self.refused,
            "forced": self.forced,
            "base_model": str(self.base_model),
            "model": str(self.model_path),
            "lite_model": str(self.lite_path) if self.lite_path else None,
            "card": str(self.card_path) if self.card_path else None,
            "output_classes": self.output_classes,
            "feedback": {
                "total": sum(self.feedback_counts.values()),
                "counts": counts(self.feedback_counts),
                "trained_on": counts(self.train_counts),
                "held_out": counts(self.holdout_counts),
            },
            "replay_images": self.replay_images,
            "replay_source": self.replay_source,
            "negative_replay": self.negative_replay,
            "piece_negatives": self.piece_negatives,
            "holdout": {
                "before": self.holdout_before.as_dict(),
                "after": self.holdout_after.as_dict(),
            },
            "mnist_test": {
                "source": self.mnist_source,
                "before": self.mnist_before.as_dict(),
                "before_from": self.mnist_before_from,
                "after": self.mnist_after.as_dict(),
                "drop_points": round(100 * self.mnist_drop, 3),
            },
            "settings": self.settings,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "warnings": self.warnings,
        }


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------
def stratified_holdout(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, holdout): at least one sample of every present digit is held out,
    and at least one stays for training."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for digit in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == digit))
        take = min(len(members) - 1, max(1, int(round(len(members) * fraction))))
        held.append(members[:take])
        train.append(members[take:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def check_counts(counts: dict[int, int], directory: Path) -> None:
    """A clear error for an empty store or a digit with too few corrections."""
    if sum(counts.values()) == 0:
        raise DigitctlError(
            f"no feedback stored in {directory}: add corrections first with "
            "`digitctl feedback add --label N IMAGE...` or the app's 'Wrong? This is a …' "
            "buttons"
        )
    few = {d: n for d, n in sorted(counts.items()) if 0 < n < MIN_PER_DIGIT}
    if few:
        listed = ", ".join(f"digit {d}: {n}" for d, n in few.items())
        raise DigitctlError(
            f"too few corrections to learn from ({listed}); at least {MIN_PER_DIGIT} of each "
            "corrected digit are needed, so some can be held out to check the result: add "
            "more with `digitctl feedback add`"
        )


@dataclass
class Replay:
    x_train: np.ndarray  # float32 (N, 28, 28, 1) in [0, 1]
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_negative: np.ndarray | None  # "not a digit" views, when the asset has them


def load_replay(path: Path) -> Replay:
    """The MNIST subsets shipped in the package (uint8 on disk)."""
    try:
        with np.load(path) as stored:
            negative = stored["x_negative"] if "x_negative" in stored.files else None
            return Replay(
                x_train=_scale(stored["x_train"]),
                y_train=stored["y_train"].astype(np.uint8),
                x_test=_scale(stored["x_test"]),
                y_test=stored["y_test"].astype(np.uint8),
                x_negative=None if negative is None else _scale(negative),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise DigitctlError(
            f"the MNIST replay set {path} is missing or unreadable ({exc}); reinstall digitctl"
        ) from None


def _scale(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    scaled = images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
    return scaled.reshape((len(images), 28, 28, 1))


def cached_test_set(settings: Settings) -> tuple[np.ndarray, np.ndarray] | None:
    """The full MNIST test set when its verified archives are in the cache (no download)."""
    return _cached_pair(settings, "t10k")


def cached_training_set(settings: Settings) -> tuple[np.ndarray, np.ndarray] | None:
    """The full MNIST training set (uint8 images) when its verified archives are cached."""
    return _cached_pair(settings, "train", scale=False)


def _cached_pair(
    settings: Settings, prefix: str, scale: bool = True
) -> tuple[np.ndarray, np.ndarray] | None:
    from digitctl import data

    files = (f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz")
    cached = [data._cached_file(settings.raw_data_path, name) for name in files]
    if any(c is None for c in cached):
        return None
    try:
        images = data.validate_mnist_file(cached[0].path, files[0])  # type: ignore[union-attr]
        labels = data.validate_mnist_file(cached[1].path, files[1])  # type: ignore[union-attr]
    except DigitctlError:
        return None
    if len(images) != len(labels):
        return None
    return (_scale(images) if scale else images), labels.astype(np.uint8)


def negative_views(count: int, seed: int) -> np.ndarray | None:
    """About ``count`` "not a digit" views rendered by ``digitctl.synth`` (as the shipped
    ``x_negative`` were: renders that reduce to a lone stroke, a "1", are left out), for
    a replay file without them. Slow (seconds per hundred), hence shipped."""
    try:
        from digitctl.synth import render_views

        empty = np.zeros((0, 28, 28), np.uint8)
        views = render_views(empty, np.zeros(0, np.uint8), 0, count, seed).views
    except (ImportError, RuntimeError, OSError):  # its fonts or sample photo are missing
        return None
    return views.reshape((len(views), 28, 28, 1)) if len(views) else None


# --------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------
def figures_probabilities(run: Any, x: np.ndarray, batch: int = 500) -> np.ndarray:
    """``run`` (images → probabilities) over ``x`` in batches."""
    x = x.reshape((len(x), 28, 28, 1)).astype(np.float32, copy=False)
    return np.concatenate([np.asarray(run(x[i : i + batch])) for i in range(0, len(x), batch)])


def figures(run: Any, x: np.ndarray, y: np.ndarray, batch: int = 500) -> Figures:
    """Accuracy and mean cross-entropy of ``run`` (images → probabilities) on ``x``;
    the answer is the argmax over all outputs ("not a digit" included)."""
    if len(x) == 0:
        return Figures(float("nan"), float("nan"), 0)
    probabilities = figures_probabilities(run, x, batch)
    picked = probabilities[np.arange(len(y)), y.astype(np.int64)]
    loss = float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))
    return Figures(float(np.mean(probabilities.argmax(1) == y)), loss, len(y))


def test_set_digest(x: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 of a test set as it is measured (float32 images, then uint8 labels)."""
    digest = hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(y, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def figures_cache_path(settings: Settings) -> Path:
    """Where MNIST figures of models measured by ``finetune`` are kept, to be reused."""
    return settings.cache_path / "finetune" / "mnist_figures.json"


def _figures_key(model_file: Path, model_sha256: str, test_digest: str) -> str:
    engine = "litert" if model_file.suffix == ".tflite" else "keras"
    return f"{engine}:{model_sha256}:{test_digest}"


def recorded_figures(settings: Settings, key: str) -> Figures | None:
    """The figure measured earlier for ``key`` (this workspace's, else the shipped one)."""
    import json

    for path in (figures_cache_path(settings), SHIPPED_FIGURES_PATH):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))[key]
            return Figures(float(entry["accuracy"]), float(entry["loss"]), int(entry["images"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def record_figures(settings: Settings, key: str, measured: Figures) -> None:
    """Remember a measured figure (best effort: a read-only cache only costs time)."""
    import json

    path = figures_cache_path(settings)
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    known[key] = {"accuracy": measured.accuracy, "loss": measured.loss, "images": measured.images}
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, known)


def keras_runner(model: Any) -> Any:
    return lambda x: np.asarray(model(x, training=False))


def lite_runner(path: Path) -> Any:
    """LiteRT: what predict and the app will run, and faster than Keras on a CPU."""
    from digitctl.inference import LiteRTRunner

    return LiteRTRunner(path)


def refusal(
    holdout_before: Figures,
    holdout_after: Figures,
    mnist_before: Figures,
    mnist_after: Figures,
    max_mnist_drop: float | None = None,
) -> str | None:
    """Why the fine-tuned model must not be installed, or None when it may be.

    Better on the held-out feedback means a higher accuracy, or the same accuracy with a
    lower loss (when the corrections were already read right, only the loss can improve).
    """
    if max_mnist_drop is None:
        max_mnist_drop = MAX_MNIST_DROP
    drop = mnist_before.accuracy - mnist_after.accuracy
    if drop > max_mnist_drop + 1e-12:
        return (
            f"MNIST test accuracy would drop by {100 * drop:.2f} points "
            f"({mnist_before.accuracy:.2%} → {mnist_after.accuracy:.2%} on "
            f"{mnist_after.images:,} images; at most {100 * max_mnist_drop:.1f} allowed)"
        )
    better = holdout_after.accuracy > holdout_before.accuracy or (
        holdout_after.accuracy == holdout_before.accuracy
        and holdout_after.loss < holdout_before.loss
    )
    if not better:
        return (
            "the new model is not better on the held-out corrections "
            f"({holdout_before.accuracy:.1%} → {holdout_after.accuracy:.1%} of "
            f"{holdout_after.images}, loss {holdout_before.loss:.3f} → {holdout_after.loss:.3f})"
        )
    return None


# --------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------
def _prepare_for_training(model: Any, train: str) -> None:
    """Batch norm in inference mode (its statistics are MNIST's and stay so). ``top``
    also freezes the first half of the convolutions, ``head`` everything but the dense
    layers."""
    import keras

    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    frozen = set(map(id, convs[: len(convs) // 2])) if train == "top" else set()
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) or id(layer) in frozen:
            layer.trainable = False
        elif train == "head" and not isinstance(layer, keras.layers.Dense):
            layer.trainable = False


def _mixed_set(
    x_feedback: np.ndarray,
    y_feedback: np.ndarray,
    x_replay: np.ndarray,
    y_replay: np.ndarray,
    share: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replay plus the feedback repeated so it is about ``share`` of the set; a mask
    says which images are feedback."""
    repeats = max(1, math.ceil(share * len(x_replay) / ((1 - share) * max(1, len(x_feedback)))))
    x = np.concatenate([x_replay, np.repeat(x_feedback, repeats, axis=0)])
    y = np.concatenate([y_replay, np.repeat(y_feedback, repeats, axis=0)])
    mask = np.concatenate([np.zeros(len(x_replay), bool), np.ones(repeats * len(x_feedback), bool)])
    order = rng.permutation(len(x))
    return x[order], y[order], mask[order]


def _dataset(x: np.ndarray, y: np.ndarray, batch: int, seed: int) -> Any:
    import tensorflow as tf

    from digitctl.model import build_augmenter, get_recipe

    augmenter = build_augmenter(get_recipe("best"), seed)
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch)
        .map(lambda images, labels: (augmenter(images, training=True), labels))
    )
    options = tf.data.Options()
    options.autotune.enabled = False  # see train.training_dataset: avoids iterator stalls
    options.deterministic = True
    return dataset.prefetch(2).with_options(options)


def _fit(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    progress: Progress | None,
    steps_per_execution: int = 1,
    steps_per_epoch: int | None = None,
) -> None:
    """Adam with a cosine decay over ``epochs`` × ``steps_per_epoch`` batches (default:
    one pass over ``x`` per epoch)."""
    import keras

    steps_per_epoch = steps_per_epoch or math.ceil(len(x) / batch_size)
    total = steps_per_epoch * epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=max(1, total), alpha=0.05
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # Several steps per call of the compiled function: less Python between steps.
        # Keras runs whole calls, so the count must divide the epoch's steps.
        steps_per_execution=max(
            d for d in range(1, max(1, steps_per_execution) + 1) if steps_per_epoch % d == 0
        ),
    )
    callbacks = []
    if progress is not None:
        task = progress.add_task("fine-tuning", total=total, status="")

        class Bar(keras.callbacks.Callback):
            done = 0

            def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
                # ``batch`` is the last step of the execution within the epoch.
                logs = logs or {}
                reached = self.epoch * steps_per_epoch + batch + 1
                progress.update(
                    task,
                    advance=max(0, reached - self.done),
                    status=f"loss {logs.get('loss', float('nan')):.4f}  "
                    f"acc {logs.get('accuracy', float('nan')):.4f}",
                )
                self.done = max(self.done, reached)

            def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                self.epoch = epoch

        callbacks.append(Bar())
    model.fit(
        _dataset(x, y, batch_size, seed),
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        shuffle=False,  # the dataset shuffles itself; Keras warns on the terminal otherwise
        verbose=0,
    )


def _clean_copy(model: Any) -> Any:
    """An uncompiled copy with every layer trainable again (as the base model was)."""
    import keras

    for layer in model.layers:
        layer.trainable = True
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


# --------------------------------------------------------------------------------------
# installing
# --------------------------------------------------------------------------------------
@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Ctrl-C waits until the block is done (the few renames that install the model)."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _temp_beside(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}"
    )
    os.close(fd)
    return Path(name)


def _stage(model: Any, settings: Settings) -> dict[Path, Path]:
    """Write the model and its LiteRT export to temporary files beside their targets."""
    from digitctl.export import write_lite_export

    target = workspace_model_path(settings)
    temps = {
        target: _temp_beside(target),
        lite_path_for(target): _temp_beside(lite_path_for(target)),
    }
    try:
        model.save(temps[target])
        write_lite_export(model, temps[lite_path_for(target)])
    except BaseException:
        _discard(temps)
        raise
    return temps


def _commit(temps: dict[Path, Path], card: dict[str, Any], settings: Settings) -> Path:
    """Move the staged files and the card into place; the replaced ones go to previous/."""
    target = workspace_model_path(settings)
    card_file = card_path_for(target)
    temps[card_file] = _temp_beside(card_file)
    write_json(temps[card_file], card)
    with _sigint_held():
        if target.exists():
            previous = settings.models_path / PREVIOUS_DIR
            previous.mkdir(exist_ok=True)
            for path in temps:
                if path.exists():
                    shutil.copy2(path, previous / path.name)
        for final, temp in temps.items():  # the .keras first, its export right after
            os.replace(temp, final)
    return card_file


def _discard(temps: dict[Path, Path]) -> None:
    for temp in temps.values():
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


# --------------------------------------------------------------------------------------
# the whole run
# --------------------------------------------------------------------------------------
@dataclass
class _Job:
    """What the steps of one fine-tuning run share."""

    settings: Settings
    plan: dict[str, Any]
    started: float
    marks: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    pieces: int = 0  # piece negatives actually replayed


def finetune_model(
    settings: Settings,
    *,
    force: bool = False,
    epochs: int | None = None,
    holdout: float | None = None,
    learning_rate: float | None = None,
    train: str | None = None,
    progress: Progress | None = None,
    replay_path: Path | None = None,
) -> FinetuneResult:
    """Fine-tune the model in use on the stored corrections; install it if it is better.

    Returns the figures either way: ``result.installed`` is False and ``result.refused``
    says why when the new model was not installed (``force`` installs it anyway). Raises
    DigitctlError for an empty store or too few corrections of a digit, and
    TrainingInterrupted (exit 130) on Ctrl-C, the previous model untouched.
    """
    job = _Job(settings, _resolve_plan(settings, epochs, holdout, learning_rate, train),
               time.perf_counter())  # fmt: skip
    feedback = _load_feedback(job)
    base = _load_base(job, replay_path)
    before = _measure_before(job, feedback, base)
    _train(job, feedback, base, progress)
    result = _stage_measure_install(job, feedback, base, before, force)
    done = time.perf_counter()
    m = job.marks
    result.seconds = {
        "load": m["loaded"] - job.started,
        "measure_before": m["measured"] - m["loaded"],
        "train": m["trained"] - m["measured"],
        "export": m["exported"] - m["trained"],
        "measure_after": m["evaluated"] - m["exported"],
        "install": done - m["evaluated"],
        "total": done - job.started,
    }
    if result.card_path is not None:  # the timings belong in the card too
        write_json(
            result.card_path, {**_card(result, base["card_info"]), "seconds": result.seconds}
        )
    return result


def _resolve_plan(
    settings: Settings,
    epochs: int | None,
    holdout: float | None,
    learning_rate: float | None,
    train: str | None,
) -> dict[str, Any]:
    plan = {
        "epochs": epochs or DEFAULTS["epochs"],
        "holdout": DEFAULTS["holdout"] if holdout is None else holdout,
        "learning_rate": learning_rate or DEFAULTS["learning_rate"],
        "train": train or DEFAULTS["train"],
        "batch_size": DEFAULTS["batch_size"],
        "feedback_share": DEFAULTS["feedback_share"],
        "piece_negatives": DEFAULTS["piece_negatives"],
        "replay_images": DEFAULTS["replay_images"],
        "steps_per_epoch": DEFAULTS["steps_per_epoch"],
        "steps_per_execution": DEFAULTS["steps_per_execution"],
        "seed": settings.seed,
    }
    if plan["train"] not in TRAIN_CHOICES:
        raise DigitctlError(
            f"train must be one of {', '.join(TRAIN_CHOICES)}, got {plan['train']!r}"
        )
    if not 0 < plan["holdout"] < 1:
        raise DigitctlError(f"holdout must be between 0 and 1, got {plan['holdout']}")
    if plan["epochs"] < 1:
        raise DigitctlError(f"epochs must be at least 1, got {plan['epochs']}")
    return plan


def _load_feedback(job: _Job) -> dict[str, Any]:
    """Step 1: the corrections, their counts and the stratified held-out part."""
    from digitctl.feedback import FeedbackStore

    store = FeedbackStore.for_settings(job.settings)
    x_all, y_all, _ = store.views()
    counts = {d: int(np.sum(y_all == d)) for d in range(10)}
    check_counts(counts, store.directory.absolute())
    train_idx, held_idx = stratified_holdout(y_all, job.plan["holdout"], job.settings.seed)
    x_all = x_all.reshape((len(x_all), 28, 28, 1))
    return {
        "x": x_all, "y": y_all, "counts": counts, "train_idx": train_idx,
        "x_held": x_all[held_idx], "y_held": y_all[held_idx],
    }  # fmt: skip


def _load_base(job: _Job, replay_path: Path | None) -> dict[str, Any]:
    """Step 2: the model in use, the MNIST replay (and "not a digit" views for an
    11-output model) and the MNIST test images for the before/after figure."""
    settings = job.settings
    base_path = resolve_model_path(settings)
    if base_path.suffix not in (".keras", ".h5"):
        raise ModelError(
            f"{base_path} is not a Keras model (.keras or .h5); fine-tuning needs the Keras "
            "file of the model, not its export"
        )
    # Read before anything is replaced: the base may be the workspace model itself.
    card_info = {"path": base_path, "sha256": sha256_of(base_path), "card": _base_card(base_path)}
    replay = load_replay(replay_path or REPLAY_PATH)
    full_test = cached_test_set(settings)
    x_test, y_test = full_test if full_test is not None else (replay.x_test, replay.y_test)

    from digitctl._native import load_tensorflow

    keras = load_tensorflow()
    keras.utils.set_random_seed(settings.seed)
    model = load_keras_model(base_path, unsafe=settings.unsafe_load)
    classes = int(model.output_shape[-1])
    if classes not in (10, 11):
        raise ModelError(f"{base_path} has {classes} outputs; fine-tuning needs 10 (or 11)")
    x_replay, y_replay = replay.x_train, replay.y_train
    replay_source = "shipped subset"
    wanted = job.plan["replay_images"]
    full_train = cached_training_set(settings) if wanted > len(y_replay) else None
    if full_train is not None and len(full_train[1]) > len(y_replay):
        # More different MNIST digits in the same number of steps: less is forgotten.
        pick = np.random.default_rng(settings.seed).permutation(len(full_train[1]))[:wanted]
        x_replay, y_replay = _scale(full_train[0][pick]), full_train[1][pick]
        replay_source = "cached training set"
    negatives = 0
    if classes == 11:
        per_digit = max(1, len(y_replay) // 10)
        x_negative = replay.x_negative
        if x_negative is None:
            x_negative = negative_views(per_digit, settings.seed)
        if x_negative is None:
            job.warnings.append(
                "this model can answer 'not a digit', but no 'not a digit' examples are "
                "available to replay (the replay file has none and digitctl.synth cannot "
                "render them): that answer may weaken"
            )
        else:
            negatives = len(x_negative)
            x_replay = np.concatenate([x_replay, x_negative])
            y_replay = np.concatenate([y_replay, np.full(negatives, NOT_A_DIGIT, np.uint8)])
    if settings.model is not None:
        job.warnings.append(
            f"the model setting points at {settings.model}: predict and serve keep using it; "
            f"unset it to use the fine-tuned {workspace_model_path(settings)}"
        )
    job.marks["loaded"] = time.perf_counter()
    return {
        "path": base_path, "card_info": card_info, "model": model, "classes": classes,
        "x_replay": x_replay, "y_replay": y_replay, "negatives": negatives,
        "replay_source": replay_source,
        "x_test": x_test, "y_test": y_test, "test_digest": test_set_digest(x_test, y_test),
        "mnist_source": "full test set" if full_test is not None else "shipped subset",
    }  # fmt: skip


def _measure_before(job: _Job, feedback: dict[str, Any], base: dict[str, Any]) -> dict:
    """Step 3: the base model's figures, on what predict runs (its export when fresh)."""
    from digitctl.inference import _fresh_export

    base_lite = _fresh_export(base["path"])
    run = lite_runner(base_lite) if base_lite is not None else keras_runner(base["model"])
    measured = base_lite or base["path"]
    sha = sha256_of(base_lite) if base_lite is not None else base["card_info"]["sha256"]
    key = _figures_key(measured, sha, base["test_digest"])
    mnist = recorded_figures(job.settings, key)
    before = {
        "holdout": figures(run, feedback["x_held"], feedback["y_held"]),
        "mnist": mnist or figures(run, base["x_test"], base["y_test"]),
        "mnist_from": "measured" if mnist is None else "recorded",
    }
    if mnist is None:
        record_figures(job.settings, key, before["mnist"])
    job.marks["measured"] = time.perf_counter()
    return before


def _train(
    job: _Job, feedback: dict[str, Any], base: dict[str, Any], progress: Progress | None
) -> None:
    """Step 4: the corrections (augmented) mixed with the replay, the chosen layers trained."""
    plan, model = job.plan, base["model"]
    rng = np.random.default_rng(job.settings.seed)
    train_idx = feedback["train_idx"]
    x_feedback, y_feedback = feedback["x"][train_idx], feedback["y"][train_idx]
    x_replay, y_replay = base["x_replay"], base["y_replay"]
    pieces = plan["piece_negatives"]
    if base["classes"] == 11 and pieces:
        # Pieces of the writer's own digits are "not a digit": reading splits a wide glyph
        # when its pieces look like digits more surely than the whole does.
        from digitctl.robust import digit_pieces
        from digitctl.synth import looks_like_a_one

        x_pieces = digit_pieces(x_feedback, pieces, job.settings.seed)
        # A piece that is one upright stroke is what MNIST calls a "1": not a negative.
        x_pieces = x_pieces[[not looks_like_a_one(p) for p in x_pieces]]
        x_pieces = x_pieces.reshape((-1, 28, 28, 1))
        job.pieces = len(x_pieces)
        x_replay = np.concatenate([x_replay, x_pieces])
        y_replay = np.concatenate([y_replay, np.full(len(x_pieces), NOT_A_DIGIT, np.uint8)])
    x_mix, y_mix, _ = _mixed_set(
        x_feedback, y_feedback, x_replay, y_replay, plan["feedback_share"], rng
    )
    _prepare_for_training(model, plan["train"])
    try:
        _fit(
            model,
            x_mix,
            y_mix,
            epochs=plan["epochs"],
            batch_size=plan["batch_size"],
            learning_rate=plan["learning_rate"],
            seed=job.settings.seed,
            progress=progress,
            steps_per_execution=plan["steps_per_execution"],
            steps_per_epoch=plan["steps_per_epoch"],
        )
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            "fine-tuning interrupted; the previous model is unchanged"
        ) from None
    job.marks["trained"] = time.perf_counter()


def _stage_measure_install(
    job: _Job, feedback: dict[str, Any], base: dict[str, Any], before: dict, force: bool
) -> FinetuneResult:
    """Step 5: export beside the workspace model (temporary files), measure the export,
    and install it unless refused (``force`` installs anyway)."""
    settings = job.settings
    tuned = _clean_copy(base["model"])
    temps: dict[Path, Path] = {}
    y_all, train_idx = feedback["y"], feedback["train_idx"]
    try:
        temps = _stage(tuned, settings)
        job.marks["exported"] = time.perf_counter()
        # Measured on the export itself: the figures are those of what predict will run.
        staged_lite = temps[lite_path_for(workspace_model_path(settings))]
        after_run = lite_runner(staged_lite)
        holdout_after = figures(after_run, feedback["x_held"], feedback["y_held"])
        mnist_after = figures(after_run, base["x_test"], base["y_test"])
        after_key = _figures_key(staged_lite, sha256_of(staged_lite), base["test_digest"])
        reason = refusal(before["holdout"], holdout_after, before["mnist"], mnist_after)
        job.marks["evaluated"] = time.perf_counter()
        result = FinetuneResult(
            installed=False,
            refused=reason,
            forced=force and reason is not None,
            base_model=base["path"],
            model_path=workspace_model_path(settings),
            lite_path=None,
            card_path=None,
            output_classes=base["classes"],
            feedback_counts=feedback["counts"],
            train_counts={d: int(np.sum(y_all[train_idx] == d)) for d in range(10)},
            holdout_counts={d: int(np.sum(feedback["y_held"] == d)) for d in range(10)},
            replay_images=len(base["y_replay"]),
            negative_replay=base["negatives"],
            holdout_before=before["holdout"],
            holdout_after=holdout_after,
            mnist_before=before["mnist"],
            mnist_after=mnist_after,
            mnist_source=base["mnist_source"],
            mnist_before_from=before["mnist_from"],
            replay_source=base["replay_source"],
            piece_negatives=job.pieces,
            settings=job.plan,
            warnings=job.warnings,
        )
        if reason is None or force:
            result.card_path = _commit(temps, _card(result, base["card_info"]), settings)
            result.installed = True
            result.lite_path = lite_path_for(result.model_path)
            # The next fine-tuning starts from this export: its "before" is known.
            record_figures(settings, after_key, mnist_after)
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            "fine-tuning interrupted while exporting; the previous model is unchanged"
        ) from None
    finally:
        _discard(temps)
    return result


def _base_card(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(card_path_for(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _card(result: FinetuneResult, base: dict[str, Any]) -> dict[str, Any]:
    """The installed model's card (schema 2): what ``predict`` reads, and the run's record.

    The classes, the calibration temperature and the "not a digit" threshold are the base
    model's: fine-tuning keeps the outputs' meaning, and without them ``predict`` would
    read an 11-output model as one that can never answer "not a digit".
    """
    from digitctl import __version__
    from digitctl.modelfiles import CARD_SCHEMA, DIGITS

    base_path, base_card = base["path"], base["card"]
    name = str(base_card.get("name") or base_path.stem)
    summary = result.as_dict()
    classes = base_card.get("classes")
    if not isinstance(classes, list) or len(classes) != result.output_classes:
        classes = [*DIGITS, *(["not a digit"] if result.output_classes == 11 else [])]
    threshold = base_card.get("reject_threshold") if result.output_classes == 11 else None
    card: dict[str, Any] = {
        "schema": CARD_SCHEMA,
        "name": name if name.endswith("-finetuned") else f"{name}-finetuned",
        "description": "fine-tuned on the user's corrections with MNIST replay (digitctl finetune)",
        "classes": classes,
        "temperature": float(base_card.get("temperature") or 1.0),
        "reject_threshold": threshold,
        "base_model": f"{base_path} (sha256 {base['sha256']})",
        "output": "softmax probabilities over the digits 0-9"
        + (" and 'not a digit' (10)" if result.output_classes == 11 else ""),
        "files": {"keras": result.model_path.name, "tflite": lite_path_for(result.model_path).name},
        "metrics": {},
        "finetune": {
            "base_model": str(base_path),
            "base_model_sha256": base["sha256"],
            "base_model_name": base_card.get("name"),
            "feedback": summary["feedback"],
            "replay_images": result.replay_images,
            "replay_source": result.replay_source,
            "negative_replay": result.negative_replay,
            "piece_negatives": result.piece_negatives,
            "holdout": summary["holdout"],
            "mnist_test": summary["mnist_test"],
            "forced": result.forced,
            "refused_reason_overridden": result.refused if result.forced else None,
            "settings": result.settings,
            "digitctl": __version__,
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if result.mnist_source == "full test set":
        # Argmax over all outputs: a digit answered "not a digit" counts as wrong.
        card["metrics"] = {
            "test_accuracy": result.mnist_after.accuracy,
            "test_loss": round(result.mnist_after.loss, 6),
            "test_images": result.mnist_after.images,
        }
    return card


def finetune(settings: Settings | None = None, **options: Any) -> FinetuneResult:
    """``digitctl.finetune(...)``: :func:`finetune_model` with the usual settings layers
    (``digitctl.toml``, ``DIGITCTL_*``) when ``settings`` is not given."""
    if settings is None:
        from digitctl.config import load_settings

        settings = load_settings()
    return finetune_model(settings, **options)


__all__ = ["FinetuneResult", "finetune", "finetune_model", "refusal", "stratified_holdout"]
