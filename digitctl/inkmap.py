"""Luminance → ink map: which pixels are ink, whatever the polarity, lighting or framing.

The paper is estimated without assuming a clean border: a smooth surface fitted robustly
to a thumbnail, ignoring what stands out on either side (the ink, whichever the
polarity); small crops, which have no room for uneven light, get one paper level.
Subtracting it removes lighting gradients and vignettes. Polarity is the side of the
paper on which the stand-out pixels carry more mass; when both sides are close (tight
crops whose ink fills half the frame, tiny scans) both readings are returned and the
caller lets the model decide.

OpenCV does the filtering: its headless wheel imports in ~0.04 s, where scipy.ndimage
would cost 0.4 s of predict's cold-start budget (shared/notes/image-libraries.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from digitctl.errors import NoDigitFound

MIN_CONTRAST = 0.08  # ink must differ from the paper by at least this (0..1 scale)
INK_FLOOR = 0.1  # share of the ink contrast below which a pixel is paper (texture, shadow)
THUMB_SIDE = 48  # the paper estimate is made at this size: lighting is that smooth
SMALL_INPUT = 32  # inputs whose short side is below this are upsampled first
UPSAMPLED_SIDE = 96  # ... to about this short side (tiny scans keep their shape)
# One polarity must carry this many times the other's stand-out mass to be trusted alone.
POLARITY_MARGIN = 2.0
FLAT_PAPER_BELOW = 64  # inputs smaller than this are treated as evenly lit
# A small crop whose darker side holds 50% ± this of the pixels has an unclear polarity.
FLAT_AMBIGUOUS = 0.2
# A small input this many times taller than wide may be a stroke cropped to its ink (a
# "1"): its ink can outnumber its paper, so the majority says nothing of the polarity.
# (Not wide ones: a number's strip has paper between its digits.)
NARROW_CROP = 3.0
SHADED_FLOOR = 0.35  # share of the ink contrast below which shading is left out
TINY_SCAN_NOISE = 0.02  # the noise assumed when a small crop's measured noise hides all ink
SHADOW_SIDE = 0.25  # plateaus wider than this share of the short side may be shadows ...
SHADOW_CAP = 0.5  # ... when they stand out less than this share of the ink
REGION_MIN_MARK = 4  # ink_region: marks of fewer pixels are specks ...
REGION_SPECK = 0.05  # ... and so are those under this share of the largest mark


@dataclass
class InkMap:
    """Bright ink in [0, 1] on a black background, and how much it stands out."""

    ink: np.ndarray  # float32 (H, W)
    contrast: float
    dark_ink: bool  # True: the input had dark ink on light paper
    scale: float  # input pixels per ink-map pixel (upsampling makes it < 1)
    offset: tuple[int, int] = (0, 0)  # the map's top-left in input pixels (a cropped page)


def ink_region(grey: np.ndarray) -> tuple[int, int, int, int] | None:
    """Where ink stands out from the paper, either polarity: the box (x0, y0, x1, y1) of
    the marks that stand out, in ``grey``'s pixels; None when nothing does.

    Unlike the quantile test of :func:`ink_maps`, this finds ink however small a share of
    the image it covers (a digit on a big clean page): each pixel is compared with the
    paper fitted under it, against the noise measured between neighbouring pixels. Specks
    far smaller than the largest mark (dust, JPEG noise) do not widen the box.
    """
    grey = grey.astype(np.float32, copy=False)
    if min(grey.shape) < FLAT_PAPER_BELOW:
        return None
    signal = np.abs(grey - paper_estimate(grey))
    threshold = max(MIN_CONTRAST, 6 * _pixel_noise(grey))
    mask = (signal > threshold).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    kept = stats[1:][areas >= max(REGION_MIN_MARK, REGION_SPECK * int(areas.max()))]
    if not len(kept):
        return None
    x0, y0 = kept[:, cv2.CC_STAT_LEFT].min(), kept[:, cv2.CC_STAT_TOP].min()
    x1 = (kept[:, cv2.CC_STAT_LEFT] + kept[:, cv2.CC_STAT_WIDTH]).max()
    y1 = (kept[:, cv2.CC_STAT_TOP] + kept[:, cv2.CC_STAT_HEIGHT]).max()
    return int(x0), int(y0), int(x1), int(y1)


def upsample_small(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """Tiny inputs (8–31 px) scaled up so that strokes span several pixels; scale factor."""
    h, w = grey.shape
    if min(h, w) >= SMALL_INPUT:
        return grey, 1.0
    factor = min(UPSAMPLED_SIDE / min(h, w), 12.0)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    # Bilinear keeps few-grey-level scans from ringing (bicubic overshoots their steps).
    return cv2.resize(grey, size, interpolation=cv2.INTER_LINEAR), 1.0 / factor


def paper_estimate(grey: np.ndarray) -> np.ndarray:
    """The paper under the ink: a smooth (quadratic) surface fitted robustly to a thumbnail.

    The fit starts from the pixels near the median (the paper, whichever the polarity) and
    drops what stands out on *either* side, three times: lighting gradients and vignettes
    are that smooth, and unlike a grey opening or a median it can neither punch holes
    into thick strokes nor lag behind a sharp brightening at one edge.
    """
    h, w = grey.shape
    thumb = cv2.resize(grey, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA)
    basis = _quadratic_basis()
    values = thumb.ravel().astype(np.float64)
    residual = values - _median(values)
    keep = np.abs(residual) <= 2.5 * (1.4826 * _median(np.abs(residual)) + 1e-3)
    for _ in range(3):
        chosen = basis[keep]
        # Normal equations: a 6×6 solve is ~100× faster than lstsq's SVD here.
        coef = np.linalg.solve(chosen.T @ chosen + 1e-6 * np.eye(6), chosen.T @ values[keep])
        residual = values - basis @ coef
        spread = 1.4826 * _median(np.abs(residual[keep])) + 1e-3
        keep = np.abs(residual) < 2.5 * spread
    fitted = (basis @ coef).reshape(THUMB_SIDE, THUMB_SIDE).astype(np.float32)
    return cv2.resize(fitted, (w, h), interpolation=cv2.INTER_LINEAR)


@cache
def _quadratic_basis() -> np.ndarray:
    """(THUMB_SIDE², 6): 1, y, x, y², x², xy over the thumbnail, coordinates in [-1, 1]."""
    t = np.linspace(-1, 1, THUMB_SIDE, dtype=np.float64)
    yy, xx = np.meshgrid(t, t, indexing="ij")
    basis = np.stack([np.ones_like(xx), yy, xx, yy * yy, xx * xx, yy * xx]).reshape(6, -1).T
    basis.setflags(write=False)
    return basis


def _median(values: np.ndarray) -> float:
    """The exact median of a 1-D array (np.median imports numpy.ma: 17 ms of start-up)."""
    middle = values.size // 2
    if values.size % 2:
        return float(np.partition(values, middle)[middle])
    part = np.partition(values, (middle - 1, middle))
    return float((part[middle - 1] + part[middle]) / 2)


def _stride(array: np.ndarray, most: int = 20_000) -> int:
    """The step, both ways, that leaves at most about ``most`` pixels of ``array``."""
    return max(1, int(np.ceil(np.sqrt(array.size / most))))


def _sample(array: np.ndarray, most: int = 20_000) -> np.ndarray:
    """An evenly strided subset for statistics."""
    step = _stride(array, most)
    return (array[::step, ::step] if step > 1 else array).ravel()


def _quantile(values: np.ndarray, q: float) -> float:
    """Nearest-rank quantile; np.percentile's overhead dominates on small images."""
    rank = int(round(q * (values.size - 1)))
    return float(np.partition(values, rank)[rank])


