"""Synthetic training images: digits framed the way people frame them, and non-digits.

The bundled model learns from two kinds of raw images, both run through the product's
own preprocessing (:func:`digitctl.imaging.to_mnist`) so that it trains on exactly the
views it will see:

- **framed digits** (:func:`render_framed`): an MNIST digit shape, upscaled (bicubic) to
  a realistic size, with a thinner or thicker pen, inside a form box, on ruled or squared
  paper, underlined, cropped tightly to its ink, or scanned at 8-16 px with few grey
  levels; coloured inks and lines, both polarities, mild noise, blur and JPEG;
- **negatives** (:func:`render_negative`, label :data:`NEGATIVE_LABEL`): letters and
  symbols from matplotlib's bundled DejaVu fonts with pen-like jitter, scribbles, crops
  of a photo, empty boxes and lines, specks and stray marks, framed like the digits.

:func:`training_views` renders many of both in parallel, deterministically for a seed,
and returns the 28×28 views with their labels. Only NumPy and Pillow are imported here;
matplotlib is never imported (its font folder is found from its package spec) and
scikit-learn only inside the photo renderer.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

NEGATIVE_LABEL = 10  # the "not a digit" class
ONE_ELONGATION = 0.32  # minor/major axis ratio under which a near-vertical view is a "1"
FRAMED_STYLES = ("plain", "box", "ruled", "grid", "underline", "tight", "lowres")
NEGATIVE_KINDS = ("glyph", "scribble", "photo", "empty", "clutter")
# How often each style / kind is drawn by training_views.
STYLE_WEIGHTS = {
    "plain": 0.08,
    "box": 0.22,
    "ruled": 0.14,
    "grid": 0.12,
    "underline": 0.14,
    "tight": 0.15,
    "lowres": 0.15,
}
KIND_WEIGHTS = {"glyph": 0.45, "scribble": 0.2, "photo": 0.1, "empty": 0.15, "clutter": 0.1}
# Touching pairs need digit shapes, so they are a stream of their own (render_views).
PAIR_STYLES = {"plain": 0.4, "box": 0.15, "ruled": 0.15, "underline": 0.1, "tight": 0.2}
PAIR_GAP = (-0.22, 0.0)  # horizontal gap between the two digits, in digit widths
PAIR_TRIES = 4  # new strokes and gap when the two digits did not touch
# A pair's view narrower than this (width / height of its ink) is dropped: preprocessing
# kept one digit of it (a frame took the other), and that must not be taught as "not a
# digit". Touching pairs are wider than tall; few single digits are.
PAIR_MIN_ASPECT = 0.85

# Glyphs a person could read as a digit are never negatives: 0 (O o D Q ° θ Ø ...),
# 1 (I l i j J | / \ ( ) [ ] ' ` , ...), 2 (Z z), 3 (З Э ε), 4 (Ч ч), 5 (S s §),
# 6 (b G б Б Ь δ), 8 (B ß β), 9 (g q); and glyphs whose stem preprocessing may take
# for a rule, leaving a 0 (Φ ф), or that are solid blobs (♦ ♣ ♠).
EXCLUDED_GLYPHS = frozenset(
    "0123456789OoDQIlijJ|/\\()[]{}'`,.:;!¡SsZzBbgqG°θΘØøσδβßεЗзЭэЧчбБЬьвВОо§∫↑↓¬Φф♦♣♠"
)
GLYPHS = tuple(
    "ACEFHKLMNPRTUVWXY"
    "acdefhkmnprtuvwxy"
    "+?#&%@*=$<>~^€£¥¢×÷±≠≈√∑µ✓✗★♥←→"
    "ΔΛΠΣΨΩαλμπωψ"
    "ДЖИЛПШЩЫЯжшщюядлпи"
)
_FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    # STIX (Times-like, with its own italics) ships with matplotlib too: a second family
    # keeps the negatives from being "whatever DejaVu draws".
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
)
RESTROKE_SHARE = 0.5  # of glyph negatives redrawn with one pen width along their skeleton
_FONT_SIZE = 80

Colour = tuple[float, float, float]
_INKS: tuple[Colour, ...] = (
    (0.08, 0.08, 0.1),  # black
    (0.15, 0.15, 0.17),
    (0.1, 0.15, 0.55),  # blue ballpoint
    (0.05, 0.1, 0.35),  # dark blue
    (0.65, 0.1, 0.12),  # red
    (0.1, 0.4, 0.2),  # green
    (0.35, 0.15, 0.45),  # purple
    (0.4, 0.4, 0.42),  # pencil
)
_RULE_COLOURS: tuple[Colour, ...] = (
    (0.55, 0.7, 0.9),  # light blue
    (0.4, 0.55, 0.85),
    (0.7, 0.7, 0.72),  # grey
    (0.5, 0.5, 0.5),
    (0.55, 0.8, 0.6),  # green
    (0.2, 0.2, 0.22),  # dark
)
_BOX_COLOURS: tuple[Colour, ...] = (
    (0.05, 0.05, 0.05),
    (0.05, 0.05, 0.05),
    (0.3, 0.3, 0.3),
    (0.6, 0.6, 0.6),
    (0.9, 0.45, 0.45),  # dropout red
    (0.95, 0.6, 0.3),  # dropout orange
    (0.35, 0.5, 0.85),  # blue
    (0.3, 0.6, 0.4),  # green
)


# --------------------------------------------------------------------------------------
# small image helpers
# --------------------------------------------------------------------------------------
def _resize(array: np.ndarray, size: tuple[int, int], method: int) -> np.ndarray:
    """``array`` (float) resized to (height, width)."""
    h, w = size
    image = Image.fromarray(array.astype(np.float32, copy=False), "F")
    return np.asarray(image.resize((max(1, w), max(1, h)), method), dtype=np.float32)


def _filter(array: np.ndarray, kind: str, size: int) -> np.ndarray:
    """Grey dilation ("max"), erosion ("min") or Gaussian blur ("blur", radius=size)."""
    # In 8 bits: Pillow's Gaussian blur has no float mode, and 1/255 steps are plenty.
    image = Image.fromarray(np.clip(array * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    if kind == "blur":
        image = image.filter(ImageFilter.GaussianBlur(size))
    elif kind == "max":
        image = image.filter(ImageFilter.MaxFilter(size))
    else:
        image = image.filter(ImageFilter.MinFilter(size))
    return np.asarray(image, dtype=np.float32) * np.float32(1 / 255)


def _odd(value: float) -> int:
    return max(1, int(round(value)) | 1)


def _crop_to_ink(array: np.ndarray, level: float = 0.05) -> np.ndarray:
    rows = np.flatnonzero(array.max(axis=1) > level)
    cols = np.flatnonzero(array.max(axis=0) > level)
    if rows.size == 0:
        return array
    return array[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _to_height(coverage: np.ndarray, height: int, aspect: float = 1.0) -> np.ndarray:
    h, w = coverage.shape
    width = max(1, round(w * height / h * aspect))
    return np.clip(_resize(coverage, (height, width), Image.Resampling.BICUBIC), 0, 1)


def _remap(array: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear sample of ``array`` at (rows, cols); outside is 0."""
    h, w = array.shape
    padded = np.pad(array, 1)
    r = np.clip(rows + 1, 0, h + 0.999)
    c = np.clip(cols + 1, 0, w + 0.999)
    r0 = np.minimum(r.astype(np.int32), h)
    c0 = np.minimum(c.astype(np.int32), w)
    fr, fc = r - r0, c - c0
    top = padded[r0, c0] * (1 - fc) + padded[r0, c0 + 1] * fc
    bottom = padded[r0 + 1, c0] * (1 - fc) + padded[r0 + 1, c0 + 1] * fc
    return (top * (1 - fr) + bottom * fr).astype(np.float32)


