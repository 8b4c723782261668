"""Generators of realistic digit images: what people actually feed to ``digitctl predict``.

Each generator takes a digit *shape* — a 2-D float array in [0, 1], 1 where the ink is,
such as an MNIST image or :func:`draw_digit` — and an ``np.random.Generator``, and
returns the encoded file bytes. Rendering MNIST test digits this way keeps their labels,
so ``benchmarks/realistic_accuracy.py`` can measure accuracy on them; the tests render
:func:`draw_digit` shapes so they need no data.

Styles:
- ``canvas``: a browser-canvas drawing, RGBA, strokes on a fully transparent background
  (the ink colour varies; with black ink, the digit lives only in alpha);
- ``canvas_thin``: the same with a thin pen;
- ``paper``: a phone photo (640×480 JPEG) of dark ink on paper: uneven lighting,
  vignette, paper texture, sensor noise, slight blur and rotation, a random EXIF
  orientation whose pixels are stored rotated;
- ``scan``: a tiny greyscale scan (16–40 px), grey paper, noise, 8- or 16-bit;
- ``large``: a 4000×3000 phone photo with the digit small in the frame.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

STYLES = ("canvas", "canvas_thin", "paper", "scan", "large")

# EXIF orientation → the transpose that turns the upright picture into the stored pixels.
_STORED = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


# --------------------------------------------------------------------------------------
# shapes
# --------------------------------------------------------------------------------------
def draw_digit(label: int, size: int = 112, width: int = 12) -> np.ndarray:
    """A crude, MNIST-like hand-drawn ``label`` (0, 1, 3, 4, 7) as a float shape."""
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    s = size / 112

    def p(*xy: float) -> list[tuple[float, float]]:
        return [(xy[i] * s, xy[i + 1] * s) for i in range(0, len(xy), 2)]

    w = max(1, round(width * s))
    if label == 0:
        draw.ellipse(p(32, 16, 80, 96), outline=255, width=w)
    elif label == 1:
        draw.line(p(52, 16, 60, 96), fill=255, width=w)
    elif label == 3:
        draw.arc(p(34, 14, 78, 56), 200, 90, fill=255, width=w)
        draw.arc(p(30, 52, 80, 98), 270, 160, fill=255, width=w)
    elif label == 4:
        draw.line(p(64, 14, 30, 66, 84, 66), fill=255, width=w, joint="curve")
        draw.line(p(68, 40, 68, 98), fill=255, width=w)
    elif label == 7:
        draw.line(p(28, 20, 84, 20, 50, 98), fill=255, width=w, joint="curve")
    else:
        raise ValueError(f"draw_digit knows 0, 1, 3, 4 and 7, not {label}")
    return np.asarray(image, dtype=np.float32) / 255


def _fit_shape(shape: np.ndarray, height: int) -> np.ndarray:
    """The shape cropped to its ink and scaled (bicubic) to ``height`` pixels tall."""
    rows = np.where(shape.max(axis=1) > 0.05)[0]
    cols = np.where(shape.max(axis=0) > 0.05)[0]
    crop = shape[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    size = (max(1, round(w * height / h)), max(1, height))
    image = Image.fromarray((crop * 255).astype(np.uint8), "L").resize(
        size, Image.Resampling.BICUBIC
    )
    return np.asarray(image, dtype=np.float32) / 255


def _place(shape: np.ndarray, canvas: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Put ``shape`` at a random spot of an empty (height, width) canvas."""
    out = np.zeros(canvas, dtype=np.float32)
    h, w = shape.shape
    h, w = min(h, canvas[0]), min(w, canvas[1])
    top = int(rng.integers(0, canvas[0] - h + 1))
    left = int(rng.integers(0, canvas[1] - w + 1))
    out[top : top + h, left : left + w] = shape[:h, :w]
    return out


def _ink_coverage(shape: np.ndarray, blur: float) -> np.ndarray:
    """Pen-like coverage: MNIST's soft grey edges firmed up, then a little blur."""
    firm = np.clip((shape - 0.25) / 0.5, 0, 1)
    if blur > 0:
        image = Image.fromarray((firm * 255).astype(np.uint8), "L")
        firm = np.asarray(image.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float32) / 255
    return firm


def _smooth_noise(shape: tuple[int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    grid = rng.random((cells, cells)).astype(np.float32)
    image = Image.fromarray(grid, "F").resize((shape[1], shape[0]), Image.Resampling.BICUBIC)
    return np.asarray(image)


def _lighting(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    height, width = size
    gh, gw = max(2, height // 16), max(2, width // 16)
    yy = np.linspace(-0.5, 0.5, gh, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, gw, dtype=np.float32)[None, :]
    direction = rng.uniform(-1, 1, size=2).astype(np.float32)
    gradient = yy * direction[0] + xx * direction[1]
    light = 1.0 - rng.uniform(0.2, 0.45) * (gradient - gradient.min()) / np.ptp(gradient)
    light *= 1.0 - rng.uniform(0.05, 0.25) * (yy**2 + xx**2) / 0.5
    image = Image.fromarray(light.astype(np.float32), "F")
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------
# styles
# --------------------------------------------------------------------------------------
def canvas(shape: np.ndarray, rng: np.random.Generator, thin: bool = False) -> bytes:
    """A browser-canvas drawing: RGBA strokes on a fully transparent background."""
    side = int(rng.integers(200, 400))
    height = int(side * rng.uniform(0.45, 0.85))
    coverage = _ink_coverage(_fit_shape(shape, height), 0.0)
    if thin:
        # A thin pen: keep only the stroke's core (the brightest part of MNIST's soft
        # stroke), a third to a half of its width.
        fitted = _fit_shape(shape, height)
        level = float(np.percentile(fitted[fitted > 0.05], rng.uniform(55, 75)))
        core = Image.fromarray(((fitted >= level) * 255).astype(np.uint8), "L")
        coverage = np.asarray(core.filter(ImageFilter.GaussianBlur(1)), dtype=np.float32) / 255
    alpha = _place(coverage, (side, side), rng)
    colour = [(0, 0, 0), (255, 255, 255), (20, 40, 200), (200, 30, 30)][int(rng.integers(4))]
    rgba = np.zeros((side, side, 4), dtype=np.uint8)
    rgba[..., :3] = np.where(alpha[..., None] > 0, np.array(colour, np.uint8), 0)
    rgba[..., 3] = (alpha * 255).astype(np.uint8)
    return _encode(Image.fromarray(rgba, "RGBA"), "PNG")


def paper(
    shape: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int] = (480, 640),
    digit_share: tuple[float, float] = (0.4, 0.8),
    quality: int | None = None,
) -> bytes:
    """A phone photo of dark ink on unevenly lit, textured paper, as a JPEG with EXIF."""
    height, width = size
    digit_h = int(min(height, width) * rng.uniform(*digit_share))
    coverage = _ink_coverage(_fit_shape(shape, digit_h), rng.uniform(0.5, 1.5))
    angle = float(rng.uniform(-8, 8))
    rotated = Image.fromarray(coverage, "F").rotate(angle, Image.Resampling.BILINEAR, expand=True)
    coverage = _place(np.asarray(rotated), (height, width), rng)
    # Lighting: a linear gradient times a vignette, 50-100% of full brightness. Smooth,
    # so it is computed on a coarse grid and scaled up (large photos stay cheap).
    light = _lighting((height, width), rng)
    paper_tone = rng.uniform(0.8, 0.97) - 0.06 * _smooth_noise(size, 12, rng)
    ink_tone = rng.uniform(0.05, 0.3)
    grey = (paper_tone * (1 - coverage) + ink_tone * coverage) * light
    noise = rng.standard_normal(size, dtype=np.float32) * np.float32(rng.uniform(0.015, 0.05))
    grey += noise  # sensor noise
    tint = np.array([1.0, rng.uniform(0.95, 1.0), rng.uniform(0.85, 1.0)], np.float32)
    rgb = np.clip(grey[..., None] * tint * 255, 0, 255).astype(np.uint8)
    image = Image.fromarray(rgb, "RGB")
    if max(size) <= 1000:  # camera softness; a large photo's ink is already soft
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    orientation = int(rng.choice([1, 1, 3, 6, 8]))
    exif = Image.Exif()
    if orientation != 1:
        image = image.transpose(_STORED[orientation])
        exif[0x0112] = orientation
    q = quality if quality is not None else int(rng.integers(70, 92))
    return _encode(image, "JPEG", quality=q, exif=exif.tobytes())


def scan(shape: np.ndarray, rng: np.random.Generator) -> bytes:
    """A tiny greyscale scan, 16-40 px, grey paper, noise; sometimes 16-bit."""
    side = int(rng.integers(16, 41))
    coverage = _ink_coverage(_fit_shape(shape, int(side * rng.uniform(0.7, 0.9))), 0.0)
    coverage = _place(coverage, (side, side), rng)
    paper_tone = rng.uniform(0.7, 0.95)
    ink_tone = rng.uniform(0.05, 0.35)
    grey = paper_tone * (1 - coverage) + ink_tone * coverage
    grey = np.clip(grey + rng.normal(0, rng.uniform(0.01, 0.04), grey.shape), 0, 1)
    if rng.random() < 0.3:
        return _encode(Image.fromarray((grey * 65535).astype(np.uint16)), "PNG")
    return _encode(Image.fromarray((grey * 255).astype(np.uint8), "L"), "PNG")


def large(shape: np.ndarray, rng: np.random.Generator) -> bytes:
    """A 4000×3000 phone photo with the digit taking 15-35% of the short side."""
    return paper(shape, rng, size=(3000, 4000), digit_share=(0.15, 0.35), quality=85)


def render(style: str, shape: np.ndarray, rng: np.random.Generator) -> bytes:
    """The encoded image of ``shape`` in ``style`` (one of STYLES)."""
    if style == "canvas":
        return canvas(shape, rng)
    if style == "canvas_thin":
        return canvas(shape, rng, thin=True)
    if style == "paper":
        return paper(shape, rng)
    if style == "scan":
        return scan(shape, rng)
    if style == "large":
        return large(shape, rng)
    raise ValueError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
