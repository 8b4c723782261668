"""Benchmark test sets for framing, not-a-digit and number reading (issues 11 and 12).

Every digit comes from the MNIST **test** images; nothing here imports the training-data
generator (``digitctl/synth.py``), so the measuring stick is independent of what the model
was trained on. The renderers vary what real inputs vary: size, stroke thickness, margins,
polarity, ink and paper colours, lighting, noise, blur, rotation and JPEG quality.

Single-glyph sets (label: the digit as a string):
- ``plain``: a phone photo or scan of one digit on plain paper (the control row);
- ``box``: the digit in a drawn box, 1-8 px lines, margins from touching to generous, the
  box sometimes cut by the image edge, sometimes neighbouring form cells;
- ``ruled``: notebook paper (grey or blue rules, sometimes a red margin) crossing the digit;
- ``grid``: squared, engineering or dot-grid paper;
- ``underline``: a pen stroke or a printed rule under the digit, touching it or not;
- ``tight``: cropped to the ink (strokes touch the edges), 12-40 px, both polarities;
- ``tiny``: 8x8 to 16x16, the digit filling the frame, 4-256 grey levels, both polarities.

``non_digit`` (label: null): letters and symbols from fonts (not DejaVu where others exist)
and pen-drawn from jittered stroke templates, scribbles, crops of natural photos, and
empty boxes, rules and grids, each shown in one of the presentations above.

Number sets (label: the digit string, lines joined by "\\n"):
``numbers_canvas`` (transparent RGBA, gaps 0.1-0.6 digit widths), ``numbers_paper`` (ink
on unevenly lit paper, JPEG, slight rotation), ``numbers_touching`` (gaps -0.15 to 0.03),
``numbers_framed`` (box, underline or rules around the number), ``numbers_two_lines``.
A "digit width" is 0.65 of the digit height (an average MNIST digit's ink aspect).

Batch sets for bench_batch.py: ``batch_photos`` (160-640 px JPEG photos of one digit) and
``batch_numbers`` (2-6 digits, canvas and paper, separated and touching).

Each set is written once to ``.bench/sets/<name>-n<count>-s<seed>-v<version>/`` (image
files plus ``labels.json``) and reused. Item ``i`` depends only on (seed, set name, i),
so a bigger set starts with the items of a smaller one.

    python benchmarks/framing_sets.py [--sets all] [--count 500] [--seed 0] [--sheet]
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import shutil
import sys
import zlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = ROOT.parent / "shared" / "data" / "mnist"
DEFAULT_ROOT = ROOT / ".bench" / "sets"
VERSION = 1  # bump when a renderer changes, so cached sets are rebuilt

FRAMING_SETS = ("plain", "box", "ruled", "grid", "underline", "tight", "tiny")
NON_DIGIT_SET = "non_digit"
NUMBER_SETS = (
    "numbers_canvas",
    "numbers_paper",
    "numbers_touching",
    "numbers_framed",
    "numbers_two_lines",
)
BATCH_SETS = ("batch_photos", "batch_numbers")
ALL_SETS = (*FRAMING_SETS, NON_DIGIT_SET, *NUMBER_SETS, *BATCH_SETS)

DIGIT_WIDTH = 0.65  # of the digit height: the unit of the gaps between digits

# Letters that are not digit-like (no O o D Q I l i j J S s Z z B b g q G) and symbols
# that are not (no / \ | ( ) [ ] ! $ - _ which read as 1, 5 or a bare line).
LETTERS = "ACEFHKLMNPRTUVWXYacdefhkmnprtuvwxy"
SYMBOLS = "+?#&%@*=<>~^€£¥÷×∞πΩ✓★♥→±≠©®¶"

PEN_INKS = {
    "black": (0.08, 0.08, 0.1),
    "blue": (0.1, 0.18, 0.55),
    "navy": (0.05, 0.08, 0.3),
    "red": (0.7, 0.1, 0.12),
    "green": (0.08, 0.4, 0.2),
    "pencil": (0.38, 0.38, 0.4),
}
LIGHT_INKS = {
    "chalk": (0.92, 0.92, 0.9),
    "yellow_chalk": (0.95, 0.9, 0.55),
    "light_blue": (0.7, 0.85, 1.0),
}
CANVAS_INKS = {
    "black": (0.0, 0.0, 0.0),
    "white": (1.0, 1.0, 1.0),
    "blue": (0.08, 0.16, 0.8),
    "red": (0.8, 0.12, 0.12),
    "green": (0.1, 0.55, 0.2),
}
RULE_COLOURS = {
    "grey": (0.6, 0.6, 0.62),
    "light_grey": (0.78, 0.78, 0.8),
    "light_blue": (0.6, 0.74, 0.95),
    "blue": (0.35, 0.5, 0.85),
    "green": (0.55, 0.8, 0.62),
    "orange": (0.95, 0.7, 0.45),
}
BOX_COLOURS = {
    "black": (0.1, 0.1, 0.1),
    "grey": (0.45, 0.45, 0.48),
    "blue": (0.3, 0.45, 0.85),
    "red": (0.85, 0.3, 0.3),
    "light_grey": (0.72, 0.72, 0.74),
}


# --------------------------------------------------------------------------------------
# glyph shapes: float arrays in [0, 1], 1 = ink, cropped to the ink
# --------------------------------------------------------------------------------------
def _crop_to_ink(shape: np.ndarray, level: float = 0.05) -> np.ndarray:
    rows = np.where(shape.max(axis=1) > level)[0]
    cols = np.where(shape.max(axis=0) > level)[0]
    if len(rows) == 0:
        return np.zeros((1, 1), np.float32)
    return shape[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _resize(shape: np.ndarray, size: tuple[int, int], method=Image.Resampling.BICUBIC):
    """``shape`` resized to (height, width), float in [0, 1]."""
    image = Image.fromarray(shape.astype(np.float32), "F")
    out = np.asarray(image.resize((max(1, size[1]), max(1, size[0])), method))
    return np.clip(out, 0, 1)


def glyph(shape: np.ndarray, height: int, stroke: float = 0.0) -> np.ndarray:
    """``shape`` cropped to its ink, scaled to ``height`` px, edges firmed and anti-aliased.

    ``stroke`` widens (> 0) or thins (< 0) every stroke by that fraction of the height on
    each side, through a signed distance field, so thickness varies the way pens do.
    """
    from scipy.ndimage import distance_transform_edt

    crop = _crop_to_ink(shape)
    h, w = crop.shape
    height = max(2, int(height))
    width = max(1, round(w * height / h))
    big = _resize(crop, (height, width))
    pad = max(2, int(abs(stroke) * height) + 2)
    mask = np.pad(big > 0.45, pad)
    if not mask.any():
        return big
    inside = distance_transform_edt(mask)
    outside = distance_transform_edt(~mask)
    sdf = np.where(mask, inside - 0.5, 0.5 - outside)
    coverage = np.clip(sdf + stroke * height + 0.5, 0, 1).astype(np.float32)
    if coverage.sum() < 0.35 * mask.sum():  # thinned to nothing: keep the pen as it was
        coverage = np.clip(sdf + 0.5, 0, 1).astype(np.float32)
    return _crop_to_ink(coverage, 0.3)


def random_stroke(rng: np.random.Generator) -> float:
    """A pen width change: thin fineliners to fat markers (MNIST's own stroke is ~0)."""
    return float(
        rng.choice([rng.uniform(-0.035, -0.01), rng.uniform(-0.01, 0.02), rng.uniform(0.02, 0.06)])
    )


def _stamp(layer: np.ndarray, shape: np.ndarray, top: int, left: int) -> None:
    """Max-composite ``shape`` onto ``layer`` at (top, left), clipped to the layer."""
    h, w = shape.shape
    t0, l0 = max(0, top), max(0, left)
    t1, l1 = min(layer.shape[0], top + h), min(layer.shape[1], left + w)
    if t1 <= t0 or l1 <= l0:
        return
    region = shape[t0 - top : t1 - top, l0 - left : l1 - left]
    np.maximum(layer[t0:t1, l0:l1], region, out=layer[t0:t1, l0:l1])


def _smooth_noise(size: tuple[int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    grid = rng.random((max(2, cells), max(2, cells))).astype(np.float32)
    return _resize(grid, size)


# --------------------------------------------------------------------------------------
# non-digit shapes
# --------------------------------------------------------------------------------------
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")


@cache
def font_files() -> tuple[tuple[str, frozenset[int]], ...]:
    """(path, code points) of the installed fonts, DejaVu only when nothing else exists."""
    from fontTools.ttLib import TTFont

    found = []
    for base in FONT_DIRS:
        for path in sorted(Path(base).rglob("*")):
            if path.suffix.lower() not in (".ttf", ".otf"):
                continue
            if any(skip in path.name for skip in ("StandardSymbols", "D050000L", "Math")):
                continue  # symbol-only fonts: their "letters" are Greek or dingbats
            try:
                cmap = TTFont(str(path), lazy=True)["cmap"].getBestCmap() or {}
            except Exception:  # an unreadable font file is simply not used
                continue
            found.append((str(path), frozenset(cmap)))
    others = [f for f in found if "DejaVu" not in f[0]]
    if others:
        return tuple(others)
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return tuple(found) or ((str(dejavu), frozenset(range(32, 0x2800))),)


# Sets whose items depend on the installed fonts: labels.json records them, and the set is
# rendered again when they change (installing Debian's chromium, which CI does, adds
# Liberation fonts to a machine that had DejaVu alone).
FONT_SETS = frozenset({NON_DIGIT_SET})


def font_names() -> list[str]:
    """The font files the font letters and symbols are drawn from, by name."""
    return sorted(Path(path).stem for path, _ in font_files())


def dejavu_only() -> bool:
    """True when DejaVu is the only font family here: the family the bundled model's
    negatives were drawn from, so font letters would be in fonts it has seen."""
    return all("DejaVu" in name for name in font_names())


def font_shape(char: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """``char`` rendered at ~128 px from a random installed font that has it."""
    fonts = [path for path, points in font_files() if ord(char) in points]
    path = fonts[int(rng.integers(len(fonts)))] if fonts else font_files()[0][0]
    font = ImageFont.truetype(path, 128)
    image = Image.new("L", (256, 256), 0)
    ImageDraw.Draw(image).text((40, 20), char, font=font, fill=255)
    shape = np.asarray(image, np.float32) / 255
    return _crop_to_ink(shape), Path(path).stem


def _ellipse(cx: float, cy: float, rx: float, ry: float, start=0.0, end=360.0, n=24):
    t = np.radians(np.linspace(start, end, n))
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in t]


def _star(n=5):
    points = []
    for k in range(2 * n + 1):
        r = 0.5 if k % 2 == 0 else 0.2
        a = np.pi * k / n - np.pi / 2
        points.append((0.5 + r * np.cos(a), 0.5 + r * np.sin(a)))
    return points


# Strokes in a unit box, y down; a stroke is a list of points (drawn as a polyline).
PEN_TEMPLATES: dict[str, list[list[tuple[float, float]]]] = {
    "A": [[(0, 1), (0.5, 0), (1, 1)], [(0.22, 0.6), (0.78, 0.6)]],
    "K": [[(0.1, 0), (0.1, 1)], [(0.9, 0), (0.1, 0.55)], [(0.35, 0.38), (0.95, 1)]],
    "M": [[(0, 1), (0.1, 0), (0.5, 0.7), (0.9, 0), (1, 1)]],
    "N": [[(0.1, 1), (0.1, 0), (0.9, 1), (0.9, 0)]],
    "H": [[(0.1, 0), (0.1, 1)], [(0.9, 0), (0.9, 1)], [(0.1, 0.5), (0.9, 0.5)]],
    "W": [[(0, 0), (0.25, 1), (0.5, 0.35), (0.75, 1), (1, 0)]],
    "X": [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],
    "V": [[(0, 0), (0.5, 1), (1, 0)]],
    "Y": [[(0, 0), (0.5, 0.5), (1, 0)], [(0.5, 0.5), (0.5, 1)]],
    "E": [[(0.9, 0), (0.1, 0), (0.1, 1), (0.9, 1)], [(0.1, 0.5), (0.7, 0.5)]],
    "F": [[(0.9, 0), (0.1, 0), (0.1, 1)], [(0.1, 0.5), (0.7, 0.5)]],
    "T": [[(0, 0), (1, 0)], [(0.5, 0), (0.5, 1)]],
    "L": [[(0.15, 0), (0.15, 1), (0.9, 1)]],
    "R": [
        [(0.1, 1), (0.1, 0), (0.65, 0), (0.9, 0.12), (0.9, 0.38), (0.65, 0.5), (0.1, 0.5)],
        [(0.45, 0.5), (0.95, 1)],
    ],
    "P": [[(0.15, 1), (0.15, 0), (0.6, 0), (0.85, 0.12), (0.85, 0.38), (0.6, 0.5), (0.15, 0.5)]],
    "U": [[(0.1, 0), (0.1, 0.75), (0.3, 1), (0.7, 1), (0.9, 0.75), (0.9, 0)]],
    "h": [[(0.15, 0), (0.15, 1)], [(0.15, 0.6), (0.4, 0.42), (0.7, 0.42), (0.85, 0.6), (0.85, 1)]],
    "y": [[(0.1, 0), (0.5, 0.6)], [(0.9, 0), (0.5, 0.65), (0.3, 1)]],
    "k": [[(0.15, 0), (0.15, 1)], [(0.8, 0.35), (0.15, 0.7)], [(0.4, 0.58), (0.85, 1)]],
    "n": [
        [(0.15, 0.3), (0.15, 1)],
        [(0.15, 0.5), (0.35, 0.32), (0.65, 0.3), (0.85, 0.5), (0.85, 1)],
    ],
    "m": [
        [(0.05, 0.3), (0.05, 1)],
        [(0.05, 0.45), (0.25, 0.3), (0.45, 0.45), (0.5, 1)],
        [(0.5, 0.45), (0.72, 0.3), (0.95, 0.45), (0.95, 1)],
    ],
    "r": [[(0.2, 0.3), (0.2, 1)], [(0.2, 0.55), (0.45, 0.33), (0.85, 0.35)]],
    "u": [[(0.15, 0.3), (0.15, 0.8), (0.35, 1), (0.65, 1), (0.85, 0.8)], [(0.85, 0.3), (0.85, 1)]],
    "w": [[(0, 0.3), (0.25, 1), (0.5, 0.5), (0.75, 1), (1, 0.3)]],
    "x": [[(0.1, 0.3), (0.9, 1)], [(0.9, 0.3), (0.1, 1)]],
    "e": [
        [
            (0.15, 0.62),
            (0.85, 0.62),
            (0.8, 0.38),
            (0.5, 0.28),
            (0.2, 0.42),
            (0.15, 0.68),
            (0.3, 0.95),
            (0.6, 1),
            (0.88, 0.9),
        ]
    ],
    "+": [[(0.5, 0.1), (0.5, 0.9)], [(0.1, 0.5), (0.9, 0.5)]],
    "#": [
        [(0.05, 0.35), (0.95, 0.35)],
        [(0.05, 0.65), (0.95, 0.65)],
        [(0.4, 0.05), (0.3, 0.95)],
        [(0.72, 0.05), (0.62, 0.95)],
    ],
    "*": [[(0.5, 0), (0.5, 1)], [(0.07, 0.25), (0.93, 0.75)], [(0.93, 0.25), (0.07, 0.75)]],
    "=": [[(0.05, 0.35), (0.95, 0.35)], [(0.05, 0.65), (0.95, 0.65)]],
    "?": [
        [(0.2, 0.25), (0.3, 0.05), (0.6, 0), (0.8, 0.15), (0.75, 0.4), (0.5, 0.55), (0.5, 0.75)],
        [(0.5, 0.93), (0.51, 0.97)],
    ],
    "&": [
        [
            (0.95, 1),
            (0.25, 0.38),
            (0.28, 0.1),
            (0.45, 0),
            (0.62, 0.12),
            (0.55, 0.35),
            (0.12, 0.68),
            (0.2, 0.95),
            (0.5, 1),
            (0.9, 0.55),
        ]
    ],
    "%": [[(0.9, 0), (0.1, 1)], _ellipse(0.2, 0.18, 0.15, 0.16), _ellipse(0.8, 0.82, 0.15, 0.16)],
    "check": [[(0, 0.55), (0.35, 1), (1, 0)]],
    "arrow": [[(0, 0.5), (1, 0.5)], [(0.7, 0.2), (1, 0.5), (0.7, 0.8)]],
    "star": [_star()],
    "triangle": [[(0.5, 0), (1, 1), (0, 1), (0.5, 0)]],
    "heart": [
        [(0.5, 1), (0.1, 0.55)]
        + _ellipse(0.28, 0.3, 0.22, 0.25, 150, 340, 12)
        + _ellipse(0.72, 0.3, 0.22, 0.25, 200, 390, 12)
        + [(0.9, 0.55), (0.5, 1)]
    ],
    "smiley": [
        _ellipse(0.5, 0.5, 0.5, 0.5, 0, 360, 32),
        [(0.33, 0.33), (0.34, 0.36)],
        [(0.67, 0.33), (0.66, 0.36)],
        _ellipse(0.5, 0.55, 0.28, 0.22, 20, 160, 12),
    ],
    "pi": [[(0, 0.15), (1, 0.12)], [(0.3, 0.14), (0.22, 1)], [(0.7, 0.13), (0.78, 1)]],
}


def pen_shape(
    strokes, rng: np.random.Generator, size: int = 128, widths=(0.04, 0.16)
) -> np.ndarray:
    """Strokes drawn like a pen would: jittered points, a random slant and aspect, round caps."""
    slant = rng.uniform(-0.3, 0.3)
    aspect = rng.uniform(0.65, 1.35)
    angle = np.radians(rng.uniform(-12, 12))
    jitter = rng.uniform(0.0, 0.045)
    cos, sin = np.cos(angle), np.sin(angle)
    width = max(2, round(size * rng.uniform(*widths)))
    image = Image.new("L", (2 * size, 2 * size), 0)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        points = np.asarray(stroke, np.float64) + rng.normal(0, jitter, (len(stroke), 2))
        x = (points[:, 0] - 0.5) * aspect + slant * (points[:, 1] - 0.5)
        y = points[:, 1] - 0.5
        xs, ys = cos * x - sin * y, sin * x + cos * y
        xy = [(size + size * 0.8 * a, size + size * 0.8 * b) for a, b in zip(xs, ys, strict=True)]
        draw.line(xy, fill=255, width=width, joint="curve")
        r = width / 2
        for px, py in (xy[0], xy[-1]):
            draw.ellipse((px - r, py - r, px + r, py + r), fill=255)
    soft = image.filter(ImageFilter.GaussianBlur(1.0))
    return _crop_to_ink(np.asarray(soft, np.float32) / 255)


def scribble_shape(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A scribble: a smooth random loop, a zigzag crossing-out, hatching or a spiral."""
    kind = str(rng.choice(["loops", "zigzag", "hatch", "spiral", "tangle"]))
    if kind == "loops":
        t = np.linspace(0, 1, 80)
        k = int(rng.integers(3, 7))
        xs = 0.5 + sum(
            rng.uniform(-0.25, 0.25) * np.sin(2 * np.pi * (j + 1) * t + rng.uniform(0, 6))
            for j in range(k)
        )
        ys = 0.5 + sum(
            rng.uniform(-0.25, 0.25) * np.cos(2 * np.pi * (j + 1) * t + rng.uniform(0, 6))
            for j in range(k)
        )
        strokes = [list(zip(xs, ys, strict=True))]
    elif kind == "zigzag":
        n = int(rng.integers(5, 14))
        strokes = [[(i / (n - 1), float(i % 2) * rng.uniform(0.6, 1)) for i in range(n)]]
    elif kind == "hatch":
        n = int(rng.integers(4, 9))
        strokes = [[(i / n, 0.0), (i / n + 0.3, 1.0)] for i in range(n)]
        if rng.random() < 0.5:
            strokes += [[(0.0, i / n), (1.0, i / n + 0.2)] for i in range(n)]
    elif kind == "spiral":
        t = np.linspace(0, rng.uniform(3, 6) * np.pi, 90)
        r = 0.05 + 0.45 * t / t.max()
        strokes = [list(zip(0.5 + r * np.cos(t), 0.5 + r * np.sin(t), strict=True))]
    else:
        strokes = [
            [tuple(p) for p in rng.uniform(0, 1, (int(rng.integers(3, 6)), 2))]
            for _ in range(int(rng.integers(2, 5)))
        ]
    return pen_shape(strokes, rng, widths=(0.02, 0.08)), f"scribble_{kind}"


@cache
def _photos() -> tuple[np.ndarray, ...]:
    """Natural photos for crops (not china.jpg, which the training data uses).

    scikit-learn's flower.jpg and matplotlib's grace_hopper.jpg, read as files (importing
    sklearn.datasets alone takes seconds).
    """
    from importlib.util import find_spec

    def package_file(package: str, relative: str) -> Path:
        spec = find_spec(package)
        return Path(spec.origin).parent / relative if spec and spec.origin else Path(relative)

    flower = package_file("sklearn", "datasets/images/flower.jpg")
    hopper = package_file("matplotlib", "mpl-data/sample_data/grace_hopper.jpg")
    if flower.exists() and hopper.exists():
        return tuple(np.asarray(Image.open(p).convert("RGB")) for p in (flower, hopper))
    import matplotlib.cbook
    from sklearn.datasets import load_sample_image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        return load_sample_image("flower.jpg"), np.asarray(Image.open(handle).convert("RGB"))


def photo_crop(rng: np.random.Generator) -> tuple[bytes, str]:
    """A crop of a natural photo, 28-320 px, as JPEG or PNG, colour or grey."""
    photos = _photos()
    which = int(rng.integers(len(photos)))
    photo = photos[which]
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.08, 0.9))
    ch = max(8, int(side * rng.uniform(0.7, 1.3)))
    cw = max(8, int(side * rng.uniform(0.7, 1.3)))
    ch, cw = min(ch, h), min(cw, w)
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    image = Image.fromarray(photo[top : top + ch, left : left + cw])
    out = int(rng.integers(28, 321))
    scale = out / max(ch, cw)
    image = image.resize(
        (max(8, round(cw * scale)), max(8, round(ch * scale))), Image.Resampling.LANCZOS
    )
    if rng.random() < 0.3:
        image = image.convert("L")
    if rng.random() < 0.6:
        return _encode(image, "JPEG", quality=int(rng.integers(50, 95))), "jpg"
    return _encode(image, "PNG"), "png"


# --------------------------------------------------------------------------------------
# scenes: ink and line layers on a padded world, then one of the media below
# --------------------------------------------------------------------------------------
@dataclass
class Scene:
    """Coverage layers of an image (height, width) drawn on a world padded by ``pad``."""

    height: int
    width: int
    pad: int = 0
    ink: list[np.ndarray] = field(default_factory=list)  # one layer per text line
    lines: list[tuple[np.ndarray, tuple[float, float, float]]] = field(default_factory=list)

    @classmethod
    def empty(cls, height: int, width: int, rotate: bool = True) -> Scene:
        pad = int(0.12 * max(height, width)) + 4 if rotate else 0
        return cls(height=height, width=width, pad=pad)

    def layer(self) -> np.ndarray:
        return np.zeros((self.height + 2 * self.pad, self.width + 2 * self.pad), np.float32)

    def add_ink(self, shape: np.ndarray, top: int, left: int, line: int = 0) -> None:
        while len(self.ink) <= line:
            self.ink.append(self.layer())
        _stamp(self.ink[line], shape, top + self.pad, left + self.pad)

    def draw_lines(self, colour, draw_fn) -> None:
        """``draw_fn(draw, offset)`` draws on an L image of the world; kept as one layer."""
        image = Image.new("L", (self.width + 2 * self.pad, self.height + 2 * self.pad), 0)
        draw_fn(ImageDraw.Draw(image), self.pad)
        self.lines.append((np.asarray(image, np.float32) / 255, colour))


def _rotated(layer: np.ndarray, angle: float, pad: int, size: tuple[int, int]) -> np.ndarray:
    if angle:
        layer = np.asarray(Image.fromarray(layer, "F").rotate(angle, Image.Resampling.BILINEAR))
    return np.clip(layer[pad : pad + size[0], pad : pad + size[1]], 0, 1)


def _boxes(layers: list[np.ndarray]) -> list[list[int]]:
    boxes = []
    for layer in layers:
        rows = np.where(layer.max(axis=1) > 0.3)[0]
        cols = np.where(layer.max(axis=0) > 0.3)[0]
        if len(rows):
            boxes.append([int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1])
    return boxes


def _lighting(size: tuple[int, int], rng: np.random.Generator, strength: float) -> np.ndarray:
    h, w = size
    yy = np.linspace(-0.5, 0.5, 16, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, 16, dtype=np.float32)[None, :]
    d = rng.uniform(-1, 1, 2)
    gradient = yy * d[0] + xx * d[1]
    gradient = (gradient - gradient.min()) / (np.ptp(gradient) + 1e-6)
    light = 1 - strength * rng.uniform(0.3, 1) * gradient
    light *= 1 - strength * rng.uniform(0, 0.6) * (yy**2 + xx**2) / 0.5
    if rng.random() < 0.25:  # a soft shadow band (a hand or the phone)
        light *= 1 - rng.uniform(0.1, 0.3) * (np.abs(xx - rng.uniform(-0.5, 0.5)) < 0.2)
    return _resize(light.astype(np.float32), (h, w), Image.Resampling.BILINEAR)


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _paper_rgb(size, rng, polarity: str) -> np.ndarray:
    h, w = size
    if polarity == "dark":
        base = rng.uniform(0.8, 0.98)
        tints = [(1, 1, 1), (1, 0.97, 0.88), (0.96, 0.96, 0.96), (0.95, 0.97, 1), (1, 0.96, 0.72)]
    else:
        base = rng.uniform(0.08, 0.35)
        tints = [(1, 1, 1), (0.55, 0.85, 0.65), (0.6, 0.7, 1.0), (0.9, 0.85, 0.8)]
    tint = np.array(tints[int(rng.integers(len(tints)))], np.float32)
    texture = _smooth_noise(size, int(rng.integers(4, 30)), rng) - 0.5
    grey = base * (1 + rng.uniform(0.02, 0.12) * texture)
    return grey[..., None] * tint


def _ink_colour(rng, polarity: str) -> tuple[float, float, float]:
    inks = PEN_INKS if polarity == "dark" else LIGHT_INKS
    names = list(inks)
    weights = np.array([4, 3, 1, 1, 1, 1][: len(names)], float) if polarity == "dark" else None
    if weights is not None:
        weights /= weights.sum()
    colour = np.array(inks[str(rng.choice(names, p=weights))]) * rng.uniform(0.85, 1.15)
    return tuple(float(c) for c in np.clip(colour, 0, 1))


def render_scene(
    scene: Scene,
    rng: np.random.Generator,
    medium: str,
    polarity: str = "dark",
    ink: tuple[float, float, float] | None = None,
) -> tuple[bytes, str, list[list[int]]]:
    """The encoded image of ``scene``, its extension, and each ink layer's box.

    Media: ``photo`` (phone photo: JPEG 35-95, rotation, uneven light, noise, blur),
    ``scan`` (flat, nearly straight, PNG or high-quality JPEG, sometimes greyscale) and
    ``canvas`` (browser drawing: RGBA on transparent; lines drawn in their own colour).
    """
    size = (scene.height, scene.width)
    angle = {"photo": rng.uniform(-5, 5), "scan": rng.uniform(-1.2, 1.2), "canvas": 0.0}[medium]
    inks = [_rotated(layer, angle, scene.pad, size) for layer in scene.ink] or [
        np.zeros(size, np.float32)
    ]
    lines = [(_rotated(layer, angle, scene.pad, size), colour) for layer, colour in scene.lines]
    boxes = _boxes(inks)
    ink_all = np.max(np.stack(inks), axis=0)
    if medium == "canvas":
        colour = ink or CANVAS_INKS[str(rng.choice(list(CANVAS_INKS)))]
        layers = [(a, c) for a, c in lines] + [(ink_all, colour)]
        alpha = 1 - np.prod([1 - a for a, _ in layers], axis=0)
        weight = sum(a for a, _ in layers) + 1e-6
        rgb = sum(a[..., None] * np.array(c, np.float32) for a, c in layers) / weight[..., None]
        rgba = np.zeros((*size, 4), np.uint8)
        rgba[..., :3] = np.where(alpha[..., None] > 0, np.clip(rgb * 255, 0, 255), 0)
        rgba[..., 3] = np.clip(alpha * 255, 0, 255)
        return _encode(Image.fromarray(rgba, "RGBA"), "PNG"), "png", boxes
    rgb = _paper_rgb(size, rng, polarity)
    for layer, colour in lines:
        rgb = rgb * (1 - layer[..., None]) + np.array(colour, np.float32) * layer[..., None]
    colour = ink or _ink_colour(rng, polarity)
    opacity = rng.uniform(0.8, 1.0)
    a = (ink_all * opacity)[..., None]
    rgb = rgb * (1 - a) + np.array(colour, np.float32) * a
    if medium == "photo":
        rgb = rgb * _lighting(size, rng, rng.uniform(0.15, 0.5))[..., None]
        rgb = rgb + rng.normal(0, rng.uniform(0.01, 0.05), rgb.shape).astype(np.float32)
    else:
        rgb = rgb + rng.normal(0, rng.uniform(0.0, 0.02), rgb.shape).astype(np.float32)
    image = Image.fromarray(np.clip(rgb * 255, 0, 255).astype(np.uint8), "RGB")
    blur = rng.uniform(0.3, 1.3) if medium == "photo" else rng.uniform(0, 0.6)
    if blur > 0.2 and min(size) > 24:
        image = image.filter(ImageFilter.GaussianBlur(blur * min(size) / 300 + 0.2))
    if rng.random() < (0.15 if medium == "photo" else 0.4):
        image = image.convert("L")
    if medium == "photo" or rng.random() < 0.3:
        low = 35 if medium == "photo" else 75
        return _encode(image, "JPEG", quality=int(rng.integers(low, 96))), "jpg", boxes
    return _encode(image, "PNG"), "png", boxes


# --------------------------------------------------------------------------------------
# single-glyph presentations: (shape or None, rng) -> (bytes, ext, params)
# --------------------------------------------------------------------------------------
def _digit_height(rng, low=24, high=160) -> int:
    return int(np.exp(rng.uniform(np.log(low), np.log(high))))


def _margins(rng, h: int, low=0.2, high=1.5) -> tuple[int, int, int, int]:
    return tuple(int(h * rng.uniform(low, high)) for _ in range(4))  # top, right, bottom, left


def _medium(rng, canvas: float = 0.0) -> str:
    r = rng.random()
    return "canvas" if r < canvas else ("photo" if r < canvas + (1 - canvas) * 0.65 else "scan")


def present_plain(shape, rng):
    h = _digit_height(rng, 20, 220)
    g = glyph(shape, h, random_stroke(rng)) if shape is not None else np.zeros((h, h // 2))
    top, right, bottom, left = _margins(rng, h, 0.1, 1.2)
    scene = Scene.empty(top + g.shape[0] + bottom, left + g.shape[1] + right)
    scene.add_ink(g, top, left)
    medium = _medium(rng, 0.15)
    return (*render_scene(scene, rng, medium)[:2], {"medium": medium, "digit_height": h})


def present_box(shape, rng):
    """A form field: the digit in a box, touching it or far from it, cut by the edges."""
    h = _digit_height(rng, 20, 150)
    g = glyph(shape, h, random_stroke(rng)) if shape is not None else np.zeros((h, int(h * 0.6)))
    gh, gw = g.shape
    thick = int(rng.integers(1, 9))
    kind = str(rng.choice(["touching", "small", "medium", "generous"], p=[0.2, 0.3, 0.3, 0.2]))
    low, high = {
        "touching": (-0.04, 0.02),
        "small": (0.02, 0.15),
        "medium": (0.15, 0.4),
        "generous": (0.4, 0.9),
    }[kind]
    margin = [int(h * rng.uniform(low, high)) for _ in range(4)]  # top, right, bottom, left
    # The square-ish inner box of a form cell: widen narrow digits (a "1") to the box.
    inner_w = max(
        gw + margin[1] + margin[3], int((h + margin[0] + margin[2]) * rng.uniform(0.6, 1.1))
    )
    extra = inner_w - (gw + margin[1] + margin[3])
    margin[3] += extra // 2
    margin[1] += extra - extra // 2
    inner_h = gh + margin[0] + margin[2]
    # Outside the box: generous, none, or the box itself cut off by the crop.
    outside = []
    for _ in range(4):
        r = rng.random()
        if r < 0.12:
            outside.append(-thick - int(rng.integers(0, max(1, margin[0] // 2 + 1))))  # line gone
        elif r < 0.27:
            outside.append(-int(rng.integers(0, thick)))  # line partly cut
        else:
            outside.append(int(h * rng.uniform(0.0, 0.6)))
    comb = rng.random() < 0.3  # neighbouring cells of a form, partly in the picture
    if comb:
        outside[1] = max(outside[1], int(inner_w * rng.uniform(0.1, 0.5)))
        outside[3] = max(outside[3], int(inner_w * rng.uniform(0.1, 0.5)))
    height = max(8, outside[0] + thick + inner_h + thick + outside[2])
    width = max(8, outside[3] + thick + inner_w + thick + outside[1])
    scene = Scene.empty(height, width)
    x0, y0 = outside[3], outside[0]  # outer corner of the box
    scene.add_ink(g, y0 + thick + margin[0], x0 + thick + margin[3])
    hand = rng.random() < 0.3
    medium = _medium(rng, 0.15 if hand else 0.0)
    colour = (0.1, 0.1, 0.1) if hand else BOX_COLOURS[str(rng.choice(list(BOX_COLOURS)))]

    def draw(d: ImageDraw.ImageDraw, o: int) -> None:
        cells = range(-3, 4) if comb else range(0, 1)
        for c in cells:
            left = x0 + o + c * (inner_w + thick)
            rect = [left, y0 + o, left + inner_w + 2 * thick - 1, y0 + o + inner_h + 2 * thick - 1]
            if hand:
                wob = lambda: float(rng.normal(0, 0.02 * h))  # noqa: E731
                pts = [
                    (rect[0], rect[1]),
                    (rect[2], rect[1]),
                    (rect[2], rect[3]),
                    (rect[0], rect[3]),
                    (rect[0], rect[1]),
                ]
                pts = [(x + wob(), y + wob()) for x, y in pts]
                d.line(pts, fill=255, width=thick, joint="curve")
            else:
                d.rectangle(rect, outline=255, width=thick)

    scene.draw_lines(colour, draw)
    data, ext, _ = render_scene(scene, rng, medium)
    return (
        data,
        ext,
        {
            "medium": medium,
            "digit_height": h,
            "box_px": thick,
            "margin": kind,
            "comb": comb,
            "hand_drawn": hand,
        },
    )


def _ruled(scene: Scene, rng, h: int, grid: bool) -> dict:
    spacing = max(5, int(h * rng.uniform(0.3, 1.3)))
    thick = int(rng.choice([1, 1, 1, 2, 2, 3]))
    name = str(rng.choice(list(RULE_COLOURS)))
    phase = int(rng.integers(0, spacing))
    style = "lines"
    if grid:
        style = str(rng.choice(["squares", "engineering", "dots"], p=[0.6, 0.25, 0.15]))

    def draw(d: ImageDraw.ImageDraw, o: int) -> None:
        H, W = scene.height + 2 * o, scene.width + 2 * o
        ys = range(phase, H, spacing)
        xs = range(int(rng.integers(0, spacing)), W, spacing) if grid else []
        if style == "dots":
            r = max(1, thick)
            for y in ys:
                for x in xs:
                    d.ellipse((x - r, y - r, x + r, y + r), fill=255)
            return
        for k, y in enumerate(ys):
            width = thick + (1 if style == "engineering" and k % 5 == 0 else 0)
            d.line([(0, y), (W, y)], fill=255, width=width)
        for k, x in enumerate(xs):
            width = thick + (1 if style == "engineering" and k % 5 == 0 else 0)
            d.line([(x, 0), (x, H)], fill=255, width=width)

    scene.draw_lines(RULE_COLOURS[name], draw)
    margin_line = not grid and rng.random() < 0.25
    if margin_line:
        x = int(rng.integers(0, max(1, scene.width // 3)))
        scene.draw_lines(
            (0.88, 0.4, 0.42),
            lambda d, o: d.line(
                [(x + o, 0), (x + o, scene.height + 2 * o)], fill=255, width=thick + 1
            ),
        )
    return {
        "spacing_px": spacing,
        "line_px": thick,
        "line_colour": name,
        "paper": style,
        "margin_line": margin_line,
    }


def _present_paper(shape, rng, grid: bool):
    h = _digit_height(rng, 24, 160)
    g = glyph(shape, h, random_stroke(rng)) if shape is not None else np.zeros((h, int(h * 0.6)))
    top, right, bottom, left = _margins(rng, h, 0.15, 1.3)
    scene = Scene.empty(top + g.shape[0] + bottom, left + g.shape[1] + right)
    params = _ruled(scene, rng, h, grid)
    scene.add_ink(g, top, left)
    medium = _medium(rng)
    data, ext, _ = render_scene(scene, rng, medium)
    return data, ext, {"medium": medium, "digit_height": h, **params}


def present_ruled(shape, rng):
    return _present_paper(shape, rng, grid=False)


def present_grid(shape, rng):
    return _present_paper(shape, rng, grid=True)


def present_underline(shape, rng):
    h = _digit_height(rng, 24, 160)
    g = glyph(shape, h, random_stroke(rng)) if shape is not None else np.zeros((h, int(h * 0.6)))
    gh, gw = g.shape
    gap = h * rng.uniform(-0.08, 0.3)
    length = int(max(gw, 0.5 * h) * rng.uniform(0.8, 3.0))
    thick = int(rng.integers(1, 7))
    top, right, bottom, left = _margins(rng, h, 0.15, 1.0)
    right = max(right, length - gw - left // 2)
    bottom = max(bottom, int(gap) + thick + 4)
    scene = Scene.empty(top + gh + bottom, left + gw + right)
    scene.add_ink(g, top, left)
    pen = rng.random() < 0.6
    y = top + gh + gap
    x = left + gw / 2 - length / 2 + rng.uniform(-0.25, 0.25) * length
    tilt = rng.uniform(-0.05, 0.05) * length
    double = rng.random() < 0.12

    def draw(d: ImageDraw.ImageDraw, o: int) -> None:
        for k in range(2 if double else 1):
            yy = y + o + k * (thick + max(2, 0.08 * h))
            if pen:
                n = 6
                pts = [
                    (
                        x + o + length * i / (n - 1),
                        yy + tilt * i / (n - 1) + rng.normal(0, 0.01 * h),
                    )
                    for i in range(n)
                ]
            else:
                pts = [(x + o, yy), (x + o + length, yy)]
            d.line(pts, fill=255, width=thick, joint="curve")

    colour = None if pen else BOX_COLOURS[str(rng.choice(["black", "grey", "blue"]))]
    medium = _medium(rng, 0.15 if pen else 0.0)
    ink = (
        _ink_colour(rng, "dark")
        if medium != "canvas"
        else CANVAS_INKS[str(rng.choice(list(CANVAS_INKS)))]
    )
    scene.draw_lines(colour or ink, draw)
    data, ext, _ = render_scene(scene, rng, medium, ink=ink)
    touching = gap <= 0.02 * h
    return (
        data,
        ext,
        {
            "medium": medium,
            "digit_height": h,
            "line_px": thick,
            "pen": pen,
            "touching": bool(touching),
            "length_over_width": round(length / gw, 2),
        },
    )


def _low_res(coverage: np.ndarray, rng, levels: int, polarity: str, colour: bool) -> Image.Image:
    paper = rng.uniform(0.7, 1.0) if polarity == "dark" else rng.uniform(0.0, 0.3)
    ink = rng.uniform(0.0, 0.35) if polarity == "dark" else rng.uniform(0.65, 1.0)
    grey = paper + (ink - paper) * coverage
    grey = grey + rng.normal(0, rng.uniform(0, 0.04), grey.shape)
    grey = np.clip(grey, 0, 1)
    if levels < 256:  # few grey levels: spread over the used range, as a quantising scanner does
        lo, hi = grey.min(), grey.max()
        grey = lo + np.round((grey - lo) / max(hi - lo, 1e-6) * (levels - 1)) / (levels - 1) * (
            hi - lo
        )
    if colour:
        tint = (
            np.array(PEN_INKS[str(rng.choice(["blue", "red", "green"]))])
            if polarity == "dark"
            else np.array((1, 1, 0.7))
        )
        rgb = np.where(
            coverage[..., None] > 0.5,
            grey[..., None] * 0 + tint * (ink / max(tint.mean(), 1e-3)),
            grey[..., None],
        )
        return Image.fromarray(np.clip(rgb * 255, 0, 255).astype(np.uint8), "RGB")
    if levels == 256 and rng.random() < 0.25:
        return Image.fromarray((grey * 65535).astype(np.uint16))
    return Image.fromarray((grey * 255).astype(np.uint8), "L")


def present_tight(shape, rng):
    """Cropped to the ink: strokes touch the image edges, 12-40 px on the long side."""
    long_side = int(rng.integers(12, 41))
    g = glyph(shape, 4 * long_side, random_stroke(rng)) if shape is not None else np.zeros((8, 8))
    gh, gw = g.shape
    scale = long_side / max(gh, gw)
    small = _resize(g, (max(2, round(gh * scale)), max(2, round(gw * scale))), Image.Resampling.BOX)
    small = _crop_to_ink(small, 0.15)
    cut = [int(rng.choice([-1, 0, 0, 0, 1])) for _ in range(4)]  # a pixel more or less per side
    small = np.pad(small, [(max(0, cut[0]), max(0, cut[2])), (max(0, cut[3]), max(0, cut[1]))])
    small = small[
        max(0, -cut[0]) : small.shape[0] - max(0, -cut[2]) or None,
        max(0, -cut[3]) : small.shape[1] - max(0, -cut[1]) or None,
    ]
    polarity = "dark" if rng.random() < 0.5 else "light"
    levels = int(rng.choice([4, 8, 16, 32, 256, 256]))
    image = _low_res(small, rng, levels, polarity, colour=rng.random() < 0.15)
    if image.mode != "I;16" and rng.random() < 0.25:
        return (
            _encode(
                image.convert("RGB") if image.mode != "L" else image,
                "JPEG",
                quality=int(rng.integers(60, 96)),
            ),
            "jpg",
            {"polarity": polarity, "levels": levels, "size": list(small.shape)},
        )
    return (
        _encode(image, "PNG"),
        "png",
        {"polarity": polarity, "levels": levels, "size": list(small.shape)},
    )


def present_tiny(shape, rng):
    """8x8 to 16x16, the digit filling the frame (stretched or fitted), few grey levels."""
    side = int(rng.integers(8, 17))
    h, w = side, int(np.clip(side + rng.integers(-2, 3), 8, 16)) if rng.random() < 0.3 else side
    g = glyph(shape, 8 * h, random_stroke(rng) * 0.5) if shape is not None else np.zeros((8, 8))
    stretch = rng.random() < 0.5
    if stretch:
        small = _resize(g, (h, w), Image.Resampling.BOX)
    else:
        gh, gw = g.shape
        scale = min(h / gh, w / gw)
        fit = _resize(
            g, (max(1, round(gh * scale)), max(1, round(gw * scale))), Image.Resampling.BOX
        )
        small = np.zeros((h, w), np.float32)
        _stamp(small, fit, (h - fit.shape[0]) // 2, (w - fit.shape[1]) // 2)
    small = small / max(small.max(), 1e-6)
    polarity = "dark" if rng.random() < 0.5 else "light"
    levels = int(rng.choice([4, 8, 16, 17, 32, 64, 256]))
    image = _low_res(small, rng, levels, polarity, colour=rng.random() < 0.1)
    return (
        _encode(image, "PNG"),
        "png",
        {"polarity": polarity, "levels": levels, "size": [h, w], "stretched": stretch},
    )


PRESENTATIONS = {
    "plain": present_plain,
    "box": present_box,
    "ruled": present_ruled,
    "grid": present_grid,
    "underline": present_underline,
    "tight": present_tight,
    "tiny": present_tiny,
}


# --------------------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------------------
def number_shape(
    shapes: list[np.ndarray], h: int, gaps: tuple[float, float], stroke: float, rng
) -> np.ndarray:
    """MNIST digits side by side at ~``h`` px, gaps in digit widths (negative: overlap)."""
    glyphs = [glyph(s, int(h * rng.uniform(0.88, 1.12)), stroke) for s in shapes]
    unit = DIGIT_WIDTH * h
    lefts, x = [], 0
    for i, g in enumerate(glyphs):
        if i:
            x += int(round(rng.uniform(*gaps) * unit))
        lefts.append(x)
        x += g.shape[1]
    tops = [int(round(h * 0.15 + (h - g.shape[0]) + rng.normal(0, 0.04 * h))) for g in glyphs]
    offset = min(tops)
    lo = min(lefts)
    out = np.zeros(
        (
            max(t - offset + g.shape[0] for t, g in zip(tops, glyphs, strict=True)),
            max(left - lo + g.shape[1] for left, g in zip(lefts, glyphs, strict=True)),
        ),
        np.float32,
    )
    for t, left, g in zip(tops, lefts, glyphs, strict=True):
        _stamp(out, g, t - offset, left - lo)
    return out


def _number_digits(rng, low=2, high=6) -> int:
    return int(rng.integers(low, high + 1))


def render_number(
    name: str, images: np.ndarray, labels: np.ndarray, rng
) -> tuple[bytes, str, dict]:
    touching = name == "numbers_touching" or (name == "batch_numbers" and rng.random() < 0.3)
    gaps = (-0.15, 0.03) if touching else (0.1, 0.6)
    lines = 2 if name == "numbers_two_lines" else 1
    stroke = random_stroke(rng)
    h = _digit_height(rng, 24, 110)
    numbers, texts, indices = [], [], []
    for _ in range(lines):
        idx = rng.integers(0, len(images), _number_digits(rng))
        numbers.append(number_shape([images[i] for i in idx], h, gaps, stroke, rng))
        texts.append("".join(str(int(labels[i])) for i in idx))
        indices.append([int(i) for i in idx])
    medium = {"numbers_canvas": "canvas", "numbers_paper": "photo", "numbers_framed": "photo"}.get(
        name
    )
    if medium is None:
        medium = "canvas" if rng.random() < 0.5 else "photo"
    if medium == "photo" and rng.random() < 0.2:
        medium = "scan"
    top, right, bottom, left = _margins(rng, h, 0.15, 1.0)
    spacing = int(h * rng.uniform(0.3, 0.8))
    shifts = [int(h * rng.uniform(0, 0.6)) for _ in numbers]
    width = left + max(n.shape[1] + s for n, s in zip(numbers, shifts, strict=True)) + right
    height = top + sum(n.shape[0] for n in numbers) + spacing * (lines - 1) + bottom
    scene = Scene.empty(height, width, rotate=medium != "canvas")
    y = top
    for k, (n, s) in enumerate(zip(numbers, shifts, strict=True)):
        scene.add_ink(n, y, left + s, line=k)
        y += n.shape[0] + spacing
    frame = None
    if name == "numbers_framed":
        frame = str(rng.choice(["box", "underline", "ruled", "grid"]))
        nh, nw = numbers[0].shape
        left += shifts[0]
        thick = int(rng.integers(1, 5))
        colour = BOX_COLOURS[str(rng.choice(list(BOX_COLOURS)))]
        if frame == "box":
            m = [int(h * rng.uniform(0.0, 0.3)) for _ in range(4)]
            rect = [
                left - m[3] - thick,
                top - m[0] - thick,
                left + nw + m[1] + thick,
                top + nh + m[2] + thick,
            ]
            scene.draw_lines(
                colour, lambda d, o: d.rectangle([v + o for v in rect], outline=255, width=thick)
            )
        elif frame == "underline":
            yy = top + nh + int(h * rng.uniform(-0.05, 0.25))
            x0, x1 = (
                left - int(h * rng.uniform(0, 0.4)),
                left + nw + int(h * rng.uniform(-0.2, 0.5)),
            )
            scene.draw_lines(
                colour,
                lambda d, o: d.line([(x0 + o, yy + o), (x1 + o, yy + o)], fill=255, width=thick),
            )
        else:
            _ruled(scene, rng, h, grid=frame == "grid")
    data, ext, boxes = render_scene(scene, rng, medium)
    params = {
        "medium": medium,
        "digit_height": h,
        "touching": bool(touching),
        "line_boxes": boxes,
        "mnist_index": indices,
    }
    if frame:
        params["frame"] = frame
    return data, ext, {"label": "\n".join(texts), **params}


# --------------------------------------------------------------------------------------
# items and sets
# --------------------------------------------------------------------------------------
def _non_digit(rng) -> tuple[bytes, str, dict]:
    kind = str(
        rng.choice(
            [
                "font_letter",
                "font_symbol",
                "pen_letter",
                "pen_symbol",
                "scribble",
                "photo",
                "empty",
            ],
            p=[0.25, 0.15, 0.15, 0.1, 0.12, 0.12, 0.11],
        )
    )
    if kind == "photo":
        data, ext = photo_crop(rng)
        return data, ext, {"kind": kind}
    if kind == "empty":
        presentation = str(
            rng.choice(
                ["box", "ruled", "grid", "underline", "plain"], p=[0.3, 0.2, 0.2, 0.15, 0.15]
            )
        )
        data, ext, params = PRESENTATIONS[presentation](None, rng)
        return data, ext, {"kind": kind, "presentation": presentation, **params}
    params: dict = {"kind": kind}
    if kind.startswith("font"):
        char = str(rng.choice(list(LETTERS if kind == "font_letter" else SYMBOLS)))
        shape, font = font_shape(char, rng)
        params.update(char=char, font=font)
    elif kind.startswith("pen"):
        names = [
            n for n in PEN_TEMPLATES if (len(n) == 1 and n.isalpha()) == (kind == "pen_letter")
        ]
        char = str(rng.choice(names))
        shape = pen_shape(PEN_TEMPLATES[char], rng)
        params["char"] = char
    else:
        shape, params["kind"] = scribble_shape(rng)
    presentation = str(rng.choice(list(PRESENTATIONS), p=[0.3, 0.12, 0.1, 0.1, 0.08, 0.15, 0.15]))
    data, ext, extra = PRESENTATIONS[presentation](shape, rng)
    return data, ext, {**params, "presentation": presentation, **extra}


def render_item(
    name: str, index: int, seed: int, images: np.ndarray, labels: np.ndarray
) -> tuple[bytes, str, dict]:
    """(encoded image, extension, labels.json entry without the file name) of one item."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), index])
    if name in PRESENTATIONS or name == "batch_photos":
        i = int(rng.integers(len(images)))
        if name == "batch_photos":
            data, ext, params = _batch_photo(images[i], rng)
        else:
            data, ext, params = PRESENTATIONS[name](images[i], rng)
        return data, ext, {"label": str(int(labels[i])), "mnist_index": i, **params}
    if name == NON_DIGIT_SET:
        data, ext, params = _non_digit(rng)
        return data, ext, {"label": None, **params}
    if name in NUMBER_SETS or name == "batch_numbers":
        return render_number(name, images, labels, rng)
    raise ValueError(f"unknown set {name!r}; choose from {', '.join(ALL_SETS)}")


def _batch_photo(shape, rng):
    """A phone photo of one digit on plain paper, 160-640 px on each side, JPEG."""
    height, width = int(rng.integers(160, 641)), int(rng.integers(160, 641))
    h = int(min(height, width) * rng.uniform(0.35, 0.8))
    g = glyph(shape, h, random_stroke(rng))
    g = g[: height - 2, : width - 2]
    scene = Scene.empty(height, width)
    scene.add_ink(
        g,
        int(rng.integers(0, height - g.shape[0] + 1)),
        int(rng.integers(0, width - g.shape[1] + 1)),
    )
    data, _, _ = render_scene(scene, rng, "photo")
    return data, "jpg", {"size": [height, width]}


def load_mnist_test(mnist: Path = DEFAULT_MNIST) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test images (float in [0, 1]) and labels."""
    sys.path.insert(0, str(ROOT))
    from digitctl.data import read_idx

    x = read_idx(Path(mnist) / "t10k-images-idx3-ubyte.gz").astype(np.float32) / 255
    y = read_idx(Path(mnist) / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return x, y


def set_folder(name: str, count: int, seed: int, root: Path = DEFAULT_ROOT) -> Path:
    return Path(root) / f"{name}-n{count}-s{seed}-v{VERSION}"


def write_set(
    name: str,
    count: int = 500,
    seed: int = 0,
    root: Path = DEFAULT_ROOT,
    mnist: Path = DEFAULT_MNIST,
    data: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Write set ``name`` (image files + labels.json) unless it is already there; its folder.

    The folder appears atomically (written under a temporary name, then renamed), so an
    interrupted run never leaves a half-written set that looks complete.
    """
    folder = set_folder(name, count, seed, root)
    fonts = font_names() if name in FONT_SETS else None
    if (folder / "labels.json").exists():
        recorded = read_labels(folder).get("fonts")
        if name not in FONT_SETS or recorded == fonts:
            return folder
        print(f"{folder.name}: the installed fonts changed; rendering it again", file=sys.stderr)
    if name in FONT_SETS and dejavu_only():
        print(
            f"{name}: only DejaVu fonts are installed, the family the bundled model's "
            "negatives were drawn from; install more fonts (Debian: fonts-liberation) for "
            "letters and symbols in fonts it has not seen",
            file=sys.stderr,
        )
    images, labels = data if data is not None else load_mnist_test(mnist)
    render = functools.partial(render_item, name, seed=seed, images=images, labels=labels)
    return write_items(folder, name, count, seed, VERSION, render, fonts)


def write_items(folder, name, count, seed, version, render, fonts=None) -> Path:
    """Items ``render(i)`` → (bytes, extension, label entry) for i < ``count`` written with
    their ``labels.json`` under a temporary name, then renamed to ``folder`` (atomic)."""
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    items = []
    for i in range(count):
        blob, ext, entry = render(i)
        file = f"{i:05d}.{ext}"
        (tmp / file).write_bytes(blob)
        items.append({"file": file, **entry})
    document = {"set": name, "count": count, "seed": seed, "version": version, "items": items}
    if fonts is not None:
        document["fonts"] = fonts
    (tmp / "labels.json").write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


def read_labels(folder: Path) -> dict:
    return json.loads((Path(folder) / "labels.json").read_text())


def contact_sheet(folder: Path, out: Path, count: int = 48, cell: int = 128) -> Path:
    """A grid of the first ``count`` images of a set (RGBA shown on a checkerboard)."""
    items = read_labels(folder)["items"][:count]
    cols = 8
    rows = (len(items) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * cell, rows * (cell + 14)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    checker = Image.fromarray(
        ((np.indices((cell, cell)).sum(0) // 8 % 2) * 60 + 150).astype(np.uint8)
    ).convert("RGB")
    for k, item in enumerate(items):
        image = Image.open(folder / item["file"])
        image.load()
        if image.mode == "I;16":
            image = Image.fromarray((np.asarray(image) >> 8).astype(np.uint8))
        image = image.convert("RGBA")
        scale = cell / max(image.size)
        image = image.resize(
            (max(1, int(image.width * scale)), max(1, int(image.height * scale))),
            Image.Resampling.NEAREST if scale > 2 else Image.Resampling.LANCZOS,
        )
        x, y = (k % cols) * cell, (k // cols) * (cell + 14)
        sheet.paste(checker, (x, y))
        sheet.paste(image, (x, y), image)
        label = (
            item["label"] if item["label"] is not None else item.get("char", item.get("kind", "-"))
        )
        draw.text((x + 2, y + cell), str(label).replace("\n", "/")[:18], fill=(200, 0, 0))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


# --------------------------------------------------------------------------------------
# measuring helpers shared by bench_framing.py, bench_numbers.py and bench_batch.py
# --------------------------------------------------------------------------------------
def machine_info() -> dict:
    """CPU model, cores, load, Python and package versions, the command line."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in (
        "digitctl",
        "numpy",
        "pillow",
        "opencv-python-headless",
        "ai-edge-litert",
        "scikit-learn",
        "scipy",
    ):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    import digitctl

    return {
        "cpu_model": cpu,
        "cpus": os.cpu_count(),
        "load_average_start": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
        "digitctl_code": str(Path(digitctl.__file__).parent),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


@dataclass
class Answer:
    """What digitctl answered for one image, in the terms of the reading API."""

    text: str  # "" when nothing was read
    status: str  # ok | not_a_digit | no_digit | error
    not_digit: float  # the not-a-digit score; 1.0 when nothing was found
    confidence: float | None  # of the single digit, when exactly one was read
    uncertain: bool
    seconds: float
    count: int = 0  # digits read


def api_mode(predictor) -> str:
    return "read" if hasattr(predictor, "read") else "predict (fallback)"


def answer(predictor, source) -> Answer:
    """``predictor.read(source)`` as an Answer; with no ``read`` (today's API), ``predict``.

    In the fallback a prediction is status ``ok`` with its one digit, "no digit found" is
    ``no_digit``, and the not-a-digit score is 1 - confidence.
    """
    import time

    from digitctl.errors import ImageError, NoDigitFound

    start = time.perf_counter()
    if hasattr(predictor, "read"):
        try:
            reading = predictor.read(source)
        except ImageError:
            return Answer("", "error", 1.0, None, True, time.perf_counter() - start)
        seconds = time.perf_counter() - start
        digits = list(reading.digits)
        confidence = float(digits[0].confidence) if len(digits) == 1 else None
        return Answer(
            reading.text or "",
            str(reading.status),
            float(reading.not_digit),
            confidence,
            bool(reading.uncertain),
            seconds,
            len(digits),
        )
    try:
        prediction = predictor.predict(source)
    except NoDigitFound:
        return Answer("", "no_digit", 1.0, None, True, time.perf_counter() - start)
    except ImageError:
        return Answer("", "error", 1.0, None, True, time.perf_counter() - start)
    seconds = time.perf_counter() - start
    return Answer(
        str(prediction.label),
        "ok",
        1.0 - float(prediction.confidence),
        float(prediction.confidence),
        bool(prediction.uncertain),
        seconds,
        1,
    )


def write_results(document: dict, out: Path) -> None:
    """``document`` as indented JSON at ``out``, written atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sets", default="all", help=f"comma-separated, or all: {','.join(ALL_SETS)}"
    )
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    parser.add_argument("--sheet", action="store_true", help="also write <root>/sheets/<set>.png")
    args = parser.parse_args()
    names = ALL_SETS if args.sets == "all" else tuple(args.sets.split(","))
    data = load_mnist_test(args.mnist)
    for name in names:
        folder = write_set(name, args.count, args.seed, args.root, data=data)
        print(folder, file=sys.stderr)
        if args.sheet:
            print(contact_sheet(folder, args.root / "sheets" / f"{name}.png"), file=sys.stderr)


if __name__ == "__main__":
    main()
