"""Ink map → glyphs: rules, boxes and underlines removed, strokes grouped, lines ordered.

The stage every reading goes through, a lone digit included:

1. **Rules** (:mod:`digitctl.rules`). Ruled and grid lines, box edges and underlines are
   found as long straight runs and removed, and the strokes they crossed bridged again.
2. **Components.** Connected strokes, specks dropped by size relative to the largest.
3. **Glyphs and lines.** Components stacked over each other (a 5's flag over its body)
   are one glyph; glyphs are grouped into text lines by vertical overlap (read top to
   bottom, each left to right). Whether side-by-side neighbours are one digit (a 4 whose
   strokes do not meet, a broken pen line) or two is for the classifier to say
   (:mod:`digitctl.reading`), and so is where touching digits split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from digitctl.rules import (
    INK_LEVEL,
    SPECK_SHARE,
    LineCandidate,
    Removal,
    at_crop_edge,
    clean_lines,
    frame_cell,
    label_components,
    line_candidates,
    relevelled,
)

FRAME_MIN_SIDE = 12  # pixels: smaller parts are never frames
FRAME_HOLDS = 0.8  # a part is inside a frame when this share of its box lies within
FRAME_BAND = 0.2  # a frame's ink lies within this share of its short side from its edges
FRAME_EDGE_SHARE = 0.9  # ... at least this share of it
UNDERLINE_FLATNESS = 0.25  # an underline is at most this tall for its width ...
UNDERLINE_UNDER = 2.5  # ... under a part at least this many times taller
# A stroke is ink above INK_LEVEL; fainter ink (above FAINT_STROKE_LEVEL) within
# FAINT_STROKE_REACH pixels of a stroke joins its component (hysteresis): a thin or faint
# pen's strokes break at INK_LEVEL into crumbs, and the crumbs fall below the speck size
# or read as digits of their own. The reach keeps faint printed lines and texture away
# from the writing out of it.
FAINT_STROKE_LEVEL = 0.1
FAINT_STROKE_REACH = 2
# Stacked pieces of one glyph are at most this share of the taller one's height apart: a
# thin pen's broken 3 or 5 (0.25 before: those read as two lines of writing).
STACKED_GAP = 0.4
# A box side left at the end of a line: a straight run (an upright line candidate within
# SIDE_SLACK pixels of the part's sides, covering SIDE_STRAIGHT of its height).
SIDE_SLACK = 3
SIDE_STRAIGHT = 0.8
SIDE_TALLER = 1.05  # ... taller by this than any writing beside it (a digit in a box is)


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
    # The layout also without lines that touch the writing (see find_glyphs), or None.
    alternative: Layout | None = field(default=None, repr=False)
    # The layout of the frame cell around the image's centre alone (see find_glyphs), or None.
    cell: Layout | None = field(default=None, repr=False)

    @property
    def readings(self) -> list[Layout]:
        """This layout and the other ways to see the same ink, for the reader to weigh."""
        return [self] + [other for other in (self.alternative, self.cell) if other is not None]

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
    """Connected strokes (with the faint ink that bridges them, see FAINT_STROKE_LEVEL),
    specks dropped; a part's area counts its stroke pixels only."""
    strokes = (ink > INK_LEVEL).astype(np.uint8)
    side = 2 * FAINT_STROKE_REACH + 1
    near = cv2.dilate(strokes, np.ones((side, side), np.uint8))
    mask = ((ink > FAINT_STROKE_LEVEL) & (near > 0)).astype(np.uint8)
    count, labels, stats, _ = label_components(mask)
    if count <= 1:
        return labels, []
    # Faint ink joins strokes but makes no part of its own.
    areas = np.bincount(labels[strokes > 0], minlength=count)
    areas[0] = 0
    largest = int(areas.max())
    parts = []
    for index in range(1, count):
        x, y, bw, bh = (int(v) for v in stats[index, :4])
        area = int(areas[index])
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


