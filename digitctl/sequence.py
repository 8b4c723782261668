"""A digit-string model for glyphs that may be several touching digits.

The classifier reads one digit per view, so a glyph made of touching digits ("2026"
written in one stroke, "11" pressed together) must first be cut, and the cuts are
guessed from the ink's thinnest columns. When the strokes overlap, no column separates
them, and the reading gets the count wrong ("166" read "6"). This model reads the whole
glyph at once: a small convolutional network scores every 4-pixel column band of the
glyph, fitted to 20 px high in a 28×160 strip, as one of the ten digits or "blank", and
is trained with CTC (connectionist temporal classification) on strings composed from
MNIST *training* digits that touch and overlap (:func:`compose_string`). Its greedy
decoding tells how many digits the glyph holds, which the reader uses to choose among
the classifier's splits (:mod:`digitctl.reading`).

At inference it runs in LiteRT, like the digit model (no TensorFlow): this module's
NumPy parts (:func:`sequence_input`, :func:`greedy_decode`) and the composition need only
NumPy and OpenCV; :func:`train_sequence_model` imports TensorFlow.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from digitctl.ctc import CtcTrainResult, ctc_loss, progress_callback, softmax

if TYPE_CHECKING:
    from rich.progress import Progress

    from digitctl.config import Settings

SEQUENCE_NAME = "digitctl_sequence"  # its files: .keras, .tflite and _card.json
STRIP_HEIGHT = 28
STRIP_WIDTH = 160
INNER_HEIGHT = 20  # the glyph's height in the strip, as MNIST's 20×20 box
MARGIN = 4  # free pixels above, below and left of the glyph
STRIDE = 4  # strip columns per output step
STEPS = STRIP_WIDTH // STRIDE
BLANK = 10  # the CTC blank: the last of the 11 outputs
MAX_DIGITS = 6
INK_LEVEL = 0.05  # of the glyph's peak: fainter pixels are background when cropping

# Composition (training strings): how many digits, and how they sit.
LENGTH_WEIGHTS = {1: 0.2, 2: 0.32, 3: 0.22, 4: 0.11, 5: 0.08, 6: 0.07}
COMPOSE_SCALE = 2.0  # digits are composed at twice MNIST's size, then fitted to the strip
OVERLAP_GAP = (-0.32, 0.06)  # horizontal gap between neighbours, in mean digit widths
OPEN_GAP = (0.06, 0.3)  # ... for the share of gaps left open (OPEN_SHARE)
OPEN_SHARE = 0.12
PEN_CHANGE = (-2, -1, 0, 0, 0, 1, 2, 3)  # erosion (<0) or dilation (>0) radius, 2× pixels
# A lone digit may be written wide (a flat 2, a broad 0): one digit, however wide.
SINGLE_STRETCH = (0.8, 1.5)
# Strips of letters, symbols and scribbles (digitctl.synth's), whose target is no digit at
# all, can teach the model to read nothing there rather than a string of 1s. None by
# default: with 12% of them, after 3 of 12 epochs it missed a digit in 32 of 109 touching
# numbers of the validation sets (4 without), so the recipe trains on digits only.
NEGATIVE_SHARE = 0.0
NEGATIVE_HEIGHT = 40
STRINGS_PER_DIGIT = 10  # at most this many training strings an epoch per digit drawn from


def strip_frame(ink: np.ndarray) -> tuple[int, int, int, int, int] | None:
    """Where a glyph's ink goes in its strip: its own box (rows ``top:bottom``, columns
    ``left:right`` of ``ink``) and the width it is fitted to; None when it is blank."""
    peak = float(ink.max()) if ink.size else 0.0
    if peak <= 0:
        return None
    rows = np.flatnonzero(ink.max(axis=1) > INK_LEVEL * peak)
    cols = np.flatnonzero(ink.max(axis=0) > INK_LEVEL * peak)
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    width = round((right - left) * INNER_HEIGHT / (bottom - top))
    return top, bottom, left, right, min(STRIP_WIDTH - 2 * MARGIN, max(1, width))


def sequence_input(ink: np.ndarray) -> np.ndarray | None:
    """A glyph's ink (any size, ink high) as the model's (28, 160) strip, or None if blank.

    The ink is cropped to itself, scaled to 20 px high with its aspect kept (squeezed
    to fit when wider than the strip allows), put 4 px from the top and left, and
    scaled to a peak of 1 (:func:`strip_frame`)."""
    ink = np.asarray(ink, np.float32)
    frame = strip_frame(ink)
    if frame is None:
        return None
    top, bottom, left, right, width = frame
    ink = ink[top:bottom, left:right] / float(ink.max())
    fitted = cv2.resize(
        np.ascontiguousarray(ink),
        (width, INNER_HEIGHT),
        interpolation=cv2.INTER_AREA if bottom - top > INNER_HEIGHT else cv2.INTER_LINEAR,
    )
    strip = np.zeros((STRIP_HEIGHT, STRIP_WIDTH), np.float32)
    strip[MARGIN : MARGIN + INNER_HEIGHT, MARGIN : MARGIN + width] = np.clip(fitted, 0, 1)
    return strip


def digit_bounds(reading: SequenceReading, frame: tuple[int, int, int, int, int]) -> list[int]:
    """The ink columns between the digits a strip was read as: halfway between the
    output steps where neighbouring digits peak, mapped back through ``frame``
    (:func:`strip_frame`) to the glyph's columns."""
    _, _, left, right, width = frame
    per_column = width / (right - left)
    bounds = []
    for a, b in zip(reading.steps, reading.steps[1:], strict=False):
        x = ((a + b) / 2 + 0.5) * STRIDE  # strip columns
        bounds.append(round(left + (x - MARGIN) / per_column))
    return bounds


