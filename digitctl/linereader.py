"""The line reader: one model reads a whole field or line crop as a digit string.

Where the rule-based path (:mod:`digitctl.layout`, :mod:`digitctl.reading`) decides from
geometry which ink is a box, a rule or a digit, this model reads the *image* after only
generic normalisation (:func:`normalize_line`: grey, polarity, contrast, height) and has
learned what to ignore from generated scenes (:mod:`digitctl.scenes`). A small
convolutional network scores every 4-pixel column band of a 32-pixel-high strip as one
of :data:`CHARSET` or the CTC blank; :func:`ctc_decode` turns those scores into the
string, a confidence for the whole reading, each character's probabilities and its box
in the input's pixels (from the CTC alignment).

Only NumPy and OpenCV are needed here; the model runs in LiteRT (:class:`LineModel`),
and training lives in :mod:`digitctl.reader_training`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

READER_NAME = "digitctl_reader"  # its files: .keras, .tflite and _card.json
# What the model writes: the ten digits and the separators people put between them.
# `text` keeps only the digits; the separators are reported on their own.
CHARSET = "0123456789.,-/:"
DIGITS = 10
BLANK = len(CHARSET)  # the CTC blank: the last output
STRIP_HEIGHT = 32
STRIDE = 4  # strip columns per output step
MIN_WIDTH = 32  # narrower strips are padded on both sides (a lone "1" is 8 px wide)
MAX_WIDTH = 1024  # wider strips are squeezed (a 40-character line at most)
WIDTH_BUCKET = 64  # strips are padded to a multiple of this: fewer distinct model shapes
THIN_FROM = 3.0  # crops reduced this much or more to the strip have their strokes widened
# After the reduction, the strip's strongest ink is brought back to 1 (thin strokes
# average to grey), by at most 1 / FAINT_FLOOR.
FAINT_FLOOR = 0.4


def to_grey(image: np.ndarray) -> np.ndarray:
    """Any decoded image (H×W, H×W×3 or H×W×4; uint8 or float in [0, 1]) as float32 grey
    in [0, 1]. A transparent pixel is paper, as in a canvas drawing: white under dark ink,
    black under light ink (a white pen on a transparent canvas would vanish on white)."""
    array = np.asarray(image)
    scale = 255.0 if array.dtype == np.uint8 else 1.0
    array = array.astype(np.float32) / scale
    if array.ndim == 2:
        return array
    grey = array[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    if array.shape[2] == 4:
        alpha = array[..., 3]
        opaque = alpha > 0.5
        paper = 1.0
        # Ink drawn on a transparent canvas: the opaque pixels are the (minority) ink.
        if 0 < opaque.mean() < 0.5 and float(np.median(grey[opaque])) > 0.5:
            paper = 0.0
        grey = grey * alpha + paper * (1.0 - alpha)
    return grey


# Levels in [0, 1] are ranked in 1/1020 steps: four a grey level of 8-bit images, so that
# their own levels come back exactly.
QUANTILE_BINS = 1021


def quantiles(values: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """The ``qs`` quantiles of ``values`` in [0, 1], to 1/1020: from a histogram, one pass
    over the pixels, where ``np.quantile`` partitions the array once per quantile (a
    third of the time to read a 640-px photo went there)."""
    flat = np.asarray(values, np.float32).ravel()
    if flat.size <= 4096:
        return [float(v) for v in np.quantile(flat, qs)]
    if flat.min() < 0.0 or flat.max() > 1.0:
        flat = np.clip(flat, 0.0, 1.0)
    half = 0.5 / (QUANTILE_BINS - 1)  # bin k holds the levels nearest k / 1020
    counts = cv2.calcHist([flat.reshape(1, -1)], [0], None, [QUANTILE_BINS], [-half, 1 + half])
    cumulative = np.cumsum(counts.ravel())
    ranks = [min(flat.size - 1, int(q * (flat.size - 1))) for q in qs]
    found = np.searchsorted(cumulative, np.array(ranks) + 1)
    return [float(b) / (QUANTILE_BINS - 1) for b in found]


def ink_signal(grey: np.ndarray) -> np.ndarray:
    """Grey in [0, 1] as ink high on paper near 0: the polarity is whichever side of the
    paper level (the median) reaches further, and the scale puts strong ink near 1."""
    low, paper, high = quantiles(grey, (0.01, 0.5, 0.99))
    if high - low < 0.02:  # little ink: look at the extremes instead
        low, high = float(grey.min()), float(grey.max())
    dark = paper - low
    ink = paper - grey if dark >= high - paper else grey - paper
    ink = np.maximum(ink, 0.0)
    strong = quantiles(ink, (0.995,))[0] if ink.size else 0.0
    if strong < 0.5 * float(ink.max()):  # the ink is under 0.5% of the pixels
        strong = 0.5 * float(ink.max())
    return np.clip(ink / max(strong, 0.04), 0.0, 1.0).astype(np.float32)


def normalize_line(image: np.ndarray) -> np.ndarray:
    """A line crop (any size, colour or grey) as the model's strip: float32, 32 px high,
    ink high in [0, 1], its width scaled with the height (at least 32 px, padded on both
    sides; at most 1,024 px, squeezed)."""
    ink = ink_signal(to_grey(image))
    h, w = ink.shape
    width = int(round(w * STRIP_HEIGHT / max(h, 1)))
    width = min(MAX_WIDTH, max(1, width))
    reduction = h / STRIP_HEIGHT
    if reduction >= THIN_FROM:
        # A pen line a few pixels wide in a tall crop (a mouse's 1-px strokes on a
        # 300-px canvas) would average away to a faint trace: widen strokes to about
        # half the reduction first, so that they stay ink at strip size.
        side = int(reduction / 2) | 1
        ink = cv2.dilate(ink, np.ones((side, side), np.uint8))
    method = cv2.INTER_AREA if h > STRIP_HEIGHT else cv2.INTER_LINEAR
    strip = cv2.resize(np.ascontiguousarray(ink), (width, STRIP_HEIGHT), interpolation=method)
    peak = quantiles(strip, (0.998,))[0] if strip.size else 0.0
    strip = strip / max(peak, FAINT_FLOOR)
    if width < MIN_WIDTH:
        left = (MIN_WIDTH - width) // 2
        strip = np.pad(strip, ((0, 0), (left, MIN_WIDTH - width - left)))
    return np.clip(strip, 0.0, 1.0).astype(np.float32)


def strip_offset(image_width: int, image_height: int) -> tuple[float, float]:
    """How strip columns map back to the input's: (input pixels per strip column, strip
    columns of padding on the left) for an input of this size (:func:`normalize_line`)."""
    width = min(MAX_WIDTH, max(1, int(round(image_width * STRIP_HEIGHT / max(image_height, 1)))))
    left = (MIN_WIDTH - width) // 2 if width < MIN_WIDTH else 0
    return image_width / width, float(left)


def padded(strip: np.ndarray, width: int | None = None) -> np.ndarray:
    """``strip`` padded on the right with paper to ``width`` (or to the next bucket)."""
    w = strip.shape[1]
    if width is None:
        width = -(-w // WIDTH_BUCKET) * WIDTH_BUCKET
    if w >= width:
        return strip[:, :width]
    return np.pad(strip, ((0, 0), (0, width - w)))


@dataclass
class LineCharacter:
    """One character the line model read: a digit or a separator."""

    char: str
    confidence: float  # its probability at its peak step
    probabilities: np.ndarray = field(repr=False)  # over the ten digits, at the peak
    span: tuple[int, int]  # the output steps it covers (first, last), inclusive

    @property
    def is_digit(self) -> bool:
        return self.char.isdigit()


@dataclass
class LineReading:
    """What the line model reads in one strip."""

    characters: list[LineCharacter]
    # The best path's probability: each character's peak probability, times the
    # weakest blank between and around them (how sure it is that nothing else is there).
    confidence: float

    @property
    def raw(self) -> str:
        """Digits and separators as read ("1.000.-")."""
        return "".join(c.char for c in self.characters)

    @property
    def text(self) -> str:
        """The digit string alone (separators dropped)."""
        return "".join(c.char for c in self.characters if c.is_digit)

    @property
    def digits(self) -> list[LineCharacter]:
        return [c for c in self.characters if c.is_digit]

    def separators(self) -> list[dict[str, Any]]:
        """Each separator with the number of digits read before it (its place in ``text``)."""
        found, before = [], 0
        for c in self.characters:
            if c.is_digit:
                before += 1
            else:
                found.append({"char": c.char, "after": before})
        return found


def ctc_decode(probabilities: np.ndarray, valid_steps: int | None = None) -> LineReading:
    """Best-path decoding of one strip's (steps, classes) probabilities: the likeliest
    output at each step, repeats merged, blanks dropped. ``valid_steps``: the steps that
    cover the strip itself, not its right padding."""
    if valid_steps is not None:
        probabilities = probabilities[:valid_steps]
    best = probabilities.argmax(axis=1)
    characters: list[LineCharacter] = []
    previous = BLANK
    for step, label in enumerate(best.tolist()):
        if label == BLANK:
            previous = label
            continue
        if label == previous and characters:
            last = characters[-1]
            last.span = (last.span[0], step)
            p = float(probabilities[step, label])
            if p > last.confidence:
                last.confidence = p
                last.probabilities = _digit_row(probabilities[step])
        else:
            characters.append(
                LineCharacter(
                    CHARSET[label],
                    float(probabilities[step, label]),
                    _digit_row(probabilities[step]),
                    (step, step),
                )
            )
        previous = label
    confidence = 1.0
    for c in characters:
        confidence *= c.confidence
    blank_steps = best == BLANK
    if blank_steps.any():
        confidence *= float(probabilities[blank_steps, BLANK].min())
    return LineReading(characters, confidence)


def _digit_row(row: np.ndarray) -> np.ndarray:
    digits = row[:DIGITS].astype(np.float64)
    return digits / max(float(digits.sum()), 1e-12)


def character_boxes(
    reading: LineReading, image_width: int, image_height: int
) -> list[tuple[int, int, int, int]]:
    """Each character's box in the input's pixels, from the steps the CTC alignment gave
    it: its columns from the first to the last step (widened by half a step each side),
    the full height of the line."""
    per_column, left_pad = strip_offset(image_width, image_height)
    boxes = []
    for c in reading.characters:
        x0 = (c.span[0] * STRIDE - STRIDE / 2 - left_pad) * per_column
        x1 = ((c.span[1] + 1) * STRIDE + STRIDE / 2 - left_pad) * per_column
        x0 = int(max(0, min(image_width - 1, round(x0))))
        x1 = int(max(x0 + 1, min(image_width, round(x1))))
        boxes.append((x0, 0, x1, image_height))
    return boxes


def find_reader_model(models_dir: Path | None = None) -> Path | None:
    """The line reader to use: the workspace's (``models_dir``, written by ``digitctl
    train --recipe reader``), else the bundled one; None when neither exists."""
    from digitctl.modelfiles import bundled_reader_path

    candidates = [bundled_reader_path()]
    if models_dir is not None:
        candidates.insert(0, Path(models_dir) / f"{READER_NAME}.tflite")
    return next((path for path in candidates if path.exists()), None)


class LineModel:
    """The line model in LiteRT (no TensorFlow): strips in, CTC probabilities out."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._shape: tuple[int, ...] | None = None
        card = self.path.with_name(f"{self.path.stem}_card.json")
        self.card: dict[str, Any] = json.loads(card.read_text()) if card.exists() else {}

    def probabilities(self, strips: np.ndarray) -> np.ndarray:
        """(N, 32, W) strips of one width → (N, W / 4, classes) probabilities."""
        batch = np.ascontiguousarray(strips[..., None], dtype=np.float32)
        if self._shape != batch.shape:
            self._interpreter.resize_tensor_input(self._input, list(batch.shape))
            self._interpreter.allocate_tensors()
            self._shape = batch.shape
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()

    def read(self, image: np.ndarray) -> LineReading:
        """Read one line crop (a decoded image array)."""
        strip = normalize_line(image)
        probabilities = self.probabilities(padded(strip)[None])[0]
        return ctc_decode(probabilities, valid_steps=-(-strip.shape[1] // STRIDE))
