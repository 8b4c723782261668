"""Training: the data pipeline, the epoch loop's callbacks, checkpoints, resume, model card.

Files a run leaves in the workspace (every one written atomically; :class:`TrainFiles`
names them):

- ``models/best_model.keras``: the best epoch by validation accuracy (ties: lower
  validation loss), without optimizer state; ``best_model.h5`` too with ``--format h5``;
  ``best_model.tflite``, its LiteRT export.
- ``models/best_model_card.json``: the :class:`~digitctl.modelfiles.ModelCard` with the
  training record (resolved config, versions, data fingerprint, timings) and the metrics.
- ``models/last_checkpoint.keras`` + ``models/train_state.json`` (a :class:`ResumeState`):
  the last completed epoch with optimizer state, what ``--resume`` continues from; the
  checkpoint is removed when a run finishes.
- ``artifacts/history.json``, ``artifacts/training_history.png``,
  ``artifacts/augmented_sample.png``.

:func:`train_model` runs four steps: plan (:func:`_plan_run`), restore or build
(:func:`_restore_or_build`), fit (:func:`_fit`), write outputs (:func:`_write_outputs`).
"""

from __future__ import annotations

import gc
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitctl.atomic import write_json, write_with
from digitctl.choices import RecipeName, SaveFormat, choose
from digitctl.errors import ConfigError, DigitctlError, TrainingInterrupted
from digitctl.model import Recipe, get_recipe
from digitctl.modelfiles import ModelCard, card_path_for, lite_path_for, workspace_model_path

if TYPE_CHECKING:
    from rich.progress import Progress

    from digitctl.config import Settings
    from digitctl.data import MnistSplits as Splits
    from digitctl.distribute import Distribution
    from digitctl.reader_training import ReaderTrainResult
    from digitctl.robust import SyntheticSplits
    from digitctl.sequence import SequenceTrainResult

CHECKPOINT_NAME = "last_checkpoint.keras"
STATE_NAME = "train_state.json"
# Figures kept per epoch in the history.
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")


@dataclass(frozen=True)
class TrainPlan:
    """What a run does, resolved from the settings and the recipe (saved for --resume)."""

    recipe: str
    epochs: int
    batch_size: int
    learning_rate: float
    augment: bool
    seed: int
    val_split: float
    limit: int | None
    save_format: str = SaveFormat.KERAS.value
    init_model: str | None = None  # weights the run starts from (fine-tuning)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ResumeState:
    """Where a run stands after its last completed epoch: ``train_state.json``."""

    plan: TrainPlan
    fingerprint: str  # of the data split the run trains on
    epochs_done: int = 0
    best: dict[str, float] | None = None  # val_accuracy, val_loss, accuracy, loss
    best_epoch: int = 0
    since_best: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0  # the epochs' own time, over resumed sessions too
    history: dict[str, list[float]] = field(default_factory=dict)
    finished: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "plan": self.plan.as_dict()}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ResumeState:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in document.items() if k in known}
        values["plan"] = TrainPlan(**document["plan"])
        values["history"] = {k: list(v) for k, v in document.get("history", {}).items()}
        return cls(**values)


@dataclass(frozen=True)
class TrainFiles:
    """Every file a run writes or reads, by name."""

    model: Path
    card: Path
    lite: Path
    h5: Path
    checkpoint: Path
    state: Path
    history: Path
    history_plot: Path
    augmented_sample: Path

    @classmethod
    def for_settings(cls, settings: Settings) -> TrainFiles:
        model = workspace_model_path(settings)
        artifacts = settings.artifacts_path
        return cls(
            model=model,
            card=card_path_for(model),
            lite=lite_path_for(model),
            h5=model.with_suffix(".h5"),
            checkpoint=settings.models_path / CHECKPOINT_NAME,
            state=settings.models_path / STATE_NAME,
            history=artifacts / "history.json",
            history_plot=artifacts / "training_history.png",
            augmented_sample=artifacts / "augmented_sample.png",
        )


@dataclass
class TrainResult:
    """What ``train`` produced; ``as_dict`` is the run's summary."""

    model_path: Path
    record_path: Path
    artifacts: list[Path]
    plan: TrainPlan
    epochs_run: int
    best_epoch: int
    best: dict[str, float]
    stopped_early: bool
    resumed_from: int | None
    train_seconds: float
    total_seconds: float
    train_images: int
    history: dict[str, list[float]] = field(default_factory=dict)
    extra_models: list[Path] = field(default_factory=list)
    strategy: str = "default"
    replicas: int = 1
    is_chief: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "replicas": self.replicas,
            "is_chief": self.is_chief,
            "model": str(self.model_path),
            "record": str(self.record_path),
            "other_files": [str(p) for p in self.extra_models],
            "artifacts": [str(p) for p in self.artifacts],
            "plan": self.plan.as_dict(),
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "best": self.best,
            "stopped_early": self.stopped_early,
            "resumed_from": self.resumed_from,
            "train_seconds": round(self.train_seconds, 2),
            "total_seconds": round(self.total_seconds, 2),
            "train_images": self.train_images,
        }

    def summary_rows(self) -> list[tuple[str, Any]]:
        """(label, value) rows for people: the figures, then the files written."""
        best = self.best
        stopped = " (stopped early)" if self.stopped_early else ""
        rows: list[tuple[str, Any]] = [("recipe", self.plan.recipe)]
        if self.strategy != "default":
            rows.append(("strategy", f"{self.strategy}, {self.replicas} replica(s)"))
        rows.append(("epochs run", f"{self.epochs_run} of {self.plan.epochs}{stopped}"))
        if self.resumed_from:
            rows.append(("resumed after epoch", self.resumed_from))
        rows += [
            ("best epoch", self.best_epoch),
            ("validation accuracy", f"{best['val_accuracy']:.4%}"),
            ("validation loss", f"{best['val_loss']:.4f}"),
            ("training accuracy", f"{best['accuracy']:.4%}"),
            ("training images", f"{self.train_images:,}"),
            ("augmentation", "on" if self.plan.augment else "off"),
            ("training time", f"{self.train_seconds:.1f} s"),
        ]
        if not self.is_chief:
            return [*rows, ("files", "none on this worker: the chief writes the model")]
        return [
            *rows,
            ("model", self.model_path),
            ("model card", self.record_path),
            *(("also", path) for path in self.extra_models),
            *(("artifact", path) for path in self.artifacts),
        ]


def resolve_plan(settings: Settings, save_format: str = "keras") -> TrainPlan:
    """The run's plan: the recipe's values, overridden by whatever the settings set."""
    save_format = choose(SaveFormat, save_format, "format")
    recipe = get_recipe(settings.recipe)
    return TrainPlan(
        recipe=recipe.name,
        epochs=settings.epochs or recipe.epochs,
        batch_size=settings.batch_size or recipe.batch_size,
        learning_rate=settings.learning_rate or recipe.learning_rate,
        augment=recipe.augment if settings.augment is None else settings.augment,
        seed=settings.seed,
        val_split=settings.val_split,
        limit=settings.limit,
        save_format=save_format.value,
        init_model=str(settings.init_model) if settings.init_model is not None else None,
    )


def versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    from digitctl import __version__

    return {
        "digitctl": __version__,
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": str(_cpu_count()),
    }


def _cpu_count() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------------------------------
# Data pipeline
# --------------------------------------------------------------------------------------
def training_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, augmenter: Any | None
) -> Any:
    """An endless, shuffled, batched tf.data pipeline (fit with ``steps_per_epoch``);
    ``x`` is float32 in [0, 1], or the uint8 values such images were scaled from.

    Endless, with tf.data autotuning off: a finite dataset is rebuilt every epoch, and
    tearing the old iterator down can stall for up to 35 s on this kind of machine.
    What is shuffled is the images' indices, and each batch is gathered from the NumPy
    arrays in place: a shuffle buffer of images, or a tensor made of them, would hold
    another copy of the training set (up to ~170 MB for MNIST). uint8 images are scaled
    back to the very float32 values they came from.
    """
    import tensorflow as tf

    stored = x if x.dtype == np.uint8 else _as_uint8(x)
    images = stored if stored is not None else np.asarray(x, np.float32)
    labels = np.asarray(y)

    def take(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return images[indices], labels[indices]

    def gather(indices: Any) -> tuple[Any, Any]:
        batch, batch_labels = tf.numpy_function(
            take, [indices], (tf.as_dtype(images.dtype), tf.as_dtype(labels.dtype))
        )
        batch.set_shape((None, *images.shape[1:]))
        batch_labels.set_shape((None, *labels.shape[1:]))
        if stored is not None:
            batch = tf.cast(batch, tf.float32) / 255.0
        return batch, batch_labels

    dataset = (
        tf.data.Dataset.range(len(x))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size)
        .map(gather, num_parallel_calls=1)
    )
    if augmenter is not None:
        dataset = dataset.map(
            lambda images, labels: (augmenter(images, training=True), labels), num_parallel_calls=1
        )
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    return dataset.prefetch(2).with_options(options)


def validation_dataset(x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> Any:
    """The validation images in order, batched and gathered in place (as
    :func:`training_dataset`): Keras would copy NumPy validation arrays every epoch."""
    import tensorflow as tf

    def take(start: Any) -> tuple[np.ndarray, np.ndarray]:
        index = int(start)
        return x[index : index + batch_size], y[index : index + batch_size]

    def gather(start: Any) -> tuple[Any, Any]:
        batch, labels = tf.numpy_function(
            take, [start], (tf.as_dtype(x.dtype), tf.as_dtype(y.dtype))
        )
        batch.set_shape((None, *x.shape[1:]))
        labels.set_shape((None, *y.shape[1:]))
        if x.dtype == np.uint8:
            batch = tf.cast(batch, tf.float32) / 255.0
        return batch, labels

    options = tf.data.Options()
    options.autotune.enabled = False
    dataset = tf.data.Dataset.range(0, len(x), batch_size).map(gather, num_parallel_calls=1)
    return dataset.with_options(options)


def _as_uint8(x: np.ndarray) -> np.ndarray | None:
    """``x`` (float32 in [0, 1]) as the uint8 values it was scaled from, when it holds
    exactly such values (MNIST and the synthetic sets do); else None."""
    stored = np.empty(x.shape, np.uint8)
    for start in range(0, len(x), 4096):  # in chunks: no float32 temporary of the whole set
        part = np.asarray(x[start : start + 4096], np.float32)
        stored[start : start + 4096] = np.round(part * np.float32(255.0))
        if not np.array_equal(stored[start : start + 4096] / np.float32(255.0), part):
            return None
    return stored


# --------------------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------------------
def _is_better(candidate: dict[str, float], best: dict[str, float] | None) -> bool:
    if best is None:
        return True
    if candidate["val_accuracy"] != best["val_accuracy"]:
        return candidate["val_accuracy"] > best["val_accuracy"]
    return candidate["val_loss"] < best["val_loss"]


def _make_callbacks(run: _Run) -> list[Any]:
    import keras

    # Not Keras' ModelCheckpoint + EarlyStopping + BackupAndRestore: those monitor one
    # figure (no tie-break on val_loss), keep "best" and the patience counter in memory
    # only (a resumed run would forget them), and BackupAndRestore's own directory can
    # not carry the plan and data fingerprint that --resume checks. One callback keeps
    # all of it in one ResumeState, saved beside the checkpoint after every epoch.
    class EpochKeeper(keras.callbacks.Callback):
        """Records history, keeps the best weights and file, saves the resumable
        checkpoint, and stops after ``patience`` epochs without improvement."""

        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = dict(logs or {})
            state = run.state
            seconds = time.perf_counter() - self._started
            state.train_seconds += seconds
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )
            logs["seconds"] = seconds
            for key in HISTORY_KEYS:
                state.history.setdefault(key, []).append(float(logs.get(key, float("nan"))))
            figures = {k: float(logs[k]) for k in ("val_accuracy", "val_loss", "accuracy", "loss")}
            if _is_better(figures, state.best):
                state.best, state.best_epoch, state.since_best = figures, epoch + 1, 0
                run.best_weights = self.model.get_weights()
                run.save_best(self.model)
            else:
                state.since_best += 1
            state.epochs_done = epoch + 1
            if state.since_best >= run.patience:
                state.stopped_early = True
                self.model.stop_training = True
            run.save_checkpoint(self.model)

    class RichEpochBars(keras.callbacks.Callback):
        """One Rich progress bar per epoch with running loss/accuracy, then val figures."""

        def __init__(self, progress: Progress) -> None:
            super().__init__()
            self.progress = progress
            self.task: Any = None

        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self.task = self.progress.add_task(
                f"epoch {epoch + 1}/{run.plan.epochs}", total=run.steps_per_epoch, status=""
            )

        def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            # Formatting every step costs little; Rich redraws at its own rate.
            self.progress.update(
                self.task,
                completed=batch + 1,
                status=f"loss {logs.get('loss', float('nan')):.4f}  "
                f"acc {logs.get('accuracy', float('nan')):.4f}",
            )

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            mark = " [green]★[/green]" if run.state.best_epoch == epoch + 1 else ""
            self.progress.update(
                self.task,
                completed=run.steps_per_epoch,
                status=f"loss {logs.get('loss', 0):.4f}  acc {logs.get('accuracy', 0):.4f}  "
                f"val_loss {logs.get('val_loss', 0):.4f}  "
                f"val_acc {logs.get('val_accuracy', 0):.4f}{mark}",
            )

    callbacks: list[Any] = [EpochKeeper()]
    if run.progress is not None:
        callbacks.append(RichEpochBars(run.progress))
    return callbacks


# --------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------
@dataclass
class _Run:
    """One training run: its settings, files and state, shared by the steps and callbacks."""

    settings: Settings
    recipe: Recipe
    files: TrainFiles
    state: ResumeState
    progress: Progress | None
    steps_per_epoch: int = 0
    # False on the non-chief workers of a multi-worker run: only the chief writes files.
    writes: bool = True
    resumed_from: int | None = None
    best_weights: list[Any] | None = None
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    # Robust recipes: the synthetic views added to the data, and MNIST's validation size.
    synthetic: SyntheticSplits | None = None
    mnist_validation: int = 0
    train_images: int = 0

    @property
    def plan(self) -> TrainPlan:
        return self.state.plan

    @property
    def patience(self) -> int:
        return self.recipe.patience

    def save_best(self, model: Any) -> None:
        if self.writes:
            _save(inference_copy(model, self.recipe), self.files.model)

    def save_checkpoint(self, model: Any) -> None:
        # Model with optimizer state first, then the state that points at it: a crash
        # between the two leaves the previous epoch's state, still consistent enough to
        # resume (one epoch is repeated).
        if self.writes:
            _save(model, self.files.checkpoint)
            write_json(self.files.state, self.state.to_json())


def inference_copy(model: Any, recipe: Recipe) -> Any:
    """``model``'s weights in a fresh, uncompiled copy of its architecture: no optimizer
    state (a third of the size) and no training objects to deserialize."""
    from digitctl.model import build_model

    clean = build_model(recipe)
    clean.set_weights(model.get_weights())
    return clean


def _save(model: Any, path: Path) -> Path:
    return write_with(path, lambda tmp: model.save(tmp))


def train_model(
    settings: Settings,
    *,
    progress: Progress | None = None,
    resume: bool = False,
    save_format: str = "keras",
) -> TrainResult | SequenceTrainResult | ReaderTrainResult:
    """Train the recipe's CNN on MNIST, keep the best epoch by validation accuracy, and
    write the model, its card and the artifacts into the workspace.

    ``resume`` continues the interrupted run found in the workspace, with that run's own
    plan; settings that ask for a different plan are an error. Ctrl-C raises
    :class:`TrainingInterrupted` after the last completed epoch has been saved.
    """
    if settings.recipe == RecipeName.SEQUENCE:
        # Not a CNN: the touching-digits sequence model (digitctl.sequence).
        if resume or save_format != SaveFormat.KERAS:
            raise ConfigError("the sequence recipe has no --resume and writes .keras only")
        from digitctl.sequence import train_sequence

        return train_sequence(settings, progress=progress)
    if settings.recipe == RecipeName.READER:
        # Not a CNN either: the line reader, CTC on generated scenes (digitctl.scenes).
        if save_format != SaveFormat.KERAS:
            raise ConfigError("the reader recipe writes .keras (and .tflite) only")
        from digitctl.reader_training import train_reader

        return train_reader(settings, progress=progress, resume=resume)
    run, splits = _plan_run(settings, progress, resume, save_format)
    from digitctl._native import load_tensorflow
    from digitctl.distribute import make_distribution

    load_tensorflow(debug=run.settings.debug)
    # Before any model: MultiWorkerMirroredStrategy must own the TF runtime.
    dist = make_distribution(run.settings.strategy)
    run.writes = dist.is_chief
    run.train_images = len(splits.x_train)
    model = _restore_or_build(run, dist, run.train_images)
    _fit(run, model, splits, dist)
    # The training images are not needed any more: their memory goes back before the
    # export, which needs ~35 MB of its own (the training peak is set there).
    splits = replace(splits, x_train=splits.x_train[:0])
    gc.collect()
    return _write_outputs(run, model, splits, dist)


def _plan_run(
    settings: Settings, progress: Progress | None, resume: bool, save_format: str
) -> tuple[_Run, Splits]:
    """Step 1: the plan (saved or resolved), its state and its data (``--limit`` applied)."""
    from dataclasses import replace

    from digitctl.data import load_splits
    from digitctl.distribute import cluster_from_environment

    files = TrainFiles.for_settings(settings)
    state = _read_state(settings, files) if resume else None
    if state is not None:
        _refuse_changed_plan(settings, state.plan)
        # The data split must be the one the interrupted run trained on.
        settings = settings.with_overrides(seed=state.plan.seed, val_split=state.plan.val_split)
    plan = state.plan if state is not None else resolve_plan(settings, save_format)
    run = _Run(settings, get_recipe(plan.recipe), files, state or ResumeState(plan, ""), progress)
    if settings.strategy == "multi-worker":
        cluster_from_environment()  # a bad TF_CONFIG fails before the data is prepared
    splits = load_splits(settings, progress=progress)
    if state is not None and state.fingerprint != splits.fingerprint:
        raise DigitctlError(
            "cannot resume: the data differs from the interrupted run's "
            "(different files, split or seed); start afresh without --resume"
        )
    run.state.fingerprint = splits.fingerprint
    run.resumed_from = state.epochs_done if state is not None else None
    if plan.limit is not None:
        splits = replace(
            splits, x_train=splits.x_train[: plan.limit], y_train=splits.y_train[: plan.limit]
        )
    if len(splits.x_train) == 0 or len(splits.x_val) == 0:
        raise DigitctlError("no training or validation images; check --limit and --val-split")
    run.mnist_validation = len(splits.x_val)
    if run.recipe.num_classes > 10:
        splits = _with_synthetic(run, splits)
    run.timings["data_seconds"] = time.perf_counter() - run.started
    return run, _compact(splits)


def _compact(splits: Splits) -> Splits:
    """The splits training needs, in less memory: the training images as the uint8
    values they were scaled from (a quarter of float32's size; the input pipeline scales
    them back to the same float32 values) and no test images (``evaluate`` reads those).
    Done before TensorFlow is imported, whose ~700 MB come on top of what is kept here."""
    from dataclasses import replace

    stored = _as_uint8(splits.x_train)
    return replace(
        splits,
        x_train=splits.x_train if stored is None else stored,
        x_test=splits.x_test[:0],
    )


def _with_synthetic(run: _Run, splits: Splits) -> Splits:
    """MNIST plus the robust recipe's framed digits and negatives (digitctl.robust)."""
    from dataclasses import replace

    from digitctl.robust import synthetic_splits

    synthetic = synthetic_splits(
        splits.x_train,
        splits.y_train,
        framed=run.recipe.framed,
        negatives=run.recipe.negatives,
        pieces=run.recipe.pieces,
        pairs=run.recipe.pairs,
        seed=run.plan.seed,
        fingerprint=splits.fingerprint,
        cache_dir=run.settings.processed_path,
        progress=run.progress,
    )
    run.synthetic = synthetic
    return replace(
        splits,
        x_train=np.concatenate([splits.x_train, synthetic.x_train]),
        y_train=np.concatenate([splits.y_train, synthetic.y_train]),
        x_val=np.concatenate([splits.x_val, synthetic.x_val]),
        y_val=np.concatenate([splits.y_val, synthetic.y_val]),
    )


def _restore_or_build(run: _Run, dist: Distribution, train_images: int) -> Any:
    """Step 2: the interrupted run's checkpoint, or a new compiled model."""
    import keras

    from digitctl.model import build_and_compile

    # Each replica keeps the recipe's per-replica batch; the learning rate grows with
    # the global batch (the linear scaling rule).
    global_batch = run.plan.batch_size * dist.replicas
    run.steps_per_epoch = math.ceil(train_images / global_batch)
    keras.utils.set_random_seed(run.plan.seed)
    if run.resumed_from is not None:
        with dist.strategy.scope():
            model = _load_checkpoint(run.files.checkpoint)
        if run.files.model.exists():
            from digitctl.modelfiles import load_keras_model

            run.best_weights = load_keras_model(run.files.model).get_weights()
        return model
    if run.writes:
        for path in (run.files.checkpoint, run.files.state):
            path.unlink(missing_ok=True)
    with dist.strategy.scope():
        model = build_and_compile(
            run.recipe,
            learning_rate=run.plan.learning_rate * dist.replicas,
            total_steps=run.steps_per_epoch * run.plan.epochs,
            seed=run.plan.seed,
        )
        if run.plan.init_model is not None:
            from digitctl.robust import load_initial_weights

            load_initial_weights(model, Path(run.plan.init_model), unsafe=run.settings.unsafe_load)
    return model


def _fit(run: _Run, model: Any, splits: Splits, dist: Distribution) -> None:
    """Step 3: the epochs left to run (none when a resumed run had finished them)."""
    from digitctl.model import build_augmenter

    plan = run.plan
    global_batch = plan.batch_size * dist.replicas
    augmenter = build_augmenter(run.recipe, plan.seed) if plan.augment else None
    dataset = training_dataset(splits.x_train, splits.y_train, global_batch, plan.seed, augmenter)
    if augmenter is not None and run.writes:
        _augmented_sample(splits.x_train, splits.y_train, augmenter, run.files.augmented_sample)
    fit_started = time.perf_counter()
    run.timings["setup_seconds"] = fit_started - run.started - run.timings["data_seconds"]
    common = {
        "epochs": plan.epochs,
        "initial_epoch": run.state.epochs_done,
        "steps_per_epoch": run.steps_per_epoch,
        "callbacks": _make_callbacks(run),
    }
    try:
        if run.state.epochs_done < plan.epochs and dist.name == "multi-worker":
            from digitctl.distribute import fit_multi_worker

            fit_multi_worker(
                model,
                dataset,
                distribution=dist,
                global_batch=global_batch,
                validation_data=(splits.x_val, splits.y_val),
                **common,
            )
        elif run.state.epochs_done < plan.epochs:
            # shuffle=False: the dataset shuffles itself.
            validation = validation_dataset(splits.x_val, splits.y_val)
            model.fit(dataset, validation_data=validation, shuffle=False, verbose=0, **common)
    except KeyboardInterrupt:
        raise TrainingInterrupted(_interrupted_message(run)) from None
    run.timings["fit_seconds"] = time.perf_counter() - fit_started
    # The traced training and validation steps (and, through them, the input pipeline)
    # are not needed after fitting: ~25 MB.
    for name in ("train_function", "test_function", "predict_function"):
        if hasattr(model, name):
            setattr(model, name, None)
    if run.best_weights is None:  # pragma: no cover - fit always runs one epoch
        raise DigitctlError("training produced no epoch; nothing was saved")
    model.set_weights(run.best_weights)


def _write_outputs(run: _Run, model: Any, splits: Splits, dist: Distribution) -> TrainResult:
    """Step 4: the exports, history, curves and model card (the chief only), and the
    finished state."""
    files, state = run.files, run.state
    extra: list[Path] = []
    artifacts: list[Path] = []
    if run.writes:
        clean = inference_copy(model, run.recipe)
        if run.plan.save_format == SaveFormat.H5:
            extra.append(_save(clean, files.h5))
        export_started = time.perf_counter()
        lite = _write_lite(clean, files.lite, debug=run.settings.debug)
        extra += [lite] if lite is not None else []
        run.timings["export_seconds"] = time.perf_counter() - export_started
        artifacts = _write_history(run)
        if run.plan.augment:
            artifacts.append(files.augmented_sample)
    run.timings["total_seconds"] = time.perf_counter() - run.started
    if run.writes:
        _model_card(run, model, splits, dist, extra).write(files.card)
        files.checkpoint.unlink(missing_ok=True)  # the large resumable checkpoint
        state.finished = True
        write_json(files.state, state.to_json())
    return TrainResult(
        model_path=files.model,
        record_path=files.card,
        artifacts=artifacts,
        plan=run.plan,
        epochs_run=state.epochs_done,
        best_epoch=state.best_epoch,
        best=dict(state.best or {}),
        stopped_early=state.stopped_early,
        resumed_from=run.resumed_from,
        train_seconds=state.train_seconds,
        total_seconds=run.timings["total_seconds"],
        train_images=run.train_images,
        history=state.history,
        extra_models=extra,
        strategy=dist.name,
        replicas=dist.replicas,
        is_chief=dist.is_chief,
    )


def _write_history(run: _Run) -> list[Path]:
    from digitctl import plots

    state = run.state
    document = {
        "plan": run.plan.as_dict(),
        "best_epoch": state.best_epoch,
        "epochs": list(range(1, state.epochs_done + 1)),
        **state.history,
    }
    write_json(run.files.history, document)
    plots.plot_training_history(state.history, run.files.history_plot, best_epoch=state.best_epoch)
    return [run.files.history, run.files.history_plot]