@dataclass
class SequenceReading:
    """What the sequence model reads in one strip: the digits and how sure it is."""

    labels: list[int]
    # The best path's label probability at each of its peaks, multiplied; for no digit,
    # the lowest blank probability of any step.
    confidence: float
    steps: list[int]  # the output step where each digit peaks
    # Each digit's probabilities over the ten digits at its peak (the blank left out).
    probabilities: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def text(self) -> str:
        return "".join(str(d) for d in self.labels)


def greedy_decode(probabilities: np.ndarray) -> SequenceReading:
    """Best-path decoding of one strip's (steps, 11) probabilities: the likeliest output
    at each step, repeats merged, blanks dropped."""
    best = probabilities.argmax(axis=1)
    labels: list[int] = []
    steps: list[int] = []
    confidence = 1.0
    previous = BLANK
    for step, label in enumerate(best.tolist()):
        if label != BLANK and label != previous:
            labels.append(label)
            steps.append(step)
            confidence *= float(probabilities[step, label])
        elif label != BLANK and probabilities[step, label] > probabilities[steps[-1], label]:
            steps[-1] = step
        previous = label
    if not labels:  # nothing read: as sure as the frame that came closest to a digit
        confidence = float(probabilities[:, BLANK].min()) if len(probabilities) else 1.0
    rows = []
    for step in steps:
        digits = probabilities[step, :BLANK].astype(np.float64)
        rows.append(digits / max(float(digits.sum()), 1e-12))
    return SequenceReading(labels, confidence, steps, rows)


# --------------------------------------------------------------------------------------
# training strings
# --------------------------------------------------------------------------------------
def _crop(array: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(array.max(axis=1) > INK_LEVEL)
    cols = np.flatnonzero(array.max(axis=0) > INK_LEVEL)
    if not len(rows):
        return array
    return array[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _pen(array: np.ndarray, change: int) -> np.ndarray:
    if change == 0:
        return array
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(change) + 1,) * 2)
    if change > 0:
        return cv2.dilate(array, kernel)
    thinner = cv2.erode(array, kernel)
    return thinner if thinner.max() > 0.3 else array  # a thin digit must not vanish


def _length(rng: np.random.Generator) -> int:
    lengths = list(LENGTH_WEIGHTS)
    weights = np.array([LENGTH_WEIGHTS[n] for n in lengths])
    return int(rng.choice(lengths, p=weights / weights.sum()))


