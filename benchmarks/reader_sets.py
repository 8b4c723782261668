"""Evaluation sets for the line reader (issue 31): one set per class of real input that
today's reader fails on.

Every digit comes from the MNIST **test** images. Nothing here imports or copies the line
reader's training-scene generator (``digitctl/scenes.py``): the renderers below are drawn
with PIL and NumPy and their parameters were chosen here, so a model that only learned its
own generator shows up as a gap. The glyph scaling and thickening (``glyph``), the MNIST
loader and the measuring helpers come from ``framing_sets.py``, the older benchmark sets.

Sets (label: the digit string; ``""`` means "nothing to read"):
- ``cheque``: handwritten amounts cropped from scanned cheques: guilloche backgrounds on
  tinted paper, continental 1s, small looped 0s, "." or "," thousands separators and
  trailing dashes ("1.000.-"); the label is the digits alone;
- ``ledger``: 1-3 digit row numbers in tall ledger cells: printed rules, black scanner
  margins, a "+" or "x" pen mark beside the number;
- ``mouse``: digits drawn with a mouse in a paint program (thin, straight strokes, own
  templates), and some MNIST test digits thickened as a browser canvas draws them;
- ``canvas_one``: a single vertical stroke, 8-30 px thick, on the app's canvas (label "1");
- ``printed``: printed digits in sudoku cells and printed numbers, in Liberation, FreeFont
  and URW base35 fonts (not DejaVu or STIX, which the line reader was trained on);
- ``shapes``: negatives: hand-drawn capitals, symbols and shapes, and italic font letters
  and words (label ``""``);
- ``page``: a small number (1-4 digits, 60-320 px tall) on a 1200-3000 px page.

Each set is written once to ``.bench/sets/<name>-n<count>-s<seed>-v<version>/`` (image
files plus ``labels.json``) and reused. Item ``i`` depends only on (seed, set name, i), so
a bigger set starts with the items of a smaller one. Seed 0 is held out for the final
figures; seed 1 is for validation (the default).

    python benchmarks/reader_sets.py [--sets all] [--count 300] [--seed 1] [--sheet]
"""

from __future__ import annotations

import argparse
import functools
import io
import sys
import time
import zlib
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import framing_sets as fs  # noqa: E402

DEFAULT_ROOT = fs.DEFAULT_ROOT
DEFAULT_MNIST = fs.DEFAULT_MNIST
VERSION = 1  # bump when a renderer changes, so cached sets are rebuilt
SETS = ("cheque", "ledger", "mouse", "canvas_one", "printed", "shapes", "page")
FONT_SETS = frozenset({"printed", "shapes"})  # need fonts that are not DejaVu or STIX

CHEQUE_INKS = {"blue": (0.1, 0.15, 0.55), "royal": (0.15, 0.25, 0.75), "black": (0.1, 0.1, 0.12)}
CHEQUE_TINTS = {
    "white": (0.98, 0.98, 0.96),
    "green": (0.9, 0.97, 0.9),
    "blue": (0.9, 0.94, 1.0),
    "pink": (1.0, 0.92, 0.94),
    "yellow": (1.0, 0.98, 0.86),
    "grey": (0.93, 0.93, 0.93),
}
GUILLOCHE_COLOURS = {
    "green": (0.55, 0.78, 0.6),
    "blue": (0.6, 0.7, 0.92),
    "pink": (0.92, 0.65, 0.75),
    "ochre": (0.88, 0.78, 0.55),
    "grey": (0.7, 0.7, 0.72),
    "violet": (0.75, 0.68, 0.9),
}
MOUSE_COLOURS = ((0, 0, 0), (0, 0, 0), (0, 0, 255), (255, 0, 0), (0, 128, 0), (128, 0, 128))


# --------------------------------------------------------------------------------------
# drawing helpers: coverage layers (float in [0, 1], 1 = ink) and finished images
# --------------------------------------------------------------------------------------
def item_rng(name: str, seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(f"reader:{name}".encode()), index])


def draw_strokes(
    size: tuple[int, int],
    strokes: list[list[tuple[float, float]]],
    width: float,
    smooth: bool = True,
    round_caps: bool = True,
) -> np.ndarray:
    """Polylines (pixel coordinates) as a coverage layer of ``size`` (height, width).

    ``smooth`` draws at four times the size and averages down (an anti-aliased pen);
    otherwise the pixels are hard, as a paint program's pencil draws them.
    """
    scale = 4 if smooth else 1
    h, w = size
    image = Image.new("L", (w * scale, h * scale), 0)
    draw = ImageDraw.Draw(image)
    px = max(1, round(width * scale))
    for stroke in strokes:
        xy = [(x * scale, y * scale) for x, y in stroke]
        if len(xy) > 1:
            draw.line(xy, fill=255, width=px, joint="curve")
        if round_caps and px > 2:
            r = px / 2
            for x, y in (xy[0], xy[-1]):
                draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    if smooth:
        image = image.resize((w, h), Image.Resampling.BOX)
    return np.asarray(image, np.float32) / 255


def template_strokes(
    template, rng: np.random.Generator, box: tuple[float, float, float, float], jitter: float
) -> list[list[tuple[float, float]]]:
    """A unit-box template (y down) placed in ``box`` (x0, y0, x1, y1) with jittered points."""
    x0, y0, x1, y1 = box
    out = []
    for stroke in template:
        points = np.asarray(stroke, np.float64) + rng.normal(0, jitter, (len(stroke), 2))
        out.append([(x0 + (x1 - x0) * x, y0 + (y1 - y0) * y) for x, y in points])
    return out


def oval(cx=0.5, cy=0.5, rx=0.5, ry=0.5, start=0.0, end=360.0, n=28):
    t = np.radians(np.linspace(start, end, n))
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in t]


def stamp(layer: np.ndarray, shape: np.ndarray, top: int, left: int) -> None:
    """Max-composite ``shape`` onto ``layer`` at (top, left), clipped to the layer."""
    h, w = shape.shape
    t0, l0 = max(0, top), max(0, left)
    t1, l1 = min(layer.shape[0], top + h), min(layer.shape[1], left + w)
    if t1 > t0 and l1 > l0:
        region = shape[t0 - top : t1 - top, l0 - left : l1 - left]
        np.maximum(layer[t0:t1, l0:l1], region, out=layer[t0:t1, l0:l1])


def blend(rgb: np.ndarray, coverage: np.ndarray, colour, opacity: float = 1.0) -> np.ndarray:
    a = (coverage * opacity)[..., None]
    return rgb * (1 - a) + np.asarray(colour, np.float32) * a


def plain_paper(size: tuple[int, int], colour, rng: np.random.Generator, grain=0.03):
    """Paper of ``colour`` with a low-frequency blotchy texture."""
    h, w = size
    cells = rng.random((int(rng.integers(3, 12)), int(rng.integers(3, 12)))).astype(np.float32)
    blotch = np.asarray(Image.fromarray(cells, "F").resize((w, h), Image.Resampling.BICUBIC))
    grey = 1 + grain * (blotch - 0.5)
    return grey[..., None] * np.asarray(colour, np.float32)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def finish(
    rgb: np.ndarray,
    rng: np.random.Generator,
    angle: float = 0.0,
    blur: float = 0.0,
    noise: float = 0.0,
    jpeg: int | None = None,
    grey: bool = False,
) -> tuple[bytes, str]:
    """Rotate (corners filled with the border's colour), blur, add noise, encode."""
    if noise:
        rgb = rgb + rng.normal(0, noise, rgb.shape[:2])[..., None].astype(np.float32)
    image = Image.fromarray(np.clip(rgb * 255, 0, 255).astype(np.uint8), "RGB")
    if angle:
        border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
        fill = tuple(int(c) for c in np.clip(np.median(border, axis=0) * 255, 0, 255))
        image = image.rotate(angle, Image.Resampling.BICUBIC, fillcolor=fill)
    if blur > 0.05:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    if grey:
        image = image.convert("L")
    if jpeg is not None:
        return encode(image, "JPEG", quality=int(jpeg)), "jpg"
    return encode(image, "PNG"), "png"


# --------------------------------------------------------------------------------------
# handwritten numbers from MNIST test digits
# --------------------------------------------------------------------------------------
def pick_digit(rng, images, labels, digit: int) -> int:
    """The index of a random MNIST test image of ``digit`` (any image when none exists)."""
    where = np.flatnonzero(labels == digit)
    return int(rng.choice(where)) if len(where) else int(rng.integers(len(labels)))


def continental_one(g: np.ndarray, rng: np.random.Generator, height: int) -> np.ndarray:
    """A "1" glyph with a long flag from its top to the lower left, sometimes a foot."""
    pen = max(1.5, height * rng.uniform(0.06, 0.12))
    pad = int(0.6 * height) + 4
    h, w = g.shape
    layer = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
    stamp(layer, g, pad, pad)
    top_cols = np.flatnonzero(g[: max(1, h // 10)].max(axis=0) > 0.4)
    tx = pad + (float(top_cols.mean()) if len(top_cols) else w / 2)
    ty = pad + 1.0
    length = height * rng.uniform(0.3, 0.6)
    angle = np.radians(rng.uniform(20, 60))
    strokes = [[(tx, ty), (tx - length * np.cos(angle), ty + length * np.sin(angle))]]
    if rng.random() < 0.3:
        bottom_cols = np.flatnonzero(g[-max(1, h // 10) :].max(axis=0) > 0.4)
        bx = pad + (float(bottom_cols.mean()) if len(bottom_cols) else w / 2)
        half = height * rng.uniform(0.15, 0.3)
        strokes.append([(bx - half, pad + h - 1.0), (bx + half, pad + h - 1.0)])
    np.maximum(layer, draw_strokes(layer.shape, strokes, pen), out=layer)
    return fs._crop_to_ink(layer, 0.3)


def separator_shape(char: str, height: int, rng: np.random.Generator, trailing: bool = False):
    """(coverage, rows below the baseline it reaches, rows above it) of a pen-drawn separator."""
    pen = max(1.5, height * rng.uniform(0.06, 0.11))
    if char == ".":
        size = int(pen * rng.uniform(1.2, 2.0)) + 3
        layer = draw_strokes(
            (size, size), [[(size / 2, size / 2), (size / 2 + 0.3, size / 2)]], pen
        )
        return fs._crop_to_ink(layer, 0.2), 0
    if char == ",":
        length = height * rng.uniform(0.18, 0.3)
        size = int(length + 2 * pen) + 4
        x0 = size * 0.65
        stroke = [(x0, pen), (x0 - length * 0.35, pen + length)]
        layer = fs._crop_to_ink(draw_strokes((size, size), [stroke], pen), 0.2)
        return layer, int(layer.shape[0] * 0.65)
    length = height * (rng.uniform(0.45, 1.0) if trailing else rng.uniform(0.25, 0.45))
    tilt = length * rng.uniform(-0.12, 0.05)
    size = (int(abs(tilt) + 2 * pen) + 4, int(length + 2 * pen) + 4)
    stroke = [(pen + 1, pen + 1 + max(0.0, -tilt)), (pen + 1 + length, pen + 1 + max(0.0, tilt))]
    layer = fs._crop_to_ink(draw_strokes(size, [stroke], pen), 0.2)
    return layer, -int(height * rng.uniform(0.35, 0.55))


def write_number(
    tokens: list, height: int, rng: np.random.Generator, images: np.ndarray, gap=(0.05, 0.35)
) -> np.ndarray:
    """A handwritten number as one coverage layer cropped to its ink.

    ``tokens``: digits (int) drawn from MNIST test images, ``("1c",)`` continental ones,
    ``("0s",)`` small looped zeros, or separator characters (str).
    """
    stroke = fs.random_stroke(rng)
    pieces = []  # (shape, top relative to the baseline)
    for token in tokens:
        if isinstance(token, str):
            shape, below = separator_shape(token.rstrip("t"), height, rng, token.endswith("t"))
            pieces.append((shape, below - shape.shape[0]))
            continue
        digit, index, variant = token
        h = height * rng.uniform(0.88, 1.08)
        if variant == "small":
            h = height * rng.uniform(0.45, 0.72)
        g = fs.glyph(images[index], int(h), stroke)
        if variant == "continental":
            g = continental_one(g, rng, int(h))
        drop = 0 if variant != "small" else -int(height * rng.uniform(0.0, 0.35))
        pieces.append((g, drop - g.shape[0] + int(height * rng.normal(0, 0.03))))
    lo = min(top for _, top in pieces)
    hi = max(top + shape.shape[0] for shape, top in pieces)
    width = sum(shape.shape[1] for shape, _ in pieces) + int(height * len(pieces) * gap[1]) + 4
    layer = np.zeros((hi - lo + 4, width + 4), np.float32)
    x = 2
    for shape, top in pieces:
        stamp(layer, shape, top - lo + 2, x)
        x += shape.shape[1] + int(height * rng.uniform(*gap))
    return fs._crop_to_ink(layer, 0.2)


def amount_tokens(rng, images, labels, count: int) -> tuple[list, str, str]:
    """Tokens of a cheque amount of ``count`` digits, its digit label and its raw text."""
    digits = [int(rng.integers(1, 10))] + [
        0 if rng.random() < 0.45 else int(rng.integers(0, 10)) for _ in range(count - 1)
    ]
    continental = rng.random() < 0.5
    small_zeros = rng.random() < 0.35
    separator = str(rng.choice([".", ","])) if count >= 4 and rng.random() < 0.7 else ""
    tokens, raw = [], ""
    for k, d in enumerate(digits):
        if separator and k and (count - k) % 3 == 0:
            tokens.append(separator)
            raw += separator
        variant = "plain"
        if d == 1 and continental:
            variant = "continental"
        elif d == 0 and small_zeros and k:
            variant = "small"
        tokens.append((d, pick_digit(rng, images, labels, d), variant))
        raw += str(d)
    ending = str(rng.choice(["", "", ".-", ",-", "-", ".--"]))
    for char in ending:
        tokens.append(char + ("t" if char == "-" else ""))  # trailing dashes are long
    raw += ending
    return tokens, "".join(map(str, digits)), raw


# --------------------------------------------------------------------------------------
# cheque
# --------------------------------------------------------------------------------------
def guilloche(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Families of fine wavy lines (the security print behind a cheque's amount)."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros(size, np.float32)
    for _ in range(int(rng.integers(1, 4))):
        spacing = rng.uniform(2.5, 9.0)
        wave = rng.uniform(8, 80)
        amp = rng.uniform(1, 14)
        phase = rng.uniform(0, 2 * np.pi)
        tilt = rng.uniform(-0.6, 0.6)
        second = rng.uniform(0, 0.6) * amp
        u = (
            yy
            + tilt * xx
            + amp * np.sin(2 * np.pi * xx / wave + phase)
            + second * np.sin(2 * np.pi * xx / (wave * rng.uniform(2, 4)))
        )
        sharp = rng.uniform(6, 30)
        lines = np.exp(sharp * (np.cos(2 * np.pi * u / spacing) - 1))
        if rng.random() < 0.3:  # two mirrored families: the braided look
            u2 = yy - tilt * xx - amp * np.sin(2 * np.pi * xx / wave + phase)
            lines = np.maximum(lines, np.exp(sharp * (np.cos(2 * np.pi * u2 / spacing) - 1)))
        out = np.maximum(out, lines * rng.uniform(0.4, 1.0))
    return out


def render_cheque(rng, images, labels) -> tuple[bytes, str, dict]:
    count = int(rng.choice([1, 2, 3, 3, 4, 4, 5, 5, 6, 7]))
    tokens, label, raw = amount_tokens(rng, images, labels, count)
    height = int(rng.integers(18, 80))
    ink = write_number(tokens, height, rng, images)
    mh, mw = ink.shape
    top, bottom = (int(height * rng.uniform(0.1, 0.9)) for _ in range(2))
    left, right = (int(height * rng.uniform(0.1, 1.6)) for _ in range(2))
    size = (mh + top + bottom, mw + left + right)
    layer = np.zeros(size, np.float32)
    stamp(layer, ink, top, left)
    tint = str(rng.choice(list(CHEQUE_TINTS)))
    rgb = plain_paper(size, CHEQUE_TINTS[tint], rng, grain=rng.uniform(0.0, 0.08))
    pattern = str(rng.choice(list(GUILLOCHE_COLOURS)))
    rgb = blend(rgb, guilloche(size, rng), GUILLOCHE_COLOURS[pattern], rng.uniform(0.25, 0.8))
    if rng.random() < 0.3:  # the printed baseline of the amount field
        y = min(size[0] - 2, top + mh - int(height * rng.uniform(-0.05, 0.15)))
        line = draw_strokes(size, [[(0, y), (size[1], y)]], rng.uniform(0.8, 2.0))
        rgb = blend(rgb, line, GUILLOCHE_COLOURS[pattern], rng.uniform(0.6, 1.0))
    colour = str(rng.choice(list(CHEQUE_INKS), p=[0.45, 0.2, 0.35]))
    rgb = blend(rgb, layer, CHEQUE_INKS[colour], rng.uniform(0.75, 1.0))
    data, ext = finish(
        rgb,
        rng,
        angle=rng.uniform(-3, 3),
        blur=rng.uniform(0, 1.0),
        noise=rng.uniform(0, 0.03),
        jpeg=int(rng.integers(35, 95)) if rng.random() < 0.8 else None,
        grey=rng.random() < 0.2,
    )
    return data, ext, {"label": label, "raw": raw, "ink": colour, "paper": tint}


# --------------------------------------------------------------------------------------
# ledger
# --------------------------------------------------------------------------------------
def pen_mark(char: str, size: int, rng) -> np.ndarray:
    """A "+" or "x" pen mark, ``size`` px."""
    s = size
    if char == "+":
        strokes = [[(s / 2, 1), (s / 2, s - 1)], [(1, s / 2), (s - 1, s / 2)]]
    else:
        strokes = [[(1, 1), (s - 1, s - 1)], [(s - 1, 1), (1, s - 1)]]
    jitter = [
        [(x + rng.normal(0, s * 0.05), y + rng.normal(0, s * 0.05)) for x, y in st]
        for st in strokes
    ]
    return draw_strokes((s + 2, s + 2), jitter, max(1.2, s * rng.uniform(0.08, 0.16)))


def scanner_margin(rgb: np.ndarray, side: str, rng: np.random.Generator) -> np.ndarray:
    """``rgb`` with a black scanner margin added on ``side``, the paper's edge ragged."""
    turns = {"left": 0, "top": 1, "right": 2, "bottom": 3}[side]
    image = np.rot90(rgb, turns)
    h, w = image.shape[:2]
    extra = int(w * rng.uniform(0.03, 0.25)) + 3
    edge = extra * rng.uniform(0.4, 0.9) + rng.normal(0, 0.4, h).cumsum()
    edge = np.clip(edge, 1, extra - 1)
    out = np.concatenate([np.repeat(image[:, :1], extra, axis=1), image], axis=1)
    black = np.clip(edge[:, None] - np.arange(extra + w)[None, :] + 0.5, 0, 1)
    out = blend(out, black.astype(np.float32), (0.04, 0.04, 0.05))
    return np.ascontiguousarray(np.rot90(out, -turns))


def render_ledger(rng, images, labels) -> tuple[bytes, str, dict]:
    count = int(rng.choice([1, 1, 2, 2, 2, 3]))
    digits = [int(rng.integers(1, 10))] + [int(rng.integers(0, 10)) for _ in range(count - 1)]
    cell_h = int(rng.integers(50, 240))
    height = int(cell_h * rng.uniform(0.25, 0.6))
    tokens = [(d, pick_digit(rng, images, labels, d), "plain") for d in digits]
    ink = write_number(tokens, height, rng, images, gap=(0.02, 0.3))
    mh, mw = ink.shape
    cell_w = int(mw + cell_h * rng.uniform(0.2, 1.6)) + 4
    layer = np.zeros((cell_h, cell_w), np.float32)
    top = int(rng.integers(1, max(2, cell_h - mh)))
    left = int(rng.integers(1, max(2, cell_w - mw)))
    stamp(layer, ink, top, left)
    mark = None
    if rng.random() < 0.3:
        mark = str(rng.choice(["+", "x"]))
        shape = pen_mark(mark, int(height * rng.uniform(0.3, 0.6)) + 3, rng)
        side = left + mw + int(height * rng.uniform(0.1, 0.4))
        if rng.random() < 0.4 or side + shape.shape[1] > cell_w:
            side = max(0, left - shape.shape[1] - int(height * rng.uniform(0.1, 0.4)))
        stamp(layer, shape, top + int(mh * rng.uniform(0.1, 0.6)), side)
    paper = (
        (rng.uniform(0.85, 1.0),)
        * 3
        * np.array([1.0, rng.uniform(0.95, 1.0), rng.uniform(0.82, 1.0)])
    )
    rgb = plain_paper((cell_h, cell_w), paper, rng, grain=rng.uniform(0.02, 0.12))
    rule_colour = [(0.2, 0.2, 0.25), (0.45, 0.5, 0.7), (0.6, 0.35, 0.35), (0.5, 0.5, 0.5)][
        int(rng.integers(4))
    ]
    rules = []
    for y in (rng.uniform(0, 3), cell_h - 1 - rng.uniform(0, 3)):
        if rng.random() < 0.85:
            rules.append([(0, y), (cell_w, y + rng.uniform(-1.5, 1.5))])
    for x in (rng.uniform(0, 4), cell_w - 1 - rng.uniform(0, 4)):
        if rng.random() < 0.6:
            rules.append([(x, 0), (x + rng.uniform(-1.5, 1.5), cell_h)])
    near_rule = rng.random() < 0.35
    if near_rule:  # a column rule close to the digits
        gap = height * rng.uniform(0.05, 0.4)
        x = left - gap if rng.random() < 0.5 else left + mw + gap
        rules.append([(x, 0), (x + rng.uniform(-1, 1), cell_h)])
    if rules:
        rule_layer = draw_strokes((cell_h, cell_w), rules, rng.uniform(0.7, 2.5), round_caps=False)
        rgb = blend(rgb, rule_layer, rule_colour, rng.uniform(0.6, 1.0))
    pen = [(0.1, 0.1, 0.12), (0.12, 0.15, 0.45), (0.3, 0.25, 0.2)][int(rng.integers(3))]
    rgb = blend(rgb, layer, pen, rng.uniform(0.7, 1.0))
    margin = None
    if rng.random() < 0.4:  # the scanner lid's black margin beyond the paper's edge
        margin = str(rng.choice(["left", "right", "top", "bottom"]))
        rgb = scanner_margin(rgb, margin, rng)
    data, ext = finish(
        rgb,
        rng,
        angle=rng.uniform(-1.5, 1.5),
        blur=rng.uniform(0, 0.9),
        noise=rng.uniform(0, 0.04),
        jpeg=int(rng.integers(40, 95)) if rng.random() < 0.7 else None,
        grey=rng.random() < 0.5,
    )
    label = "".join(map(str, digits))
    return data, ext, {"label": label, "margin": margin, "mark": mark, "near_rule": near_rule}


# --------------------------------------------------------------------------------------
# mouse drawings and the canvas "1"
# --------------------------------------------------------------------------------------
# Straight-stroke digits as a mouse draws them: unit box, y down, a few variants each.
MOUSE_DIGITS: dict[int, list[list[list[tuple[float, float]]]]] = {
    0: [
        [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]],
        [oval(n=20)],
        [
            [
                (0.2, 0),
                (0.8, 0),
                (1, 0.2),
                (1, 0.8),
                (0.8, 1),
                (0.2, 1),
                (0, 0.8),
                (0, 0.2),
                (0.2, 0),
            ]
        ],
    ],
    1: [
        [[(0.5, 0), (0.5, 1)]],
        [[(0.1, 0.25), (0.55, 0), (0.55, 1)]],
        [[(0.5, 0), (0.5, 1)], [(0.1, 1), (0.9, 1)]],
    ],
    2: [
        [[(0, 0), (1, 0), (1, 0.5), (0, 0.5), (0, 1), (1, 1)]],
        [[(0, 0.2), (0.3, 0), (0.8, 0), (1, 0.25), (0, 1), (1, 1)]],
    ],
    3: [
        [[(0, 0), (1, 0), (1, 1), (0, 1)], [(0.25, 0.5), (1, 0.5)]],
        [[(0, 0), (1, 0), (0.35, 0.45), (1, 0.6), (1, 0.9), (0.7, 1), (0, 1)]],
        [[(0, 0.05), (1, 0), (1, 0.48), (0.3, 0.5), (1, 0.52), (1, 1), (0, 0.95)]],
    ],
    4: [
        [[(0, 0), (0, 0.6), (1, 0.6)], [(0.75, 0), (0.75, 1)]],
        [[(0.75, 1), (0.75, 0), (0, 0.65), (1, 0.65)]],
        [[(0.6, 0), (0, 0.65), (1, 0.65)], [(0.6, 0.3), (0.6, 1)]],
    ],
    5: [
        [[(1, 0), (0, 0), (0, 0.45), (1, 0.45), (1, 1), (0, 1)]],
        [[(1, 0), (0.1, 0), (0, 0.45), (0.7, 0.4), (1, 0.65), (0.8, 1), (0, 0.95)]],
    ],
    6: [
        [[(1, 0), (0, 0), (0, 1), (1, 1), (1, 0.5), (0, 0.5)]],
        [[(0.9, 0), (0.1, 0.45), (0, 0.9), (0.5, 1), (1, 0.8), (0.8, 0.5), (0.05, 0.6)]],
    ],
    7: [
        [[(0, 0), (1, 0), (0.35, 1)]],
        [[(0, 0), (1, 0), (0.5, 1)], [(0.35, 0.5), (0.9, 0.5)]],
        [[(0, 0.15), (0, 0), (1, 0), (0.7, 1)]],
    ],
    8: [
        [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)], [(0, 0.5), (1, 0.5)]],
        [oval(0.5, 0.25, 0.4, 0.25, n=16), oval(0.5, 0.72, 0.5, 0.28, n=16)],
        [
            [(0.15, 0), (0.85, 0), (0.85, 0.45), (0.15, 0.45), (0.15, 0)],
            [(0, 0.45), (1, 0.45), (1, 1), (0, 1), (0, 0.45)],
        ],
    ],
    9: [
        [[(1, 0.5), (0, 0.5), (0, 0), (1, 0), (1, 1), (0, 1)]],
        [[(1, 0.5), (0, 0.5), (0, 0), (1, 0), (1, 1)]],
        [oval(0.5, 0.28, 0.5, 0.28, n=16), [(1, 0.28), (0.9, 1)]],
    ],
}


def canvas_image(
    coverage: np.ndarray, rng: np.random.Generator, colour=None, modes=(0.35, 0.45, 0.2)
) -> tuple[bytes, str, str]:
    """Strokes on a canvas: RGBA transparent, ink on white, or white on black (PNG)."""
    mode = str(rng.choice(["rgba", "on_white", "on_black"], p=list(modes)))
    alpha = np.clip(coverage, 0, 1)
    if mode == "rgba":
        colour = colour or MOUSE_COLOURS[int(rng.integers(len(MOUSE_COLOURS)))]
        if rng.random() < 0.15:
            colour = (255, 255, 255)
        rgba = np.zeros((*coverage.shape, 4), np.uint8)
        rgba[..., :3] = np.where(alpha[..., None] > 0, np.asarray(colour, np.uint8), 0)
        rgba[..., 3] = np.round(alpha * 255).astype(np.uint8)
        return encode(Image.fromarray(rgba, "RGBA"), "PNG"), "png", mode
    if mode == "on_white":
        ink = np.asarray(colour or MOUSE_COLOURS[int(rng.integers(len(MOUSE_COLOURS)))], np.float32)
        rgb = 255 - alpha[..., None] * (255 - ink)
    else:
        rgb = np.repeat(alpha[..., None] * 255, 3, axis=2)
    image = Image.fromarray(np.round(rgb).astype(np.uint8), "RGB")
    return encode(image, "PNG"), "png", mode


def render_mouse(rng, images, labels) -> tuple[bytes, str, dict]:
    if rng.random() < 0.25:  # an MNIST test digit, thickened as a canvas pen draws it
        index = int(rng.integers(len(labels)))
        side = int(rng.integers(80, 300))
        g = fs.glyph(images[index], int(side * rng.uniform(0.4, 0.8)), rng.uniform(0.02, 0.08))
        g = g[: side - 2, : side - 2]
        layer = np.zeros((side, side), np.float32)
        stamp(
            layer,
            g,
            int(rng.integers(0, side - g.shape[0] + 1)),
            int(rng.integers(0, side - g.shape[1] + 1)),
        )
        data, ext, mode = canvas_image(layer, rng)
        return data, ext, {"label": str(int(labels[index])), "kind": "mnist_thick", "mode": mode}
    digit = int(rng.integers(10))
    variants = MOUSE_DIGITS[digit]
    variant = int(rng.integers(len(variants)))
    h = int(rng.integers(40, 301))
    w = int(h * rng.uniform(0.7, 1.6))
    dh = h * rng.uniform(0.35, 0.85)
    dw = dh * rng.uniform(0.4, 0.8)
    x0 = rng.uniform(2, max(3, w - dw - 2))
    y0 = rng.uniform(2, max(3, h - dh - 2))
    slant = rng.uniform(-0.15, 0.15)
    strokes = template_strokes(
        variants[variant], rng, (x0, y0, x0 + dw, y0 + dh), rng.uniform(0, 0.03)
    )
    strokes = [[(x + slant * (y0 + dh - y), y) for x, y in s] for s in strokes]
    width = float(rng.choice([1, 1, 2, 2, 3]))
    smooth = rng.random() < 0.3
    layer = draw_strokes((h, w), strokes, width, smooth=smooth, round_caps=False)
    data, ext, mode = canvas_image(layer, rng, modes=(0.35, 0.55, 0.1))
    params = {"kind": f"template_{variant}", "pen_px": width, "mode": mode, "size": [h, w]}
    return data, ext, {"label": str(digit), **params}


def render_canvas_one(rng, images, labels) -> tuple[bytes, str, dict]:
    h, w = [(240, 720), (280, 280)][int(rng.integers(2))]
    thick = float(rng.uniform(8, 30))
    length = h * rng.uniform(0.4, 0.85)
    tilt = np.radians(rng.uniform(-10, 10))
    cx = rng.uniform(thick + length * 0.2, w - thick - length * 0.2)
    cy = rng.uniform(length / 2 + thick / 2, h - length / 2 - thick / 2)
    dx, dy = np.sin(tilt) * length / 2, np.cos(tilt) * length / 2
    n = int(rng.integers(2, 5))  # a hand-drawn stroke wobbles a little
    t = np.linspace(-1, 1, n)
    wobble = rng.normal(0, min(thick * 0.08, length * 0.02), n)
    stroke = [(cx + k * dx + e, cy + k * dy) for k, e in zip(t, wobble, strict=True)]
    strokes = [stroke]
    flag = rng.random() < 0.3
    if flag:
        top = stroke[0]
        f = length * rng.uniform(0.12, 0.3)
        a = np.radians(rng.uniform(20, 60))
        strokes.append([top, (top[0] - f * np.cos(a), top[1] + f * np.sin(a))])
    layer = draw_strokes((h, w), strokes, thick)
    data, ext, mode = canvas_image(layer, rng, colour=(0, 0, 0) if rng.random() < 0.6 else None)
    return data, ext, {"label": "1", "mode": mode, "thick": round(thick, 1), "flag": flag}


# --------------------------------------------------------------------------------------
# printed digits and font letters: Liberation, FreeFont and URW base35 only
# --------------------------------------------------------------------------------------
FONT_FAMILIES = ("Liberation", "Free", "Nimbus", "C059", "P052", "URW", "Z003")
SERIF = ("Serif", "Roman", "C059", "P052", "Bookman", "Mono")


@cache
def printed_fonts() -> tuple[str, ...]:
    """Font files of the allowed families (no DejaVu, no STIX, no symbol fonts)."""
    found = []
    for base in fs.FONT_DIRS:
        for path in sorted(Path(base).rglob("*")):
            if path.suffix.lower() not in (".ttf", ".otf"):
                continue
            name = path.name
            if "DejaVu" in name or "STIX" in name or "Symbol" in name or "D050000L" in name:
                continue
            if name.startswith(FONT_FAMILIES):
                found.append(str(path))
    return tuple(found)


def font_text(text: str, path: str, size: int = 96) -> np.ndarray:
    """``text`` in the font at ``path`` as a coverage layer cropped to the ink."""
    font = ImageFont.truetype(path, size)
    x0, y0, x1, y1 = font.getbbox(text)
    image = Image.new("L", (x1 - x0 + 8, y1 - y0 + 8), 0)
    ImageDraw.Draw(image).text((4 - x0, 4 - y0), text, font=font, fill=255)
    return fs._crop_to_ink(np.asarray(image, np.float32) / 255, 0.2)


def scaled(shape: np.ndarray, height: int) -> np.ndarray:
    h, w = shape.shape
    return fs._resize(
        shape, (max(2, height), max(1, round(w * height / h))), Image.Resampling.LANCZOS
    )


def render_printed(rng, images, labels) -> tuple[bytes, str, dict]:
    fonts = printed_fonts()
    serif = [f for f in fonts if any(s in Path(f).stem for s in SERIF)]
    font = str(rng.choice(serif if serif and rng.random() < 0.5 else fonts))
    paper = np.array([rng.uniform(0.8, 1.0)] * 3) * np.array([1, 1, rng.uniform(0.88, 1)])
    ink = (rng.uniform(0, 0.25),) * 3
    if rng.random() < 0.5:  # a sudoku cell
        label = str(int(rng.integers(1, 10)))
        if rng.random() < 0.3:
            label = "1"  # serif and sans 1s, the ones read as 7 today
        cell = int(rng.integers(28, 121))
        glyph_shape = scaled(font_text(label, font), int(cell * rng.uniform(0.4, 0.75)))
        layer = np.zeros((cell, cell), np.float32)
        gh, gw = glyph_shape.shape
        stamp(
            layer,
            glyph_shape[: cell - 2, : cell - 2],
            (cell - gh) // 2 + int(rng.normal(0, cell * 0.04)),
            (cell - gw) // 2 + int(rng.normal(0, cell * 0.04)),
        )
        rgb = plain_paper((cell, cell), paper, rng, grain=rng.uniform(0, 0.06))
        widths = [
            rng.uniform(1, 2) if rng.random() < 0.7 else rng.uniform(2, 4.5) for _ in range(4)
        ]
        o = [rng.uniform(-1, 4) for _ in range(4)]
        edges = [
            [(0, o[0]), (cell, o[0])],
            [(0, cell - 1 - o[1]), (cell, cell - 1 - o[1])],
            [(o[2], 0), (o[2], cell)],
            [(cell - 1 - o[3], 0), (cell - 1 - o[3], cell)],
        ]
        grid = np.zeros((cell, cell), np.float32)
        for edge, width in zip(edges, widths, strict=True):
            if rng.random() < 0.9:
                np.maximum(
                    grid, draw_strokes((cell, cell), [edge], width, round_caps=False), out=grid
                )
        rgb = blend(rgb, grid, (0.1, 0.1, 0.12), rng.uniform(0.7, 1))
        kind = "sudoku"
    else:
        count = int(rng.integers(2, 7))
        label = str(int(rng.integers(1, 10))) + "".join(
            str(int(rng.integers(10))) for _ in range(count - 1)
        )
        shape = font_text(label, font)
        height = int(rng.integers(14, 100))
        shape = scaled(shape, height)
        mh, mw = shape.shape
        m = [int(height * rng.uniform(0.1, 1.2)) for _ in range(4)]
        layer = np.zeros((mh + m[0] + m[1], mw + m[2] + m[3]), np.float32)
        stamp(layer, shape, m[0], m[2])
        rgb = plain_paper(layer.shape, paper, rng, grain=rng.uniform(0, 0.06))
        kind = "number"
    rgb = blend(rgb, layer, ink, rng.uniform(0.8, 1.0))
    if rng.random() < 0.2:  # white print on a dark ground
        rgb = 1 - rgb
    data, ext = finish(
        rgb,
        rng,
        angle=rng.uniform(-2, 2),
        blur=rng.uniform(0, 1.0),
        noise=rng.uniform(0, 0.04),
        jpeg=int(rng.integers(40, 95)) if rng.random() < 0.6 else None,
        grey=rng.random() < 0.5,
    )
    return data, ext, {"label": label, "kind": kind, "font": Path(font).stem}


# Negatives drawn by hand: unit box, y down.
SHAPES: dict[str, list[list[tuple[float, float]]]] = {
    "A": [[(0.05, 1), (0.5, 0), (0.95, 1)], [(0.25, 0.58), (0.75, 0.58)]],
    "N": [[(0.05, 1), (0.05, 0), (0.95, 1), (0.95, 0)]],
    "H": [[(0.05, 0), (0.05, 1)], [(0.95, 0), (0.95, 1)], [(0.05, 0.48), (0.95, 0.52)]],
    "K": [[(0.1, 0), (0.1, 1)], [(0.85, 0), (0.12, 0.5), (0.9, 1)]],
    "M": [[(0, 1), (0.05, 0), (0.5, 0.55), (0.95, 0), (1, 1)]],
    "W": [[(0, 0), (0.22, 1), (0.5, 0.3), (0.78, 1), (1, 0)]],
    "X": [[(0.05, 0), (0.95, 1)], [(0.95, 0), (0.05, 1)]],
    "E": [[(0.9, 0), (0.05, 0), (0.05, 1), (0.9, 1)], [(0.05, 0.5), (0.65, 0.5)]],
    "F": [[(0.9, 0), (0.05, 0), (0.05, 1)], [(0.05, 0.45), (0.6, 0.45)]],
    "T": [[(0, 0.02), (1, 0)], [(0.5, 0), (0.52, 1)]],
    "Y": [[(0, 0), (0.5, 0.45)], [(1, 0), (0.5, 0.45), (0.5, 1)]],
    "V": [[(0, 0), (0.5, 1), (1, 0)]],
    "R": [[(0.1, 1), (0.1, 0), (0.8, 0.05), (0.85, 0.45), (0.1, 0.5)], [(0.4, 0.5), (0.9, 1)]],
    "plus": [[(0.5, 0.05), (0.5, 0.95)], [(0.05, 0.5), (0.95, 0.5)]],
    "triangle": [[(0.5, 0), (1, 0.9), (0, 0.9), (0.5, 0)]],
    "house": [
        [(0.1, 1), (0.1, 0.45), (0.5, 0), (0.9, 0.45), (0.9, 1), (0.1, 1)],
        [(0.1, 0.45), (0.9, 0.45)],
    ],
    "arrow": [[(0, 0.5), (1, 0.5)], [(0.7, 0.25), (1, 0.5), (0.7, 0.75)]],
    "star": [[(0.5, 0), (0.8, 1), (0.02, 0.36), (0.98, 0.36), (0.2, 1), (0.5, 0)]],
    "smiley": [
        oval(n=30),
        [(0.35, 0.35), (0.35, 0.4)],
        [(0.65, 0.35), (0.65, 0.4)],
        oval(0.5, 0.55, 0.25, 0.2, 20, 160, 10),
    ],
    "check": [[(0, 0.6), (0.3, 1), (1, 0)]],
}
FONT_WORDS = (
    "A",
    "N",
    "H",
    "K",
    "M",
    "W",
    "X",
    "E",
    "F",
    "T",
    "Y",
    "V",
    "R",
    "NAME",
    "TAX",
    "VAT",
    "Mark",
    "Herr",
    "Frau",
    "Art",
    "Anna",
    "Max",
    "Nr",
    "Kw",
    "new",
    "very",
    "Wert",
    "EUR",
)
ITALIC = ("Z003", "Italic", "Oblique")


def render_shapes(rng, images, labels) -> tuple[bytes, str, dict]:
    fonts = printed_fonts()
    if fonts and rng.random() < 0.35:  # letters and words from handwriting-like or italic fonts
        italic = [f for f in fonts if any(s in Path(f).stem for s in ITALIC)] or list(fonts)
        font = str(rng.choice(italic))
        word = str(rng.choice(FONT_WORDS))
        shape = font_text(word, font)
        height = int(rng.integers(20, 160))
        shape = scaled(shape, height)
        m = [int(height * rng.uniform(0.1, 0.8)) for _ in range(4)]
        layer = np.zeros((shape.shape[0] + m[0] + m[1], shape.shape[1] + m[2] + m[3]), np.float32)
        stamp(layer, shape, m[0], m[2])
        params = {"kind": f"font:{word}", "font": Path(font).stem}
    else:
        name = str(rng.choice(list(SHAPES)))
        side = int(rng.integers(48, 320))
        w = int(side * rng.uniform(0.8, 1.6))
        size = side * rng.uniform(0.4, 0.85)
        aspect = rng.uniform(0.6, 1.3)
        x0 = rng.uniform(2, max(3, w - size * aspect - 2))
        y0 = rng.uniform(2, max(3, side - size - 2))
        strokes = template_strokes(
            SHAPES[name], rng, (x0, y0, x0 + size * aspect, y0 + size), rng.uniform(0, 0.035)
        )
        thin = rng.random() < 0.5
        pen = float(rng.choice([1, 2, 3])) if thin else max(3.0, size * rng.uniform(0.05, 0.14))
        layer = draw_strokes((side, w), strokes, pen, smooth=not thin or rng.random() < 0.3)
        params = {"kind": name, "pen_px": round(pen, 1)}
    if rng.random() < 0.6:
        data, ext, mode = canvas_image(layer, rng)
    else:  # a photo or scan of paper
        mode = "paper"
        rgb = plain_paper(layer.shape, (rng.uniform(0.85, 1.0),) * 3, rng, grain=0.08)
        rgb = blend(
            rgb, layer, CHEQUE_INKS[str(rng.choice(list(CHEQUE_INKS)))], rng.uniform(0.8, 1)
        )
        data, ext = finish(
            rgb,
            rng,
            rng.uniform(-4, 4),
            rng.uniform(0, 1.0),
            rng.uniform(0, 0.04),
            int(rng.integers(40, 95)),
        )
    return data, ext, {"label": "", "mode": mode, **params}


# --------------------------------------------------------------------------------------
# a small number on a large page
# --------------------------------------------------------------------------------------
def render_page(rng, images, labels) -> tuple[bytes, str, dict]:
    h, w = int(rng.integers(1200, 3001)), int(rng.integers(1200, 3001))
    count = int(rng.choice([1, 1, 2, 3, 4]))
    digits = [int(rng.integers(10)) for _ in range(count)]
    height = int(rng.integers(60, 321))
    tokens = [(d, pick_digit(rng, images, labels, d), "plain") for d in digits]
    ink = write_number(tokens, height, rng, images)[: h - 4, : w - 4]
    edge = int(0.06 * min(h, w))  # clear of the corners a 3-degree rotation cuts
    top = int(rng.integers(edge, max(edge + 1, h - ink.shape[0] - edge)))
    left = int(rng.integers(edge, max(edge + 1, w - ink.shape[1] - edge)))
    photographed = rng.random() < 0.6
    base = np.array([rng.uniform(0.85, 1.0)] * 3, np.float32) * np.array(
        [1, rng.uniform(0.95, 1), rng.uniform(0.85, 1)], np.float32
    )
    if photographed:
        small = rng.random((6, 6)).astype(np.float32)
        gy, gx = np.mgrid[0:6, 0:6] / 5.0
        d = rng.uniform(-1, 1, 2)
        small = (
            1
            - rng.uniform(0.05, 0.2) * small
            - rng.uniform(0.1, 0.45) * np.clip(gy * d[0] + gx * d[1], 0, 2) / 2
        )
        light = np.asarray(
            Image.fromarray(small.astype(np.float32), "F").resize((w, h), Image.Resampling.BICUBIC)
        )
        grey = light.astype(np.float32) + rng.normal(0, rng.uniform(0.005, 0.03), (h, w)).astype(
            np.float32
        )
    else:
        grey = np.ones((h, w), np.float32)
    colour = [(0.08, 0.08, 0.1), (0.1, 0.15, 0.5), (0.3, 0.3, 0.32)][int(rng.integers(3))]
    rgb = grey[..., None] * base
    ih, iw = ink.shape
    region = rgb[top : top + ih, left : left + iw]
    ink = ink[: region.shape[0], : region.shape[1]]  # a number wider than the page is cut
    ih, iw = ink.shape
    rgb[top : top + ih, left : left + iw] = blend(region, ink, colour, rng.uniform(0.8, 1.0))
    image = Image.fromarray(np.clip(rgb * 255, 0, 255).astype(np.uint8), "RGB")
    if photographed:
        image = image.rotate(rng.uniform(-3, 3), Image.Resampling.BILINEAR, fillcolor=(40, 38, 36))
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
        data, ext = encode(image, "JPEG", quality=int(rng.integers(60, 95))), "jpg"
    else:
        data, ext = encode(image, "PNG"), "png"
    label = "".join(map(str, digits))
    box = [left, top, left + ink.shape[1], top + ink.shape[0]]
    return data, ext, {"label": label, "size": [h, w], "box": box, "photographed": photographed}


RENDERERS = {
    "cheque": render_cheque,
    "ledger": render_ledger,
    "mouse": render_mouse,
    "canvas_one": render_canvas_one,
    "printed": render_printed,
    "shapes": render_shapes,
    "page": render_page,
}


# --------------------------------------------------------------------------------------
# writing sets
# --------------------------------------------------------------------------------------
def render_item(name: str, index: int, seed: int, images, labels) -> tuple[bytes, str, dict]:
    """(encoded image, extension, labels.json entry without the file name) of one item."""
    if name not in RENDERERS:
        raise ValueError(f"unknown set {name!r}; choose from {', '.join(SETS)}")
    return RENDERERS[name](item_rng(name, seed, index), images, labels)


def set_folder(name: str, count: int, seed: int, root: Path = DEFAULT_ROOT) -> Path:
    return Path(root) / f"{name}-n{count}-s{seed}-v{VERSION}"


def write_set(
    name: str,
    count: int = 300,
    seed: int = 1,
    root: Path = DEFAULT_ROOT,
    mnist: Path = DEFAULT_MNIST,
    data: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path | None:
    """Write set ``name`` (image files + labels.json) unless it is there; its folder.

    None (with a message) for a font set when none of the allowed fonts is installed. The
    folder appears atomically (written under a temporary name, then renamed).
    """
    folder = set_folder(name, count, seed, root)
    fonts = [Path(f).stem for f in printed_fonts()] if name in FONT_SETS else None
    if (folder / "labels.json").exists():
        if fonts is None or read_labels(folder).get("fonts") == fonts:
            return folder
        print(f"{folder.name}: the installed fonts changed; rendering it again", file=sys.stderr)
    if name == "printed" and not fonts:
        print(
            "printed: no Liberation, FreeFont or URW base35 fonts in /usr/share/fonts; "
            "skipped (Debian: fonts-liberation fonts-freefont-ttf fonts-urw-base35)",
            file=sys.stderr,
        )
        return None
    images, labels = data if data is not None else fs.load_mnist_test(mnist)
    render = functools.partial(render_item, name, seed=seed, images=images, labels=labels)
    return fs.write_items(folder, name, count, seed, VERSION, render, fonts)


read_labels = fs.read_labels


def contact_sheet(folder: Path, out: Path, count: int = 48, cell: int = 128) -> Path:
    """A grid of the first ``count`` images (RGBA on a checkerboard), each with its label
    (or, for a negative, what it shows)."""
    items = read_labels(folder)["items"][:count]
    cols = 8
    rows = (len(items) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * cell, rows * (cell + 14)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    checker = Image.fromarray(
        ((np.indices((cell, cell)).sum(0) // 8 % 2) * 60 + 150).astype(np.uint8)
    )
    for k, item in enumerate(items):
        image = Image.open(folder / item["file"]).convert("RGBA")
        scale = cell / max(image.size)
        image = image.resize(
            (max(1, int(image.width * scale)), max(1, int(image.height * scale))),
            Image.Resampling.LANCZOS,
        )
        x, y = (k % cols) * cell, (k // cols) * (cell + 14)
        sheet.paste(checker.convert("RGB"), (x, y))
        sheet.paste(image, (x, y), image)
        text = item.get("raw") or item["label"] or f"[{item.get('kind', '')}]"
        draw.text((x + 2, y + cell), str(text)[:20], fill=(200, 0, 0))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="all", help=f"comma-separated, or all: {','.join(SETS)}")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1, help="0 is held out; 1 is validation")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    parser.add_argument(
        "--sheet", action="store_true", help="also write <root>/sheets/reader_<set>.png"
    )
    args = parser.parse_args()
    names = SETS if args.sets == "all" else tuple(args.sets.split(","))
    data = fs.load_mnist_test(args.mnist)
    for name in names:
        start = time.perf_counter()
        folder = write_set(name, args.count, args.seed, args.root, data=data)
        if folder is None:
            continue
        print(f"{folder}  ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
        if args.sheet:
            sheet = contact_sheet(folder, args.root / "sheets" / f"reader_{name}-s{args.seed}.png")
            print(sheet, file=sys.stderr)


if __name__ == "__main__":
    main()