def find_glyphs(ink: np.ndarray, faint_rules: bool = True) -> Layout:
    """The glyph candidates of an ink map, by line (top to bottom), each left to right.

    When lines touching the writing may be furniture or strokes (an underline, or a 2's
    base), ``alternative`` is the layout without them too; when the ink has box or comb
    lines on both sides of its centre, ``cell`` is the layout of that cell alone
    (:func:`digitctl.rules.frame_cell`); the reader weighs them all.
    ``faint_rules``: see :func:`digitctl.rules.clean_lines`.
    """
    found = line_candidates(ink, faint_rules)
    uprights = [c for c in found[0] if not c.horizontal]
    layout = _from_removal(clean_lines(ink, faint_rules, found), uprights)
    cell = frame_cell(found[0], ink)
    if cell is not None:
        # The writing of a box or comb cell, read again without anything outside the
        # cell: a heavy frame, or one the crop cut, can stay joined to the digit.
        x0, y0, x1, y1 = cell
        inner = np.zeros_like(ink)
        # At the writing's own contrast: the frame's darker lines set the map's.
        inner[y0:y1, x0:x1] = relevelled(ink[y0:y1, x0:x1], [])
        within = _from_removal(clean_lines(inner, faint_rules))
        if within.glyphs:
            layout.cell = within
    return layout


def _from_removal(removal: Removal, uprights: Sequence[LineCandidate] = ()) -> Layout:
    layout = _layout(removal.cleaned, removal.rules, removal.only_rules, uprights)
    if removal.alternative is not None:
        layout.alternative = _layout(
            removal.alternative, removal.rules + removal.doubtful, False, uprights
        )
    return layout


def _layout(
    cleaned: np.ndarray, rules: int, only_rules: bool, uprights: Sequence[LineCandidate] = ()
) -> Layout:
    labels, parts = _components(cleaned)
    # Paper furniture the straight-line search missed: frames apart from the digit, then
    # hand-drawn underlines (found among what the frames leave).
    for furniture in (lambda found: _frames(labels, found), _underlines):
        drop = furniture(parts)
        parts = [part for i, part in enumerate(parts) if i not in drop]
        rules += len(drop)
    text = []
    for line in _text_lines(_glyph_groups(parts)):
        kept = _without_cut_sides(line, uprights, cleaned.shape[0])
        rules += len(line) - len(kept)
        text.append(kept)
    lines = [
        [_glyph(cleaned, labels, part, number) for part in line] for number, line in enumerate(text)
    ]
    return Layout(lines=lines, rules=rules, only_rules=only_rules, cleaned=cleaned, labels=labels)


def _without_cut_sides(
    line: list[_Part], uprights: Sequence[LineCandidate], height: int
) -> list[_Part]:
    """The line without a box side that the crop cut, left at either end of it.

    The line search keeps an upright line beside the writing (it may be a "1"), so a
    box's side read "9" as "91". A side is a straight upright line at the end of the
    line, taller than the writing beside it, that reaches the image's top or bottom edge
    where none of that writing does: in a crop tight to a number every digit reaches the
    edges, and on a page none does; a "1" no taller than its neighbours is writing even
    where it touches the edge of a tilted photo's crop.
    """
    if len(line) < 2 or not uprights:
        return line

    def edges(part: _Part) -> tuple[bool, bool]:
        return at_crop_edge(part.box[1], part.box[3], height)

    def straight(part: _Part) -> bool:
        return any(
            abs(c.box[0] - part.box[0]) <= SIDE_SLACK
            and abs(c.box[2] - part.box[2]) <= SIDE_SLACK
            and c.box[3] - c.box[1] >= SIDE_STRAIGHT * part.height
            for c in uprights
        )

    kept = list(line)
    for part in {id(line[0]): line[0], id(line[-1]): line[-1]}.values():
        others = [other for other in line if other is not part]
        tallest = max(o.height for o in others)
        if not straight(part) or not 0.5 * part.height <= tallest < part.height / SIDE_TALLER:
            continue
        beside = [edges(o) for o in others]
        if any(
            reached and not any(o[end] for o in beside) for end, reached in enumerate(edges(part))
        ):
            kept.remove(part)
    return kept
