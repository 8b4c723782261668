"""``digitctl train --recipe reader``: the line reader's network, trained with CTC on
generated scenes (:mod:`digitctl.scenes`), resumable, with a card of validation figures.

The scenes are rendered once in worker processes and cached (``<cache>/reader_scenes``),
so an interrupted run resumes without rendering again; the training state is saved after
every epoch in ``models/.reader-run/``. The model is chosen on scenes of the validation
split's digits, never the test split's.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitctl.ctc import CtcTrainResult, ctc_loss, progress_callback, softmax
from digitctl.linereader import BLANK, CHARSET, READER_NAME, STRIDE, ctc_decode
from digitctl.scenes import MAX_LABEL, TRAIN_WIDTH, DigitPools, render_batch

if TYPE_CHECKING:
    from rich.progress import Progress

    from digitctl.config import Settings

SCENES_VERSION = 5  # bump when the generator changes, so cached scenes are rendered anew
RENDER_CHUNK = 500


@dataclass
class ReaderRecipe:
    """How the line reader is trained (recorded in its card)."""

    train_scenes: int = 320_000
    validation_scenes: int = 3_000
    epochs: int = 3
    batch_size: int = 64
    learning_rate: float = 2e-3
    filters: tuple[int, int, int, int] = (32, 64, 96, 160)
    head: int = 192
    seed: int = 0
    # "auto": bfloat16 compute where the CPU has it natively (AVX512-BF16, AMX): 247
    # against 183 samples/s in float32 on a 2-core EPYC; the served model is float32.
    dtype_policy: str = "auto"


def build_reader_model(recipe: ReaderRecipe, policy: str = "float32") -> Any:
    """A stride-2 stem and Conv-BN-ReLU blocks that pool the 32-px strip to one row of
    4-px column bands, then two 1-D convolutions along the line for context (no
    recurrence: cheap in LiteRT) and one logit per character of CHARSET and the blank.
    The width is free: any strip width that is a multiple of 4. ``policy``: the Keras
    dtype policy of every layer but the logits, which stay float32 for the CTC loss."""
    import keras
    from keras import layers

    def block(x: Any, filters: int, stride: int = 1) -> Any:
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, dtype=policy)(
            x
        )
        x = layers.BatchNormalization(dtype=policy)(x)
        return layers.ReLU(dtype=policy)(x)

    stem, second, third, fourth = recipe.filters
    inputs = keras.Input((32, None, 1), name="strip")
    x = block(inputs, stem, stride=2)  # 16 × W/2
    x = block(x, second)
    x = layers.MaxPooling2D(2, dtype=policy)(x)  # 8 × W/4
    x = block(x, third)
    x = block(x, third)
    x = layers.MaxPooling2D((2, 1), dtype=policy)(x)  # 4 × W/4
    x = block(x, fourth)
    x = layers.MaxPooling2D((2, 1), dtype=policy)(x)  # 2 × W/4
    x = layers.Conv2D(recipe.head, (2, 1), padding="valid", activation="relu", dtype=policy)(x)
    x = layers.Reshape((-1, recipe.head), dtype=policy)(x)  # (W/4, features)
    x = layers.Dropout(0.15, dtype=policy)(x)
    x = layers.Conv1D(recipe.head, 5, padding="same", activation="relu", dtype=policy)(x)
    x = layers.Conv1D(recipe.head, 5, padding="same", activation="relu", dtype=policy)(x)
    outputs = layers.Dense(BLANK + 1, name="logits", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=READER_NAME)


def decode_targets(targets: np.ndarray) -> list[str]:
    return ["".join(CHARSET[c] for c in row if c >= 0) for row in targets]


def validation_figures(probabilities: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Exact readings (digits and separators; digits alone), negatives read as nothing,
    and digit strings read as nothing (false rejections)."""
    truths = decode_targets(targets)
    raw = digits = negatives = rejected = 0
    n_negative = sum(1 for t in truths if not t)
    for row, truth in zip(probabilities, truths, strict=True):
        reading = ctc_decode(row)
        want_digits = "".join(c for c in truth if c.isdigit())
        raw += reading.raw == truth
        digits += reading.text == want_digits
        if not want_digits:
            negatives += not reading.text
        else:
            rejected += not reading.text
    n = max(1, len(truths))
    return {
        "raw_exact": raw / n,
        "digits_exact": digits / n,
        "negatives_rejected": negatives / max(1, n_negative),
        "false_rejections": rejected / max(1, len(truths) - n_negative),
    }


def _render_worker(task: tuple[DigitPools, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    pools, seed, start, count = task
    return render_batch(pools, seed, start, count)


def render_scenes(
    pools: DigitPools,
    seed: int,
    count: int,
    cache: Path | None,
    workers: int | None = None,
    progress: Progress | None = None,
    what: str = "rendering scenes",
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` scenes of ``seed`` as strips and targets, rendered in worker processes
    and cached at ``cache`` (an ``.npz``; reused when present)."""
    if cache is not None and cache.exists():
        with np.load(cache) as stored:
            return stored["strips"], stored["targets"]
    strips = np.zeros((count, 32, TRAIN_WIDTH), np.uint8)
    targets = np.full((count, MAX_LABEL), -1, np.int32)
    tasks = [(pools, seed, s, min(RENDER_CHUNK, count - s)) for s in range(0, count, RENDER_CHUNK)]
    task_id = progress.add_task(what, total=count, status="") if progress is not None else None
    workers = workers or min(len(tasks), os.cpu_count() or 1)
    if workers <= 1:
        results = map(_render_worker, tasks)
        executor = None
    else:
        executor = ProcessPoolExecutor(workers)
        results = executor.map(_render_worker, tasks)
    try:
        for (_, _, start, n), (s, t) in zip(tasks, results, strict=True):
            strips[start : start + n], targets[start : start + n] = s, t
            if progress is not None and task_id is not None:
                progress.advance(task_id, n)
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
    if cache is not None:
        from digitctl.atomic import atomic_path

        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, strips=strips, targets=targets)
    return strips, targets


@dataclass
class ReaderTrainResult(CtcTrainResult):
    """What ``digitctl train --recipe reader`` did: the files and the figures."""

    def summary_rows(self) -> list[tuple[str, Any]]:
        card = self.card
        figures = card["validation"]
        return [
            ("recipe", "reader"),
            ("epochs run", card["recipe"]["epochs"]),
            ("best epoch", card["kept_epoch"]),
            ("validation strings read", f"{figures['digits_exact']:.2%}"),
            ("negatives read as nothing", f"{figures['negatives_rejected']:.2%}"),
            ("parameters", f"{card['parameters']:,}"),
            ("training time", f"{card['train_seconds']:.0f} s"),
            ("model", str(self.model_path)),
            ("LiteRT", str(self.lite_path)),
        ]


def train_reader(
    settings: Settings, progress: Progress | None = None, resume: bool = False
) -> ReaderTrainResult:
    """``digitctl train --recipe reader``: the line reader, trained on scenes of the
    training split's digits and chosen on scenes of the validation split's, written to
    the workspace's models folder. ``--epochs``, ``--batch-size``, ``--learning-rate``,
    ``--seed`` and ``--limit`` (scenes per epoch) apply; ``resume`` continues the run
    saved in ``models/.reader-run/``."""
    from digitctl.data import load_splits

    splits = load_splits(settings, progress=progress)
    defaults = ReaderRecipe()
    recipe = ReaderRecipe(
        train_scenes=settings.limit or defaults.train_scenes,
        validation_scenes=min(defaults.validation_scenes, settings.limit or 10**9),
        epochs=settings.epochs or defaults.epochs,
        batch_size=settings.batch_size or defaults.batch_size,
        learning_rate=settings.learning_rate or defaults.learning_rate,
        seed=settings.seed,
    )
    train_pools = DigitPools.from_arrays(splits.x_train, splits.y_train)
    val_pools = DigitPools.from_arrays(splits.x_val, splits.y_val)
    cache = settings.cache_path / "reader_scenes"
    tag = f"v{SCENES_VERSION}-{splits.fingerprint[:12]}"
    train = render_scenes(
        train_pools,
        recipe.seed,
        recipe.train_scenes,
        cache / f"train-s{recipe.seed}-n{recipe.train_scenes}-{tag}.npz",
        progress=progress,
        what="rendering training scenes",
    )
    validation = render_scenes(
        val_pools,
        recipe.seed + 1_000_003,
        recipe.validation_scenes,
        cache / f"val-s{recipe.seed}-n{recipe.validation_scenes}-{tag}.npz",
        progress=progress,
        what="rendering validation scenes",
    )
    out_dir = settings.models_path
    card = train_reader_model(train, validation, out_dir, recipe, progress=progress, resume=resume)
    return ReaderTrainResult(
        model_path=out_dir / f"{READER_NAME}.keras",
        lite_path=out_dir / f"{READER_NAME}.tflite",
        card_path=out_dir / f"{READER_NAME}_card.json",
        card=card,
    )


def train_reader_model(
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    out_dir: Path,
    recipe: ReaderRecipe | None = None,
    progress: Progress | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train on ``train`` strips (uint8 N×32×256, targets N×16), keep the epoch whose
    validation strings are read best, and write ``digitctl_reader.keras`` (softmax
    outputs, any width), its LiteRT export and its card to ``out_dir``, each atomically.
    The state after each epoch is kept in ``out_dir/.reader-run/`` for ``resume``."""
    from digitctl._native import load_tensorflow
    from digitctl.atomic import atomic_path, write_json
    from digitctl.errors import ConfigError
    from digitctl.export import write_lite_export

    load_tensorflow()
    import keras
    import tensorflow as tf

    recipe = recipe or ReaderRecipe()
    run_dir = out_dir / ".reader-run"
    state_file = run_dir / "state.json"
    started = time.time()
    keras.utils.set_random_seed(recipe.seed)
    x_train, y_train = train
    x_val = validation[0][..., None].astype(np.float32) / 255.0
    y_val = validation[1]
    steps = len(x_train) // recipe.batch_size
    schedule = keras.optimizers.schedules.CosineDecay(
        recipe.learning_rate * 0.1,
        decay_steps=steps * recipe.epochs,
        warmup_target=recipe.learning_rate,
        warmup_steps=max(1, steps // 10),
        alpha=0.02,
    )
    from digitctl.model import resolve_dtype_policy

    policy = resolve_dtype_policy(recipe.dtype_policy)
    model = build_reader_model(recipe, policy)
    loss = ctc_loss(BLANK)
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=5.0), loss=loss)
    state: dict[str, Any] = {"recipe": _recipe_dict(recipe), "history": [], "best": [-1.0, 0]}
    if resume:
        if not state_file.exists():
            raise ConfigError(f"nothing to resume: no saved reader run in {run_dir}")
        saved = json.loads(state_file.read_text())
        if saved["recipe"] != state["recipe"]:
            raise ConfigError("the saved reader run used another recipe; rerun without --resume")
        state = saved
        model = keras.saving.load_model(
            run_dir / "last.keras", custom_objects={loss.__name__: loss}, compile=True
        )
        state["elapsed"] = state.get("elapsed", 0.0)
    elif run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    done = len(state["history"])
    task = None
    if progress is not None:
        task = progress.add_task("training the line reader", total=steps * recipe.epochs, status="")
        progress.advance(task, steps * done)
    callbacks = [progress_callback(progress, task)] if progress is not None else []
    options = tf.data.Options()
    options.autotune.enabled = False  # a teardown stall otherwise (notes/keras-on-this-cpu)
    for epoch in range(done, recipe.epochs):
        order = np.random.default_rng([recipe.seed, epoch]).permutation(len(x_train))
        data = tf.data.Dataset.from_tensor_slices((x_train[order][..., None], y_train[order]))
        data = data.batch(recipe.batch_size, drop_remainder=True)
        data = data.map(lambda a, b: (tf.cast(a, tf.float32) / 255.0, b)).prefetch(2)
        fit = model.fit(
            data.with_options(options), epochs=1, verbose=0, shuffle=False, callbacks=callbacks
        )
        logits = model.predict(x_val, batch_size=256, verbose=0)
        figures = validation_figures(softmax(logits), y_val)
        state["history"].append(
            {"epoch": epoch + 1, "loss": round(float(fit.history["loss"][-1]), 4), **figures}
        )
        if progress is not None and task is not None:
            progress.update(
                task, status=f"epoch {epoch + 1}: strings {figures['digits_exact']:.1%}"
            )
        if figures["digits_exact"] > state["best"][0]:
            state["best"] = [figures["digits_exact"], epoch + 1]
            model.save_weights(run_dir / "best.weights.h5")
        model.save(run_dir / "last.keras")
        state["elapsed"] = state.get("elapsed", 0.0) + (time.time() - started)
        started = time.time()
        write_json(state_file, state)
    model.load_weights(run_dir / "best.weights.h5")
    float_model = build_reader_model(recipe)  # served in float32, whatever trained
    float_model.set_weights(model.get_weights())
    served = keras.Model(
        float_model.inputs[0],
        keras.layers.Softmax(name="probabilities")(float_model.outputs[0]),
    )
    with atomic_path(out_dir / f"{READER_NAME}.keras") as tmp:
        served.save(tmp)
    write_lite_export(served, out_dir / f"{READER_NAME}.tflite")
    best = state["history"][state["best"][1] - 1]
    card = {
        "name": READER_NAME,
        "charset": CHARSET,
        "strip": {"height": 32, "stride": STRIDE, "blank": BLANK, "train_width": TRAIN_WIDTH},
        "recipe": state["recipe"],
        "scenes_version": SCENES_VERSION,
        "trained_in": policy,
        "parameters": int(model.count_params()),
        "kept_epoch": state["best"][1],
        "validation": {k: v for k, v in best.items() if k not in ("epoch", "loss")},
        "history": state["history"],
        "train_seconds": round(state.get("elapsed", 0.0) + (time.time() - started), 1),
    }
    write_json(out_dir / f"{READER_NAME}_card.json", card)
    shutil.rmtree(run_dir, ignore_errors=True)
    return card


def _recipe_dict(recipe: ReaderRecipe) -> dict[str, Any]:
    return {**asdict(recipe), "filters": list(recipe.filters)}