def compose_string(digits: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Touching or overlapping handwritten digits as one glyph's ink (float32, ink high).

    ``digits``: MNIST images (28×28, uint8 or [0, 1]). Each is scaled (its height by
    0.85–1.12, its width by 0.8–1.25 more), set beside the last with a gap of −0.32 to
    0.06 mean digit widths (a few gaps open, up to 0.3), moved up or down a little; then
    the whole string is slanted, its pen made thinner or thicker, and its ink level and
    blur varied, so that it stands for writing at any size and with any pen."""
    parts = []
    for image in digits:
        array = np.asarray(image, np.float32)
        if array.max() > 1.5:
            array = array / 255.0
        array = _crop(array)
        scale = COMPOSE_SCALE * rng.uniform(0.85, 1.12)
        stretch = rng.uniform(*(SINGLE_STRETCH if len(digits) == 1 else (0.8, 1.25)))
        h, w = array.shape
        size = (max(2, round(w * scale * stretch)), max(2, round(h * scale)))
        parts.append(cv2.resize(array, size, interpolation=cv2.INTER_LINEAR))
    tallest = max(p.shape[0] for p in parts)
    mean_width = float(np.mean([p.shape[1] for p in parts]))
    lefts, tops = [], []
    x = 0.0
    for part in parts:
        lefts.append(round(x))
        drift = rng.normal(0.0, 0.05) * tallest
        tops.append(round((tallest - part.shape[0]) * rng.uniform(0.2, 0.8) + drift))
        gap = rng.uniform(*(OPEN_GAP if rng.random() < OPEN_SHARE else OVERLAP_GAP))
        x += part.shape[1] + gap * mean_width
    low = min(tops)
    tops = [t - low for t in tops]
    height = max(t + p.shape[0] for t, p in zip(tops, parts, strict=True))
    width = max(left + p.shape[1] for left, p in zip(lefts, parts, strict=True))
    pad = tallest // 2
    canvas = np.zeros((height + 2 * pad, width + 2 * pad), np.float32)
    for part, top, left in zip(parts, tops, lefts, strict=True):
        region = canvas[
            top + pad : top + pad + part.shape[0], left + pad : left + pad + part.shape[1]
        ]
        np.maximum(region, part, out=region)
    shear = rng.uniform(-0.25, 0.25)
    angle = math.radians(rng.uniform(-4, 4))
    cx, cy = canvas.shape[1] / 2, canvas.shape[0] / 2
    matrix = np.array(
        [
            [math.cos(angle), -math.sin(angle) + shear, 0.0],
            [math.sin(angle), math.cos(angle), 0.0],
        ]
    )
    matrix[:, 2] = [
        cx - matrix[0, 0] * cx - matrix[0, 1] * cy,
        cy - matrix[1, 0] * cx - matrix[1, 1] * cy,
    ]
    canvas = cv2.warpAffine(
        canvas, matrix, (canvas.shape[1], canvas.shape[0]), flags=cv2.INTER_LINEAR
    )
    canvas = _pen(canvas, int(rng.choice(PEN_CHANGE)))
    if rng.random() < 0.3:
        canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(0.5, 1.5))
    canvas = np.clip(canvas, 0, 1) ** rng.uniform(0.7, 1.4) * rng.uniform(0.55, 1.0)
    return _crop(canvas / max(float(canvas.max()), 1e-6)) * float(canvas.max())


def training_strings(
    images: np.ndarray,
    labels: np.ndarray,
    count: int,
    seed: int,
    negatives: float = NEGATIVE_SHARE,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` composed strings as strips (uint8, N×28×160) and their labels (int32,
    N×6, padded with -1), drawn from ``images``/``labels`` (MNIST training digits); a
    share ``negatives`` of them are letters, symbols or scribbles, labelled with no digit."""
    rng = np.random.default_rng(seed)
    strips = np.zeros((count, STRIP_HEIGHT, STRIP_WIDTH), np.uint8)
    targets = np.full((count, MAX_DIGITS), -1, np.int32)
    made = 0
    while made < count:
        if rng.random() < negatives:
            strip = sequence_input(_negative(rng))
            chosen = np.zeros(0, np.int64)
        else:
            chosen = rng.integers(0, len(images), _length(rng))
            strip = sequence_input(compose_string([images[i] for i in chosen], rng))
        if strip is None:
            continue
        strips[made] = np.round(strip * 255).astype(np.uint8)
        targets[made, : len(chosen)] = labels[chosen]
        made += 1
    return strips, targets


def _negative(rng: np.random.Generator) -> np.ndarray:
    """A letter, symbol (sometimes two) or scribble as a pen draws it (digitctl.synth)."""
    from digitctl import synth

    if rng.random() < 0.7:
        return synth._glyph_content(NEGATIVE_HEIGHT, rng)
    return synth._scribble_content(NEGATIVE_HEIGHT, rng)


# --------------------------------------------------------------------------------------
# the model (TensorFlow from here on, imported inside the functions)
# --------------------------------------------------------------------------------------
@dataclass
class SequenceRecipe:
    """How the sequence model is trained (recorded in its card)."""

    train_strings: int = 30_000
    validation_strings: int = 4_000
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 2e-3
    filters: tuple[int, int, int] = (16, 32, 48)
    seed: int = 0


def build_sequence_model(recipe: SequenceRecipe) -> Any:
    """Conv-BN-ReLU blocks down to 7×40, then each column band's features → 11 logits,
    with a 1-D convolution along the strip for context (no recurrence: fast in LiteRT)."""
    import keras
    from keras import layers

    first, second, third = recipe.filters
    inputs = keras.Input((STRIP_HEIGHT, STRIP_WIDTH, 1), name="strip")
    x = inputs
    for filters, pool in ((first, True), (second, True), (third, False), (third, False)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        if pool:
            x = layers.MaxPooling2D(2)(x)
    x = layers.Permute((2, 1, 3))(x)  # (steps, rows, channels)
    x = layers.Reshape((STEPS, (STRIP_HEIGHT // STRIDE) * third))(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Conv1D(128, 5, padding="same", activation="relu")(x)
    outputs = layers.Dense(BLANK + 1, name="logits")(x)
    return keras.Model(inputs, outputs, name="digitctl_sequence")


def string_accuracy(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """Share of strips whose greedy decoding is exactly the target string."""
    right = 0
    for row, target in zip(probabilities, targets, strict=True):
        right += greedy_decode(row).labels == [int(t) for t in target if t >= 0]
    return right / max(1, len(targets))


@dataclass
class SequenceTrainResult(CtcTrainResult):
    """What ``digitctl train --recipe sequence`` did: the files and the figures."""

    def summary_rows(self) -> list[tuple[str, Any]]:
        card = self.card
        return [
            ("recipe", "sequence"),
            ("epochs run", card["recipe"]["epochs"]),
            ("best epoch", card["kept_epoch"]),
            ("validation strings read", f"{card['validation_string_accuracy']:.2%}"),
            ("parameters", f"{card['parameters']:,}"),
            ("training time", f"{card['train_seconds']:.0f} s"),
            ("model", str(self.model_path)),
            ("LiteRT", str(self.lite_path)),
        ]


def train_sequence(settings: Settings, progress: Progress | None = None) -> SequenceTrainResult:
    """``digitctl train --recipe sequence``: the sequence model, trained on strings composed
    from the training split's digits and chosen on strings of the validation split's, written
    to the workspace's models folder (where readings look for it before the bundled one).

    ``--epochs``, ``--batch-size``, ``--learning-rate``, ``--seed`` and ``--limit`` (digits
    drawn from) apply; strings per epoch and the network are the recipe's."""
    from digitctl.data import load_splits

    splits = load_splits(settings, progress=progress)
    defaults = SequenceRecipe()
    recipe = SequenceRecipe(
        epochs=settings.epochs or defaults.epochs,
        batch_size=settings.batch_size or defaults.batch_size,
        learning_rate=settings.learning_rate or defaults.learning_rate,
        seed=settings.seed,
    )
    limit = settings.limit or len(splits.x_train)
    train = (splits.x_train[:limit, ..., 0], splits.y_train[:limit])
    validation = (splits.x_val[..., 0], splits.y_val)
    # Few digits (``--limit``) make fewer strings: ten per digit, up to the recipe's.
    recipe.train_strings = min(recipe.train_strings, STRINGS_PER_DIGIT * len(train[0]))
    recipe.validation_strings = min(
        recipe.validation_strings, STRINGS_PER_DIGIT * len(validation[0])
    )
    out_dir = settings.models_path
    card = train_sequence_model(train, validation, out_dir, recipe, progress=progress)
    return SequenceTrainResult(
        model_path=out_dir / f"{SEQUENCE_NAME}.keras",
        lite_path=out_dir / f"{SEQUENCE_NAME}.tflite",
        card_path=out_dir / f"{SEQUENCE_NAME}_card.json",
        card=card,
    )


def train_sequence_model(
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    out_dir: Path,
    recipe: SequenceRecipe | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train on composed strings of ``train`` digits (MNIST images, labels), keep the
    epoch with the best string accuracy on strings of ``validation`` digits, and write
    ``digitctl_sequence.keras`` (softmax outputs), its LiteRT export and its card to
    ``out_dir``, each atomically (an interrupted run leaves none of them half-written).
    Returns the card."""
    import tempfile

    from digitctl._native import load_tensorflow
    from digitctl.atomic import atomic_path, write_json
    from digitctl.export import write_lite_export

    load_tensorflow()
    import keras
    import tensorflow as tf

    recipe = recipe or SequenceRecipe()
    keras.utils.set_random_seed(recipe.seed)
    started = time.time()
    x_val, y_val = training_strings(*validation, recipe.validation_strings, recipe.seed + 1)
    x_val = x_val[..., None].astype(np.float32) / 255.0
    model = build_sequence_model(recipe)
    steps = recipe.train_strings // recipe.batch_size
    schedule = keras.optimizers.schedules.CosineDecay(
        recipe.learning_rate * 0.1,
        decay_steps=steps * recipe.epochs,
        warmup_target=recipe.learning_rate,
        warmup_steps=steps // 2,
    )
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=ctc_loss(BLANK))
    task = None
    if progress is not None:
        task = progress.add_task(
            "training the sequence model", total=steps * recipe.epochs, status=""
        )
    callbacks = [progress_callback(progress, task)] if progress is not None else []
    best: tuple[float, int] = (-1.0, -1)
    history = []
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".sequence-") as scratch:
        best_weights = Path(scratch) / "best.weights.h5"
        for epoch in range(recipe.epochs):
            # Fresh strings every epoch: the digits recombine, so nothing is memorised.
            x, y = training_strings(*train, recipe.train_strings, recipe.seed + 100 + epoch)
            data = tf.data.Dataset.from_tensor_slices((x[..., None], y))
            data = data.shuffle(8192, seed=epoch).batch(recipe.batch_size, drop_remainder=True)
            data = data.map(lambda a, b: (tf.cast(a, tf.float32) / 255.0, b))
            options = tf.data.Options()
            options.autotune.enabled = False  # a teardown stall otherwise (notes/keras-on-this-cpu)
            fit = model.fit(
                data.with_options(options), epochs=1, verbose=0, shuffle=False, callbacks=callbacks
            )
            accuracy = string_accuracy(
                softmax(model.predict(x_val, batch_size=256, verbose=0)), y_val
            )
            loss = float(fit.history["loss"][-1])
            history.append(
                {"epoch": epoch + 1, "loss": round(loss, 5), "val_string_accuracy": accuracy}
            )
            if progress is not None and task is not None:
                progress.update(task, status=f"epoch {epoch + 1}: strings {accuracy:.1%}")
            if accuracy > best[0]:
                best = (accuracy, epoch + 1)
                model.save_weights(best_weights)
        model.load_weights(best_weights)
    served = keras.Model(
        model.inputs[0], keras.layers.Softmax(name="probabilities")(model.outputs[0])
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / f"{SEQUENCE_NAME}.keras") as tmp:
        served.save(tmp)
    write_lite_export(served, out_dir / f"{SEQUENCE_NAME}.tflite")
    card = {
        "name": SEQUENCE_NAME,
        "recipe": {**asdict(recipe), "filters": list(recipe.filters)},
        "strip": {"height": STRIP_HEIGHT, "width": STRIP_WIDTH, "steps": STEPS, "blank": BLANK},
        "parameters": int(model.count_params()),
        "kept_epoch": best[1],
        "validation_string_accuracy": best[0],
        "history": history,
        "train_seconds": round(time.time() - started, 1),
    }
    write_json(out_dir / f"{SEQUENCE_NAME}_card.json", card)
    return card
