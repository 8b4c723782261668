"""Ink map → the ink without paper furniture: ruled and grid lines, box edges, underlines.

The first step of the layout stage (:mod:`digitctl.layout`). Long straight runs
(morphological opening with long thin kernels, the forms-processing classic) are
candidate lines. A candidate that reaches past the rest of the ink on both ends, or that
closes a box around it, is a rule; a shorter one (a 7's bar, a 2's base) is kept. When
nothing but lines is there, a frame's lines go and a straight stroke inside stays (a "1"
in a box or a comb's cell). The strokes a removed rule crossed are bridged again (a
closing across the rule's band), and the upright sides of a box left between two removed
rules are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

INK_LEVEL = 0.3  # ink-map value above which a pixel is a stroke
RULE_LEVEL = 0.25  # rules are looked for lower: grey or blue printed lines are fainter
# ... and lower still in ink maps this large (short side, pixels) and not upsampled: a
# photo's faint printed lines break into short runs at 0.25, while in a small or an
# upsampled crop a faint level takes the strokes' blurred rims for lines.
FAINT_RULES_FROM = 64
FAINT_RULE_LEVEL = 0.2
RUN_TILT = 14  # a straight run may wander across its direction by 1/RUN_TILT of its length
RULE_SPAN = 0.45  # a rule candidate spans at least this share of the image side
RULE_REACH = 0.1  # ... and reaches past the other ink by this share of its extent
MAX_RULE_THICKNESS = 0.2  # rules are thin: at most this share of the image's short side
# ... or up to this share when they draw a box around ink of its own (the heavy printed
# box or comb of a small crop): lines this thick for their length are a frame's.
MAX_FRAME_THICKNESS = 0.3
OTHER_INK_SHARE = 0.25  # less ink than this share of the longest line's is no digit beside it
STROKE_OVER_SIDE = 2.5  # a "side" this many times thicker than the box's thinnest is a stroke
BOXED_LEAST = 0.12  # writing inside a box is at least this share of the short side tall
OTHER_INK_TALL = 0.3  # ... unless a piece of it is this share of the image's height tall
THIN_FRAME = 0.2  # a box's lines are at most this share of its short side thick
BOX_SIDE_SHAPE = 0.3  # a box side left over is at most this wide for its height
# Writing off the lines whose contrast is below RELEVEL_BELOW of theirs is rescaled to it
# (by at most RELEVEL_MOST_GAIN); off-line ink below RELEVEL_FLOOR is texture, and less
# than RELEVEL_LEAST of the image is no writing.
RELEVEL_BELOW = 0.7
RELEVEL_MOST_GAIN = 3.0
RELEVEL_FLOOR = 0.15
RELEVEL_LEAST = 0.002
SPECK_SHARE = 0.03  # components below this share of the largest one's area are specks
# A frame cell's sides lie outside this middle band of the image (shares of its side) ...
CELL_MIDDLE = (0.35, 0.65)
CELL_LEAST = 0.15  # ... and the cell holds at least this share of the image
CELL_LEAST_SIDE = 8  # pixels
CELL_REACH = 0.1  # a cell's side reaches past writing that touches it by this share of its height
CELL_EDGE = 0.03  # a side ending this near the image's top or bottom edge was cut by the crop


def label_components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """``cv2.connectedComponentsWithStats`` (8-connected): count, labels, stats, centroids.

    16-bit labels where the mask cannot hold 65,535 components (each takes a 2×2 cell at
    least): OpenCV's 32-bit path with statistics is 2.5× slower on one thread (0.4 against
    1.0 ms on a 360×360 photo), for the same labels.
    """
    h, w = mask.shape[:2]
    small = ((h + 1) // 2) * ((w + 1) // 2) < 65_535
    return cv2.connectedComponentsWithStats(
        mask, connectivity=8, ltype=cv2.CV_16U if small else cv2.CV_32S
    )


def _runs(mask: np.ndarray, length: int, horizontal: bool) -> np.ndarray:
    """Pixels on straight runs of at least ``length``, tolerating a slight slant.

    The mask is first thickened across the run direction so a line tilted by a few
    degrees (a phone photo of a notebook) still forms long runs; the result is
    intersected with the original mask.
    """
    # A tilt of up to ~4 degrees: thicken by length/14 across the run direction. (length/25,
    # ~2 degrees, missed the lines of tilted photos; length/10 took tight crops' strokes.)
    thickness = max(3, length // RUN_TILT) | 1
    across = (thickness, 1) if horizontal else (1, thickness)  # (rows, columns)
    along = (1, length) if horizontal else (length, 1)
    thick = cv2.dilate(mask, np.ones(across, np.uint8))
    opened = cv2.morphologyEx(thick, cv2.MORPH_OPEN, np.ones(along, np.uint8))
    return opened & mask


def _quarter(mask: np.ndarray) -> np.ndarray | None:
    """The mask at a quarter of its size (a pixel set where any of its 4×4 was), for the
    cheap first look of :func:`_rule_band`; None for images too small to shrink."""
    h, w = mask.shape
    if min(h, w) < 64:
        return None
    return (cv2.resize(mask * 255, (w // 4, h // 4), interpolation=cv2.INTER_AREA) > 0).astype(
        np.uint8
    )


def _rule_band(
    quarter: np.ndarray | None, shape: tuple[int, int], horizontal: bool, length: int
) -> tuple[int, int] | None:
    """Where long straight runs may be, across their direction: the rows (horizontal) or
    columns (vertical) to search at full size, or None when there are none. Found first
    at a quarter of the size: most photos of a digit have no runs and skip the full-size
    search, and the rest search only the band that holds them (a digit's "1" is narrow)."""
    across = shape[0] if horizontal else shape[1]
    if quarter is None:
        return 0, across
    found = _runs(quarter, max(4, length // 4), horizontal).any(axis=1 if horizontal else 0)
    if not found.any():
        return None
    first = int(np.argmax(found))
    last = len(found) - int(np.argmax(found[::-1]))
    # A quarter-size pixel covers four; the full-size search thickens across the run by
    # up to length / RUN_TILT, and a tilted line wanders that much more: keep a margin of both.
    margin = 4 + 2 * (max(3, length // RUN_TILT) | 1)
    return max(0, 4 * first - margin), min(across, 4 * last + margin)


def _rule_candidates(
    mask: np.ndarray, horizontal: bool, quarter: np.ndarray | None
) -> list[tuple[np.ndarray, tuple, float]]:
    """Straight, thin, long components of one orientation: (pixels, box, thickness)."""
    h, w = mask.shape
    side = w if horizontal else h
    length = max(8, int(side * RULE_SPAN))
    band = _rule_band(quarter, (h, w), horizontal, length)
    if band is None:
        return []
    runs = np.zeros_like(mask)
    window = (slice(*band), slice(None)) if horizontal else (slice(None), slice(*band))
    runs[window] = _runs(np.ascontiguousarray(mask[window]), length, horizontal)
    if not runs.any():
        return []
    count, labels, stats, _ = label_components(runs)
    found = []
    thickest = max(2, int(min(h, w) * MAX_FRAME_THICKNESS))
    for index in range(1, count):
        x, y, bw, bh, area = (int(v) for v in stats[index])
        extent = bw if horizontal else bh
        if extent < length:
            continue
        pixels = labels == index
        # The median across the run, not area / length: where a stroke touches the line,
        # its pixels join the run and would make the line look thick.
        thickness = float(_band_thickness(pixels[y : y + bh, x : x + bw], horizontal))
        if thickness <= thickest:
            found.append((pixels, (x, y, x + bw, y + bh), thickness))
    return found


def _thin_unless_boxed(candidates: list[LineCandidate], mask: np.ndarray) -> list[LineCandidate]:
    """The candidates without those thicker than MAX_RULE_THICKNESS of the short side, unless
    they are the lines of a box around ink of its own (a tight crop's strokes are thick
    too, but enclose no writing apart from them)."""
    thick = max(2, int(min(mask.shape) * MAX_RULE_THICKNESS))
    thin = [c for c in candidates if c.thickness <= thick]
    if len(thin) == len(candidates):
        return candidates
    box = _rectangle(candidates, mask, thin_frame=MAX_FRAME_THICKNESS)
    return [c for i, c in enumerate(candidates) if c.thickness <= thick or i in box]


def _reaches_past(box: tuple, other: tuple | None, horizontal: bool, thickness: float) -> bool:
    """Whether a candidate extends well beyond the other ink at both of its ends.

    "Well": by a tenth of the other ink's extent and twice the line's own thickness, so
    a 7's bar or a 2's base, which end where the digit's other strokes end, stay.
    """
    if other is None:
        return True
    if horizontal:
        reach = max(3.0, RULE_REACH * (other[2] - other[0]), 2 * thickness)
        return box[0] <= other[0] - reach and box[2] >= other[2] + reach
    reach = max(3.0, RULE_REACH * (other[3] - other[1]), 2 * thickness)
    return box[1] <= other[1] - reach and box[3] >= other[3] + reach


def _extent(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    points = cv2.findNonZero(mask)
    if points is None:
        return None
    x, y, w, h = cv2.boundingRect(points)
    return (x, y, x + w, y + h)


@dataclass
class LineCandidate:
    pixels: np.ndarray  # bool mask
    box: tuple[int, int, int, int]
    thickness: float
    horizontal: bool


def _sides_around(candidates: list[LineCandidate], other: tuple) -> dict[str, list[int]]:
    """Indices of the candidates above, below, left and right of ``other``, by side."""
    sides: dict[str, list[int]] = {"top": [], "bottom": [], "left": [], "right": []}
    for i, c in enumerate(candidates):
        if c.horizontal:
            if c.box[3] <= other[1] + c.thickness:
                sides["top"].append(i)
            elif c.box[1] >= other[3] - c.thickness:
                sides["bottom"].append(i)
        else:
            if c.box[2] <= other[0] + c.thickness:
                sides["left"].append(i)
            elif c.box[0] >= other[2] - c.thickness:
                sides["right"].append(i)
    return sides


def _box_sides(candidates: list[LineCandidate], other: tuple) -> set[int]:
    """Indices of the candidates that are the outer edges of a box around ``other``.

    A box shows at least three of its sides outside the other ink (the crop may cut the
    fourth), or two opposite sides that both reach past the ink along their length.
    """
    sides = _sides_around(candidates, other)
    present = [name for name, found in sides.items() if found]
    if len(present) >= 3:
        return {i for found in sides.values() for i in found}
    for first, second, horizontal in (("top", "bottom", True), ("left", "right", False)):
        pair = sides[first] + sides[second]
        if (
            sides[first]
            and sides[second]
            and all(_longer_than(candidates[i], other, horizontal) for i in pair)
        ):
            return set(pair)
    return set()


def _strokes_off(sides: set[int], candidates: list[LineCandidate], rest: np.ndarray) -> set[int]:
    """The box sides without the digit's own straight strokes: a line much thicker than
    the box's thinnest side that touches the other ink is a stroke (the thick stem of a
    "6" or "4" beside it, in a box drawn with a thin pen), not a side."""
    if len(sides) < 2:
        return sides
    thinnest = min(candidates[i].thickness for i in sides)
    return {
        i
        for i in sides
        if candidates[i].thickness <= STROKE_OVER_SIDE * thinnest
        or not _touches(candidates[i], rest)
    }


def _rectangle(
    candidates: list[LineCandidate], mask: np.ndarray, thin_frame: float = THIN_FRAME
) -> set[int]:
    """Indices of the lines that draw a box: two horizontal and two vertical lines whose
    ends meet at four corners, with the lines between them that join both long sides (a
    comb's dividers), around ink of its own. Found from the lines alone, for when nothing
    but lines is there and the frame's sides lie inside the lines' extent (a comb's cells
    have the comb's long lines beyond them), which :func:`_inside_frame` does not see."""
    horizontal = [i for i, c in enumerate(candidates) if c.horizontal]
    vertical = [i for i, c in enumerate(candidates) if not c.horizontal]
    if len(horizontal) < 2 or len(vertical) < 2:
        return set()

    # The mask's components, labelled once for every pair of long sides tried.
    components = label_components(mask)

    def near(a: float, b: float, c: LineCandidate, d: LineCandidate) -> bool:
        return abs(a - b) <= max(3.0, 2 * max(c.thickness, d.thickness))

    for top in horizontal:
        for bottom in horizontal:
            t, b = candidates[top], candidates[bottom]
            if b.box[1] <= t.box[3]:
                continue
            sides = []
            for v in vertical:
                c = candidates[v]
                # Spans from the top line to the bottom one, within the width both cover.
                if (
                    near(c.box[1], t.box[1], c, t)
                    and near(c.box[3], b.box[3], c, b)
                    and c.box[0] >= max(t.box[0], b.box[0]) - 2 * c.thickness
                    and c.box[2] <= min(t.box[2], b.box[2]) + 2 * c.thickness
                ):
                    sides.append(v)
            if len(sides) < 2:
                continue
            left = min(sides, key=lambda v: candidates[v].box[0])
            right = max(sides, key=lambda v: candidates[v].box[2])
            width = candidates[right].box[2] - candidates[left].box[0]
            height = b.box[3] - t.box[1]
            if width < 0.5 * height:
                continue  # two strokes close together, not the sides of a box
            thickest = max(candidates[i].thickness for i in (top, bottom, left, right))
            if thickest > thin_frame * min(width, height):
                continue  # strokes as thick as a digit's for their length: a "0", not a box
            inset = int(thickest) + 2
            x0, x1 = candidates[left].box[0] + inset, candidates[right].box[2] - inset
            y0, y1 = t.box[1] + inset, b.box[3] - inset
            if x1 <= x0 or y1 <= y0 or not _holds_apart(components, (x0, y0, x1, y1), [t, b]):
                continue  # nothing inside apart from the lines: a "0" drawn straight
            edges = _union([t, b])
            dividers = {v for v in sides if _touches(candidates[v], edges)}
            if left in dividers and right in dividers:
                return {top, bottom} | dividers
    return set()


def _holds_apart(
    components: tuple, inner: tuple[int, int, int, int], lines: list[LineCandidate]
) -> bool:
    """Whether ``inner`` holds ink of its own that is not joined to ``lines``
    (``components``: the mask's :func:`label_components`)."""
    x0, y0, x1, y1 = inner
    count, labels, stats, _ = components
    joined = set(np.unique(labels[_union(lines)]).tolist())
    least = max(4, 0.01 * (x1 - x0) * (y1 - y0))
    for index in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[index])
        if index in joined or area < least:
            continue
        if x >= x0 - 2 and y >= y0 - 2 and x + w <= x1 + 2 and y + h <= y1 + 2:
            return True
    return False


def _longer_than(c: LineCandidate, other: tuple, horizontal: bool) -> bool:
    """Whether a side spans past the other ink at one end at least (a box's sides do)."""
    lo, hi = (0, 2) if horizontal else (1, 3)
    reach = max(2.0, 0.08 * (other[hi] - other[lo]))
    return c.box[lo] <= other[lo] - reach or c.box[hi] >= other[hi] + reach


def _touches(c: LineCandidate, rest: np.ndarray) -> bool:
    grown = cv2.dilate(c.pixels.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    return bool((grown & rest.astype(bool)).any())


def _verdict(
    c: LineCandidate, other: tuple, rest: np.ndarray, shape: tuple[int, int], boxed: bool
) -> bool | None:
    """Whether one straight candidate is paper furniture (True) or a stroke of a digit
    (False); None when it lies like an underline but touches the writing, as a 2's base
    would."""
    h, w = shape
    if boxed or _reaches_past(c.box, other, c.horizontal, c.thickness):
        return True
    edge = 0.03 * (h if c.horizontal else w)
    if c.horizontal:
        at_border = c.box[1] <= edge or c.box[3] >= h - edge
        beside = c.box[1] >= other[3] or c.box[3] <= other[1]  # an underline or overline
        long_enough = (c.box[2] - c.box[0]) >= 0.6 * (other[2] - other[0])
    else:
        at_border = c.box[0] <= edge or c.box[2] >= w - edge
        beside = False  # a vertical stroke beside a digit may well be a "1"
        long_enough = (c.box[3] - c.box[1]) >= 0.7 * h
    if not long_enough or not (at_border or beside):
        return False
    if not _touches(c, rest):
        return True
    # Touching the writing, an underline may be furniture, and so may a 2's base: both
    # readings go to the classifier. An overline that touches is a 7's or 5's bar, and a
    # line along the image's edge is the writing's own stroke in a tight crop (an "n"'s
    # stem): neither is offered as furniture.
    return None if c.horizontal and c.box[1] >= other[3] else False


def _could_be_strokes(candidates: list[LineCandidate], shape: tuple[int, int]) -> bool:
    """Lines alone that may still be writing ("1", "11", a 7's bar and stem, a 4 of three
    straight strokes), rather than paper furniture: a frame (lines on at least three of the
    four sides of the lines' extent, as a box has) or two or more rules across the page."""
    h, w = shape

    def spans_page(c: LineCandidate) -> bool:
        if c.horizontal:
            return c.box[2] - c.box[0] >= 0.9 * w
        return c.box[3] - c.box[1] >= 0.9 * h

    across = [c for c in candidates if spans_page(c)]
    if len(across) >= 2 and len({c.horizontal for c in across}) == 1:
        return False  # ruled paper, or the columns of a grid
    return len(_frame_sides(candidates)) < 3


def _frame_sides(candidates: list[LineCandidate]) -> dict[str, list[int]]:
    """The candidates on each side of the lines' common extent (a box's edges), by side."""
    x0 = min(c.box[0] for c in candidates)
    y0 = min(c.box[1] for c in candidates)
    x1 = max(c.box[2] for c in candidates)
    y1 = max(c.box[3] for c in candidates)
    near_x, near_y = 0.1 * (x1 - x0) + 2, 0.1 * (y1 - y0) + 2
    sides: dict[str, list[int]] = {}
    for i, c in enumerate(candidates):
        if c.horizontal and c.box[1] <= y0 + near_y:
            sides.setdefault("top", []).append(i)
        elif c.horizontal and c.box[3] >= y1 - near_y:
            sides.setdefault("bottom", []).append(i)
        elif not c.horizontal and c.box[0] <= x0 + near_x:
            sides.setdefault("left", []).append(i)
        elif not c.horizontal and c.box[2] >= x1 - near_x:
            sides.setdefault("right", []).append(i)
    return sides


def _inside_frame(candidates: list[LineCandidate]) -> list[LineCandidate] | None:
    """The frame's lines, when lines alone hold strokes inside a frame (a "1" in a box):
    a frame on at least three sides and, apart from it, straight strokes that touch none
    of its lines and are shorter than the frame side parallel to them. None otherwise."""
    sides = _frame_sides(candidates)
    if len(sides) < 3:
        return None
    frame = [c for found in sides.values() for c in (candidates[i] for i in found)]
    inner = [c for c in candidates if not any(c is f for f in frame)]
    edges = _union(frame)
    # Lines joining the frame are its dividers (a comb); the strokes are the others.
    dividers = [c for c in inner if _touches(c, edges)]
    strokes = [c for c in inner if not any(c is d for d in dividers)]
    return frame + dividers if strokes else None


def _boxed(rest: np.ndarray, candidates: list[LineCandidate]) -> bool:
    """Whether ``rest`` is writing inside a box, however little ink it has beside the
    box's (a thin pen's small digit in a heavy printed box): box lines stand on three of
    its sides at least, it is BOXED_LEAST of the image's short side tall, and it touches
    none of the lines (crumbs beside a "1" in a box, where the "1" is the writing) and is
    at least half as tall as any straight stroke inside the box."""
    other = _extent(rest)
    if other is None or any(_touches(c, rest) for c in candidates):
        return False
    tall = other[3] - other[1]
    if tall < max(4, BOXED_LEAST * min(rest.shape)):
        return False
    sides = _sides_around(candidates, other)
    if sum(1 for found in sides.values() if found) < 3:
        return False
    framing = {i for found in sides.values() for i in found}
    strokes = [c for i, c in enumerate(candidates) if i not in framing]
    longest = max(
        ((c.box[2] - c.box[0]) if c.horizontal else (c.box[3] - c.box[1]) for c in strokes),
        default=0,
    )
    return longest < 2 * tall


def _union(candidates: list[LineCandidate]) -> np.ndarray:
    union = np.zeros(candidates[0].pixels.shape, dtype=bool)
    for c in candidates:
        union |= c.pixels
    return union


def _rest(mask: np.ndarray, candidates: list[LineCandidate]) -> np.ndarray:
    """The ink that is not on the candidates, without the specks the lines left behind
    (anti-aliasing)."""
    return _drop_specks((mask & ~_union(candidates)).astype(np.uint8))


def _tall(rest: np.ndarray) -> bool:
    """Whether a piece of ``rest`` stands at least OTHER_INK_TALL of the image high: a
    digit beside thick long lines, whatever its share of their ink (crumbs are short)."""
    count, _, stats, _ = label_components(rest)
    return count > 1 and int(stats[1:, cv2.CC_STAT_HEIGHT].max()) >= OTHER_INK_TALL * rest.shape[0]


@dataclass
class Removal:
    """What :func:`clean_lines` made of an ink map."""

    cleaned: np.ndarray  # the ink without the lines found to be paper furniture
    rules: int  # lines removed
    only_rules: bool  # nothing but lines was there
    # The ink also without the lines that may be furniture or writing: an underline
    # that touches the digit, as a 2's base would. The reader lets the classifier
    # choose (None: there was none).
    alternative: np.ndarray | None = None
    doubtful: int = 0  # lines removed in the alternative only


def remove_rules(ink: np.ndarray) -> tuple[np.ndarray, int, bool]:
    """The ink with ruled lines, grid lines, box edges and underlines taken out.

    Returns (cleaned ink, rules removed, whether nothing but rules was there).
    """
    removal = clean_lines(ink)
    return removal.cleaned, removal.rules, removal.only_rules


def line_candidates(
    ink: np.ndarray, faint_rules: bool = True
) -> tuple[list[LineCandidate], np.ndarray]:
    """The long straight runs of an ink map (rules, box edges, or strokes), and the mask
    they were looked for in. ``faint_rules``: see :func:`clean_lines`."""
    faint_enough = faint_rules and min(ink.shape) >= FAINT_RULES_FROM
    level = FAINT_RULE_LEVEL if faint_enough else RULE_LEVEL
    faint = (ink > level).astype(np.uint8)
    quarter = _quarter(faint)
    candidates = [LineCandidate(*found, True) for found in _rule_candidates(faint, True, quarter)]
    candidates += [
        LineCandidate(*found, False) for found in _rule_candidates(faint, False, quarter)
    ]
    return candidates, faint


def at_crop_edge(top: int, bottom: int, height: int) -> tuple[bool, bool]:
    """Whether ink spanning rows ``top`` to ``bottom`` reaches the image's top edge and
    its bottom edge (within CELL_EDGE of the height): a line there was cut by the crop."""
    edge = max(2.0, CELL_EDGE * height)
    return top <= edge, bottom >= height - edge


def frame_cell(
    candidates: list[LineCandidate], ink: np.ndarray
) -> tuple[int, int, int, int] | None:
    """The cell of a box or comb that holds the image's centre: (x0, y0, x1, y1) inside
    the nearest upright lines left and right of the centre (and the nearest horizontal
    ones above and below, where there are), or None without lines on both sides.

    A side is a frame's line: the crop cut it, or it ends on a horizontal line. Lines
    through the middle of the image (CELL_MIDDLE) are never the cell's sides: a
    "1" or a 4's stem stands there. Nor are the stems of a letter whose other strokes
    join them (an "N", an "H", the ring of an "@"): writing that touches both sides is
    no cell's. Writing that the line search could not part from a heavy or cut-off frame
    is read again inside this cell, and the reader keeps whichever reading the
    classifier is surer of.
    """
    h, w = ink.shape

    def sides(
        lines: list[LineCandidate], horizontal: bool
    ) -> tuple[LineCandidate | None, LineCandidate | None]:
        """The nearest line before the middle band and the nearest after it (of two as
        near, the longer)."""
        size = h if horizontal else w
        lo, hi = (1, 3) if horizontal else (0, 2)

        def length(c: LineCandidate) -> int:
            return c.box[2] - c.box[0] if horizontal else c.box[3] - c.box[1]

        before = [c for c in lines if (c.box[lo] + c.box[hi]) / 2 < CELL_MIDDLE[0] * size]
        after = [c for c in lines if (c.box[lo] + c.box[hi]) / 2 > CELL_MIDDLE[1] * size]
        first = max(before, key=lambda c: (c.box[hi], length(c)), default=None)
        last = min(after, key=lambda c: (c.box[lo], -length(c)), default=None)
        return first, last

    def framing(c: LineCandidate) -> bool:
        """Whether an upright line is a frame's: cut by the crop at the top or the bottom,
        or ending on a horizontal line (a corner). The 1s at both ends of "101" are
        neither."""
        if any(at_crop_edge(c.box[1], c.box[3], h)):
            return True
        reach = c.thickness + 3
        return any(
            r.box[0] - reach <= c.box[0]
            and c.box[2] <= r.box[2] + reach
            and any(r.box[1] - reach <= end <= r.box[3] + reach for end in (c.box[1], c.box[3]))
            for r in candidates
            if r.horizontal
        )

    upright = [
        c for c in candidates if not c.horizontal and c.box[3] - c.box[1] >= 0.5 * h and framing(c)
    ]
    across = [c for c in candidates if c.horizontal and c.box[2] - c.box[0] >= 0.5 * w]
    left, right = sides(upright, horizontal=False)
    if left is None or right is None:
        return None
    x0, x1 = left.box[2] + 1, right.box[0] - 1
    top, bottom = sides(across, horizontal=True)
    y0 = 0 if top is None else top.box[3] + 1
    y1 = h if bottom is None else bottom.box[1] - 1
    if min(x1 - x0, y1 - y0) < CELL_LEAST_SIDE or (x1 - x0) * (y1 - y0) < CELL_LEAST * h * w:
        return None
    strokes = ink[y0:y1, x0:x1] > INK_LEVEL
    if strokes[:, :2].any() and strokes[:, -2:].any():
        # Writing that touches both sides: a letter's stems unless the sides reach past
        # it at both ends, as a frame's lines do (a 4 written across a comb's dividers).
        rows = np.flatnonzero(strokes.any(axis=1))
        top_ink, bottom_ink = y0 + int(rows[0]), y0 + int(rows[-1]) + 1
        reach = max(2, int(CELL_REACH * (bottom_ink - top_ink)))
        for c in (left, right):
            if c.box[1] > top_ink - reach or c.box[3] < bottom_ink + reach:
                return None
    return x0, y0, x1, y1


def clean_lines(
    ink: np.ndarray,
    faint_rules: bool = True,
    found: tuple[list[LineCandidate], np.ndarray] | None = None,
) -> Removal:
    """:func:`remove_rules`, with the alternative reading of lines that touch the writing.

    ``faint_rules``: look for fainter lines in a large ink map (False for one upsampled
    from a tiny input, whose strokes' blurred rims would pass for lines). ``found``: what
    :func:`line_candidates` returned for this ink map, when the caller has it.
    """
    candidates, faint = found if found is not None else line_candidates(ink, faint_rules)
    candidates = _thin_unless_boxed(candidates, faint)
    if not candidates:
        return Removal(ink, 0, False)
    given, ink = ink, relevelled(ink, candidates)
    mask = (ink > INK_LEVEL).astype(np.uint8)
    rest = _rest(mask, candidates)
    largest = max(int(c.pixels.sum()) for c in candidates)
    # Crumbs beside a lone stroke (a "1"'s serif, its anti-aliased rim) are not "other ink".
    substantial = (
        int(rest.sum()) >= OTHER_INK_SHARE * largest or _tall(rest) or _boxed(rest, candidates)
    )
    other = _extent(rest) if substantial else None
    if other is None:
        # Nothing but straight lines. Strokes that could be digits ("1", "11", a 7's bar)
        # go to the classifier; a box, a grid or ruled lines across the page are no digit,
        # but a straight stroke inside a box is (the box goes, the "1" stays).
        frame = _inside_frame(candidates)
        if frame is None:
            box = _rectangle(candidates, mask)  # a comb's box, its dividers inside
            if box and len(box) < len(candidates):
                frame = [candidates[i] for i in sorted(box)]
        if frame is not None:
            candidates = frame
            rest = _rest(mask, candidates)
            other = _extent(rest)
        elif _could_be_strokes(candidates, mask.shape):
            return Removal(given, 0, False)
        else:
            return Removal(np.zeros_like(ink), len(candidates), True)
    if other is None:
        return Removal(np.zeros_like(ink), len(candidates), True)
    box_sides = _strokes_off(_box_sides(candidates, other), candidates, rest)
    chosen: list[LineCandidate] = []
    doubtful: list[LineCandidate] = []
    for i, c in enumerate(candidates):
        verdict = _verdict(c, other, rest, mask.shape, i in box_sides)
        if verdict is not False:
            (chosen if verdict else doubtful).append(c)
    alternative = _cleaned(ink, chosen + doubtful) if doubtful else None
    if not chosen:
        return Removal(given, 0, False, alternative, len(doubtful))
    return Removal(_cleaned(ink, chosen), len(chosen), False, alternative, len(doubtful))


def _cleaned(ink: np.ndarray, chosen: list[LineCandidate]) -> np.ndarray:
    """The ink without the chosen lines, the strokes they crossed bridged again."""
    cleaned = _without_slivers(_bridge(ink, chosen), chosen)
    return _without_box_sides(cleaned, [c for c in chosen if c.horizontal])


def relevelled(ink: np.ndarray, candidates: list[LineCandidate]) -> np.ndarray:
    """The ink rescaled to the contrast of the writing off the lines, when the lines are
    much darker (a thin pen's digit in a heavy printed box): the ink map's contrast is
    the lines', and the digit would fall below the stroke level and be lost with them.
    Only the ink away from the lines is rescaled (with no lines: all of it, as in a
    frame cell cut out of the map)."""
    if candidates:
        near = cv2.dilate(_union(candidates).astype(np.uint8), np.ones((5, 5), np.uint8))
    else:
        near = np.zeros(ink.shape, np.uint8)
    off = ink[(near == 0) & (ink > RELEVEL_FLOOR)]
    if off.size < max(20, RELEVEL_LEAST * ink.size):
        return ink
    rank = int(0.9 * (off.size - 1))  # the writing's level: its 90th percentile
    level = float(np.partition(off, rank)[rank])
    if level >= RELEVEL_BELOW:
        return ink
    # The lines' own rims stay as they are: amplified, they would stand beside the lines.
    gain = np.float32(min(1 / level, RELEVEL_MOST_GAIN))
    return np.where(near > 0, ink, np.minimum(ink * gain, 1.0)).astype(np.float32)


def _without_box_sides(ink: np.ndarray, horizontals: list[LineCandidate]) -> np.ndarray:
    """The ink without the upright lines left between two removed horizontal rules: the
    sides and dividers of a box or comb that the straight-line search missed (tilted,
    wobbly, or with remnants beside them), which would otherwise read as "1"s.

    Such a line is thin for its height, and its top and its bottom each end on a removed
    rule; a digit written between two rules crosses them or stops short of one.
    """
    if len(horizontals) < 2:
        return ink
    mask = (ink > INK_LEVEL).astype(np.uint8)
    count, labels, stats, _ = label_components(mask)
    if count <= 1:
        return ink
    # Reach past what _bridge cleared around each rule (1 + thickness // 4 pixels).
    grown = [
        cv2.dilate(
            rule.pixels.astype(np.uint8),
            np.ones((2 * (3 + int(rule.thickness) // 4) + 1, 3), np.uint8),
        ).astype(bool)
        for rule in horizontals
    ]
    drop = np.zeros(count, dtype=bool)
    for index in range(1, count):
        x, y, w, h, _ = (int(v) for v in stats[index])
        if w > BOX_SIDE_SHAPE * h or h < 8:
            continue
        own = labels[y : y + h, x : x + w] == index
        ends = max(2, h // 10)
        top = {
            i for i, band in enumerate(grown) if (band[y : y + ends, x : x + w] & own[:ends]).any()
        }
        bottom = {
            i
            for i, band in enumerate(grown)
            if (band[y + h - ends : y + h, x : x + w] & own[h - ends :]).any()
        }
        drop[index] = bool(top and bottom and top != bottom)
    if not drop.any() or drop[1:].all():
        return ink  # nothing else left: the upright line is the writing (a "1" in a box)
    return np.where(drop[labels], 0.0, ink).astype(ink.dtype)


def _without_slivers(ink: np.ndarray, rules: list[LineCandidate]) -> np.ndarray:
    """The ink without what is left of a removed upright line beside it: the ends of a
    leaning box side that the straight run did not cover. Such a sliver lies wholly
    within the line's thickness of it, is no thicker than the line and runs along it
    (three times longer than thick); pieces of a thin digit that a line crossed are not
    that long. Horizontal rules are left alone: a 5's or 7's bar often lies along one."""
    upright = [c for c in rules if not c.horizontal]
    if not upright:
        return ink
    mask = (ink > INK_LEVEL).astype(np.uint8)
    count, labels, stats, _ = label_components(mask)
    if count <= 2:
        return ink  # one piece or none: nothing to tell a sliver from
    slivers = np.zeros(count, dtype=bool)
    for rule in upright:
        thickness = int(rule.thickness)
        reach = 2 * thickness + 3
        near = cv2.dilate(rule.pixels.astype(np.uint8), np.ones((reach, reach), np.uint8))
        outside = np.bincount(labels[near == 0], minlength=count)
        across, along = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
        slivers |= (outside == 0) & (across <= thickness + 1) & (along >= 3 * across)
    slivers[0] = False
    if not slivers.any() or slivers[1:].all():
        return ink
    return np.where(slivers[labels], 0.0, ink).astype(ink.dtype)


def _drop_specks(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = label_components(mask)
    if count <= 1:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, dtype=bool)
    keep[1:] = areas >= max(4, SPECK_SHARE * 2 * areas.max())
    return keep[labels].astype(np.uint8)


def _bridge(ink: np.ndarray, rules: list[LineCandidate]) -> np.ndarray:
    """Erase the rules and repair the strokes they crossed.

    Each rule's band (a little wider than the rule, for its anti-aliased edges) is
    cleared, then refilled where a closing across the band finds stroke ink on both
    sides: a stroke cut by a removed line is joined again, the line itself is not.
    """
    cleaned = ink.copy()
    for rule in rules:
        horizontal, thickness = rule.horizontal, int(rule.thickness)
        band = _line_core(rule).astype(np.uint8)
        grow = np.ones((3, 1) if horizontal else (1, 3), np.uint8)
        band = cv2.dilate(band, grow, iterations=1 + thickness // 4).astype(bool)
        cleaned[band] = 0.0
        span = thickness + 4 + thickness // 2
        kernel = np.ones((span, 1) if horizontal else (1, span), np.uint8)
        closed = cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, kernel)
        cleaned[band] = closed[band]
    return cleaned


def _line_core(rule: LineCandidate) -> np.ndarray:
    """A rule's pixels within its own thickness of its centre line.

    The straight-run search takes in the rows of a stroke next to the line where the
    stroke crosses it (the sides of a "0"); cleared with the line, they would leave a gap
    wider than the bridge can close. The centre line is the middle of the rule in each
    column (row, for an upright rule), except where the rule is thicker than itself
    there (a stroke joins it), where it is carried over from the nearest columns.
    """
    pixels, horizontal, thickness = rule.pixels, rule.horizontal, int(rule.thickness)
    x0, y0, x1, y1 = rule.box
    window = pixels[y0:y1, x0:x1]
    along = window if horizontal else window.T
    rows, cols = along.shape
    count = along.sum(axis=0)
    index = np.arange(rows, dtype=np.float32)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (along * index).sum(axis=0) / count
    clean = (count > 0) & (count <= thickness + 1)
    if not clean.any():
        return pixels
    known = np.flatnonzero(clean)
    centre = np.interp(np.arange(cols), known, centre[known]).astype(np.float32)
    core = along & (np.abs(index - centre[None, :]) <= thickness / 2)
    out = np.zeros_like(pixels)
    out[y0:y1, x0:x1] = core if horizontal else core.T
    return out


def _band_thickness(band: np.ndarray, horizontal: bool) -> int:
    """Median thickness of a rule across its direction, in pixels."""
    per_position = band.sum(axis=0 if horizontal else 1)
    present = per_position[per_position > 0]
    if present.size == 0:
        return 1
    return max(1, int(np.median(present)))