def _smooth_field(shape: tuple[int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    grid = rng.standard_normal((cells, cells)).astype(np.float32)
    return _resize(grid, shape, Image.Resampling.BICUBIC)


def _jitter(coverage: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A random affine (rotation, shear, aspect) plus a smooth elastic distortion.

    ``strength`` 1 is a hand copying a printed glyph; digits get a fraction of it so that
    they keep their identity.
    """
    h, w = coverage.shape
    pad = max(h, w) // 4 + 2
    coverage = np.pad(coverage, pad)
    h, w = coverage.shape
    angle = math.radians(rng.uniform(-15, 15) * strength)
    shear = rng.uniform(-0.3, 0.3) * strength
    sx = math.exp(rng.uniform(-0.25, 0.25) * strength)
    sy = math.exp(rng.uniform(-0.1, 0.1) * strength)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yc, xc = yy - h / 2, xx - w / 2
    cos, sin = math.cos(angle), math.sin(angle)
    # Inverse map: output pixel → source pixel.
    src_x = (cos * xc + sin * yc) / sx + shear * yc
    src_y = (-sin * xc + cos * yc) / sy
    amplitude = rng.uniform(0.01, 0.045) * strength * max(h, w)
    cells = int(rng.integers(3, 6))
    src_x += amplitude * _smooth_field((h, w), cells, rng)
    src_y += amplitude * _smooth_field((h, w), cells, rng)
    return _crop_to_ink(_remap(coverage, src_y + h / 2, src_x + w / 2))


def _pen(coverage: np.ndarray, rng: np.random.Generator, thin: float, thick: float) -> np.ndarray:
    """Change the stroke width: with probability ``thin`` thinner, ``thick`` thicker."""
    u = rng.random()
    h = max(coverage.shape)
    if u < thin:
        ink = coverage[coverage > 0.05]
        if ink.size:
            level = float(np.quantile(ink, rng.uniform(0.5, 0.75)))
            core = (coverage >= level).astype(np.float32)
            return _filter(core, "blur", max(0.5, h / 120))
    elif u < thin + thick:
        size = _odd(h * rng.uniform(0.03, 0.12))
        if size >= 3:
            pad = size
            return _filter(np.pad(coverage, pad), "max", min(size, 15))
    return coverage


# --------------------------------------------------------------------------------------
# content: digits, glyphs, scribbles
# --------------------------------------------------------------------------------------
def _digit_content(shape: np.ndarray, height: int, rng: np.random.Generator) -> np.ndarray:
    """An MNIST shape as pen coverage ``height`` px tall: bicubic, firm edges, pen width."""
    shape = np.asarray(shape, dtype=np.float32)
    if shape.max() > 1.5:
        shape = shape / 255.0
    crop = _crop_to_ink(shape)
    coverage = _to_height(crop, height, aspect=math.exp(rng.uniform(-0.12, 0.12)))
    coverage = np.clip((coverage - 0.2) / 0.5, 0, 1)
    if rng.random() < 0.5:
        coverage = _jitter(coverage, rng, 0.3)
    return _crop_to_ink(_pen(coverage, rng, thin=0.2, thick=0.25))


def font_folder() -> str:
    """matplotlib's bundled TTF folder, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("matplotlib is not installed: its DejaVu fonts render the negatives")
    return os.path.join(list(spec.submodule_search_locations)[0], "mpl-data", "fonts", "ttf")


@functools.cache
def _font(name: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(os.path.join(font_folder(), name), _FONT_SIZE)


@functools.cache
def _glyphs_in(name: str) -> tuple[str, ...]:
    """The glyphs of GLYPHS that font ``name`` really has (a missing one renders as a box)."""
    font = _font(name)
    missing = font.getmask("\uffff")
    missing_key = (missing.size, bytes(missing))
    kept = []
    for glyph in GLYPHS:
        mask = font.getmask(glyph)
        if (mask.size, bytes(mask)) != missing_key:
            kept.append(glyph)
    return tuple(kept)


def _render_glyph(text: str, font: ImageFont.FreeTypeFont) -> np.ndarray:
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (right - left + 8, bottom - top + 8), 0)
    ImageDraw.Draw(image).text((4 - left, 4 - top), text, fill=255, font=font)
    return _crop_to_ink(np.asarray(image, dtype=np.float32) / 255)


def _skeleton(mask: np.ndarray) -> np.ndarray:
    """Lantuéjoul's morphological skeleton of a boolean mask (a few gaps at most, which
    the pen closes again)."""
    import cv2

    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    image = mask.astype(np.uint8)
    skeleton = np.zeros_like(image)
    while image.any():
        eroded = cv2.erode(image, cross)
        skeleton |= image & (1 - cv2.dilate(eroded, cross))
        image = eroded
    return skeleton.astype(bool)


def _restroke(coverage: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A font glyph as a pen would draw it: its skeleton traced with one round nib
    (3-12% of the glyph's height), instead of the font's thick and thin parts."""
    import cv2

    skeleton = _skeleton(coverage > 0.5)
    if not skeleton.any():
        return coverage
    nib = _odd(max(coverage.shape) * rng.uniform(0.03, 0.12))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (nib, nib))
    stroke = cv2.dilate(np.pad(skeleton, nib).astype(np.uint8), disc).astype(np.float32)
    return _filter(stroke, "blur", max(0.5, nib / 4))


def _glyph_content(height: int, rng: np.random.Generator) -> np.ndarray:
    """A letter or symbol (sometimes two) as if written by hand, ``height`` px tall."""
    name = _FONT_FILES[int(rng.integers(len(_FONT_FILES)))]
    choices = _glyphs_in(name)
    count = 2 if rng.random() < 0.1 else 1
    text = "".join(choices[int(rng.integers(len(choices)))] for _ in range(count))
    coverage = _jitter(_render_glyph(text, _font(name)), rng, 1.0)
    if rng.random() < RESTROKE_SHARE:
        coverage = _crop_to_ink(_restroke(coverage, rng))
        return _crop_to_ink(_to_height(coverage, height))
    # Fonts have thick and thin parts; a pen draws one width. Erode bold faces, dilate
    # light ones a little: more turns a glyph into a blob.
    u = rng.random()
    bold = "Bol" in name  # DejaVu's "Bold", STIX's "Bol"
    if bold and u < 0.6:
        coverage = _filter(coverage, "min", int(rng.choice([3, 5])))
    elif not bold and u < 0.4:
        size = int(rng.choice([3, 3, 5]))
        coverage = _filter(np.pad(coverage, size), "max", size)
    coverage = _crop_to_ink(coverage)
    if coverage.max() <= 0.05:  # eroded away: use the plain glyph
        coverage = _render_glyph(text, _font(name))
    return _crop_to_ink(_pen(_to_height(coverage, height), rng, thin=0.15, thick=0.15))


def _pair_content(
    first: np.ndarray, second: np.ndarray, height: int, rng: np.random.Generator
) -> np.ndarray | None:
    """Two digits written so close that their strokes touch, as one piece of ink: what a
    reader sees when it fails to split a number. None when the strokes do not meet."""
    a = _digit_content(first, height, rng)
    b = _digit_content(second, int(round(height * math.exp(rng.uniform(-0.1, 0.1)))), rng)
    gap = int(round(rng.uniform(*PAIR_GAP) * (a.shape[1] + b.shape[1]) / 2))
    left = a.shape[1] + gap
    rows = max(a.shape[0], b.shape[0])
    canvas = np.zeros((rows, max(a.shape[1], left + b.shape[1])), np.float32)
    shift = int(rng.integers(0, rows - b.shape[0] + 1))
    top = (rows - a.shape[0]) // 2
    canvas[top : top + a.shape[0], : a.shape[1]] = a
    placed_b = np.zeros_like(canvas)
    placed_b[shift : shift + b.shape[0], left : left + b.shape[1]] = b
    if not np.any((canvas > 0.3) & (_filter(placed_b, "max", 3) > 0.3)):
        return None
    return np.maximum(canvas, placed_b)


def render_pair(
    first: np.ndarray, second: np.ndarray, rng: np.random.Generator
) -> Image.Image | None:
    """A raw image of two touching digits (a not-a-digit view), framed as numbers are;
    None when the two did not touch."""
    style = _pick(PAIR_STYLES, rng)
    height = _content_height(style, rng)
    for _ in range(PAIR_TRIES):
        content = _pair_content(first, second, height, rng)
        if content is not None:
            return _render(_SCENES[style](content, rng), rng)
    return None


def _bezier(points: np.ndarray, steps: int = 24) -> np.ndarray:
    t = np.linspace(0, 1, steps)[:, None]
    p0, p1, p2, p3 = points
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def _scribble_content(height: int, rng: np.random.Generator) -> np.ndarray:
    """Pen scribbles: Bezier strokes, loop chains, hatching, zigzags, spirals and coils,
    scratched-out blobs."""
    side = 96
    image = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(image)
    width = int(rng.integers(2, 9))
    variant = int(rng.integers(6))
    strokes: list[np.ndarray] = []
    if variant == 0:  # a few free curves
        for _ in range(int(rng.integers(2, 5))):
            strokes.append(_bezier(rng.uniform(8, side - 8, size=(4, 2))))
    elif variant == 1:  # a chain of loops, like cursive "llll" or "eeee"
        loops = int(rng.integers(3, 7))
        t = np.linspace(0, loops * 2 * np.pi, loops * 24)
        radius = rng.uniform(6, 14)
        x = 10 + t / t[-1] * (side - 20) + radius * np.cos(t + np.pi)
        y = side / 2 + radius * rng.uniform(1, 2.5) * np.sin(t) + rng.uniform(-6, 6)
        strokes.append(np.stack([x, y], axis=1))
    elif variant == 2:  # hatching, sometimes crossed
        angle = rng.uniform(0, np.pi)
        for a in (angle, angle + rng.uniform(1.0, 2.1)) if rng.random() < 0.5 else (angle,):
            direction = np.array([np.cos(a), np.sin(a)])
            normal = np.array([-direction[1], direction[0]])
            lines = int(rng.integers(3, 8))
            for offset in np.linspace(-30, 30, lines):
                centre = side / 2 + normal * offset + rng.normal(0, 2, 2)
                half = rng.uniform(15, 40)
                strokes.append(np.stack([centre - direction * half, centre + direction * half]))
    elif variant == 3:  # zigzag
        teeth = int(rng.integers(4, 9))
        x = np.linspace(8, side - 8, teeth)
        y = np.where(np.arange(teeth) % 2, 20, side - 20) + rng.normal(0, 5, teeth)
        strokes.append(np.stack([x, y], axis=1))
    elif variant == 4:  # a spiral, or a coil drawn out sideways like a telephone cord
        turns = rng.uniform(1.5, 4.5)
        t = np.linspace(0, turns * 2 * np.pi, int(turns * 32))
        radius = np.linspace(rng.uniform(2, 8), rng.uniform(26, 42), t.size)
        drift = t / t[-1] * rng.uniform(0, 50) if rng.random() < 0.4 else np.zeros_like(t)
        x = side / 2 - (drift.max() / 2) + drift + radius * np.cos(t)
        y = side / 2 + radius * np.sin(t) * rng.uniform(0.6, 1.0)
        strokes.append(np.stack([x, y], axis=1))
    else:  # a scratched-out blob: a dense random walk
        steps = rng.normal(0, 9, size=(int(rng.integers(25, 60)), 2))
        walk = np.cumsum(steps, axis=0)
        walk = (walk - walk.mean(axis=0)) / (np.abs(walk).max() + 1e-6) * 36 + side / 2
        strokes.append(walk)
    for stroke in strokes:
        draw.line([tuple(p) for p in stroke], fill=255, width=width, joint="curve")
    coverage = np.asarray(image, dtype=np.float32) / 255
    coverage = _filter(coverage, "blur", 0.6)
    coverage = _jitter(_crop_to_ink(coverage), rng, 0.5)
    return _crop_to_ink(_to_height(coverage, height))


# --------------------------------------------------------------------------------------
# scenes: content placed in a frame, then photographed / scanned
# --------------------------------------------------------------------------------------
@dataclass
class _Scene:
    height: int
    width: int
    ink: np.ndarray | None = None  # content coverage, canvas-sized
    lines: list[tuple[np.ndarray, Colour]] = field(default_factory=list)  # printed, under ink
    final: tuple[int, int] | None = None  # scanned down to this (height, width)
    levels: int | None = None  # grey levels of the scan
    tilt: bool = True  # may be rotated slightly


def _place(content: np.ndarray | None, size: tuple[int, int], top: int, left: int) -> np.ndarray:
    """``content`` pasted at (top, left) of an empty canvas, clipped to it."""
    canvas = np.zeros(size, dtype=np.float32)
    if content is None:
        return canvas
    h, w = content.shape
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + h, size[0]), min(left + w, size[1])
    if t1 > t0 and l1 > l0:
        canvas[t0:t1, l0:l1] = content[t0 - top : t1 - top, l0 - left : l1 - left]
    return canvas


def _line_layer(size: tuple[int, int]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("L", (size[1], size[0]), 0)
    return image, ImageDraw.Draw(image)


def _as_layer(image: Image.Image, strength: float = 1.0) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) * np.float32(strength / 255)


def _digit_height(rng: np.random.Generator) -> int:
    return int(round(math.exp(rng.uniform(math.log(20), math.log(110)))))


def _margin(rng: np.random.Generator, scale: float, low: float, high: float) -> int:
    return int(round(scale * rng.uniform(low, high)))


def _scene_plain(content: np.ndarray | None, rng: np.random.Generator) -> _Scene:
    h, w = content.shape if content is not None else (40, 30)
    m = [_margin(rng, h, 0.08, 0.8) for _ in range(4)]
    size = (h + m[0] + m[1], w + m[2] + m[3])
    return _Scene(*size, ink=_place(content, size, m[0], m[2]))


def _scene_box(content: np.ndarray | None, rng: np.random.Generator) -> _Scene:
    """A form field: a box (1-8 px) around the content, margins from touching to wide.

    The crop around the box ranges from generous to cutting through it, and sometimes
    shows the neighbouring cells of a row of boxes.
    """
    h, w = content.shape if content is not None else (_digit_height(rng), 0)
    thickness = int(rng.choice([1, 1, 2, 2, 2, 3, 3, 4, 5, 6, 8]))
    # Inner margins: negative = the stroke runs into the box line.
    inner = [_margin(rng, h, -0.06, 0.5) if rng.random() < 0.8 else 0 for _ in range(4)]
    inner_h = h + inner[0] + inner[1]
    inner_w = w + inner[2] + inner[3]
    if rng.random() < 0.6:  # square-ish cells, as forms have
        inner_w = max(inner_w, int(inner_h * rng.uniform(0.7, 1.2)))
    inner_h, inner_w = max(inner_h, 8), max(inner_w, 8)
    # Outer crop margins: negative cuts the box (its line or more), positive shows paper.
    outer = []
    for _ in range(4):
        u = rng.random()
        if u < 0.2:
            outer.append(-int(rng.integers(0, thickness + 1)))  # cut within the line
        elif u < 0.5:
            outer.append(int(rng.integers(0, 3)))  # tight to the box
        else:
            outer.append(_margin(rng, h, 0.05, 0.5))
    if content is None:  # an empty box must look like a box: never cut a side away
        outer = [max(m, 0) for m in outer]
    size = (
        inner_h + 2 * thickness + outer[0] + outer[1],
        inner_w + 2 * thickness + outer[2] + outer[3],
    )
    size = (max(size[0], 8), max(size[1], 8))
    box_top, box_left = outer[0], outer[2]
    image, draw = _line_layer(size)
    x0, y0 = box_left, box_top
    x1, y1 = box_left + inner_w + 2 * thickness - 1, box_top + inner_h + 2 * thickness - 1
    if rng.random() < 0.2:
        radius = int(rng.uniform(0.05, 0.25) * inner_h)
        draw.rounded_rectangle((x0, y0, x1, y1), radius, outline=255, width=thickness)
    else:
        draw.rectangle((x0, y0, x1, y1), outline=255, width=thickness)
    if rng.random() < 0.3:  # a row of cells: the top and bottom lines run on, more walls
        draw.rectangle((0, y0, size[1], y0 + thickness - 1), fill=255)
        draw.rectangle((0, y1 - thickness + 1, size[1], y1), fill=255)
        pitch = x1 - x0
        for wall in (x0 - pitch, x1 + pitch):
            draw.rectangle((wall, y0, wall + thickness - 1, y1), fill=255)
    colour = _BOX_COLOURS[int(rng.integers(len(_BOX_COLOURS)))]
    top = box_top + thickness + inner[0]
    left = box_left + thickness + inner[2]
    return _Scene(*size, ink=_place(content, size, top, left), lines=[(_as_layer(image), colour)])


def _rules(
    size: tuple[int, int], spacing: float, offset: float, thickness: int, vertical: bool
) -> Image.Image:
    image, draw = _line_layer(size)
    extent = size[1] if vertical else size[0]
    position = offset % spacing
    while position < extent:
        p = int(round(position))
        if vertical:
            draw.rectangle((p, 0, p + thickness - 1, size[0]), fill=255)
        else:
            draw.rectangle((0, p, size[1], p + thickness - 1), fill=255)
        position += spacing
    return image


def _scene_ruled(
    content: np.ndarray | None, rng: np.random.Generator, grid: bool = False
) -> _Scene:
    """Ruled (or squared) paper: lines at a spacing that makes them cross the content."""
    h, w = content.shape if content is not None else (_digit_height(rng), _digit_height(rng))
    m = [_margin(rng, h, 0.05, 0.7) for _ in range(4)]
    size = (h + m[0] + m[1], w + m[2] + m[3])
    if grid:
        spacing = h * rng.uniform(0.2, 0.8)
    else:
        spacing = h * rng.uniform(0.3, 1.2)
    spacing = max(spacing, 4.0)
    thickness = 1 if rng.random() < 0.65 else int(rng.integers(2, 4))
    if not grid and rng.random() < 0.5:
        # Written on the line: the content's foot sits on a rule.
        offset = m[0] + h + rng.uniform(-0.1, 0.05) * h
    else:
        offset = rng.uniform(0, spacing)
    colour = _RULE_COLOURS[int(rng.integers(len(_RULE_COLOURS)))]
    strength = rng.uniform(0.45, 1.0)
    layer = _as_layer(_rules(size, spacing, offset, thickness, vertical=False), strength)
    if grid:
        if rng.random() < 0.2:  # dot grid: only the crossings
            cols = _as_layer(_rules(size, spacing, rng.uniform(0, spacing), thickness + 1, True))
            rows = _as_layer(_rules(size, spacing, offset, thickness + 1, False))
            layer = cols * rows * strength
        else:
            verticals = _rules(size, spacing, rng.uniform(0, spacing), thickness, vertical=True)
            layer = np.maximum(layer, _as_layer(verticals, strength))
    lines = [(layer, colour)]
    # The red margin line of a notebook; never alone on an empty page, where it would
    # be a "1".
    if not grid and content is not None and rng.random() < 0.2:
        margin_line = _rules(size, size[1] * 4.0, rng.uniform(0, size[1]), 2, vertical=True)
        lines.append((_as_layer(margin_line, strength), (0.85, 0.35, 0.35)))
    return _Scene(*size, ink=_place(content, size, m[0], m[2]), lines=lines)


def _scene_underline(content: np.ndarray | None, rng: np.random.Generator) -> _Scene:
    """A line under the content: printed or drawn, touching it or not, sometimes a comb."""
    h, w = content.shape if content is not None else (_digit_height(rng), _digit_height(rng))
    m = [_margin(rng, h, 0.05, 0.6) for _ in range(4)]
    gap = int(round(h * rng.uniform(-0.15, 0.3)))
    thickness = int(rng.choice([1, 1, 2, 2, 3, 4, 6]))
    m[1] = max(m[1], gap + thickness + 1)
    size = (h + m[0] + m[1], w + m[2] + m[3])
    image, draw = _line_layer(size)
    y = m[0] + h + gap
    if rng.random() < 0.5:  # across the whole crop
        x0, x1 = 0, size[1]
    else:
        x0 = int(m[2] - rng.uniform(0, 0.3) * w)
        x1 = int(m[2] + w + rng.uniform(-0.1, 0.3) * w)
    hand = rng.random() < 0.35
    if hand:  # drawn with the pen: a little slanted and wobbly
        xs = np.linspace(x0, x1, 8)
        ys = y + np.cumsum(rng.normal(0, 0.6, 8)) + np.linspace(0, rng.uniform(-3, 3), 8)
        draw.line(list(zip(xs, ys, strict=True)), fill=255, width=thickness, joint="curve")
    else:
        draw.rectangle((x0, y, x1, y + thickness - 1), fill=255)
        if rng.random() < 0.25:  # a comb field: ticks rising from the line
            pitch = max(int(w + m[2] * rng.uniform(0.5, 1.5)), 6)
            tick = int(h * rng.uniform(0.15, 0.4))
            start = int(m[2] - rng.uniform(0.1, 0.4) * pitch)
            for x in range(start, size[1], pitch):
                draw.rectangle((x, y - tick, x + thickness - 1, y), fill=255)
    ink = _place(content, size, m[0], m[2])
    layer = _as_layer(image)
    if hand:
        return _Scene(*size, ink=np.maximum(ink, layer))
    colour = _BOX_COLOURS[int(rng.integers(len(_BOX_COLOURS)))]
    return _Scene(*size, ink=ink, lines=[(layer, colour)])


def _scene_tight(content: np.ndarray | None, rng: np.random.Generator) -> _Scene:
    """Cropped to the ink (the strokes touch the edges), scanned to 12-40 px."""
    return _scan_of(content, rng, side=int(rng.integers(12, 41)), levels=None)


def _scene_lowres(content: np.ndarray | None, rng: np.random.Generator) -> _Scene:
    """A tiny low-resolution scan, 8-16 px, filling its frame, 4-256 grey levels."""
    levels = int(round(2 ** rng.uniform(2, 8)))
    return _scan_of(content, rng, side=int(rng.integers(8, 17)), levels=levels)


def _scan_of(
    content: np.ndarray | None, rng: np.random.Generator, side: int, levels: int | None
) -> _Scene:
    if content is None:
        content = np.zeros((40, 30), np.float32)
    h, w = content.shape
    # Per-side pad at the final resolution: -1 cuts a pixel of ink, 0 touches, >0 margin.
    pads = [int(rng.choice([-1, 0, 0, 0, 1, 1, 2])) for _ in range(4)]
    # The long side of the frame, pads included, becomes ``side`` px.
    long_pads = pads[0] + pads[1] if h >= w else pads[2] + pads[3]
    scale = (side - long_pads) / max(h, w)
    top, bottom, left, right = (int(round(p / scale)) for p in pads)
    size = (h + top + bottom, w + left + right)
    final_h = max(8, round(size[0] * scale))
    final_w = max(8, round(size[1] * scale))
    # A narrow glyph (a "1") is padded to the 8 px the product needs, centred.
    canvas_w = max(size[1], int(round(final_w / scale)))
    canvas_h = max(size[0], int(round(final_h / scale)))
    extra_w, extra_h = canvas_w - size[1], canvas_h - size[0]
    left += extra_w // 2
    top += extra_h // 2
    size = (canvas_h, canvas_w)
    return _Scene(
        *size,
        ink=_place(content, size, top, left),
        final=(final_h, final_w),
        levels=levels,
        tilt=False,
    )


_SCENES: dict[str, Callable[[np.ndarray | None, np.random.Generator], _Scene]] = {
    "plain": _scene_plain,
    "box": _scene_box,
    "ruled": _scene_ruled,
    "grid": lambda content, rng: _scene_ruled(content, rng, grid=True),
    "underline": _scene_underline,
    "tight": _scene_tight,
    "lowres": _scene_lowres,
}


def _paper(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = size
    tone = rng.uniform(0.78, 1.0)
    tint = np.array([1.0, rng.uniform(0.96, 1.0), rng.uniform(0.88, 1.0)], np.float32)
    yy = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    direction = rng.uniform(-1, 1, size=2)
    light = 1.0 - rng.uniform(0, 0.2) * (yy * direction[0] + xx * direction[1] + 0.7)
    texture = 0.03 * rng.uniform(0, 1) * _smooth_field((h, w), 8, rng)
    grey = np.clip(tone * light + texture, 0, 1)
    return grey[..., None] * tint


def _render(scene: _Scene, rng: np.random.Generator) -> Image.Image:
    """Paper, printed lines, ink, then the camera or scanner: tilt, polarity, blur,
    scan-down, noise, grey levels, JPEG; returned as a grey, RGB or RGBA PIL image."""
    size = (scene.height, scene.width)
    rgb = _paper(size, rng)
    for layer, colour in scene.lines:
        rgb = rgb * (1 - layer[..., None]) + np.asarray(colour, np.float32) * layer[..., None]
    if scene.ink is not None:
        ink = _INKS[int(rng.integers(len(_INKS)))]
        strength = rng.uniform(0.75, 1.0) if ink[0] != 0.4 else rng.uniform(0.5, 0.85)
        alpha = scene.ink[..., None] * np.float32(strength)
        rgb = rgb * (1 - alpha) + np.asarray(ink, np.float32) * alpha
    inverted = rng.random() < 0.2
    if inverted:  # light ink on a dark ground: a chalkboard, an inverted scan
        rgb = 1.0 - rgb
    image = Image.fromarray(np.clip(rgb * 255, 0, 255).astype(np.uint8), "RGB")
    tilted = False
    if scene.tilt and rng.random() < 0.3:
        angle = rng.uniform(-3, 3)
        w, h = image.size
        cut = int(math.ceil(math.tan(math.radians(abs(angle))) * max(w, h) / 2)) + 1
        if min(w, h) - 2 * cut >= 16:
            image = image.rotate(angle, Image.Resampling.BILINEAR)
            image = image.crop((cut, cut, w - cut, h - cut))  # the corner wedges cut away
            tilted = True
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0) * max(image.size) / 80))
    if scene.final is not None:
        image = image.resize((scene.final[1], scene.final[0]), Image.Resampling.BOX)
    if scene.levels is not None:  # a low-resolution scan: grey, few levels
        image = image.convert("L")
    array = np.asarray(image, dtype=np.float32) / 255
    noise = rng.normal(0, rng.uniform(0.0, 0.04), array.shape[:2])
    array = array + (noise if array.ndim == 2 else noise[..., None])
    if scene.levels is not None:
        array = np.round(np.clip(array, 0, 1) * (scene.levels - 1)) / (scene.levels - 1)
    array = np.clip(array * 255 + 0.5, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        return Image.fromarray(array, "L")
    u = rng.random()
    if u < 0.45:
        return _maybe_jpeg(Image.fromarray(array, "RGB").convert("L"), rng)
    if u < 0.9 or scene.final is not None:
        return _maybe_jpeg(Image.fromarray(array, "RGB"), rng)
    rgba = np.concatenate([array, np.full(array.shape[:2] + (1,), 255, np.uint8)], axis=2)
    if u < 0.95 and not (tilted or inverted):
        # Exported from a drawing app: the paper is transparent, only ink and lines remain.
        coverage = scene.ink if scene.ink is not None else np.zeros(array.shape[:2], np.float32)
        for layer, _ in scene.lines:
            coverage = np.maximum(coverage, layer)
        rgba[..., 3] = np.clip(coverage * 255 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(rgba, "RGBA")


def _maybe_jpeg(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    if rng.random() >= 0.25:
        return image
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(40, 95)))
    decoded = Image.open(io.BytesIO(buffer.getvalue()))
    decoded.load()
    return decoded


# --------------------------------------------------------------------------------------
# public renderers
# --------------------------------------------------------------------------------------
def _pick(weights: dict[str, float], rng: np.random.Generator) -> str:
    names = list(weights)
    p = np.asarray([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _content_height(style: str, rng: np.random.Generator) -> int:
    if style in ("tight", "lowres"):
        return int(rng.integers(40, 90))  # scanned down afterwards
    return _digit_height(rng)


def render_framed(
    shape: np.ndarray, rng: np.random.Generator, style: str | None = None
) -> Image.Image:
    """A raw image of digit ``shape`` (28×28-ish, ink high, [0, 1] or uint8) framed in
    ``style`` (one of FRAMED_STYLES; random by STYLE_WEIGHTS when None)."""
    style = style or _pick(STYLE_WEIGHTS, rng)
    if style not in _SCENES:
        raise ValueError(f"unknown style {style!r}; choose from {', '.join(FRAMED_STYLES)}")
    content = _digit_content(shape, _content_height(style, rng), rng)
    return _render(_SCENES[style](content, rng), rng)


PHOTOS = ("china.jpg", "flower.jpg")  # scikit-learn's two sample photographs


@functools.lru_cache(maxsize=len(PHOTOS))
def _photo(name: str) -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return load_sample_image(name)


def _photo_crop(rng: np.random.Generator) -> Image.Image:
    photo = _photo(PHOTOS[int(rng.integers(len(PHOTOS)))])
    side = int(round(math.exp(rng.uniform(math.log(12), math.log(220)))))
    h = min(photo.shape[0], max(8, int(side * math.exp(rng.uniform(-0.4, 0.4)))))
    w = min(photo.shape[1], max(8, side))
    top = int(rng.integers(0, photo.shape[0] - h + 1))
    left = int(rng.integers(0, photo.shape[1] - w + 1))
    image = Image.fromarray(np.ascontiguousarray(photo[top : top + h, left : left + w]), "RGB")
    if rng.random() < 0.4:  # a thumbnail of a bigger region
        scale = rng.uniform(0.15, 0.6)
        image = image.resize(
            (max(8, round(w * scale)), max(8, round(h * scale))), Image.Resampling.BOX
        )
    if rng.random() < 0.5:
        image = image.convert("L")
    return image


def _scene_clutter(rng: np.random.Generator) -> _Scene:
    """Specks, smudges and stray marks: crop marks at two or more corners, dots, dashes."""
    h = _digit_height(rng)
    size = (h + 2 * _margin(rng, h, 0.1, 0.5), int(h * rng.uniform(0.8, 1.6)))
    image, draw = _line_layer(size)
    variant = int(rng.integers(3))
    if variant == 0:  # crop marks / partial box corners, never a single one (a "7")
        corners = rng.permutation(4)[: int(rng.integers(2, 5))]
        arm = int(h * rng.uniform(0.15, 0.4))
        width = int(rng.integers(1, 5))
        inset = int(rng.integers(0, max(1, h // 6)))
        for corner in corners:
            x = inset if corner in (0, 3) else size[1] - 1 - inset
            y = inset if corner in (0, 1) else size[0] - 1 - inset
            dx = arm if corner in (0, 3) else -arm
            dy = arm if corner in (0, 1) else -arm
            draw.line([(x + dx, y), (x, y), (x, y + dy)], fill=255, width=width)
    else:
        for _ in range(int(rng.integers(2, 7))):
            x, y = rng.uniform(0, size[1]), rng.uniform(0, size[0])
            r = rng.uniform(1, max(2, h / 12))
            if variant == 1 or rng.random() < 0.5:
                draw.ellipse((x - r, y - r, x + r, y + r), fill=int(rng.integers(120, 256)))
            else:
                length = rng.uniform(3, h / 4)
                draw.line([(x, y), (x + length, y + rng.uniform(-2, 2))], fill=255, width=2)
    layer = _as_layer(image)
    if rng.random() < 0.3:  # a smudge
        layer = np.maximum(layer, 0.35 * _filter(layer, "blur", h / 10) / max(layer.max(), 1e-3))
    return _Scene(*size, ink=layer)


def render_negative(rng: np.random.Generator, kind: str | None = None) -> Image.Image:
    """A raw image that holds no digit: one of NEGATIVE_KINDS (random when None)."""
    kind = kind or _pick(KIND_WEIGHTS, rng)
    if kind == "glyph" or kind == "scribble":
        style = _pick(STYLE_WEIGHTS, rng)
        make = _glyph_content if kind == "glyph" else _scribble_content
        return _render(_SCENES[style](make(_content_height(style, rng), rng), rng), rng)
    if kind == "photo":
        return _photo_crop(rng)
    if kind == "empty":
        style = ("box", "box", "ruled", "grid", "underline")[int(rng.integers(5))]
        return _render(_SCENES[style](None, rng), rng)
    if kind == "clutter":
        return _render(_scene_clutter(rng), rng)
    raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(NEGATIVE_KINDS)}")


# --------------------------------------------------------------------------------------
# training views, in parallel
# --------------------------------------------------------------------------------------
@dataclass
class SyntheticViews:
    """Rendered views, their labels, the style or kind of each, and what was skipped."""

    views: np.ndarray  # float32 (N, 28, 28)
    labels: np.ndarray  # int64 (N,), NEGATIVE_LABEL for negatives
    sources: np.ndarray  # str (N,): "framed:box", "negative:glyph", ...
    rendered: dict[str, int]  # per source, how many were rendered
    skipped: dict[str, int]  # per source, how many to_mnist rejected
    # Per source, negatives dropped because their view is a lone stroke (looks_like_a_one).
    filtered: dict[str, int] = field(default_factory=dict)


def _item_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, index])


def _render_chunk(task: tuple) -> list[tuple[np.ndarray | None, int, str, str]]:
    from digitctl.errors import ImageError
    from digitctl.imaging import to_mnist

    seed, stream, start, shapes, labels = task
    out = []
    for offset in range(len(labels)):
        rng = _item_rng(seed, stream, start + offset)
        if stream == 0:
            style = _pick(STYLE_WEIGHTS, rng)
            image = render_framed(shapes[offset], rng, style)
            source, label = f"framed:{style}", int(labels[offset])
        elif stream == 2:
            image = render_pair(*shapes[offset], rng)
            source, label = "negative:pair", NEGATIVE_LABEL
            if image is None:  # the two digits did not touch
                out.append((None, label, source, "skipped"))
                continue
        else:
            kind = _pick(KIND_WEIGHTS, rng)
            image = render_negative(rng, kind)
            source, label = f"negative:{kind}", NEGATIVE_LABEL
        try:
            view: np.ndarray | None = to_mnist(image).astype(np.float32, copy=False)
        except ImageError:
            out.append((None, label, source, "skipped"))
            continue
        if label == NEGATIVE_LABEL and (
            looks_like_a_one(view) or (stream == 2 and _ink_aspect(view) < PAIR_MIN_ASPECT)
        ):
            out.append((None, label, source, "filtered"))
            continue
        out.append((view, label, source, ""))
    return out


def _ink_aspect(view: np.ndarray) -> float:
    """Width over height of the ink's bounding box in a view (0 with no ink)."""
    if float(view.max()) <= 0.2:
        return 0.0
    ink = _crop_to_ink(view, level=0.2)
    return ink.shape[1] / ink.shape[0]


def looks_like_a_one(view: np.ndarray) -> bool:
    """True when a 28×28 view is one long, near-vertical stroke: what MNIST calls a "1".

    Preprocessing can reduce a negative to such a stroke (one hatching line, the stem of
    a letter, a remnant of a rule); trained as "not a digit" it would teach the model to
    reject ones, so negatives like that are dropped. Measured on 20,000 MNIST training
    digits, 97% of ones and under 2% of other digits fall below this elongation.
    """
    mass = float(view.sum())
    if mass <= 0:
        return False
    r = np.arange(view.shape[0], dtype=np.float64)
    c = np.arange(view.shape[1], dtype=np.float64)
    cy = float(view.sum(axis=1) @ r) / mass
    cx = float(view.sum(axis=0) @ c) / mass
    dy = (r - cy)[:, None]
    dx = (c - cx)[None, :]
    syy = float((view * dy * dy).sum()) / mass
    sxx = float((view * dx * dx).sum()) / mass
    sxy = float((view * dx * dy).sum()) / mass
    spread = math.hypot((syy - sxx) / 2, sxy)
    major = (syy + sxx) / 2 + spread
    minor = max((syy + sxx) / 2 - spread, 0.0)
    tilt = 0.5 * math.degrees(math.atan2(2 * sxy, syy - sxx))  # 0: vertical
    return major > 0 and math.sqrt(minor / major) < ONE_ELONGATION and abs(tilt) < 45


def render_views(
    x: np.ndarray,
    y: np.ndarray,
    count_framed: int,
    count_negative: int,
    seed: int,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = 250,
    count_pairs: int = 0,
) -> SyntheticViews:
    """Like :func:`training_views`, with the source of each view and the skip counts.

    ``count_pairs`` more negatives are touching pairs of random digits of ``x``
    (:func:`render_pair`); pairs whose strokes do not meet are skipped.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if (count_framed or count_pairs) and len(x) == 0:
        raise ValueError("no digits given to frame")
    picks = np.random.default_rng([seed, 2]).integers(len(x), size=count_framed) if len(x) else []
    tasks = []
    for start in range(0, count_framed, chunk):
        index = picks[start : start + chunk]
        tasks.append((seed, 0, start, x[index], y[index]))
    for start in range(0, count_negative, chunk):
        n = min(chunk, count_negative - start)
        tasks.append((seed, 1, start, [None] * n, [NEGATIVE_LABEL] * n))
    pair_picks = np.random.default_rng([seed, 3]).integers(len(x), size=(count_pairs, 2))
    for start in range(0, count_pairs, chunk):
        index = pair_picks[start : start + chunk]
        tasks.append(
            (
                seed,
                2,
                start,
                list(zip(x[index[:, 0]], x[index[:, 1]], strict=True)),
                [NEGATIVE_LABEL] * len(index),
            )
        )
    total = count_framed + count_negative + count_pairs
    results: list[tuple[np.ndarray | None, int, str, str]] = []

    def collect(part: Sequence[tuple[np.ndarray | None, int, str, str]]) -> None:
        results.extend(part)
        if progress is not None:
            progress(len(results), total)

    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            collect(_render_chunk(task))
    else:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for part in pool.imap(_render_chunk, tasks):
                collect(part)
    counts: dict[str, dict[str, int]] = {"rendered": {}, "skipped": {}, "filtered": {}}
    for _, _, source, dropped in results:
        for key in ("rendered", dropped):
            if key:
                counts[key][source] = counts[key].get(source, 0) + 1
    kept = [r for r in results if r[0] is not None]
    views = (
        np.stack([r[0] for r in kept]).astype(np.float32)
        if kept
        else np.zeros((0, 28, 28), np.float32)
    )
    return SyntheticViews(
        views=views,
        labels=np.asarray([r[1] for r in kept], dtype=np.int64),
        sources=np.asarray([r[2] for r in kept], dtype=str),
        rendered=dict(sorted(counts["rendered"].items())),
        skipped=dict(sorted(counts["skipped"].items())),
        filtered=dict(sorted(counts["filtered"].items())),
    )


def training_views(
    x: np.ndarray,
    y: np.ndarray,
    count_framed: int,
    count_negative: int,
    seed: int,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``count_framed`` framed renders of random digits of ``(x, y)`` and ``count_negative``
    negatives, each through :func:`digitctl.imaging.to_mnist`: (views (N, 28, 28) float32,
    labels (N,) int64, NEGATIVE_LABEL for negatives).

    Framed views come first, then negatives (shuffle before training). Renders that
    to_mnist rejects, and negatives whose view is a lone near-vertical stroke (a "1",
    see :func:`looks_like_a_one`), are left out, so N can be smaller than the counts. The
    result depends on ``seed`` only, not on ``workers`` (each item has its own generator).
    """
    result = render_views(x, y, count_framed, count_negative, seed, workers, progress)
    return result.views, result.labels
