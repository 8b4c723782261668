"""Any image → the 28×28 view MNIST models expect: the ONE preprocessing function.

:func:`to_mnist` is shared by ``predict`` and the app (``evaluate`` scores MNIST's own test
images, which are already 28×28 views, and needs none of it). It brings a drawing,
a photo of ink on paper or a scan to MNIST's conventions: white digit on black, fitted
into a 20×20 box with its aspect ratio kept, centred by centre of mass in 28×28, values
in [0, 1]. Steps, in order:

1. decode (EXIF orientation, first frame, every Pillow mode), guarded against
   decompression bombs; large photos are decoded at reduced size (JPEG draft mode);
2. flatten transparency over a background that contrasts with the ink, so ink that
   lives only in the alpha channel survives;
3. polarity from the border (light paper → inverted);
4. uneven lighting: a smooth (quadratic) background surface, fitted robustly to a 48×48
   thumbnail, is subtracted when the background actually varies;
5. noise and paper texture: a threshold above the robust noise level *and* above a
   tenth of the ink contrast, with a soft ramp so thin strokes keep their edges;
6. crop to the ink (trimming stray specks by mass), thicken strokes that would end up
   thinner than MNIST's, fit into 20×20 and centre by mass.

Only NumPy and Pillow: importing this module costs no TensorFlow.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from digitctl.errors import ImageError, NoDigitFound

ImageSource = Union[str, "os.PathLike[str]", bytes, BinaryIO, Image.Image]

MAX_PIXELS = 64_000_000  # a 48 MP phone photo fits; a 40000×40000 bomb does not
MIN_SIDE = 8  # below this there is no room for a digit
WORK_SIDE = 512  # larger inputs are reduced to about this before analysis
MNIST_SIDE = 28
BOX_SIDE = 20
MNIST_CENTRE = 14.0  # MNIST's mean centre of mass, in pixel-index coordinates
INK_FLOOR = 0.1  # share of the ink contrast below which a pixel is paper (texture, shadow)
MIN_CONTRAST = 0.08  # ink must differ from the paper by at least this (0..1 scale)
TARGET_STROKE = 2.6  # median stroke width of MNIST test digits, in 28×28 pixels
THIN_STROKE = 1.8  # strokes thinner than this (after fitting) are thickened

# Formats that may carry an orientation tag (reading EXIF costs ~50 µs: skip it for the rest).
_EXIF_FORMATS = frozenset({"JPEG", "MPO", "TIFF", "WEBP", "HEIF", "AVIF"})
IMAGE_SUFFIXES = frozenset(
    ".png .jpg .jpeg .jpe .gif .bmp .dib .tif .tiff .webp .ppm .pgm .pbm .pnm .ico .tga".split()
)


# --------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------
def _describe(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return "the image data"
    return getattr(source, "name", None) or "the image"


def _open(source: ImageSource, work_side: int | None) -> Image.Image:
    name = _describe(source)
    if isinstance(source, Image.Image):
        image = source
    else:
        handle: object = source
        if isinstance(source, (bytes, bytearray)):
            if not source:
                raise ImageError(f"{name} is empty (0 bytes)")
            handle = io.BytesIO(source)
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            try:
                info = path.stat()
            except FileNotFoundError:
                raise ImageError(f"{path} does not exist") from None
            except PermissionError:
                raise ImageError(f"{path} cannot be read (permission denied)") from None
            if stat.S_ISDIR(info.st_mode):
                raise ImageError(f"{path} is a directory, not an image")
            if info.st_size == 0:
                raise ImageError(f"{path} is empty (0 bytes)")
        try:
            with warnings.catch_warnings():
                # Our own, stricter size limit below replaces Pillow's bomb warning, and
                # damaged metadata ("Corrupt EXIF data") must not add lines to stderr.
                warnings.simplefilter("ignore")
                image = Image.open(handle)  # type: ignore[arg-type]
        except Image.DecompressionBombError:
            raise ImageError(
                f"{name} is too large to decode safely (decompression bomb?)"
            ) from None
        except UnidentifiedImageError:
            raise ImageError(
                f"{name} is not an image format Pillow can read (PNG, JPEG, GIF, BMP, TIFF, "
                "WebP, ...)"
            ) from None
        except OSError as exc:
            raise ImageError(f"cannot read {name}: {exc.strerror or exc}") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{name} is {width}×{height} pixels, more than the {MAX_PIXELS // 1_000_000} "
            "megapixels allowed (decompression bomb?); scale it down first"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            f"{name} is {width}×{height} pixels, too small to hold a digit "
            f"(at least {MIN_SIDE}×{MIN_SIDE} needed)"
        )
    if work_side is not None and image.format == "JPEG" and max(width, height) > 2 * work_side:
        # Decode at 1/2, 1/4 or 1/8 scale: most of a big photo's decode time saved.
        image.draft(image.mode, (work_side, work_side))
    try:
        with warnings.catch_warnings():
            # Pillow warns about damaged metadata ("Tag data larger than file"); the
            # pixels still decode, and a warning line would break "one line per input".
            warnings.simplefilter("ignore")
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)
            image.load()
            if image.format in _EXIF_FORMATS or "exif" in image.info:
                image = ImageOps.exif_transpose(image) or image
    except Image.DecompressionBombError:
        raise ImageError(f"{name} is too large to decode safely (decompression bomb?)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        detail = str(exc) or type(exc).__name__
        if "truncated" in detail.lower() or isinstance(exc, (SyntaxError, ValueError)):
            raise ImageError(f"{name} is truncated or corrupt ({detail})") from None
        raise ImageError(f"cannot decode {name}: {detail}") from None
    return image


def load_image(source: ImageSource) -> Image.Image:
    """Decode ``source`` (path, bytes, binary file or PIL image) into a loaded PIL image.

    Applies the EXIF orientation and keeps only the first frame of animations. Raises
    ImageError for unreadable, truncated, tiny or absurdly large images.
    """
    return _open(source, None)


# --------------------------------------------------------------------------------------
# to one channel
# --------------------------------------------------------------------------------------
def _reduce(image: Image.Image, work_side: int) -> Image.Image:
    side = max(image.size)
    if side <= work_side:
        return image
    scale = work_side / side
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)


def _as_float(image: Image.Image) -> np.ndarray:
    array = np.asarray(image, dtype=np.float32)
    if image.mode in ("L", "LA", "RGB", "RGBA", "P", "PA"):
        return array * np.float32(1 / 255)
    low, high = float(array.min()), float(array.max())  # 16/32-bit ints and floats
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


def _grey_and_alpha(image: Image.Image, work_side: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Luminance in [0, 1] and, when the image has real transparency, alpha in [0, 1]."""
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "L")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        image = image.convert("RGB" if mode in ("LAB", "HSV") else "L")
        if image.mode == "RGB":
            image = image.convert("L")
    elif mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        image = image.convert("I").convert("F") if mode != "I" else image.convert("F")
    elif mode == "RGBa":
        image = image.convert("RGBA")
    elif mode == "La":
        image = image.convert("LA")
    if image.mode == "RGB":
        image = image.convert("L")
    image = _reduce(image, work_side)
    if image.mode in ("RGBA", "LA"):
        alpha = np.asarray(image.getchannel("A"), dtype=np.float32) * np.float32(1 / 255)
        grey = _as_float(image.convert("L"))
        if float(alpha.min()) > 0.98:
            return grey, None
        return grey, alpha
    if image.mode not in ("L", "F"):
        image = image.convert("L")
    return _as_float(image), None


def _flatten_alpha(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    # The ink may live only in alpha (a canvas stroke over fully transparent black), so
    # composite over the opposite of the visible content's shade rather than over white.
    weight = float(alpha.sum())
    shade = float((grey * alpha).sum() / weight) if weight > 0 else 0.0
    background = np.float32(1.0 if shade < 0.5 else 0.0)
    return grey * alpha + background * (1 - alpha)


# --------------------------------------------------------------------------------------
# ink map
# --------------------------------------------------------------------------------------
def _border(array: np.ndarray) -> np.ndarray:
    h, w = array.shape
    band = max(1, min(h, w) // 20)
    return np.concatenate(
        [
            array[:band].ravel(),
            array[-band:].ravel(),
            array[:, :band].ravel(),
            array[:, -band:].ravel(),
        ]
    )


def _box_blur(array: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)² window, edges replicated (Pillow's BoxBlur lacks float mode)."""
    k = 2 * radius + 1
    padded = np.pad(array, radius, mode="edge")
    out = np.cumsum(padded, axis=0, dtype=np.float32)
    out = np.concatenate([out[k - 1 : k], out[k:] - out[:-k]], axis=0)
    out = np.cumsum(out, axis=1, dtype=np.float32)
    out = np.concatenate([out[:, k - 1 : k], out[:, k:] - out[:, :-k]], axis=1)
    return out * np.float32(1 / (k * k))


def _background_surface(ink: np.ndarray) -> np.ndarray | None:
    """A smooth estimate of the paper under ``ink`` (bright ink), or None if it is flat.

    A quadratic surface fitted to a 48×48 thumbnail, refitted without the pixels that
    stand out from it (the ink): lighting gradients and vignettes are that smooth, and
    unlike a grey opening it cannot punch holes into thick strokes.
    """
    h, w = ink.shape
    if min(h, w) < 48:
        return None
    thumb = np.asarray(Image.fromarray(ink, "F").resize((48, 48), Image.Resampling.BOX))
    t = np.linspace(-1, 1, 48, dtype=np.float64)
    yy, xx = np.meshgrid(t, t, indexing="ij")
    basis = np.stack([np.ones_like(xx), yy, xx, yy * yy, xx * xx, yy * xx]).reshape(6, -1).T
    values = thumb.ravel().astype(np.float64)
    # Start from the pixels near the median (the paper, whichever the polarity) and drop
    # what stands out on *either* side: the ink never becomes "paper", so the wrong
    # polarity finds nothing instead of calling the whole page ink.
    residual = values - _median(values)
    keep = np.abs(residual) <= 2.5 * (1.4826 * _median(np.abs(residual)) + 1e-3)
    for _ in range(3):
        chosen = basis[keep]
        # Normal equations: a 6×6 solve is ~100× faster than lstsq's SVD here.
        coef = np.linalg.solve(chosen.T @ chosen + 1e-6 * np.eye(6), chosen.T @ values[keep])
        residual = values - basis @ coef
        spread = 1.4826 * _median(np.abs(residual[keep])) + 1e-3
        keep = np.abs(residual) < 2.5 * spread
    fitted = (basis @ coef).reshape(48, 48).astype(np.float32)
    if float(fitted.max() - fitted.min()) < 0.05:
        return None
    surface = Image.fromarray(fitted, "F").resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(surface, dtype=np.float32)


def _quantiles(values: np.ndarray, qs: tuple[float, ...]) -> tuple[float, ...]:
    """Nearest-rank quantiles; np.percentile's overhead dominates on 28×28 images."""
    flat = values.ravel()
    last = flat.size - 1
    ranks = sorted({int(round(q * last)) for q in qs})
    part = np.partition(flat, ranks)
    return tuple(float(part[int(round(q * last))]) for q in qs)


def _median(values: np.ndarray) -> float:
    """The exact median of a 1-D array, as np.median gives it.

    np.median imports numpy.ma on its first call (~17 ms), a tenth of predict's start-up.
    """
    middle = values.size // 2
    if values.size % 2:
        return float(np.partition(values, middle)[middle])
    part = np.partition(values, (middle - 1, middle))
    return float((part[middle - 1] + part[middle]) / 2)


def _quantile(values: np.ndarray, q: float) -> float:
    return _quantiles(values, (q,))[0]


def _sample(array: np.ndarray, most: int = 40_000) -> np.ndarray:
    """An evenly strided subset for statistics: percentiles of 250k pixels are slow."""
    step = int(np.ceil(np.sqrt(array.size / most)))
    return array[::step, ::step] if step > 1 else array


def ink_map(grey: np.ndarray) -> np.ndarray:
    """Bright-ink map in [0, 1] from a luminance image: polarity, lighting and noise handled.

    Raises NoDigitFound when nothing stands out from the background.
    """
    paper = _quantile(_border(grey), 0.5)
    low, high = _quantiles(_sample(grey), (0.005, 0.995))
    if high - low < MIN_CONTRAST:
        raise NoDigitFound("no digit found: the image is blank (no ink stands out)")
    # +1: the paper sits at the bright end (dark ink); -1: at the dark end (light ink).
    balance = ((paper - low) - (high - paper)) / (high - low)
    if abs(balance) >= 0.9 or min(grey.shape) < 48:
        return _bright_ink_map(1.0 - grey if balance > 0 else grey)[0]
    # Unsure: in a photo of a small digit under uneven light the extremes are the
    # lighting, not the ink. Try both polarities; keep the one whose ink stands out more.
    found = []
    for candidate in (1.0 - grey, grey):
        try:
            found.append(_bright_ink_map(candidate))
        except NoDigitFound as exc:
            error = exc
    if not found:
        raise error
    return max(found, key=lambda pair: pair[1])[0]


def _bright_ink_map(ink: np.ndarray) -> tuple[np.ndarray, float]:
    """The ink map of an image whose ink is brighter than its paper, and the ink's contrast."""
    h, w = ink.shape
    ink = ink.astype(np.float32, copy=False)
    if min(h, w) >= 64:
        # Averaging 3×3 cuts pixel noise threefold; strokes at this size are wider.
        ink = _box_blur(ink, 1)
    surface = _background_surface(ink)
    if surface is not None:
        ink = ink - surface
    sample = _sample(ink)
    base = _quantile(sample, 0.5)
    # Noise from the darker half only: ink (up to half the pixels of a tight crop) would
    # inflate a plain median absolute deviation.
    below = sample[sample <= base]
    noise = 1.4826 * _quantile(base - below, 0.5) if below.size else 0.0
    candidates = sample[sample > base + max(5 * noise, MIN_CONTRAST)]
    if candidates.size < max(4, sample.size // 5000):
        raise NoDigitFound("no digit found: nothing in the image stands out as ink")
    level = _quantile(candidates, 0.9)
    contrast = level - base
    if contrast < MIN_CONTRAST:
        raise NoDigitFound("no digit found: the ink is too faint to read")
    floor = base + max(3 * noise, INK_FLOOR * contrast)
    span = max(level - floor, 1e-3)
    return np.clip((ink - floor) / span, 0.0, 1.0), contrast


# --------------------------------------------------------------------------------------
# crop, fit, centre
# --------------------------------------------------------------------------------------
def _mass_range(profile: np.ndarray, trim: float) -> tuple[int, int]:
    cumulative = np.cumsum(profile)
    total = cumulative[-1]
    start = int(np.searchsorted(cumulative, total * trim, side="right"))
    stop = int(np.searchsorted(cumulative, total * (1 - trim), side="left")) + 1
    start = min(start, len(profile) - 1)
    stop = max(stop, start + 1)
    # Grow back over the digit's own faint edges that the trim cut.
    while start > 0 and profile[start - 1] > 0:
        start -= 1
    while stop < len(profile) and profile[stop] > 0:
        stop += 1
    return start, stop


def crop_to_ink(ink: np.ndarray, trim: float = 0.002) -> np.ndarray:
    """The smallest window holding the ink, ignoring stray specks far from the digit."""
    rows = ink.sum(axis=1)
    cols = ink.sum(axis=0)
    if float(rows.sum()) <= 0:
        raise NoDigitFound("no digit found: no ink left after removing the background")
    top, bottom = _mass_range(rows, trim)
    left, right = _mass_range(cols, trim)
    return ink[top:bottom, left:right]


def stroke_width(ink: np.ndarray) -> float:
    """Typical stroke width in pixels: twice the ink area over its boundary length."""
    mask = ink > 0.5
    area = int(mask.sum())
    if area == 0:
        return 0.0
    padded = np.pad(mask, 1)
    interior = (
        padded[1:-1, 1:-1]
        & padded[:-2, 1:-1]
        & padded[2:, 1:-1]
        & padded[1:-1, :-2]
        & padded[1:-1, 2:]
    )
    boundary = int((mask & ~interior).sum())
    return 2.0 * area / max(boundary, 1)


def _fit(ink: np.ndarray, side: int) -> np.ndarray:
    h, w = ink.shape
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return ink
    return np.asarray(
        Image.fromarray(ink, "F").resize(
            size, Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        )
    )


def _thicken(ink: np.ndarray) -> np.ndarray:
    """Dilate strokes that would come out thinner than MNIST's after fitting to 20×20."""
    if max(ink.shape) > 4 * BOX_SIDE:
        ink = _fit(ink, 4 * BOX_SIDE)  # dilate at a modest size: cheap and scale-free
    scale = BOX_SIDE / max(ink.shape)
    width = stroke_width(ink) * scale
    if width >= THIN_STROKE or width == 0:
        return ink
    grow = (TARGET_STROKE - width) / scale  # pixels to add at this size
    size = int(round(grow)) | 1
    if size < 3:
        return ink
    pad = size // 2
    padded = np.pad(ink, pad)
    return np.asarray(Image.fromarray(padded, "F").filter(ImageFilter.MaxFilter(min(size, 9))))


def centre_by_mass(box: np.ndarray) -> np.ndarray:
    """Place ``box`` (at most 20×20) in 28×28 with its centre of mass at MNIST's centre."""
    h, w = box.shape
    total = float(box.sum())
    if total <= 0:
        raise NoDigitFound("no digit found")
    cy = float(box.sum(axis=1) @ np.arange(h, dtype=np.float32)) / total
    cx = float(box.sum(axis=0) @ np.arange(w, dtype=np.float32)) / total
    top = int(round(MNIST_CENTRE - cy))
    left = int(round(MNIST_CENTRE - cx))
    # Keep the whole box inside the field even for lopsided digits.
    top = min(max(top, 0), MNIST_SIDE - h)
    left = min(max(left, 0), MNIST_SIDE - w)
    view = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    view[top : top + h, left : left + w] = box
    return view


def view_from_ink(ink: np.ndarray) -> np.ndarray:
    """Crop, thicken if needed, fit into 20×20 and centre by mass: the model's view."""
    crop = crop_to_ink(ink)
    crop = _thicken(crop)
    crop = crop_to_ink(crop, trim=0.0)
    box = _fit(crop, BOX_SIDE)
    peak = float(box.max())
    if peak <= 0:
        raise NoDigitFound("no digit found")
    box = np.clip(box * np.float32(1 / peak), 0.0, 1.0)
    return centre_by_mass(box)


def to_mnist(source: ImageSource) -> np.ndarray:
    """The (28, 28) float32 view in [0, 1] of the digit in ``source``, MNIST-style.

    Raises ImageError when the image cannot be read and NoDigitFound ("no digit found")
    when it holds nothing that looks like ink.
    """
    image = _open(source, WORK_SIDE)
    grey, alpha = _grey_and_alpha(image, WORK_SIDE)
    if alpha is not None:
        grey = _flatten_alpha(grey, alpha)
    return view_from_ink(ink_map(grey))


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES
