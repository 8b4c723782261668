"""Training scenes for the line reader: digit strings as people write them on real paper.

Each scene is a grey image of a field or line crop and its target string (digits and the
separators of :data:`digitctl.linereader.CHARSET`). The generator covers the inputs the
line reader must read *and* the ones it must ignore, each factor varied widely:

- **writing**: 1-8 digits from MNIST *training* images, from printed fonts (DejaVu and
  STIX, as matplotlib ships them) and from straight-stroke templates (digits drawn with
  a mouse: a single-stroke "1", boxy 3s, 6s and 9s); continental 1s with a long flag,
  crossed 7s and small looped zeros; spacing from overlapping to wide; slant, rotation,
  pen width (thin to heavy), faint ink; separators between digits (``. , - / :``) and
  trailing dashes ("1.000.-");
- **furniture**: boxes and combs, ruled and squared paper, underlines, vertical rules and
  cell borders, black scanner margins, guilloche (security-pattern) and textured
  backgrounds, shadows, stamps, printed words and handwritten letters or marks (+, ×)
  beside the number;
- **capture**: low resolution (digits 8-16 px high), blur, noise, JPEG, both polarities,
  ink and paper of any contrast;
- **negatives**, whose target is the empty string: letters, words, symbols and shapes
  (triangles, arrows, houses, letters of straight strokes such as A, N, H), scribbles,
  and furniture with nothing written in it.

Only NumPy, OpenCV and Pillow are used; :func:`render_batch` is what training calls (in
worker processes), and every scene depends only on (seed, index).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitctl.linereader import CHARSET, STRIP_HEIGHT, normalize_line, padded

TRAIN_WIDTH = 256  # training strips are padded (or squeezed) to this width
MAX_LABEL = 16  # characters in a target at most
NEGATIVE_SHARE = 0.2
# Of the negatives, photos filling the crop (faces, flowers, sky: v4 read digits in them)
PHOTO_SHARE = 0.2
LONE_ONE_SHARE = 0.25  # of one-digit scenes: a lone "1", the digit most like furniture
TIGHT_SHARE = 0.2  # scenes cropped to the ink (strokes touch or are cut by every edge)
# Of the tight scenes, those captured tiny: the whole crop 7-20 px high (a digit cut from
# a low-resolution scan; v3 read nothing on 15 of 200 such crops, seed 1).
TINY_SHARE = 0.3
TOUCHING_SHARE = 0.35  # strings written touching and overlapping (v3: 0.25; touching 76%)
BIG_SHARE = 0.08  # scenes drawn 80-220 px a digit with the same pens: thin lines
LENGTH_WEIGHTS = {1: 0.2, 2: 0.16, 3: 0.16, 4: 0.13, 5: 0.1, 6: 0.09, 7: 0.08, 8: 0.08}
SOURCE_WEIGHTS = {"mnist": 0.62, "strokes": 0.18, "font": 0.2}
FURNITURE = (
    "box", "comb", "ruled", "grid", "underline", "rules", "margin", "guilloche", "texture",
    "stamp", "label", "mark",
)  # fmt: skip
_FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
)
_LABEL_WORDS = (
    "Total", "EUR", "CHF", "Nr.", "No", "Amount", "Betrag", "Fr.", "USD", "Page", "Date",
    "Qty", "Sum", "Kto", "Ref", "TOTAL", "Pay", "Item", "Row", "Box",
)  # fmt: skip


# --------------------------------------------------------------------------------------
# shapes: each is ink coverage (float32, ink 1 on 0), cropped to itself
# --------------------------------------------------------------------------------------
def _crop(array: np.ndarray, level: float = 0.08) -> np.ndarray:
    rows = np.flatnonzero(array.max(axis=1) > level)
    cols = np.flatnonzero(array.max(axis=0) > level)
    if not len(rows):
        return array
    return array[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _polylines(
    strokes: list[list[tuple[float, float]]],
    height: int,
    width_ratio: float,
    pen: int,
    rng: np.random.Generator,
    wobble: float = 0.03,
) -> np.ndarray:
    """Strokes in a unit box (x across, y down) drawn ``height`` px tall with a pen."""
    pad = pen + 2
    w = max(2, int(round(height * width_ratio)))
    canvas = np.zeros((height + 2 * pad, w + 2 * pad), np.uint8)
    for stroke in strokes:
        points = np.array(stroke, np.float64)
        points = points + rng.normal(0, wobble, points.shape)
        points[:, 0] = points[:, 0] * w + pad
        points[:, 1] = points[:, 1] * height + pad
        cv2.polylines(
            canvas, [np.round(points * 4).astype(np.int32)], False, 255, pen, cv2.LINE_AA, 2
        )
    return _crop(canvas.astype(np.float32) / 255.0)


# Digits of straight strokes, as drawn with a mouse (x in [0, 1] of the digit's width).
_STROKE_DIGITS: dict[int, list[list[list[tuple[float, float]]]]] = {
    0: [
        [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]],
        [[(0.5, 0), (1, 0.25), (1, 0.75), (0.5, 1), (0, 0.75), (0, 0.25), (0.5, 0)]],
    ],
    1: [
        [[(0.5, 0), (0.5, 1)]],
        [[(0.6, 0), (0.4, 1)]],
        [[(0.1, 0.3), (0.55, 0), (0.55, 1)]],
        [[(0.15, 0.25), (0.5, 0), (0.5, 1)], [(0.1, 1), (0.9, 1)]],
    ],
    2: [
        [[(0, 0), (1, 0), (1, 0.5), (0, 0.5), (0, 1), (1, 1)]],
        [[(0, 0.2), (0.3, 0), (0.8, 0), (1, 0.25), (0, 1), (1, 1)]],
    ],
    3: [
        [[(0, 0), (1, 0), (1, 1), (0, 1)], [(0.2, 0.5), (1, 0.5)]],
        [[(0, 0), (1, 0), (0.4, 0.45), (1, 0.65), (0.9, 0.95), (0, 1)]],
        [[(0, 0.1), (0.5, 0), (1, 0.2), (0.4, 0.5), (1, 0.75), (0.5, 1), (0, 0.9)]],
    ],
    4: [
        [[(0, 0), (0, 0.6), (1, 0.6)], [(0.75, 0.1), (0.75, 1)]],
        [[(0.7, 1), (0.7, 0), (0, 0.65), (1, 0.65)]],
    ],
    5: [
        [[(1, 0), (0, 0), (0, 0.5), (1, 0.5), (1, 1), (0, 1)]],
        [[(1, 0), (0.1, 0), (0, 0.45), (0.7, 0.45), (1, 0.7), (0.7, 1), (0, 0.95)]],
    ],
    6: [
        [[(1, 0), (0, 0), (0, 1), (1, 1), (1, 0.5), (0, 0.5)]],
        [[(0.9, 0), (0.2, 0.3), (0, 0.75), (0.4, 1), (1, 0.8), (0.8, 0.5), (0.1, 0.6)]],
    ],
    7: [
        [[(0, 0), (1, 0), (1, 1)]],
        [[(0, 0), (1, 0), (0.35, 1)]],
        [[(0, 0), (1, 0), (0.35, 1)], [(0.3, 0.5), (0.95, 0.5)]],
    ],
    8: [
        [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)], [(0, 0.5), (1, 0.5)]],
        [[(0.5, 0.5), (0, 0.25), (0.5, 0), (1, 0.25), (0, 0.75), (0.5, 1), (1, 0.75), (0.5, 0.5)]],
    ],
    9: [
        [[(1, 0.5), (0, 0.5), (0, 0), (1, 0), (1, 1), (0, 1)]],
        [[(1, 0.5), (0, 0.5), (0, 0), (1, 0), (1, 1)]],
        [[(1, 0.45), (0.1, 0.45), (0, 0.1), (0.9, 0), (0.9, 1)]],
    ],
}
# Letters, symbols and shapes of straight strokes: never digits.
_STROKE_NEGATIVES: tuple[list[list[tuple[float, float]]], ...] = (
    [[(0, 1), (0.5, 0), (1, 1)], [(0.2, 0.6), (0.8, 0.6)]],  # A
    [[(0, 1), (0, 0), (1, 1), (1, 0)]],  # N
    [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(0, 0.5), (1, 0.5)]],  # H
    [[(0, 1), (0, 0), (0.5, 0.6), (1, 0), (1, 1)]],  # M
    [[(0, 0), (0.25, 1), (0.5, 0.3), (0.75, 1), (1, 0)]],  # W
    [[(0, 0), (0.5, 1), (1, 0)]],  # V
    [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],  # X
    [[(0, 0), (0, 1)], [(1, 0), (0, 0.55), (1, 1)]],  # K
    [[(1, 0), (0, 0), (0, 1), (1, 1)], [(0, 0.5), (0.7, 0.5)]],  # E
    [[(1, 0), (0, 0), (0, 1)], [(0, 0.5), (0.7, 0.5)]],  # F
    [[(0, 0), (1, 0)], [(0.5, 0), (0.5, 1)]],  # T
    [[(0, 0), (0.5, 0.5), (1, 0)], [(0.5, 0.5), (0.5, 1)]],  # Y
    [[(0.5, 0.1), (0.5, 0.9)], [(0.1, 0.5), (0.9, 0.5)]],  # +
    [[(0.5, 0), (1, 1), (0, 1), (0.5, 0)]],  # triangle
    [[(0, 0.4), (0.5, 0), (1, 0.4), (1, 1), (0, 1), (0, 0.4), (1, 0.4)]],  # house
    [[(0, 0.5), (1, 0.5)], [(0.65, 0.2), (1, 0.5), (0.65, 0.8)]],  # arrow
    [[(0.5, 0), (0.65, 0.35), (1, 0.4), (0.7, 0.62), (0.8, 1), (0.5, 0.8), (0.2, 1),
      (0.3, 0.62), (0, 0.4), (0.35, 0.35), (0.5, 0)]],  # star
    [[(0, 0), (1, 1)], [(1, 0), (0, 1)], [(0, 0.5), (1, 0.5)]],  # asterisk-like
    [[(0, 1), (0, 0), (1, 0), (1, 0.5), (0, 0.5), (1, 1)]],  # R
    [[(0, 0), (0, 1), (1, 1), (1, 0)]],  # U
)  # fmt: skip


@functools.cache
def _font(name: str, size: int = 64) -> ImageFont.FreeTypeFont:
    from digitctl.synth import font_folder

    return ImageFont.truetype(f"{font_folder()}/{name}", size)


@functools.cache
def _font_glyph(name: str, text: str) -> np.ndarray:
    font = _font(name)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (right - left + 8, bottom - top + 8), 0)
    ImageDraw.Draw(image).text((4 - left, 4 - top), text, fill=255, font=font)
    return _crop(np.asarray(image, np.float32) / 255.0)


def _resize(array: np.ndarray, width: int, height: int) -> np.ndarray:
    width, height = max(1, width), max(1, height)
    shrink = height < array.shape[0]
    method = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(array, (width, height), interpolation=method)


def _to_height(array: np.ndarray, height: int, stretch: float = 1.0) -> np.ndarray:
    h, w = array.shape
    return _resize(array, int(round(w * height / h * stretch)), height)


def _pen(array: np.ndarray, change: int) -> np.ndarray:
    if change == 0:
        return array
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(change) + 1,) * 2)
    if change > 0:
        return cv2.dilate(np.pad(array, change), kernel)
    thinner = cv2.erode(array, kernel)
    return thinner if thinner.max() > 0.4 else array


@dataclass
class DigitPools:
    """MNIST images by digit (uint8 or float, 28×28), the shapes handwriting comes from."""

    by_digit: list[np.ndarray]

    @classmethod
    def from_arrays(cls, images: np.ndarray, labels: np.ndarray) -> DigitPools:
        images = np.asarray(images)
        if images.ndim == 4:
            images = images[..., 0]
        if images.dtype != np.uint8:
            images = np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)
        labels = np.asarray(labels).astype(np.int64)
        return cls([images[labels == d] for d in range(10)])


def _mnist_digit(
    pools: DigitPools, digit: int, height: int, rng: np.random.Generator, pen: float = 0.0
) -> np.ndarray:
    """An MNIST digit ``height`` px high; ``pen`` widens (or thins) its strokes by that
    share of the height: MNIST's own pen is one width, people's range from fineliners
    to markers."""
    pool = pools.by_digit[digit]
    array = _crop(pool[int(rng.integers(len(pool)))].astype(np.float32) / 255.0, 0.1)
    array = _to_height(array, height, rng.uniform(0.8, 1.25))
    array = _pen(array, int(round(pen * height)))
    if digit == 1 and rng.random() < 0.3:  # continental 1: a long flag, sometimes a base
        array = _with_strokes(array, _one_flag(array, rng), rng)
    elif digit == 7 and rng.random() < 0.3:  # crossed 7
        array = _with_strokes(array, _seven_bar(array, rng), rng)
    return array


def _stroke_thickness(array: np.ndarray) -> int:
    area = float((array > 0.5).sum())
    length = max(1.0, float(cv2.Canny((array > 0.5).astype(np.uint8) * 255, 0, 1).sum() / 510))
    return int(max(1, min(8, round(area / length))))


def _with_strokes(
    array: np.ndarray, strokes: list[tuple[tuple[float, float], tuple[float, float]]], rng
) -> np.ndarray:
    """Extra straight strokes (in the digit's pixel coordinates, may reach outside it)."""
    h, w = array.shape
    pad = h // 2
    canvas = np.pad(array, pad)
    layer = np.zeros_like(canvas, dtype=np.uint8)
    pen = _stroke_thickness(array)
    for (x0, y0), (x1, y1) in strokes:
        p0 = (int(round((x0 + pad) * 4)), int(round((y0 + pad) * 4)))
        p1 = (int(round((x1 + pad) * 4)), int(round((y1 + pad) * 4)))
        cv2.line(layer, p0, p1, 255, pen, cv2.LINE_AA, 2)
    return _crop(np.maximum(canvas, layer.astype(np.float32) / 255.0))


def _one_flag(array: np.ndarray, rng: np.random.Generator) -> list:
    h, w = array.shape
    top_cols = np.flatnonzero(array[: max(1, h // 8)].max(axis=0) > 0.3)
    x = float(top_cols.mean()) if len(top_cols) else w / 2
    length = h * rng.uniform(0.3, 0.55)
    angle = math.radians(rng.uniform(20, 50))
    strokes = [((x, 0.0), (x - length * math.cos(angle), length * math.sin(angle)))]
    if rng.random() < 0.25:
        bottom_cols = np.flatnonzero(array[-max(1, h // 8) :].max(axis=0) > 0.3)
        xb = float(bottom_cols.mean()) if len(bottom_cols) else w / 2
        half = h * rng.uniform(0.15, 0.3)
        strokes.append(((xb - half, h - 1.0), (xb + half, h - 1.0)))
    return strokes


def _seven_bar(array: np.ndarray, rng: np.random.Generator) -> list:
    h, w = array.shape
    y = h * rng.uniform(0.45, 0.6)
    cols = np.flatnonzero(array[int(y)] > 0.3)
    x = float(cols.mean()) if len(cols) else w / 2
    half = w * rng.uniform(0.25, 0.45)
    return [((x - half, y), (x + half, y + rng.uniform(-0.05, 0.05) * h))]


def _stroke_digit(digit: int, height: int, pen: int, rng: np.random.Generator) -> np.ndarray:
    variants = _STROKE_DIGITS[digit]
    strokes = variants[int(rng.integers(len(variants)))]
    bare = len(strokes) == 1 and len(strokes[0]) == 2  # a "1" as one straight stroke
    ratio = rng.uniform(0.08, 0.25) if bare else rng.uniform(0.45, 0.75)
    return _polylines(strokes, height, ratio, pen, rng, wobble=rng.uniform(0.0, 0.04))


def _font_digit(char: str, font: str, height: int, rng: np.random.Generator) -> np.ndarray:
    return _to_height(_font_glyph(font, char), height, rng.uniform(0.9, 1.1))


# --------------------------------------------------------------------------------------
# strings: digits and separators side by side
# --------------------------------------------------------------------------------------
def _digit_string(rng: np.random.Generator) -> str:
    lengths = list(LENGTH_WEIGHTS)
    weights = np.array([LENGTH_WEIGHTS[n] for n in lengths])
    n = int(rng.choice(lengths, p=weights / weights.sum()))
    digits = "".join(str(int(d)) for d in rng.integers(0, 10, n))
    if n == 1 and rng.random() < LONE_ONE_SHARE:
        return "1"
    if rng.random() > 0.28 or n < 2:
        return digits
    kind = int(rng.integers(7))
    if kind == 0 and n >= 4:  # thousands: 1.000 or 1,000
        sep = "." if rng.random() < 0.5 else ","
        head = n % 3 or 3
        groups = [digits[:head]] + [digits[i : i + 3] for i in range(head, n, 3)]
        return sep.join(groups)
    if kind == 1 and n >= 3:  # decimals
        return digits[:-2] + ("," if rng.random() < 0.5 else ".") + digits[-2:]
    if kind == 2:  # amount with a trailing dash: 120.- or 120,- or 120-
        return digits + str(rng.choice([".-", ",-", "-", ".--"]))[: MAX_LABEL - n]
    if kind == 3 and n >= 4:  # a date
        sep = str(rng.choice(["/", ".", "-"]))
        cut = int(rng.integers(1, 3))
        return digits[:cut] + sep + digits[cut : cut + 2] + sep + digits[cut + 2 :]
    if kind == 4 and n >= 3:  # a time
        return digits[:2] + ":" + digits[2:4]
    if kind == 5 and n >= 3:  # a range or reference: 12-345, 12/3
        cut = int(rng.integers(1, n))
        return digits[:cut] + str(rng.choice(["-", "/"])) + digits[cut:]
    return digits


def _separator(char: str, height: int, pen: int, rng: np.random.Generator) -> tuple:
    """A separator's coverage and where its top sits, in digit heights below the top."""
    dot = max(2, int(round(pen * rng.uniform(1.0, 1.8))))
    if char == ".":
        size = dot + 2
        canvas = np.zeros((size, size), np.float32)
        cv2.circle(canvas, (size // 2, size // 2), max(1, dot // 2), 1.0, -1, cv2.LINE_AA)
        return _crop(canvas), rng.uniform(0.85, 1.0) - size / height
    if char == ",":
        glyph = _polylines([[(0.7, 0), (0.6, 0.5), (0.1, 1)]], max(4, height // 4), 0.5, pen, rng)
        return glyph, rng.uniform(0.8, 0.95)
    if char == "-":
        length = rng.uniform(0.3, 0.6)
        glyph = _polylines(
            [[(0, 0.5), (1, 0.5 + rng.uniform(-0.1, 0.1))]], height, length, pen, rng, 0.01
        )
        return glyph, rng.uniform(0.4, 0.6)
    if char == "/":
        glyph = _polylines(
            [[(1, 0), (0, 1)]], int(height * rng.uniform(0.8, 1.1)), 0.45, pen, rng, 0.01
        )
        return glyph, rng.uniform(-0.05, 0.1)
    # ":"
    size = dot + 2
    canvas = np.zeros((int(height * 0.55) + size, size), np.float32)
    cv2.circle(canvas, (size // 2, size // 2), max(1, dot // 2), 1.0, -1, cv2.LINE_AA)
    cv2.circle(
        canvas, (size // 2, canvas.shape[0] - size // 2 - 1), max(1, dot // 2), 1.0, -1, cv2.LINE_AA
    )
    return _crop(canvas), rng.uniform(0.3, 0.4)


# fmt: on


@dataclass
class _Placed:
    coverage: np.ndarray
    top: int
    left: int


def _write_string(
    text: str,
    pools: DigitPools,
    height: int,
    rng: np.random.Generator,
    forced_source: str | None = None,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The string's ink, ``height`` px a digit, and each character's column span."""
    source = str(rng.choice(list(SOURCE_WEIGHTS), p=list(SOURCE_WEIGHTS.values())))
    source = forced_source or source
    font = _FONT_FILES[int(rng.integers(len(_FONT_FILES)))]
    pen = int(rng.choice([1, 1, 2, 2, 2, 3, 3, 4, 5, 7, 10])) if source == "strokes" else 0
    sep_pen = max(1, pen or max(1, height // 12))
    # One writer, one pen: MNIST digits of a string share a stroke-width change.
    mnist_pen = float(rng.uniform(-0.04, 0.08)) if rng.random() < 0.5 else 0.0
    gap_kind = rng.random()
    if gap_kind < TOUCHING_SHARE:  # touching and overlapping
        gaps = (-0.35, 0.02)
    elif gap_kind < TOUCHING_SHARE + 0.45:
        gaps = (0.02, 0.35)
    else:
        gaps = (0.2, 1.0)
    small_zero = rng.random() < 0.15
    parts: list[_Placed] = []
    x = 0.0
    mean_width = height * 0.6
    for char in text:
        if char.isdigit():
            digit = int(char)
            h = int(round(height * rng.uniform(0.9, 1.08)))
            this_source = source if rng.random() < 0.9 else "mnist"
            if small_zero and digit == 0:
                h = int(round(height * rng.uniform(0.45, 0.7)))
            if this_source == "mnist":
                coverage = _mnist_digit(pools, digit, h, rng, mnist_pen)
            elif this_source == "strokes":
                coverage = _stroke_digit(digit, h, pen, rng)
            else:
                coverage = _font_digit(char, font, h, rng)
            top = (height - coverage.shape[0]) * (
                rng.uniform(0.2, 0.8) if h >= 0.8 * height else rng.uniform(0.4, 1.0)
            )
            top += rng.normal(0, 0.04) * height
        else:
            coverage, where = _separator(char, height, sep_pen, rng)
            top = where * height
        left = x if not parts else x + rng.uniform(*gaps) * mean_width
        if not char.isdigit() or (parts and not text[len(parts) - 1].isdigit()):
            left = x + rng.uniform(0.05, 0.3) * mean_width  # separators keep their space
        parts.append(_Placed(coverage, int(round(top)), int(round(max(0, left)))))
        x = max(x, left + coverage.shape[1])
    return _assemble(parts, rng)


def _assemble(parts: list[_Placed], rng: np.random.Generator) -> tuple[np.ndarray, list]:
    low = min(p.top for p in parts)
    height = max(p.top - low + p.coverage.shape[0] for p in parts)
    width = max(p.left + p.coverage.shape[1] for p in parts)
    pad = max(4, height // 3)
    canvas = np.zeros((height + 2 * pad, width + 2 * pad), np.float32)
    spans = []
    for p in parts:
        top, left = p.top - low + pad, p.left + pad
        region = canvas[top : top + p.coverage.shape[0], left : left + p.coverage.shape[1]]
        np.maximum(region, p.coverage, out=region)
        spans.append((left, left + p.coverage.shape[1]))
    shear = rng.uniform(-0.3, 0.3) if rng.random() < 0.7 else 0.0
    angle = math.radians(rng.normal(0, 2.5))
    h, w = canvas.shape
    matrix = np.array(
        [[math.cos(angle), -math.sin(angle) + shear, 0.0], [math.sin(angle), math.cos(angle), 0.0]]
    )
    matrix[:, 2] = [
        w / 2 - matrix[0, 0] * w / 2 - matrix[0, 1] * h / 2,
        h / 2 - matrix[1, 0] * w / 2 - matrix[1, 1] * h / 2,
    ]
    canvas = cv2.warpAffine(canvas, matrix, (w, h), flags=cv2.INTER_LINEAR)
    rows = np.flatnonzero(canvas.max(axis=1) > 0.08)
    cols = np.flatnonzero(canvas.max(axis=0) > 0.08)
    if not len(rows):
        return canvas, spans
    shift = cols[0]
    canvas = canvas[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return canvas, [(a - shift, b - shift) for a, b in spans]


def _negative_content(height: int, rng: np.random.Generator) -> np.ndarray | None:
    from digitctl import synth

    kind = rng.random()
    if kind < 0.3:
        return None  # only furniture
    if kind < 0.55:  # letters or a word, pen-like
        count = int(rng.choice([1, 1, 2, 3, 4]))
        pieces = [synth._glyph_content(height, rng) for _ in range(count)]
        return _side_by_side(pieces, height, rng)
    if kind < 0.8:  # straight-stroke letters and shapes, as drawn with a mouse
        count = int(rng.choice([1, 1, 1, 2]))
        pen = int(rng.choice([1, 2, 2, 3, 4, 6]))
        pieces = []
        for _ in range(count):
            strokes = _STROKE_NEGATIVES[int(rng.integers(len(_STROKE_NEGATIVES)))]
            pieces.append(_polylines(strokes, height, rng.uniform(0.6, 1.1), pen, rng))
        return _side_by_side(pieces, height, rng)
    if kind < 0.9:
        return synth._scribble_content(height, rng)
    word = str(rng.choice(_LABEL_WORDS))
    return _to_height(_font_glyph(_FONT_FILES[int(rng.integers(len(_FONT_FILES)))], word), height)


def _photo_content(height: int, rng: np.random.Generator) -> np.ndarray:
    """A photo-like picture, 1.2-3 digit heights high: shading at several scales, blobs
    and petals of every grey with soft or hard edges, a few thick curves; no writing."""
    h = int(height * rng.uniform(1.2, 3.0))
    w = max(8, int(h * rng.uniform(0.6, 1.8)))
    picture = np.zeros((h, w), np.float32)
    for cells in rng.choice([2, 3, 5, 9], size=int(rng.integers(1, 4)), replace=False):
        picture += _smooth_noise((h, w), int(cells), rng) * float(rng.uniform(0.2, 0.8))
    for _ in range(int(rng.integers(2, 14))):
        centre = (int(rng.integers(-w // 4, w + w // 4)), int(rng.integers(-h // 4, h + h // 4)))
        axes = (int(rng.uniform(0.05, 0.6) * w) + 1, int(rng.uniform(0.05, 0.6) * h) + 1)
        level = float(rng.uniform(0.0, 1.0))
        if rng.random() < 0.25:  # petals around a centre (a flower)
            for angle in np.linspace(0, 360, int(rng.integers(6, 18)), endpoint=False):
                petal = (axes[0] // 2 + 1, max(1, axes[0] // 6))
                cv2.ellipse(picture, centre, petal, float(angle), 0, 360, level, -1, cv2.LINE_AA)
        else:
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(picture, centre, axes, angle, 0, 360, level, -1, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 4))):
        points = rng.uniform(0, 1, (int(rng.integers(3, 6)), 2)) * (w, h)
        thick = int(rng.integers(2, max(3, h // 8)))
        level = float(rng.uniform(0, 1))
        cv2.polylines(picture, [points.astype(np.int32)], False, level, thick, cv2.LINE_AA)
    picture = cv2.GaussianBlur(picture, (0, 0), float(rng.uniform(0.3, 2.5)))
    low, high = float(picture.min()), float(picture.max())
    return ((picture - low) / max(high - low, 1e-3) * rng.uniform(0.5, 1.0)).astype(np.float32)


def _side_by_side(pieces: list[np.ndarray], height: int, rng: np.random.Generator) -> np.ndarray:
    parts, x = [], 0
    for piece in pieces:
        top = int(max(0, height - piece.shape[0]) * rng.uniform(0, 1))
        parts.append(_Placed(piece, top, x))
        x += piece.shape[1] + int(rng.uniform(0.05, 0.5) * height)
    return _assemble(parts, rng)[0]


# --------------------------------------------------------------------------------------
# the scene: paper, furniture, the writing, then the capture
# --------------------------------------------------------------------------------------
def _smooth_noise(shape: tuple[int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    grid = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _line(layer: np.ndarray, p0, p1, width: int) -> None:
    cv2.line(
        layer,
        (int(round(p0[0] * 4)), int(round(p0[1] * 4))),
        (int(round(p1[0] * 4)), int(round(p1[1] * 4))),
        1.0,
        max(1, width),
        cv2.LINE_AA,
        2,
    )


def _guilloche(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    layer = np.zeros(shape, np.float32)
    x = np.arange(0, w, 1.0)
    period = rng.uniform(0.3, 1.2) * h
    for k in range(int(rng.integers(6, 22))):
        amp = rng.uniform(0.1, 0.6) * h
        phase = rng.uniform(0, 2 * math.pi) + k * rng.uniform(0.1, 0.5)
        offset = rng.uniform(0, h)
        y = offset + amp * np.sin(2 * math.pi * x / period + phase) * np.cos(x / (3 * period) + k)
        points = np.stack([x, y], axis=1)
        cv2.polylines(layer, [np.round(points * 4).astype(np.int32)], False, 1.0, 1, cv2.LINE_AA, 2)
    if rng.random() < 0.5:
        layer = np.maximum(layer, cv2.flip(layer, 0))
    return layer * rng.uniform(0.5, 1.0)


def _furniture(
    shape: tuple[int, int],
    box: tuple[int, int, int, int],
    spans: list[tuple[int, int]],
    digit_height: int,
    rng: np.random.Generator,
    force: frozenset[str] | None = None,
) -> list[tuple[np.ndarray, float]]:
    """Layers of coverage with their darkness: lines, boxes, margins, patterns, marks.
    ``force``: exactly these kinds of :data:`FURNITURE` (the random draws are made all
    the same, so a scene without ``force`` does not depend on it)."""
    h, w = shape

    def want(kind: str, share: float) -> bool:
        drawn = rng.random() < share
        return drawn if force is None else kind in force

    top, left, bottom, right = box
    layers: list[tuple[np.ndarray, float]] = []
    thin = max(1, int(round(digit_height / rng.uniform(14, 40))))

    def new() -> np.ndarray:
        return np.zeros(shape, np.float32)

    def darkness(low: float = 0.25, high: float = 0.9) -> float:
        return float(rng.uniform(low, high))

    if want("box", 0.22):  # a box around the writing, maybe cut by the crop
        layer = new()
        m = [int(rng.uniform(-0.3, 1.0) * digit_height * 0.4) for _ in range(4)]
        y0, y1 = top - m[0], bottom + m[1]
        x0, x1 = left - m[2], right + m[3]
        width = int(rng.choice([thin, thin, thin + 1, thin * 2 + 1]))
        sides = [
            ((x0, y0), (x1, y0)),
            ((x0, y1), (x1, y1)),
            ((x0, y0), (x0, y1)),
            ((x1, y0), (x1, y1)),
        ]
        for side in sides:
            if rng.random() < 0.92:
                _line(layer, *side, width)
        if want("comb", 0.35) and len(spans) > 1:  # comb dividers between the digits
            for (_, b), (c, _) in zip(spans, spans[1:], strict=False):
                x = left + (b + c) / 2
                _line(layer, (x, y1 - (y1 - y0) * rng.uniform(0.2, 1.0)), (x, y1), width)
        layers.append((layer, darkness(0.3, 1.0)))
    if want("ruled", 0.18):  # ruled or squared paper
        layer = new()
        spacing = digit_height * rng.uniform(0.5, 1.4)
        y = rng.uniform(0, spacing)
        tilt = rng.normal(0, 0.01) * w
        while y < h:
            _line(layer, (0, y), (w, y + tilt), thin)
            y += spacing
        if want("grid", 0.45):
            x = rng.uniform(0, spacing)
            while x < w:
                _line(layer, (x, 0), (x - tilt, h), thin)
                x += spacing
        layers.append((layer, darkness(0.15, 0.6)))
    if want("underline", 0.15):  # underline or a baseline
        layer = new()
        y = bottom + rng.uniform(-0.15, 0.3) * digit_height
        _line(
            layer,
            (left - rng.uniform(0, 1) * digit_height, y),
            (right + rng.uniform(0, 1) * digit_height, y + rng.normal(0, 2)),
            int(rng.choice([thin, thin + 1, thin + 2])),
        )
        layers.append((layer, darkness(0.3, 1.0)))
    if want("rules", 0.2):  # vertical rules and cell borders, edge to edge
        layer = new()
        for _ in range(int(rng.integers(1, 4))):
            where = rng.random()
            if where < 0.7:  # near an edge of the crop
                x = rng.uniform(0, 0.12) * w if rng.random() < 0.5 else w - rng.uniform(0, 0.12) * w
            else:
                x = rng.uniform(0, w)
            _line(layer, (x, 0), (x + rng.normal(0, 1.5), h), int(rng.choice([1, thin, thin + 1])))
        if rng.random() < 0.5:
            for y in (rng.uniform(0, 0.08) * h, h - rng.uniform(0, 0.08) * h):
                if rng.random() < 0.6:
                    _line(layer, (0, y), (w, y + rng.normal(0, 1)), thin)
        layers.append((layer, darkness(0.3, 1.0)))
    if want("margin", 0.1):  # a black scanner margin at an edge
        layer = new()
        side = int(rng.integers(4))
        size = rng.uniform(0.03, 0.2)
        edge = (_smooth_noise((h, w), 6, rng) - 0.5) * 0.05
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        frac = [xs / w, 1 - xs / w, ys / h, 1 - ys / h][side]
        layer = (frac < size + edge).astype(np.float32)
        layers.append((cv2.GaussianBlur(layer, (0, 0), 1.0), darkness(0.6, 1.0)))
    if want("guilloche", 0.15):  # a security pattern
        layers.append((_guilloche(shape, rng), darkness(0.1, 0.5)))
    if want("texture", 0.15):  # texture
        texture = _smooth_noise(shape, int(rng.integers(4, 40)), rng)
        texture = np.clip((texture - rng.uniform(0.3, 0.7)) * rng.uniform(1, 4), 0, 1)
        layers.append((texture, darkness(0.05, 0.35)))
    if want("stamp", 0.05):  # a stamp: a ring with letters, partly over the writing
        layer = new()
        r = digit_height * rng.uniform(0.6, 1.5)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        cv2.circle(layer, (int(cx), int(cy)), int(r), 1.0, max(1, thin + 1), cv2.LINE_AA)
        cv2.circle(layer, (int(cx), int(cy)), int(r * 0.7), 1.0, max(1, thin), cv2.LINE_AA)
        layers.append((layer, darkness(0.2, 0.6)))
    if want("label", 0.12):  # a printed word beside the number (no digits in it)
        word = _font_glyph(
            _FONT_FILES[int(rng.integers(len(_FONT_FILES)))], str(rng.choice(_LABEL_WORDS))
        )
        word = _to_height(word, max(4, int(digit_height * rng.uniform(0.3, 0.7))))
        layers.append((_put_beside(word, shape, box, rng), darkness(0.5, 1.0)))
    if want("mark", 0.08):  # a handwritten mark or letter beside it (+, ×, a tick)
        strokes = [
            [[(0.5, 0.1), (0.5, 0.9)], [(0.1, 0.5), (0.9, 0.5)]],
            [[(0.1, 0.1), (0.9, 0.9)], [(0.9, 0.1), (0.1, 0.9)]],
            [[(0, 0.6), (0.35, 1), (1, 0)]],
        ][int(rng.integers(3))]
        mark = _polylines(
            strokes, max(4, int(digit_height * rng.uniform(0.4, 0.9))), 1.0, max(1, thin + 1), rng
        )
        layers.append((_put_beside(mark, shape, box, rng), darkness(0.5, 1.0)))
    return layers


def _put_beside(
    content: np.ndarray, shape: tuple[int, int], box: tuple[int, int, int, int], rng
) -> np.ndarray:
    h, w = shape
    top, left, bottom, right = box
    ch, cw = content.shape
    layer = np.zeros(shape, np.float32)
    where = int(rng.integers(4))
    gap = int(rng.uniform(0.1, 0.6) * (bottom - top))
    if where == 0:
        y, x = top + (bottom - top - ch) // 2, left - gap - cw
    elif where == 1:
        y, x = top + (bottom - top - ch) // 2, right + gap
    elif where == 2:
        y, x = top - gap - ch, int(rng.uniform(0, max(1, w - cw)))
    else:
        y, x = bottom + gap, int(rng.uniform(0, max(1, w - cw)))
    y0, x0 = max(0, y), max(0, x)
    y1, x1 = min(h, y + ch), min(w, x + cw)
    if y1 > y0 and x1 > x0:
        layer[y0:y1, x0:x1] = content[y0 - y : y1 - y, x0 - x : x1 - x]
    return layer


@dataclass
class Scene:
    """A rendered scene: a grey image (uint8, paper light or dark) and what it says."""

    image: np.ndarray
    target: str  # digits and separators; "" for a negative


def render_scene(
    pools: DigitPools,
    rng: np.random.Generator,
    *,
    negative: bool | None = None,
    source: str | None = None,
    furniture: frozenset[str] | None = None,
) -> Scene:
    """One scene: a written string (or a negative) in furniture, captured. ``negative``,
    ``source`` (of :data:`SOURCE_WEIGHTS`) and ``furniture`` (kinds of :data:`FURNITURE`)
    force what is otherwise drawn at random."""
    big = rng.random() < BIG_SHARE  # drawn large: thin pen lines on a big canvas
    digit_height = int(rng.integers(80, 220)) if big else int(rng.integers(24, 48))
    drawn = rng.random() < NEGATIVE_SHARE
    negative = drawn if negative is None else negative
    photo = False
    if negative:
        photo = rng.random() < PHOTO_SHARE
        ink = _photo_content(digit_height, rng) if photo else _negative_content(digit_height, rng)
        target, spans = "", []
    else:
        target = _digit_string(rng)
        if big:  # a drawing of a digit or two, not a long line at that size
            target = "".join(c for c in target if c.isdigit())[: 1 + int(rng.integers(2))]
        ink, spans = _write_string(target, pools, digit_height, rng, source)
    if ink is not None and ink.size:
        ink = ink * rng.uniform(0.75, 1.0)
        content_h, content_w = ink.shape
    else:
        ink, content_h, content_w = None, digit_height, int(digit_height * rng.uniform(0.6, 4))
    # How much of the crop the writing fills: tight crops to tall ledger cells.
    fill = rng.uniform(0.3, 0.98) if rng.random() < 0.85 else 1.0
    height = max(content_h + 2, int(round(content_h / fill)))
    side = rng.uniform(0.0, 1.2, 2) * digit_height if rng.random() < 0.85 else np.zeros(2)
    if rng.random() < 0.18:  # a number in a wide field, a digit on a wide canvas
        side[int(rng.integers(2))] += rng.uniform(1, 6) * digit_height
    tight = (rng.random() < TIGHT_SHARE and ink is not None) or photo
    if tight:  # cropped to the ink, strokes touching (or cut by) every edge
        height, side = content_h, np.zeros(2)
    width = int(round(content_w + side.sum()))
    width = max(width, 4)
    top = int(round((height - content_h) * rng.uniform(0.1, 0.9)))
    left = int(round(side[0]))
    coverage = np.zeros((height, width), np.float32)
    if ink is not None:
        region = coverage[top : top + content_h, left : left + content_w]
        region[...] = ink[: region.shape[0], : region.shape[1]]
    box = (top, left, top + content_h, left + content_w)
    if tight:
        cut = [
            int(rng.integers(0, max(1, int(0.06 * n)) + 1)) for n in (height,) * 2 + (width,) * 2
        ]
        coverage = coverage[cut[0] : height - cut[1], cut[2] : width - cut[3]]
        height, width = coverage.shape
        box = (0, 0, height, width)
    layers = _furniture((height, width), box, spans, content_h, rng, furniture)
    if negative and ink is None and not layers:  # nothing at all: an empty field of paper
        layers = [(_smooth_noise((height, width), 8, rng) * 0.1, 1.0)]
    # Paper and ink: ink darkens the paper multiplicatively, as on paper.
    paper = rng.uniform(0.55, 1.0)
    ink_dark = rng.uniform(0.35, 1.0) if rng.random() < 0.85 else rng.uniform(0.15, 0.35)
    light = np.ones((height, width), np.float32)
    for layer, dark in layers:
        light *= 1.0 - np.clip(layer, 0, 1) * dark
    light *= 1.0 - coverage * ink_dark
    grey = paper * light
    if rng.random() < 0.3:  # shading or a shadow
        grey *= 1.0 - rng.uniform(0.1, 0.45) * _smooth_noise((height, width), 3, rng)
    tiny = tight and rng.random() < TINY_SHARE
    grey = _capture(grey, digit_height, rng, big, float(rng.uniform(7, 20)) if tiny else None)
    if rng.random() < 0.12:
        grey = 1.0 - grey
    return Scene(np.round(np.clip(grey, 0, 1) * 255).astype(np.uint8), target)


def _capture(
    grey: np.ndarray,
    digit_height: int,
    rng: np.random.Generator,
    big: bool = False,
    crop_height: float | None = None,
) -> np.ndarray:
    """Resolution, blur, noise and JPEG of a scan or a photo; ``crop_height``: the whole
    crop brought to that many pixels high (a tiny crop)."""
    h, w = grey.shape
    u = rng.random()
    if crop_height is not None:
        scale = crop_height / h
    elif big:  # kept large: what matters is the thin pen
        scale = rng.uniform(0.6, 1.2)
    elif u < 0.22:  # low resolution: digits 8-16 px high
        scale = rng.uniform(8, 16) / digit_height
    elif u < 0.4:
        scale = rng.uniform(1.2, 2.5)
    else:
        scale = rng.uniform(0.5, 1.2)
    size = (max(4, int(round(w * scale))), max(4, int(round(h * scale))))
    grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if rng.random() < 0.3:
        grey = cv2.GaussianBlur(grey, (0, 0), rng.uniform(0.4, 1.3))
    if rng.random() < 0.5:
        grey = grey + rng.normal(0, rng.uniform(0.005, 0.06), grey.shape).astype(np.float32)
    grey = np.clip(grey, 0, 1)
    if rng.random() < 0.3:
        quality = int(rng.integers(20, 90))
        ok, data = cv2.imencode(
            ".jpg", np.round(grey * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        if ok:
            grey = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
    return grey


# --------------------------------------------------------------------------------------
# batches for training
# --------------------------------------------------------------------------------------
def encode_target(target: str) -> np.ndarray:
    """A target string as class indices, padded with -1 to :data:`MAX_LABEL`."""
    codes = np.full(MAX_LABEL, -1, np.int32)
    for i, char in enumerate(target[:MAX_LABEL]):
        codes[i] = CHARSET.index(char)
    return codes


def training_strip(image: np.ndarray) -> np.ndarray:
    """A scene as a training strip: normalised as at inference, padded (or squeezed) to
    :data:`TRAIN_WIDTH`."""
    strip = normalize_line(image)
    if strip.shape[1] > TRAIN_WIDTH:
        strip = cv2.resize(strip, (TRAIN_WIDTH, STRIP_HEIGHT), interpolation=cv2.INTER_AREA)
    return padded(strip, TRAIN_WIDTH)


def render_batch(
    pools: DigitPools, seed: int, start: int, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scenes ``start`` .. ``start + count`` of a seed as strips (uint8, N×32×256) and
    targets (int32, N×16, -1 padded); scene ``i`` depends only on (seed, i)."""
    strips = np.zeros((count, STRIP_HEIGHT, TRAIN_WIDTH), np.uint8)
    targets = np.full((count, MAX_LABEL), -1, np.int32)
    for k in range(count):
        rng = np.random.default_rng([seed, start + k])
        scene = render_scene(pools, rng)
        strips[k] = np.round(training_strip(scene.image) * 255).astype(np.uint8)
        targets[k] = encode_target(scene.target)
    return strips, targets
