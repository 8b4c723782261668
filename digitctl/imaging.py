"""Any image → what the model sees: decoding, and the ONE preprocessing entry point.

The pipeline, one module per stage:

1. decode (here): EXIF orientation, first frame, every Pillow mode, guarded against
   decompression bombs; large photos are decoded at reduced size (JPEG draft mode);
   transparency is flattened over a background that contrasts with the ink, so ink that
   lives only in the alpha channel survives;
2. ink map (:mod:`digitctl.inkmap`): paper and lighting estimated without trusting the
   border, polarity (both readings when it is unclear), noise floor;
3. layout (:mod:`digitctl.layout`): rules, boxes and underlines removed, strokes grouped
   into glyphs, lines ordered;
4. glyph → 28×28 view (:mod:`digitctl.glyph`): crop, thicken thin strokes, fit into 20×20,
   centre by mass;
5. reading (:mod:`digitctl.reading`): with the model, the polarity, the segmentation of
   touching digits and the not-a-digit decision.

:func:`decode_grey` feeds the reading used by ``predict``, the app and the benchmarks;
:func:`to_mnist` gives the single view a one-digit image yields without a model (training
data, ``--save-view`` of old scripts). Only NumPy, Pillow and OpenCV: no TensorFlow.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from digitctl.errors import ImageError, NoDigitFound
from digitctl.glyph import (  # noqa: F401 - re-exported: the view of one glyph
    centre_by_mass,
    crop_to_ink,
    stroke_width,
    view_from_ink,
)

ImageSource = Union[str, "os.PathLike[str]", bytes, BinaryIO, np.ndarray, Image.Image]
ACCEPTED_SOURCES = (
    "a path, bytes, a binary file object, a NumPy array (H×W grey, H×W×3 RGB or H×W×4 RGBA; "
    "uint8, or float in [0, 1]) or a PIL image"
)

MAX_PIXELS = 64_000_000  # a 48 MP phone photo fits; a 40000×40000 bomb does not
MIN_SIDE = 8  # a long side below this leaves no room for a digit (the other side may be
# a single pixel: a tight crop of a thin "1")
WORK_SIDE = 768  # larger inputs are reduced to at most this on the long side ...
WORK_AREA = 400 * 400  # ... and about this many pixels: digits stay > 60 px tall
# A page reduced PAGE_REDUCED times or more whose ink sits in a box under PAGE_CROP_BELOW
# of its area is read from a crop of that box (plus PAGE_MARGIN of its longer side on
# every side), at working size.
PAGE_REDUCED = 2.0
PAGE_CROP_BELOW = 0.25
PAGE_MARGIN = 0.25
_FULL_SIZE = "digitctl_full_size"  # image.info key: the size before JPEG draft decoding

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


def array_image(array: np.ndarray) -> Image.Image:
    """A PIL image of an H×W (grey), H×W×1, H×W×3 (RGB) or H×W×4 (RGBA) array of uint8
    (or bool) values, or of floats in [0, 1]; TypeError for other shapes and types."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise TypeError(
            f"cannot read a NumPy array of shape {array.shape}: expected H×W (grey), "
            "H×W×3 (RGB) or H×W×4 (RGBA)"
        )
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        finite = array[np.isfinite(array)]
        if finite.size != array.size or (finite.size and (finite.min() < 0 or finite.max() > 1)):
            raise ImageError(
                "a float array must hold values in [0, 1] (multiply by 255 and use uint8 for "
                "0-255 values)"
            )
        array = np.round(array * 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise TypeError(
            f"cannot read a NumPy array of {array.dtype}: expected uint8, or float in [0, 1]"
        )
    return Image.fromarray(np.ascontiguousarray(array))  # L, RGB or RGBA by its shape


def check_source(source: ImageSource) -> ImageSource:
    """``source`` itself when it is something an image can be read from, else TypeError."""
    if isinstance(source, (str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray)):
        return source
    if hasattr(source, "read"):
        return source
    raise TypeError(f"cannot read a {type(source).__name__}: give {ACCEPTED_SOURCES}")


def _open(source: ImageSource, work_side: int | None) -> Image.Image:
    check_source(source)
    if isinstance(source, np.ndarray):
        source = array_image(source)
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
    if max(width, height) < MIN_SIDE:
        raise ImageError(
            f"{name} is {width}×{height} pixels, too small to hold a digit "
            f"(at least {MIN_SIDE} pixels tall or wide)"
        )
    if work_side is not None and image.format == "JPEG" and image is not source:
        # Decode at 1/2, 1/4 or 1/8 scale when that still leaves the working size: most of
        # a big photo's decode time saved. A colour JPEG is decoded to its luma alone
        # (the same grey levels as converting it, without the colour work: 0.2 ms a photo).
        # Never on the caller's own image, which must come back as it was given.
        scale = _work_scale(width, height, work_side)
        if scale > 0.5:
            scale = 1.0
        image.info[_FULL_SIZE] = (width, height)  # decode_page may need every pixel back
        image.draft(
            "L" if image.mode == "RGB" else image.mode,
            (round(width * scale), round(height * scale)),
        )
    try:
        with warnings.catch_warnings():
            # Pillow warns about damaged metadata ("Tag data larger than file"); the
            # pixels still decode, and a warning line would break "one line per input".
            warnings.simplefilter("ignore")
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)
            image.load()
            if image.format in _EXIF_FORMATS or "exif" in image.info:
                if image is source:  # the caller's image: never changed in place
                    image = ImageOps.exif_transpose(image) or image
                else:  # in place: without an orientation tag a copy costs 0.1 ms a photo
                    ImageOps.exif_transpose(image, in_place=True)
    except Image.DecompressionBombError:
        raise ImageError(f"{name} is too large to decode safely (decompression bomb?)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        detail = str(exc) or type(exc).__name__
        if "truncated" in detail.lower() or isinstance(exc, (SyntaxError, ValueError)):
            raise ImageError(f"{name} is truncated or corrupt ({detail})") from None
        raise ImageError(f"cannot decode {name}: {detail}") from None
    return image


def load_image(source: ImageSource) -> Image.Image:
    """Decode ``source`` (path, bytes, binary file, NumPy array or PIL image) into a loaded
    PIL image.

    Applies the EXIF orientation and keeps only the first frame of animations. Raises
    ImageError for unreadable, truncated, tiny or absurdly large images.
    """
    return _open(source, None)


# --------------------------------------------------------------------------------------
# to one channel
# --------------------------------------------------------------------------------------
def _work_scale(width: int, height: int, work_side: int) -> float:
    return min(1.0, work_side / max(width, height), (WORK_AREA / (width * height)) ** 0.5)


def _reduce(image: Image.Image, work_side: int) -> Image.Image:
    """At most ``work_side`` on the long side and about ``WORK_AREA`` pixels in all."""
    width, height = image.size
    scale = _work_scale(width, height, work_side)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
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


def decode_grey(source: ImageSource) -> tuple[np.ndarray, tuple[int, int]]:
    """The luminance in [0, 1] at working size (transparency flattened) and the input's size.

    Raises ImageError when the image cannot be read.
    """
    image = _open(source, WORK_SIDE)
    return _work_grey(image), image.size


def decode_page(
    source: ImageSource,
) -> tuple[np.ndarray, tuple[int, int], tuple[int, int, int, int]]:
    """What the reading starts from: the luminance in [0, 1] at working size, the input's
    size, and the window of the input it shows (x0, y0, x1, y1).

    A page reduced to working size whose ink sits in a small part of it (a number written
    on a big sheet, a digit in a corner of a photo) would leave that ink a few pixels
    thick, and too small a share of the pixels to stand out: the window is then the
    ink's region (:func:`digitctl.inkmap.ink_region`) with a margin, decoded again from
    the input's own pixels at working size. Otherwise the window is the whole input.
    """
    from digitctl.inkmap import ink_region

    image = _open(source, WORK_SIDE)
    size = image.size
    grey = _work_grey(image)
    whole = (0, 0, *size)
    input_width = image.info.get(_FULL_SIZE, size)[0]  # before JPEG draft decoding
    if grey.shape[1] * PAGE_REDUCED > input_width:  # little to gain from the input's pixels
        return grey, size, whole
    region = ink_region(grey)
    if region is None:
        return grey, size, whole
    h, w = grey.shape
    x0, y0, x1, y1 = region
    if (x1 - x0) * (y1 - y0) >= PAGE_CROP_BELOW * w * h:
        return grey, size, whole
    margin = PAGE_MARGIN * max(x1 - x0, y1 - y0)
    sx, sy = size[0] / w, size[1] / h
    window = (
        max(0, int((x0 - margin) * sx)),
        max(0, int((y0 - margin) * sy)),
        min(size[0], int(np.ceil((x1 + margin) * sx))),
        min(size[1], int(np.ceil((y1 + margin) * sy))),
    )
    full = _full_resolution(source, image)
    fx, fy = full.size[0] / size[0], full.size[1] / size[1]
    crop = full.crop(
        (
            round(window[0] * fx),
            round(window[1] * fy),
            round(window[2] * fx),
            round(window[3] * fy),
        )
    )
    return _work_grey(crop), size, window


def _full_resolution(source: ImageSource, image: Image.Image) -> Image.Image:
    """``image`` with every pixel of the input: decoded again when JPEG draft mode
    decoded it reduced (and the source can be read again)."""
    if _FULL_SIZE not in image.info or image.info[_FULL_SIZE] == image.size:
        return image
    if hasattr(source, "seek"):
        try:
            source.seek(0)  # type: ignore[union-attr]
        except (OSError, ValueError):
            return image
    return _open(source, None)


def _work_grey(image: Image.Image) -> np.ndarray:
    grey, alpha = _grey_and_alpha(image, WORK_SIDE)
    return grey if alpha is None else _flatten_alpha(grey, alpha)


def to_mnist(source: ImageSource) -> np.ndarray:
    """The (28, 28) float32 view in [0, 1] of the digit in ``source``, MNIST-style.

    The layout stage runs as for ``predict`` (rules and boxes removed); without a model to
    arbitrate, the likelier polarity is taken and, of several glyphs, the one with the most
    ink. Raises ImageError when the image cannot be read and NoDigitFound ("no digit
    found") when it holds nothing that looks like ink.
    """
    from digitctl.reading import draft

    drafted = draft(*decode_page(source))
    if drafted.failure is not None:
        raise NoDigitFound(drafted.failure)
    glyphs = [g for g in drafted.hypotheses[0].glyphs if g.whole is not None]
    if not glyphs:
        raise NoDigitFound("no digit found: no ink left after removing lines and boxes")
    biggest = max(glyphs, key=lambda g: float(drafted.views[g.whole].sum()) * g.height)
    return drafted.views[biggest.whole]


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES
