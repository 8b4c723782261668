"""Glyph ink → the 28×28 view MNIST models expect.

MNIST's conventions: white digit on black, fitted into a 20×20 box with its aspect ratio
kept, centred by centre of mass in 28×28, values in [0, 1]. Strokes that would end up
thinner than MNIST's are thickened first, so a thin pen reads like a thick one.
"""

from __future__ import annotations

import cv2
import numpy as np

from digitctl.errors import NoDigitFound

MNIST_SIDE = 28
BOX_SIDE = 20
MNIST_CENTRE = 14.0  # MNIST's mean centre of mass, in pixel-index coordinates
TARGET_STROKE = 2.6  # median stroke width of MNIST test digits, in 28×28 pixels
THIN_STROKE = 1.8  # strokes thinner than this (after fitting) are thickened
# A pixel is inside the ink when it and its four neighbours are ink (OpenCV's erosion does
# that test in one call; five shifted copies in NumPy took four times as long).
_FOUR_NEIGHBOURS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def _mass_range(profile: np.ndarray, trim: float) -> tuple[int, int]:
    cumulative = profile.cumsum()
    total = cumulative[-1]
    start = int(cumulative.searchsorted(total * trim, side="right"))
    stop = int(cumulative.searchsorted(total * (1 - trim), side="left")) + 1
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
    mask = (ink > 0.5).view(np.uint8)
    area = cv2.countNonZero(mask)
    if area == 0:
        return 0.0
    # Outside the image is no ink: a stroke that reaches the edge has a boundary there.
    interior = cv2.erode(mask, _FOUR_NEIGHBOURS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    boundary = area - cv2.countNonZero(interior)
    return 2.0 * area / max(boundary, 1)


def _fit(ink: np.ndarray, side: int) -> np.ndarray:
    h, w = ink.shape
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return ink
    # Area averaging down, bilinear up (OpenCV: ~10× faster than Pillow on float images).
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(ink, np.float32), size, interpolation=method)


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
    size = min(size, 9)
    half = size // 2
    padded = cv2.copyMakeBorder(
        np.ascontiguousarray(ink, np.float32), half, half, half, half, cv2.BORDER_CONSTANT, value=0
    )
    return cv2.dilate(padded, np.ones((size, size), np.uint8))


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
