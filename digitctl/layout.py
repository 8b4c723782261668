"""Ink map → glyphs: rules, boxes and underlines removed, strokes grouped, lines ordered.

The stage every reading goes through, a lone digit included:

1. **Rules.** Long straight runs (morphological opening with long thin kernels, the
   forms-processing classic) are candidate ruled lines, grid lines, box edges and
   underlines. A candidate that reaches past the rest of the ink on both ends, or that
   closes a box around it, is a rule; a shorter one (a 7's bar, a 2's base) is kept. The
   strokes a removed rule crossed are bridged again (a closing across the rule's band).
2. **Components.** Connected strokes, specks dropped by size relative to the largest.
3. **Glyphs and lines.** Components stacked over each other (a 5's flag over its body)
   are one glyph; glyphs are grouped into text lines by vertical overlap (read top to
   bottom, each left to right). Whether side-by-side neighbours are one digit (a 4 whose
   strokes do not meet, a broken pen line) or two is for the classifier to say
   (:mod:`digitctl.reading`), and so is where touching digits split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

INK_LEVEL = 0.3  # ink-map value above which a pixel is a stroke
RULE_LEVEL = 0.25  # rules are looked for lower: grey or blue printed lines are fainter
RULE_SPAN = 0.45  # a rule candidate spans at least this share of the image side
RULE_REACH = 0.1  # ... and reaches past the other ink by this share of its extent
MAX_RULE_THICKNESS = 0.2  # rules are thin: at most this share of the image's short side
OTHER_INK_SHARE = 0.25  # less ink than this share of the longest line's is no digit beside it
OTHER_INK_TALL = 0.3  # ... unless a piece of it is this share of the image's height tall
FRAME_MIN_SIDE = 12  # pixels: smaller parts are never frames
FRAME_HOLDS = 0.8  # a part is inside a frame when this share of its box lies within
FRAME_BAND = 0.2  # a frame's ink lies within this share of its short side from its edges
FRAME_EDGE_SHARE = 0.9  # ... at least this share of it
UNDERLINE_FLATNESS = 0.25  # an underline is at most this tall for its width ...
UNDERLINE_UNDER = 2.5  # ... under a part at least this many times taller
THIN_FRAME = 0.2  # a box's lines are at most this share of its short side thick
BOX_SIDE_SHAPE = 0.3  # a box side left over is at most this wide for its height
# Stacked pieces of one glyph are at most this share of the taller one's height apart: a
# thin pen's broken 3 or 5 (0.25 before: those read as two lines of writing).
STACKED_GAP = 0.4
SPECK_SHARE = 0.03  # components below this share of the largest one's area are specks


@dataclass
class Glyph:
    """One glyph candidate: its box in ink-map pixels and the ink that belongs to it."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    ink: np.ndarray  # float32, the glyph's own ink cropped to ``box`` (others masked out)
    line: int = 0
    labels: tuple[int, ...] = ()  # its components in the layout's label image

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


@dataclass
class Layout:
    """The glyph candidates of an ink map, line by line, and what was taken away.

    Each line's glyphs are left to right; neighbours may still be pieces of one digit (a
    4 whose strokes do not meet): :meth:`merged` joins a run of them, and the reader
    lets the classifier choose between the joined and separate readings.
    """

    lines: list[list[Glyph]]
    rules: int = 0  # rules, box edges and underlines removed
    only_rules: bool = False  # the image held rules or a box and nothing else
    cleaned: np.ndarray | None = field(default=None, repr=False)  # the ink after removal
    labels: np.ndarray | None = field(default=None, repr=False)  # components of ``cleaned``

    @property
    def glyphs(self) -> list[Glyph]:
        return [glyph for line in self.lines for glyph in line]

    def merged(self, glyphs: list[Glyph]) -> Glyph:
        """One glyph made of ``glyphs`` (neighbours in one line)."""
        assert self.cleaned is not None and self.labels is not None
        part = _Part(list(glyphs[0].box), list(glyphs[0].labels), 0)
        for glyph in glyphs[1:]:
            part.merge(_Part(list(glyph.box), list(glyph.labels), 0))
        return _glyph(self.cleaned, self.labels, part, glyphs[0].line)


# --------------------------------------------------------------------------------------
# rules
# --------------------------------------------------------------------------------------
def _runs(mask: np.ndarray, length: int, horizontal: bool) -> np.ndarray:
    """Pixels on straight runs of at least ``length``, tolerating a slight slant.

    The mask is first thickened across the run direction so a line tilted by a degree or
    two still forms long runs; the result is intersected with the original mask.
    """
    # A tilt of up to ~2 degrees: thicken by length/25 across the run direction.
    thickness = max(3, length // 25) | 1
    across = (thickness, 1) if horizontal else (1, thickness)  # (rows, columns)
    along = (1, length) if horizontal else (length, 1)
    thick = cv2.dilate(mask, np.ones(across, np.uint8))
    opened = cv2.morphologyEx(thick, cv2.MORPH_OPEN, np.ones(along, np.uint8))
    return opened & mask


def _may_hold_rules(mask: np.ndarray, horizontal: bool, length: int) -> bool:
    """A cheap test first, at a quarter of the size: does any long straight run survive?
    Most photos of a digit have none and skip the full-size search."""
    h, w = mask.shape
    if min(h, w) < 64:
        return True
    small = cv2.resize(mask * 255, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    return bool(_runs((small > 0).astype(np.uint8), max(4, length // 4), horizontal).any())


def _rule_candidates(mask: np.ndarray, horizontal: bool) -> list[tuple[np.ndarray, tuple, float]]:
    """Straight, thin, long components of one orientation: (pixels, box, thickness)."""
    h, w = mask.shape
    side = w if horizontal else h
    length = max(8, int(side * RULE_SPAN))
    if not _may_hold_rules(mask, horizontal, length):
        return []
    runs = _runs(mask, length, horizontal)
    if not runs.any():
        return []
    count, labels, stats, _ = cv2.connectedComponentsWithStats(runs, connectivity=8)
    found = []
    thickest = max(2, int(min(h, w) * MAX_RULE_THICKNESS))
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
class _Candidate:
    pixels: np.ndarray  # bool mask
    box: tuple[int, int, int, int]
    thickness: float
    horizontal: bool


def _box_sides(candidates: list[_Candidate], other: tuple) -> set[int]:
    """Indices of the candidates that are the outer edges of a box around ``other``.

    A box shows at least three of its sides outside the other ink (the crop may cut the
    fourth), or two opposite sides that both reach past the ink along their length.
    """
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


def _rectangle(candidates: list[_Candidate], mask: np.ndarray) -> set[int]:
    """Indices of the lines that draw a box: two horizontal and two vertical lines whose
    ends meet at four corners, with the lines between them that join both long sides (a
    comb's dividers). Found from the lines alone, as the ink inside may hold remnants of
    a tilted or wobbly box's sides that make :func:`_box_sides`' test fail."""
    horizontal = [i for i, c in enumerate(candidates) if c.horizontal]
    vertical = [i for i, c in enumerate(candidates) if not c.horizontal]
    if len(horizontal) < 2 or len(vertical) < 2:
        return set()

    def near(a: float, b: float, c: _Candidate, d: _Candidate) -> bool:
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
            if thickest > THIN_FRAME * min(width, height):
                continue  # strokes as thick as a digit's for their length: a "0", not a box
            inset = int(thickest) + 2
            x0, x1 = candidates[left].box[0] + inset, candidates[right].box[2] - inset
            y0, y1 = t.box[1] + inset, b.box[3] - inset
            if x1 <= x0 or y1 <= y0 or not _holds_apart(mask, (x0, y0, x1, y1), [t, b]):
                continue  # nothing inside apart from the lines: a "0" drawn straight
            edges = _union([t, b])
            dividers = {v for v in sides if _touches(candidates[v], edges)}
            if left in dividers and right in dividers:
                return {top, bottom} | dividers
    return set()


def _holds_apart(
    mask: np.ndarray, inner: tuple[int, int, int, int], lines: list[_Candidate]
) -> bool:
    """Whether ``inner`` holds ink of its own that is not joined to ``lines``."""
    x0, y0, x1, y1 = inner
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    joined = set(np.unique(labels[_union(lines)]).tolist())
    least = max(4, 0.01 * (x1 - x0) * (y1 - y0))
    for index in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[index])
        if index in joined or area < least:
            continue
        if x >= x0 - 2 and y >= y0 - 2 and x + w <= x1 + 2 and y + h <= y1 + 2:
            return True
    return False


def _longer_than(c: _Candidate, other: tuple, horizontal: bool) -> bool:
    """Whether a side spans past the other ink at one end at least (a box's sides do)."""
    lo, hi = (0, 2) if horizontal else (1, 3)
    reach = max(2.0, 0.08 * (other[hi] - other[lo]))
    return c.box[lo] <= other[lo] - reach or c.box[hi] >= other[hi] + reach


def _touches(c: _Candidate, rest: np.ndarray) -> bool:
    grown = cv2.dilate(c.pixels.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    return bool((grown & rest.astype(bool)).any())


def _is_rule(
    c: _Candidate, other: tuple, rest: np.ndarray, shape: tuple[int, int], boxed: bool
) -> bool:
    """Whether one straight candidate is paper furniture rather than a stroke of a digit."""
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
    if (at_border and long_enough) or (beside and long_enough):
        return not _touches(c, rest)
    return False


def _could_be_strokes(candidates: list[_Candidate], shape: tuple[int, int]) -> bool:
    """Lines alone that may still be writing ("1", "11", a 7's bar and stem, a 4 of three
    straight strokes), rather than paper furniture: a frame (lines on at least three of the
    four sides of the lines' extent, as a box has) or two or more rules across the page."""
    h, w = shape

    def spans_page(c: _Candidate) -> bool:
        if c.horizontal:
            return c.box[2] - c.box[0] >= 0.9 * w
        return c.box[3] - c.box[1] >= 0.9 * h

    across = [c for c in candidates if spans_page(c)]
    if len(across) >= 2 and len({c.horizontal for c in across}) == 1:
        return False  # ruled paper, or the columns of a grid
    return len(_frame_sides(candidates)) < 3


def _frame_sides(candidates: list[_Candidate]) -> dict[str, list[int]]:
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


def _inside_frame(candidates: list[_Candidate]) -> list[_Candidate] | None:
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


def _union(candidates: list[_Candidate]) -> np.ndarray:
    union = np.zeros(candidates[0].pixels.shape, dtype=bool)
    for c in candidates:
        union |= c.pixels
    return union


def _rest(mask: np.ndarray, candidates: list[_Candidate]) -> np.ndarray:
    """The ink that is not on the candidates, without the specks the lines left behind
    (anti-aliasing)."""
    return _drop_specks((mask & ~_union(candidates)).astype(np.uint8))


def _tall(rest: np.ndarray) -> bool:
    """Whether a piece of ``rest`` stands at least OTHER_INK_TALL of the image high: a
    digit beside thick long lines, whatever its share of their ink (crumbs are short)."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(rest, connectivity=8)
    return count > 1 and int(stats[1:, cv2.CC_STAT_HEIGHT].max()) >= OTHER_INK_TALL * rest.shape[0]


def remove_rules(ink: np.ndarray) -> tuple[np.ndarray, int, bool]:
    """The ink with ruled lines, grid lines, box edges and underlines taken out.

    Returns (cleaned ink, rules removed, whether nothing but rules was there).
    """
    faint = (ink > RULE_LEVEL).astype(np.uint8)
    candidates = [_Candidate(m, b, t, True) for m, b, t in _rule_candidates(faint, True)]
    candidates += [_Candidate(m, b, t, False) for m, b, t in _rule_candidates(faint, False)]
    if not candidates:
        return ink, 0, False
    mask = (ink > INK_LEVEL).astype(np.uint8)
    rest = _rest(mask, candidates)
    largest = max(int(c.pixels.sum()) for c in candidates)
    # Crumbs beside a lone stroke (a "1"'s serif, its anti-aliased rim) are not "other ink".
    substantial = int(rest.sum()) >= OTHER_INK_SHARE * largest or _tall(rest)
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
            return ink, 0, False
        else:
            return np.zeros_like(ink), len(candidates), True
    if other is None:
        return np.zeros_like(ink), len(candidates), True
    box_sides = _box_sides(candidates, other)
    chosen = [
        (c.pixels, c.horizontal)
        for i, c in enumerate(candidates)
        if _is_rule(c, other, rest, mask.shape, i in box_sides)
    ]
    if not chosen:
        return ink, 0, False
    cleaned = _bridge(ink, chosen)
    return (
        _without_box_sides(cleaned, [p for p, horizontal in chosen if horizontal]),
        len(chosen),
        False,
    )


def _without_box_sides(ink: np.ndarray, horizontals: list[np.ndarray]) -> np.ndarray:
    """The ink without the upright lines left between two removed horizontal rules: the
    sides and dividers of a box or comb that the straight-line search missed (tilted,
    wobbly, or with remnants beside them), which would otherwise read as "1"s.

    Such a line is thin for its height, and its top and its bottom each end on a removed
    rule; a digit written between two rules crosses them or stops short of one.
    """
    if len(horizontals) < 2:
        return ink
    mask = (ink > INK_LEVEL).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return ink
    # Reach past what _bridge cleared around each rule (1 + thickness // 4 pixels).
    grown = [
        cv2.dilate(
            rule.astype(np.uint8),
            np.ones((2 * (3 + _band_thickness(rule.astype(np.uint8), True) // 4) + 1, 3), np.uint8),
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


def _drop_specks(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, dtype=bool)
    keep[1:] = areas >= max(4, SPECK_SHARE * 2 * areas.max())
    return keep[labels].astype(np.uint8)


def _bridge(ink: np.ndarray, rules: list[tuple[np.ndarray, bool]]) -> np.ndarray:
    """Erase the rules and repair the strokes they crossed.

    Each rule's band (a little wider than the rule, for its anti-aliased edges) is
    cleared, then refilled where a closing across the band finds stroke ink on both
    sides: a stroke cut by a removed line is joined again, the line itself is not.
    """
    cleaned = ink.copy()
    for pixels, horizontal in rules:
        band = pixels.astype(np.uint8)
        thickness = _band_thickness(band, horizontal)
        grow = np.ones((3, 1) if horizontal else (1, 3), np.uint8)
        band = cv2.dilate(band, grow, iterations=1 + thickness // 4).astype(bool)
        cleaned[band] = 0.0
        span = thickness + 4 + thickness // 2
        kernel = np.ones((span, 1) if horizontal else (1, span), np.uint8)
        closed = cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, kernel)
        cleaned[band] = closed[band]
    return cleaned


def _band_thickness(band: np.ndarray, horizontal: bool) -> int:
    """Median thickness of a rule across its direction, in pixels."""
    per_position = band.sum(axis=0 if horizontal else 1)
    present = per_position[per_position > 0]
    if present.size == 0:
        return 1
    return max(1, int(np.median(present)))


# --------------------------------------------------------------------------------------
# components, lines, glyphs
# --------------------------------------------------------------------------------------
@dataclass
class _Part:
    box: list[int]  # x0, y0, x1, y1
    labels: list[int]
    area: int

    def merge(self, other: _Part) -> None:
        self.box = [
            min(self.box[0], other.box[0]),
            min(self.box[1], other.box[1]),
            max(self.box[2], other.box[2]),
            max(self.box[3], other.box[3]),
        ]
        self.labels += other.labels
        self.area += other.area

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


def _components(ink: np.ndarray) -> tuple[np.ndarray, list[_Part]]:
    mask = (ink > INK_LEVEL).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return labels, []
    areas = stats[1:, cv2.CC_STAT_AREA]
    largest = int(areas.max())
    parts = []
    for index in range(1, count):
        x, y, bw, bh, area = (int(v) for v in stats[index])
        if area < max(3, SPECK_SHARE * largest):
            continue
        parts.append(_Part([x, y, x + bw, y + bh], [index], area))
    return labels, parts


def _inside(inner: _Part, outer: _Part) -> bool:
    shared = _overlap(inner.box[0], inner.box[2], outer.box[0], outer.box[2]) * _overlap(
        inner.box[1], inner.box[3], outer.box[1], outer.box[3]
    )
    return shared >= FRAME_HOLDS * inner.width * inner.height


def _frames(labels: np.ndarray, parts: list[_Part]) -> set[int]:
    """Parts that are frames around other parts: a box, a comb or a corner of one, drawn
    apart from the digit it holds, however thin, tilted or wobbly its lines.

    A frame holds another part inside its bounding box, and nearly all of its own ink
    lies in a band along that box's edges (a digit's ink does not: a "0" holds nothing,
    a "6" holds its own loop). Frames touching the digit are one component with it and
    are left to the straight-line search.
    """
    frames: set[int] = set()
    if len(parts) < 2:
        return frames
    for i, part in enumerate(parts):
        if min(part.width, part.height) < FRAME_MIN_SIDE:
            continue
        if not any(j != i and _inside(other, part) for j, other in enumerate(parts)):
            continue
        x0, y0, x1, y1 = part.box
        own = np.isin(labels[y0:y1, x0:x1], part.labels)
        band = max(2, int(FRAME_BAND * min(part.width, part.height)))
        interior = own[band:-band, band:-band].sum() if min(own.shape) > 2 * band else 0
        if interior <= (1 - FRAME_EDGE_SHARE) * own.sum():
            frames.add(i)
    return frames


def _underlines(parts: list[_Part]) -> set[int]:
    """Parts that underline another: flat strokes apart below a taller part and about as
    wide as it (a pen underline too short or wobbly for the straight-line search)."""
    found: set[int] = set()
    for i, line in enumerate(parts):
        if line.height > UNDERLINE_FLATNESS * line.width:
            continue
        for j, above in enumerate(parts):
            if j == i or above.height < UNDERLINE_UNDER * line.height:
                continue
            shared = _overlap(line.box[0], line.box[2], above.box[0], above.box[2])
            if (
                line.box[1] >= above.box[3] - 1
                and line.box[1] - above.box[3] <= 0.5 * above.height
                and shared >= 0.6 * above.width
                and line.width >= 0.6 * above.width
            ):
                found.add(i)
                break
    return found


def _stacked(a: _Part, b: _Part) -> bool:
    """Two parts of one glyph stacked vertically: a 5's flag over its body, a broken 7.

    The smaller part must be clearly smaller: two digits in consecutive lines are not.
    """
    shared = _overlap(a.box[0], a.box[2], b.box[0], b.box[2])
    narrower = max(1, min(a.width, b.width))
    if shared < 0.3 * narrower:
        return False
    small, big = sorted((a.height, b.height))
    gap = max(a.box[1], b.box[1]) - min(a.box[3], b.box[3])
    if gap <= 0.1 * big:  # touching or nearly: a stroke broken across (a thin pen's 0, 6)
        return True
    return shared >= 0.5 * narrower and gap <= STACKED_GAP * big and small < 0.7 * big


def _glyph_groups(parts: list[_Part]) -> list[_Part]:
    """Parts merged where they are stacked pieces of one glyph (until nothing merges)."""
    groups = [_Part(list(p.box), list(p.labels), p.area) for p in parts]
    changed = True
    while changed and len(groups) > 1:
        changed = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if _stacked(groups[i], groups[j]):
                    groups[i].merge(groups[j])
                    del groups[j]
                    changed = True
                    break
            if changed:
                break
    return groups


def _text_lines(glyphs: list[_Part]) -> list[list[_Part]]:
    """Glyphs grouped into text lines by vertical overlap, top to bottom, each left to right."""
    lines: list[list[_Part]] = []
    spans: list[list[int]] = []
    for glyph in sorted(glyphs, key=lambda p: -p.height):
        for line, span in zip(lines, spans, strict=True):
            shared = _overlap(glyph.box[1], glyph.box[3], span[0], span[1])
            if shared >= 0.4 * min(glyph.height, span[1] - span[0]):
                line.append(glyph)
                span[0], span[1] = min(span[0], glyph.box[1]), max(span[1], glyph.box[3])
                break
        else:
            lines.append([glyph])
            spans.append([glyph.box[1], glyph.box[3]])
    order = sorted(range(len(lines)), key=lambda i: spans[i][0])
    return [sorted(lines[i], key=lambda p: p.box[0]) for i in order]


def _glyph(ink: np.ndarray, labels: np.ndarray, part: _Part, line: int) -> Glyph:
    x0, y0, x1, y1 = part.box
    own = np.isin(labels[y0:y1, x0:x1], part.labels)
    # Keep the faint anti-aliased rim around the strokes (below INK_LEVEL, unlabelled).
    rim = cv2.dilate(own.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    crop = np.where(rim, ink[y0:y1, x0:x1], 0.0).astype(np.float32)
    return Glyph(box=(x0, y0, x1, y1), ink=crop, line=line, labels=tuple(part.labels))


def find_glyphs(ink: np.ndarray) -> Layout:
    """The glyph candidates of an ink map, by line (top to bottom), each left to right."""
    cleaned, rules, only_rules = remove_rules(ink)
    labels, parts = _components(cleaned)
    # Paper furniture the straight-line search missed: frames apart from the digit, then
    # hand-drawn underlines (found among what the frames leave).
    for furniture in (lambda found: _frames(labels, found), _underlines):
        drop = furniture(parts)
        parts = [part for i, part in enumerate(parts) if i not in drop]
        rules += len(drop)
    lines = [
        [_glyph(cleaned, labels, part, number) for part in line]
        for number, line in enumerate(_text_lines(_glyph_groups(parts)))
    ]
    return Layout(lines=lines, rules=rules, only_rules=only_rules, cleaned=cleaned, labels=labels)