def _robust_noise(signal: np.ndarray) -> float:
    """Noise level of the paper: from the side of zero that holds no ink of this polarity."""
    below = signal[signal <= 0]
    return 1.4826 * _quantile(-below, 0.5) if below.size > 8 else 0.0


def _pixel_noise(grey: np.ndarray) -> float:
    """Noise from differences between neighbouring pixels: blind to shading, however
    uneven, that the paper estimate did not follow."""
    rows = grey[:: _stride(grey)]
    differences = np.abs(rows[:, 1:] - rows[:, :-1]).ravel()
    return 1.4826 * _quantile(differences, 0.5) / np.sqrt(2) if differences.size else 0.0


def _bright_ink(
    signal: np.ndarray,
    dark_ink: bool,
    scale: float,
    most_noise: float = 1.0,
    floor_share: float = INK_FLOOR,
) -> InkMap | None:
    """The ink map of a paper-subtracted signal whose ink is positive, or None if none."""
    sample = _sample(signal)
    noise = min(_robust_noise(sample), most_noise)
    candidates = sample[sample > max(5 * noise, MIN_CONTRAST)]
    if candidates.size < max(4, sample.size // 5000):
        return None
    level = _quantile(candidates, 0.9)
    if level < MIN_CONTRAST:
        return None
    floor = max(3 * noise, floor_share * level)
    span = max(level - floor, 1e-3)
    ink = np.clip((signal - floor) * np.float32(1 / span), 0.0, 1.0)
    return InkMap(ink=ink, contrast=level, dark_ink=dark_ink, scale=scale)


def ink_maps(grey: np.ndarray) -> list[InkMap]:
    """The plausible ink maps of a luminance image in [0, 1], the likelier first.

    One map when the polarity is clear, two when it is not. Raises NoDigitFound when
    nothing stands out from the paper.
    """
    sample = _sample(grey)
    low, high = _quantile(sample, 0.005), _quantile(sample, 0.995)
    if high - low < MIN_CONTRAST:
        raise NoDigitFound("no digit found: the image is blank (no ink stands out)")
    small = min(grey.shape) < FLAT_PAPER_BELOW
    grey, scale = upsample_small(grey.astype(np.float32, copy=False))
    if min(grey.shape) >= 64 and not small:
        # Averaging 3×3 cuts pixel noise threefold; strokes at this size are wider.
        grey = cv2.blur(grey, (3, 3))
    if small:
        # A small crop has no room for uneven light, and its ink may fill half of it:
        # the paper is one level, that of the majority side.
        signals, ambiguous = _flat_signals(grey)
        ambiguous = ambiguous or grey.shape[0] >= NARROW_CROP * grey.shape[1]
    else:
        signals, ambiguous = _lit_signals(grey)
    maps = []
    for rank, (dark, signal) in enumerate(signals if ambiguous else signals[:1]):
        if scale == 1.0:  # an upsampled tiny scan's strokes are as wide as a shadow
            signal = _without_shadows(signal)
        found = _bright_ink(signal, dark, scale)
        if found is None and rank == 0 and not small:
            # The paper estimate can swallow a huge digit; fall back on flat paper.
            flat = dict(_flat_signals(grey)[0])
            found = _bright_ink(flat[dark], dark, scale)
            if found is None:
                # Shading the smooth paper fit cannot follow (a photo's stripes of shadow)
                # measures as noise and hides the ink: measure the noise between
                # neighbouring pixels instead, and leave the shading below a higher floor.
                found = _bright_ink(
                    signal, dark, scale, most_noise=_pixel_noise(grey), floor_share=SHADED_FLOOR
                )
                if found is not None and found.contrast < 2 * MIN_CONTRAST:
                    found = None  # faint texture, not ink
        elif found is None and small:
            # A tiny scan with a few grey levels: the "noise" measured on the paper side is
            # the digit's own edge levels, which would hide it. Trust the levels instead.
            found = _bright_ink(signal, dark, scale, most_noise=TINY_SCAN_NOISE)
        if found is not None:
            maps.append(found)
    if not maps:
        raise NoDigitFound("no digit found: nothing in the image stands out as ink")
    return maps


def _without_shadows(signal: np.ndarray) -> np.ndarray:
    """The ink signal without the plateaus of shadows: regions far wider than a stroke
    that stand out less than SHADOW_CAP of the ink (a phone's or a hand's sharp shadow
    across the paper, which the smooth paper fit cannot follow and which a small crop's
    one paper level takes for ink). A morphological opening keeps what is wider than
    SHADOW_SIDE of the short side and loses the strokes; filled ink, which stands out
    as much as the strokes, is left as it is."""
    h, w = signal.shape
    side = max(15, int(min(h, w) * SHADOW_SIDE)) | 1
    level = _quantile(_sample(signal), 0.99)
    cap = SHADOW_CAP * level
    if min(h, w) >= 64:
        # A first look at a quarter of the size: most photos have no plateau at all.
        quarter = cv2.resize(signal, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
        kernel = np.ones((side // 4 | 1,) * 2, np.uint8)
        if not (cv2.morphologyEx(quarter, cv2.MORPH_OPEN, kernel) > INK_FLOOR * level).any():
            return signal
    plateau = cv2.morphologyEx(signal, cv2.MORPH_OPEN, np.ones((side, side), np.uint8))
    shadow = np.where((plateau > 0) & (plateau < cap), plateau, 0).astype(np.float32)
    return signal - shadow


def _lit_signals(grey: np.ndarray) -> tuple[list[tuple[bool, np.ndarray]], bool]:
    """Paper-subtracted ink signals (dark ink, light ink), the likelier first; ambiguity."""
    signal = grey - paper_estimate(grey)
    small = _sample(signal)
    noise = 1.4826 * _quantile(np.abs(small - _quantile(small, 0.5)), 0.5)
    margin = max(4 * noise, MIN_CONTRAST / 2)
    dark_mass = float(np.clip(-small - margin, 0, None).sum())
    light_mass = float(np.clip(small - margin, 0, None).sum())
    ratio = max(dark_mass, light_mass) / max(min(dark_mass, light_mass), 1e-9)
    pairs = [(True, -signal), (False, signal)]
    if light_mass > dark_mass:
        pairs.reverse()
    # A clean border (if it is paper) is a second opinion on the polarity.
    ambiguous = ratio < POLARITY_MARGIN or _border_disagrees(grey, pairs[0][0])
    return pairs, ambiguous


def _flat_signals(grey: np.ndarray) -> tuple[list[tuple[bool, np.ndarray]], bool]:
    """Ink signals against one paper level per polarity; the minority side is the ink."""
    sample = _sample(grey)
    low, high = _quantile(sample, 0.05), _quantile(sample, 0.95)
    if high - low < MIN_CONTRAST:
        # The ink is under 5% of the pixels (a thin "1" on a canvas): then the middle
        # from the 5th and 95th percentiles is the paper itself, and every pixel of the
        # paper would count as darker (or lighter) than it.
        low, high = _quantile(sample, 0.005), _quantile(sample, 0.995)
    middle = (low + high) / 2
    darker = float((sample < middle).mean())
    bright_side, dark_side = sample[sample >= middle], sample[sample < middle]
    paper_if_dark_ink = _quantile(bright_side, 0.5) if bright_side.size else middle
    paper_if_light_ink = _quantile(dark_side, 0.5) if dark_side.size else middle
    pairs = [(True, paper_if_dark_ink - grey), (False, grey - paper_if_light_ink)]
    if darker > 0.5:
        pairs.reverse()
    return pairs, abs(darker - 0.5) < FLAT_AMBIGUOUS


def _border_disagrees(grey: np.ndarray, dark_first: bool) -> bool:
    """True when a clean border suggests the other polarity than the mass test."""
    h, w = grey.shape
    band = max(1, min(h, w) // 20)
    border = np.concatenate(
        [grey[:band].ravel(), grey[-band:].ravel(), grey[:, :band].ravel(), grey[:, -band:].ravel()]
    )
    low, high = _quantile(_sample(grey), 0.02), _quantile(_sample(grey), 0.98)
    if high - low < MIN_CONTRAST:
        return False
    paper_level = (_quantile(border, 0.5) - low) / (high - low)
    border_says_dark_ink = paper_level > 0.5
    return border_says_dark_ink != dark_first
