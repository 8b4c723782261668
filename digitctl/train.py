"""Training: the data pipeline, the epoch loop's callbacks, checkpoints, resume, run record.

Files a run leaves in the workspace (every one written atomically):

- ``models/best_model.keras``: the best epoch by validation accuracy (ties: lower
  validation loss), without optimizer state; ``best_model.h5`` too with ``--format h5``.
- ``models/best_model_card.json``: the run record (resolved config, versions, data
  fingerprint, timings, final metrics).
- ``models/last_checkpoint.keras`` + ``models/train_state.json``: the last completed epoch
  with optimizer state, what ``--resume`` continues from; removed when a run finishes.
- ``artifacts/history.json``, ``artifacts/training_history.png``,
  ``artifacts/augmented_sample.png``.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitctl.atomic import write_json, write_with
from digitctl.choices import SaveFormat, choose
from digitctl.errors import DigitctlError, TrainingInterrupted
from digitctl.model import Recipe, get_recipe
from digitctl.modelfiles import card_path_for, lite_path_for, workspace_model_path

if TYPE_CHECKING:
    from rich.progress import Progress

    from digitctl.config import Settings

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

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TrainResult:
    """What ``train`` produced; ``as_dict`` is the run record's summary."""

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
    """An endless, shuffled, batched tf.data pipeline (fit with ``steps_per_epoch``).

    Endless, with tf.data autotuning off: a finite dataset is rebuilt every epoch, and
    tearing the old iterator down can stall for up to 35 s on this kind of machine.
    """
    import tensorflow as tf

    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size)
    )
    if augmenter is not None:
        dataset = dataset.map(
            lambda images, labels: (augmenter(images, training=True), labels), num_parallel_calls=1
        )
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    return dataset.prefetch(2).with_options(options)


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

    class EpochKeeper(keras.callbacks.Callback):
        """Records history, keeps the best weights and file, saves the resumable
        checkpoint, and stops after ``patience`` epochs without improvement."""

        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = dict(logs or {})
            seconds = time.perf_counter() - self._started
            run.train_seconds += seconds
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )
            logs["seconds"] = seconds
            for key in HISTORY_KEYS:
                run.history.setdefault(key, []).append(float(logs.get(key, float("nan"))))
            figures = {
                "val_accuracy": float(logs["val_accuracy"]),
                "val_loss": float(logs["val_loss"]),
                "accuracy": float(logs["accuracy"]),
                "loss": float(logs["loss"]),
            }
            if _is_better(figures, run.best):
                run.best = figures
                run.best_epoch = epoch + 1
                run.best_weights = self.model.get_weights()
                run.save_best(self.model)
                run.since_best = 0
            else:
                run.since_best += 1
            run.epochs_done = epoch + 1
            run.save_checkpoint(self.model)
            if run.since_best >= run.patience:
                run.stopped_early = True
                self.model.stop_training = True

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
            mark = " [green]★[/green]" if run.best_epoch == epoch + 1 else ""
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
    """Mutable state of one training run, shared by the callbacks."""

    settings: Settings
    plan: TrainPlan
    recipe: Recipe
    steps_per_epoch: int
    patience: int
    progress: Progress | None
    fingerprint: str
    # False on the non-chief workers of a multi-worker run: only the chief writes files.
    writes: bool = True
    history: dict[str, list[float]] = field(default_factory=dict)
    best: dict[str, float] | None = None
    best_epoch: int = 0
    best_weights: list[Any] | None = None
    since_best: int = 0
    epochs_done: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0

    @property
    def model_path(self) -> Path:
        return workspace_model_path(self.settings)

    @property
    def checkpoint_path(self) -> Path:
        return self.settings.models_path / CHECKPOINT_NAME

    @property
    def state_path(self) -> Path:
        return self.settings.models_path / STATE_NAME

    def save_best(self, model: Any) -> None:
        if self.writes:
            save_inference_model(model, self.recipe, self.model_path)

    def save_checkpoint(self, model: Any) -> None:
        # Model with optimizer state first, then the state that points at it: a crash
        # between the two leaves the previous epoch's state, still consistent enough to
        # resume (one epoch is repeated).
        if not self.writes:
            return
        write_with(self.checkpoint_path, lambda tmp: model.save(tmp))
        write_json(
            self.state_path,
            {
                "plan": self.plan.as_dict(),
                "fingerprint": self.fingerprint,
                "epochs_done": self.epochs_done,
                "best": self.best,
                "best_epoch": self.best_epoch,
                "since_best": self.since_best,
                "stopped_early": self.stopped_early,
                "train_seconds": self.train_seconds,
                "history": self.history,
                "finished": False,
            },
        )


def save_inference_model(model: Any, recipe: Recipe, path: Path) -> Path:
    """Save ``model``'s weights in a fresh, uncompiled copy of its architecture: no
    optimizer state (a third of the size) and no training objects to deserialize."""
    from digitctl.model import build_model

    clean = build_model(recipe)
    clean.set_weights(model.get_weights())
    return write_with(path, lambda tmp: clean.save(tmp))


def train_model(
    settings: Settings,
    *,
    progress: Progress | None = None,
    resume: bool = False,
    save_format: str = "keras",
) -> TrainResult:
    """Train the recipe's CNN on MNIST, keep the best epoch by validation accuracy, and
    write the model, run record and artifacts into the workspace.

    ``resume`` continues the interrupted run found in the workspace, with that run's own
    plan; settings that ask for a different plan are an error. Ctrl-C raises
    :class:`TrainingInterrupted` after the last completed epoch has been saved.
    """
    started = time.perf_counter()
    state = _read_state(settings) if resume else None
    if state is not None:
        plan = TrainPlan(**state["plan"])
        _refuse_changed_plan(settings, plan)
        # The data split must be the one the interrupted run trained on.
        settings = settings.with_overrides(seed=plan.seed, val_split=plan.val_split)
    else:
        plan = resolve_plan(settings, save_format)
    recipe = get_recipe(plan.recipe)

    from digitctl._native import load_tensorflow
    from digitctl.data import load_splits
    from digitctl.distribute import cluster_from_environment, make_distribution

    if settings.strategy == "multi-worker":
        cluster_from_environment()  # a bad TF_CONFIG fails before the data is prepared

    splits = load_splits(settings, progress=progress)
    if state is not None and state["fingerprint"] != splits.fingerprint:
        raise DigitctlError(
            "cannot resume: the data differs from the interrupted run's "
            "(different files, split or seed); start afresh without --resume"
        )
    x_train, y_train = splits.x_train, splits.y_train
    if plan.limit is not None:
        x_train, y_train = x_train[: plan.limit], y_train[: plan.limit]
    if len(x_train) == 0 or len(splits.x_val) == 0:
        raise DigitctlError("no training or validation images; check --limit and --val-split")
    data_seconds = time.perf_counter() - started
    load_tensorflow()
    # Before any model: MultiWorkerMirroredStrategy must own the TF runtime.
    dist = make_distribution(settings.strategy)

    # Each replica keeps the recipe's per-replica batch; the learning rate grows with
    # the global batch (the linear scaling rule).
    global_batch = plan.batch_size * dist.replicas
    learning_rate = plan.learning_rate * dist.replicas

    import keras

    from digitctl.model import build_and_compile, build_augmenter

    steps_per_epoch = math.ceil(len(x_train) / global_batch)
    run = _Run(
        settings=settings,
        plan=plan,
        recipe=recipe,
        steps_per_epoch=steps_per_epoch,
        patience=recipe.patience,
        progress=progress,
        fingerprint=splits.fingerprint,
        writes=dist.is_chief,
    )
    keras.utils.set_random_seed(plan.seed)
    resumed_from: int | None = None
    if state is not None:
        resumed_from = int(state["epochs_done"])
        run.history = {k: list(v) for k, v in state["history"].items()}
        run.best = state["best"]
        run.best_epoch = int(state["best_epoch"])
        run.since_best = int(state["since_best"])
        run.epochs_done = resumed_from
        run.train_seconds = float(state["train_seconds"])
        with dist.strategy.scope():
            model = _load_checkpoint(run.checkpoint_path)
        if run.model_path.exists():
            from digitctl.modelfiles import load_keras_model

            run.best_weights = load_keras_model(run.model_path).get_weights()
    else:
        if run.writes:
            _clear_checkpoint(run)
        with dist.strategy.scope():
            model = build_and_compile(
                recipe,
                learning_rate=learning_rate,
                total_steps=steps_per_epoch * plan.epochs,
                seed=plan.seed,
            )
    augmenter = build_augmenter(recipe, plan.seed) if plan.augment else None
    dataset = training_dataset(x_train, y_train, global_batch, plan.seed, augmenter)
    artifacts = settings.artifacts_path
    artifact_paths = [artifacts / "history.json", artifacts / "training_history.png"]
    if augmenter is not None and run.writes:
        artifact_paths.append(
            _augmented_sample(x_train, y_train, augmenter, artifacts / "augmented_sample.png")
        )

    fit_started = time.perf_counter()
    setup_seconds = fit_started - started - data_seconds
    try:
        if run.epochs_done < plan.epochs and dist.name == "multi-worker":
            from digitctl.distribute import fit_multi_worker

            fit_multi_worker(
                model,
                dataset,
                distribution=dist,
                epochs=plan.epochs,
                initial_epoch=run.epochs_done,
                steps_per_epoch=steps_per_epoch,
                global_batch=global_batch,
                validation_data=(splits.x_val, splits.y_val),
                callbacks=_make_callbacks(run),
            )
        elif run.epochs_done < plan.epochs:
            model.fit(
                dataset,
                epochs=plan.epochs,
                initial_epoch=run.epochs_done,
                steps_per_epoch=steps_per_epoch,
                validation_data=(splits.x_val, splits.y_val),
                validation_batch_size=512,
                shuffle=False,  # the dataset shuffles itself
                callbacks=_make_callbacks(run),
                verbose=0,
            )
    except KeyboardInterrupt:
        raise TrainingInterrupted(_interrupted_message(run)) from None
    fit_seconds = time.perf_counter() - fit_started

    if run.best_weights is None:  # pragma: no cover - fit always runs one epoch
        raise DigitctlError("training produced no epoch; nothing was saved")
    model.set_weights(run.best_weights)
    distribution = {"strategy": dist.name, "replicas": dist.replicas, "is_chief": dist.is_chief}

    def summary(artifacts: list[Path], extra: list[Path]) -> TrainResult:
        return TrainResult(
            model_path=run.model_path,
            record_path=card_path_for(run.model_path),
            artifacts=artifacts,
            plan=plan,
            epochs_run=run.epochs_done,
            best_epoch=run.best_epoch,
            best=dict(run.best or {}),
            stopped_early=run.stopped_early,
            resumed_from=resumed_from,
            train_seconds=run.train_seconds,
            total_seconds=time.perf_counter() - started,
            train_images=len(x_train),
            history=run.history,
            extra_models=extra,
            **distribution,
        )

    if not run.writes:
        return summary([], [])
    extra: list[Path] = []
    if plan.save_format == "h5":
        h5_path = run.model_path.with_suffix(".h5")
        write_with(h5_path, lambda tmp: _clean_copy(model, recipe).save(tmp))
        extra.append(h5_path)
    export_started = time.perf_counter()
    lite = _write_lite(_clean_copy(model, recipe), lite_path_for(run.model_path))
    if lite is not None:
        extra.append(lite)
    export_seconds = time.perf_counter() - export_started

    history_document = {
        "plan": plan.as_dict(),
        "best_epoch": run.best_epoch,
        "epochs": list(range(1, run.epochs_done + 1)),
        **run.history,
    }
    write_json(artifact_paths[0], history_document)
    from digitctl import plots

    plots.plot_training_history(run.history, artifact_paths[1], best_epoch=run.best_epoch)

    result = summary(artifact_paths, extra)
    record = {
        "model": run.model_path.name,
        "architecture": {**recipe.as_dict(), "parameters": int(model.count_params())},
        "plan": plan.as_dict(),
        "distribution": {
            **distribution,
            "global_batch_size": global_batch,
            "peak_learning_rate": learning_rate,
        },
        "settings": {
            k: str(v) if isinstance(v, Path) else v for k, v in settings.as_dict().items()
        },
        "data": {
            "fingerprint": splits.fingerprint,
            "train_images": len(x_train),
            "validation_images": len(splits.x_val),
            "mirror": settings.mirror,
        },
        "versions": versions(),
        "timings": {
            "data_seconds": round(data_seconds, 2),
            # Building the model and the input pipeline (and loading a checkpoint).
            "setup_seconds": round(setup_seconds, 2),
            # Sum of the epochs (training steps and validation), over resumed sessions too.
            "train_seconds": round(run.train_seconds, 2),
            # Wall time of this session's fit call: epochs plus checkpoint saving.
            "fit_seconds": round(fit_seconds, 2),
            "export_seconds": round(export_seconds, 2),
            "total_seconds": round(result.total_seconds, 2),
            "epoch_seconds": [round(s, 2) for s in run.history.get("seconds", [])],
        },
        "epochs_run": run.epochs_done,
        "best_epoch": run.best_epoch,
        "stopped_early": run.stopped_early,
        "resumed_from": resumed_from,
        "final_metrics": {
            "val_accuracy": run.best["val_accuracy"] if run.best else None,
            "val_loss": run.best["val_loss"] if run.best else None,
            "train_accuracy": run.best["accuracy"] if run.best else None,
            "train_loss": run.best["loss"] if run.best else None,
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(result.record_path, record)
    _finish_state(run)
    return result


def _clean_copy(model: Any, recipe: Recipe) -> Any:
    from digitctl.model import build_model

    clean = build_model(recipe)
    clean.set_weights(model.get_weights())
    return clean


def _write_lite(model: Any, path: Path) -> Path | None:
    """The LiteRT export beside the model, when the export module is installed."""
    try:
        from digitctl.export import write_lite_export
    except ImportError:
        return None
    return write_lite_export(model, path)


def _augmented_sample(x: np.ndarray, y: np.ndarray, augmenter: Any, path: Path) -> Path:
    """Ten training images and three augmented versions of each, one row per version."""
    from digitctl import plots

    count = min(10, len(x))
    originals = x[:count]
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
    if run.epochs_done == 0:
        return "training interrupted before the first epoch finished; nothing was saved"
    return (
        f"training interrupted after epoch {run.epochs_done}/{run.plan.epochs}; the best model "
        f"so far (epoch {run.best_epoch}) is in {run.model_path}; continue with "
        "`digitctl train --resume`"
    )


def _read_state(settings: Settings) -> dict[str, Any]:
    path = settings.models_path / STATE_NAME
    checkpoint = settings.models_path / CHECKPOINT_NAME
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DigitctlError(
            f"nothing to resume: no interrupted run in {settings.models_path}; "
            "run `digitctl train` without --resume"
        ) from None
    except (OSError, ValueError) as exc:
        raise DigitctlError(f"cannot read {path}: {exc}; start afresh without --resume") from None
    if state.get("finished"):
        raise DigitctlError(
            f"nothing to resume: the last run in {settings.models_path} finished; "
            "run `digitctl train` without --resume to train again"
        )
    if not checkpoint.exists():
        raise DigitctlError(f"cannot resume: {checkpoint} is missing; start afresh")
    state["plan"] = {**state["plan"]}
    return state


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


def _clear_checkpoint(run: _Run) -> None:
    for path in (run.checkpoint_path, run.state_path):
        path.unlink(missing_ok=True)


def _finish_state(run: _Run) -> None:
    """Mark the run finished and drop the large resumable checkpoint."""
    run.checkpoint_path.unlink(missing_ok=True)
    write_json(
        run.state_path,
        {
            "plan": run.plan.as_dict(),
            "fingerprint": run.fingerprint,
            "epochs_done": run.epochs_done,
            "best_epoch": run.best_epoch,
            "finished": True,
        },
    )


__all__ = ["TrainPlan", "TrainResult", "resolve_plan", "train_model"]