def _model_card(
    run: _Run, model: Any, splits: Splits, dist: Distribution, extra: list[Path]
) -> ModelCard:
    """The card of the trained model: the run record, validation metrics, history."""
    state, settings = run.state, run.settings
    best = state.best or {}
    record = {
        "architecture": {**run.recipe.as_dict(), "parameters": int(model.count_params())},
        "plan": run.plan.as_dict(),
        "distribution": {
            "strategy": dist.name,
            "replicas": dist.replicas,
            "is_chief": dist.is_chief,
            "global_batch_size": run.plan.batch_size * dist.replicas,
            "peak_learning_rate": run.plan.learning_rate * dist.replicas,
        },
        "settings": {
            k: str(v) if isinstance(v, Path) else v for k, v in settings.as_dict().items()
        },
        "data": {
            "fingerprint": state.fingerprint,
            "train_images": run.train_images,
            "validation_images": len(splits.x_val),
            "mirror": settings.mirror,
        },
        "versions": versions(),
        # data: loading the splits; setup: building the model and the input pipeline (and
        # loading a checkpoint); train: the epochs over resumed sessions too; fit: this
        # session's fit call, epochs plus checkpoint saving.
        "timings": {
            **{k: round(v, 2) for k, v in run.timings.items()},
            "train_seconds": round(state.train_seconds, 2),
            "epoch_seconds": [round(s, 2) for s in state.history.get("seconds", [])],
        },
        "epochs_run": state.epochs_done,
        "best_epoch": state.best_epoch,
        "stopped_early": state.stopped_early,
        "resumed_from": run.resumed_from,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    metrics = {
        "val_accuracy": best.get("val_accuracy"),
        "val_loss": best.get("val_loss"),
        "train_accuracy": best.get("accuracy"),
        "train_loss": best.get("loss"),
    }
    card = ModelCard(
        name=run.files.model.stem,
        description=run.recipe.description,
        base_model=run.plan.init_model,
        files={p.suffix.lstrip("."): p.name for p in [run.files.model, *extra]},
        metrics={k: v for k, v in metrics.items() if v is not None},
        training=record,
        history={"epochs": list(range(1, state.epochs_done + 1)), **state.history},
    )
    if run.synthetic is not None:
        _calibrate_card(card, run, model, splits)
    return card


def _calibrate_card(card: ModelCard, run: _Run, model: Any, splits: Splits) -> None:
    """The not-a-digit class: temperature and threshold from the validation data (MNIST
    and synthetic views), and the MNIST validation accuracy over the digit columns."""
    from digitctl.robust import NOT_A_DIGIT_CLASS, calibrate

    assert run.synthetic is not None
    probabilities = np.asarray(model.predict(splits.x_val, batch_size=512, verbose=0))
    mnist = run.mnist_validation
    figures = calibrate(
        probabilities, np.asarray(splits.y_val), np.arange(len(splits.y_val)) < mnist
    )
    digits = probabilities[:mnist, :10].argmax(axis=1)
    figures["mnist_val_accuracy"] = round(float(np.mean(digits == splits.y_val[:mnist])), 6)
    card.classes = [*card.classes[:10], NOT_A_DIGIT_CLASS]
    card.temperature = figures["temperature"]
    card.reject_threshold = figures["reject_threshold"]
    card.metrics["mnist_val_accuracy"] = figures["mnist_val_accuracy"]
    card.extra["calibration"] = figures
    card.training["data"]["synthetic"] = {
        "cache": run.synthetic.path.name,
        "train_views": len(run.synthetic.x_train),
        "validation_views": len(run.synthetic.x_val),
    }


def _write_lite(model: Any, path: Path, debug: bool = False) -> Path | None:
    """The LiteRT export beside the model, when the export module is installed."""
    try:
        from digitctl.export import write_lite_export
    except ImportError:
        return None
    return write_lite_export(model, path, debug=debug)


def _augmented_sample(x: np.ndarray, y: np.ndarray, augmenter: Any, path: Path) -> Path:
    """Ten training images and three augmented versions of each, one row per version."""
    from digitctl import plots

    count = min(10, len(x))
    originals = x[:count] if x.dtype != np.uint8 else x[:count] / np.float32(255.0)
    rows = [originals] + [np.asarray(augmenter(originals, training=True)) for _ in range(3)]
    images = np.concatenate(rows)
    titles = [f"{int(label)}" for label in y[:count]] + [
        f"aug {row}" for row in range(1, 4) for _ in range(count)
    ]
    return plots.plot_image_grid(
        images,
        titles,
        path,
        "Augmentation: originals (top row) and augmented copies",
        columns=count,
    )


def _interrupted_message(run: _Run) -> str:
    state = run.state
    if state.epochs_done == 0:
        return "training interrupted before the first epoch finished; nothing was saved"
    return (
        f"training interrupted after epoch {state.epochs_done}/{run.plan.epochs}; the best "
        f"model so far (epoch {state.best_epoch}) is in {run.files.model}; continue with "
        "`digitctl train --resume`"
    )


def _read_state(settings: Settings, files: TrainFiles) -> ResumeState:
    try:
        document = json.loads(files.state.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DigitctlError(
            f"nothing to resume: no interrupted run in {settings.models_path}; "
            "run `digitctl train` without --resume"
        ) from None
    except (OSError, ValueError) as exc:
        raise DigitctlError(
            f"cannot read {files.state}: {exc}; start afresh without --resume"
        ) from None
    if document.get("finished"):
        raise DigitctlError(
            f"nothing to resume: the last run in {settings.models_path} finished; "
            "run `digitctl train` without --resume to train again"
        )
    if not files.checkpoint.exists():
        raise DigitctlError(f"cannot resume: {files.checkpoint} is missing; start afresh")
    try:
        return ResumeState.from_json(document)
    except (KeyError, TypeError) as exc:
        raise DigitctlError(
            f"cannot read {files.state}: {exc}; start afresh without --resume"
        ) from None


def _refuse_changed_plan(settings: Settings, plan: TrainPlan) -> None:
    """Fail when a flag, the environment or a config file asks --resume for a different run.

    Quietly ignoring ``--epochs 40`` would leave the user believing it applied.
    """
    # The plan's fields that are settings too (all but the output format) shape the run.
    changed = [
        f"{name} {getattr(settings, name)!r} ({settings.sources[name]}; the run has "
        f"{getattr(plan, name)!r})"
        for name in (f.name for f in fields(plan))
        if name in settings.sources and getattr(settings, name) != getattr(plan, name)
    ]
    if changed:
        raise DigitctlError(
            "cannot resume with different training settings: "
            + "; ".join(changed)
            + ". Drop them to continue the interrupted run as it was planned, "
            "or start afresh without --resume"
        )


def _load_checkpoint(path: Path) -> Any:
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=True)
    except (ValueError, OSError, KeyError, TypeError) as exc:
        raise DigitctlError(f"cannot resume from {path}: {exc}; start afresh") from None


__all__ = ["ResumeState", "TrainFiles", "TrainPlan", "TrainResult", "resolve_plan", "train_model"]
