"""Image → reading: every digit in the image, left to right, lines top to bottom.

Two phases, so that the costly part runs in worker processes without a model and the
model sees big batches:

1. :func:`draft` (no model): decode → ink map(s) → layout → one 28×28 view per glyph,
   plus, for glyphs wide enough to be several touching digits, the views of candidate
   pieces between candidate cuts. When the polarity is unclear, both readings are
   drafted; a tiny input's lone glyph is drafted squeezed as well (a "1" stretched to
   fill its frame).
2. :func:`decide` (with the model's probabilities for every view of the draft): the
   polarity whose reading the model is surer of; for each wide glyph the segmentation
   with the best total score (dynamic programming over the cuts: candidate cuts scored
   by the classifier); then the not-a-digit decision and the string.

A single digit is simply a reading of length 1, through the same path.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from digitctl.errors import NoDigitFound
from digitctl.inkmap import InkMap, ink_maps
from digitctl.layout import INK_LEVEL, Glyph, Layout, find_glyphs
from digitctl.sequence import (
    MAX_DIGITS,
    SequenceReading,
    digit_bounds,
    greedy_decode,
    sequence_input,
    strip_frame,
)

# A glyph this many times wider than tall may be several touching digits.
SPLIT_FROM_ASPECT = 0.9
# ... and from this, when other glyphs share its line: in a number, a narrow glyph may be
# a "1" squeezed against its neighbour ("19"). Alone, it is more often one wide letter
# (a "v", "U" or "H" would be read "11" or "14").
SPLIT_FROM_ASPECT_IN_NUMBER = 0.75
# Pieces of a split are this wide, in glyph heights (a "1" is narrow, a "0" near square).
PIECE_WIDTHS = (0.18, 1.25)
# Wider than this, a glyph is never one digit (1.7 before: a flat "2" with a long base,
# common in MNIST, stands 2.2 times wider than tall, and was read as two digits).
UNSPLIT_UP_TO_ASPECT = 2.3
SPLIT_UP_TO_ASPECT = 8.0  # wider than this (a line's remnant), a glyph is no number either
# A glyph read whole as a digit this surely, and no wider than this, is not split.
SURE_WHOLE = 0.98
SURE_UP_TO_ASPECT = 1.3
MIN_SPLIT_HEIGHT = 12  # ink-map pixels: lower glyphs are not split (no digits to find)
CUT_PENALTY = 0.0  # log-prior per digit read (0: none; chosen on the seed-1 validation sets)
FIRST_MAP_BONUS = 0.05  # the likelier polarity wins ties
# A frame cell read alone must be this much surer (mean log-score per digit) than the
# whole ink: the outer digits of a number ("1..1") can pass for a cell's sides.
CELL_HANDICAP = 0.1
MAX_GLYPHS = 64  # more candidate glyphs than this: texture, not writing
MAX_RUN = 3  # at most this many neighbouring pieces are tried as one digit
# Joined pieces must look like one digit: not much wider than tall (1.2 before: a 5 whose
# flag, drawn apart, reaches past its body to the right is 1.25 wide).
MERGED_UP_TO_ASPECT = 1.5
# A glyph shorter than this share of the tallest in its line is a fragment (a 5's flag,
# a dash): it is read whole or not at all, never split into digits of its own height.
SHORT_IN_LINE = 0.4
FRAGMENT_HEIGHT = 0.8  # a piece shorter than this share of its tallest neighbour
STACKED_PIECES = 1.3  # ... or pieces that together stand this many times the tallest's height
FLOOR = 1e-6
NEIGHBOURS_REJECT_ABOVE = 0.9  # the not-a-digit threshold for a glyph among digits
# An input this many times taller than wide, its height filled by one stroke read "1", is
# a 1 cropped to its ink (a postal-code crop): never "not a digit". The model learnt that
# lone straight bars are box sides, and rejected most such crops.
NARROW_INPUT = 3.0
# A tiny input (upsampled, under 32 px) holding one glyph at least this wide for its
# height may be a digit stretched to fill its frame, as small scans are: a "1" then
# becomes a fat bar or a blob, read "0", "3" or "8". Such a glyph is also read squeezed
# to SQUEEZED_WIDTH of its width, a reading that counts only if it is a 1 (the one digit
# that stretching changes past recognition), and that loses ties (SQUEEZE_HANDICAP).
SQUEEZE_FROM_ASPECT = 0.8
SQUEEZED_WIDTH = 0.4
SQUEEZE_HANDICAP = 0.05
SQUEEZED_DIGIT = 1
# A glyph that may be touching digits is also read whole by the sequence model
# (digitctl.sequence), when one is loaded. Cuts at the ink's thinnest columns cannot tell
# "166" from "6" when the strokes overlap; a model that has seen overlapping strings can
# count them. When it reads the glyph at least SEQUENCE_SURE surely (its path
# probability), the pieces it read the digits in join the candidates, and a split into
# that many digits gains SEQUENCE_BONUS (log-score) when the readings are weighed: it
# wins unless the classifier reads its pieces much worse. The digits of that split are
# read by both models (their probabilities multiplied) and, in a glyph of at least
# SEQUENCE_KEEPS_FROM digits, a thin piece the classifier takes for half a digit is kept.
# All four were chosen on the seed-1 validation sets (benchmarks/NOTES.md, stop 20).
SEQUENCE_SURE = 0.6
SEQUENCE_BONUS = 1.0
SEQUENCE_KEEPS_FROM = 4


@dataclass
class Digit:
    """One digit of a reading: its label, confidence, probabilities and box in the input."""

    label: int
    confidence: float
    probabilities: list[float]  # over the digits 0-9, summing to 1
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the input's pixels (exclusive)
    not_digit: float  # the model's calibrated probability that this glyph is no digit
    uncertain: bool
    view: np.ndarray = field(repr=False)
    line: int = 0

    def top(self, k: int = 3) -> list[tuple[int, float]]:
        """The ``k`` likeliest digits and their probabilities."""
        order = np.argsort(self.probabilities)[::-1][:k]
        return [(int(i), float(self.probabilities[i])) for i in order]

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "probabilities": [round(p, 6) for p in self.probabilities],
            "box": list(self.box),
            "not_digit": round(self.not_digit, 6),
            "uncertain": self.uncertain,
        }


@dataclass
class Reading:
    """What an image says: the digit string and each digit, or why there is none.

    ``status`` is ``ok`` (digits were read), ``not_a_digit`` (ink was found but the model
    says it is no digit: a letter, a symbol, a scribble, a photo, an empty box) or
    ``no_digit`` (nothing stands out as ink).
    """

    text: str
    digits: list[Digit]
    status: str = "ok"
    reason: str | None = None
    not_digit: float = 0.0  # the highest not-a-digit probability among the glyphs read
    size: tuple[int, int] = (0, 0)  # the input's width and height
    # Separators read between the digits (the line reader's): each {"char", "after": how
    # many digits of ``text`` come before it, "line"}; none from the rule-based reader.
    separators: list[dict[str, Any]] = field(default_factory=list)

    @property
    def uncertain(self) -> bool:
        return any(d.uncertain for d in self.digits)

    @property
    def confidence(self) -> float | None:
        """The least confident digit's confidence (None when nothing was read)."""
        return min((d.confidence for d in self.digits), default=None)

    @property
    def label(self) -> int | None:
        """The digit when exactly one was read (what single-digit scripts expect)."""
        return self.digits[0].label if len(self.digits) == 1 else None


# --------------------------------------------------------------------------------------
# phase 1: draft (no model)
# --------------------------------------------------------------------------------------
@dataclass
class _Piece:
    start: int  # glyph columns [start, stop)
    stop: int
    view: int | None = None  # index into the draft's views, once made (see piece_views)
    unreadable: bool = False  # its view could not be made (no ink left in it)


@dataclass
class _GlyphDraft:
    box: tuple[int, int, int, int]  # in input pixels
    width: int  # in ink-map pixels
    whole: int | None  # view index of the whole glyph (None: too wide to be one digit)
    cuts: list[int] = field(default_factory=list)  # candidate cut columns, 0 and width included
    pieces: list[_Piece] = field(default_factory=list)
    line: int = 0
    ink_scale: float = 1.0  # input pixels per ink-map pixel
    origin: tuple[int, int] = (0, 0)  # glyph's top-left in ink-map pixels
    ink_offset: tuple[int, int] = (0, 0)  # the ink map's top-left in input pixels
    height: int = 0
    # The glyph's ink, kept while it has pieces: their views are made only when needed.
    ink: np.ndarray | None = field(default=None, repr=False)
    # Its (28, 160) strip for the sequence model (glyphs with pieces only), and what the
    # model read there once scored.
    strip: np.ndarray | None = field(default=None, repr=False)
    frame: tuple[int, int, int, int, int] | None = None  # where the ink sits in the strip
    sequence: SequenceReading | None = None


@dataclass
class _LineDraft:
    """A line's glyph candidates: ``runs[(i, k)]`` reads atoms i .. i+k-1 as one glyph."""

    atoms: int
    runs: dict[tuple[int, int], _GlyphDraft] = field(default_factory=dict)


@dataclass
class _Hypothesis:
    dark_ink: bool
    lines: list[_LineDraft] = field(default_factory=list)
    only_rules: bool = False
    failure: str | None = None
    handicap: float = 0.0  # subtracted from its score when hypotheses are weighed
    must_read: int | None = None  # the hypothesis counts only if every glyph reads this

    @property
    def glyphs(self) -> list[_GlyphDraft]:
        """The candidates made of one atom each (no merging)."""
        return [
            line.runs[(i, 1)]
            for line in self.lines
            for i in range(line.atoms)
            if (i, 1) in line.runs
        ]


@dataclass
class Draft:
    """Everything the model must score for one image, and how to assemble the answer."""

    views: list[np.ndarray]  # float32 (28, 28) each; pieces' views are added when needed
    hypotheses: list[_Hypothesis]
    size: tuple[int, int]
    failure: str | None = None  # "no digit found: ..." when no hypothesis has ink


def _glyph_drafts(drafted: Draft) -> Iterator[_GlyphDraft]:
    for hypothesis in drafted.hypotheses:
        for line in hypothesis.lines:
            yield from line.runs.values()


def first_views(drafted: Draft) -> list[int]:
    """The views the model scores first: every candidate glyph read whole."""
    return [g.whole for g in _glyph_drafts(drafted) if g.whole is not None]


def piece_views(drafted: Draft, probabilities: np.ndarray) -> list[int]:
    """The pieces to score next, given the rows of ``probabilities`` scored so far (NaN
    rows: not yet); none once every glyph's best split is known.

    Pieces matter only for glyphs too wide to be one digit, or whose whole reading is not
    a confident digit, and of those only the pieces :func:`_pieces_to_score` asks for.
    Their views are made when first asked for (added to ``drafted.views``): most single
    digits skip their pieces, and most pieces of a wide glyph are never looked at, which
    saves most of the model's time and of the views' making. Call it again after scoring
    what it returned, until it returns nothing."""
    needed: list[int] = []
    scores: list[float] | None = None
    for glyph in _glyph_drafts(drafted):
        if not _needs_pieces(glyph, probabilities):
            continue
        if scores is None:
            scores = _view_scores(probabilities)
        digits = _sequence_count(glyph)
        wanted = _pieces_to_score(glyph, scores)
        if digits is not None and digits > 1:  # and the best split of the count read
            wanted += [p for p in _pieces_to_score(glyph, scores, digits) if p not in wanted]
        for piece in wanted:
            if piece.view is None and glyph.ink is not None:
                view = _view(glyph.ink[:, piece.start : piece.stop])
                if view is None:
                    piece.unreadable = True
                    continue
                piece.view = len(drafted.views)
                drafted.views.append(view)
            if piece.view is not None:
                needed.append(piece.view)
    return needed


def _needs_pieces(glyph: _GlyphDraft, probabilities: np.ndarray) -> bool:
    """Whether a glyph's split matters: it has pieces, and is too wide to be one digit or
    not read whole as a sure digit (given its whole view's scored row)."""
    if not glyph.pieces:
        return False
    if glyph.whole is not None and glyph.width <= SURE_UP_TO_ASPECT * glyph.height:
        row = probabilities[glyph.whole]
        not_digit = float(row[10]) if row.shape[0] > 10 else 0.0
        if float(row[:10].max()) >= SURE_WHOLE and not_digit < 1 - SURE_WHOLE:
            return False
    return True


def strips_to_read(drafted: Draft, probabilities: np.ndarray) -> list[_GlyphDraft]:
    """The glyphs whose strips the sequence model should read, given the whole views'
    scores: those whose split matters (:func:`_needs_pieces`), not read yet."""
    return [
        glyph
        for glyph in _glyph_drafts(drafted)
        if glyph.strip is not None
        and glyph.sequence is None
        and _needs_pieces(glyph, probabilities)
    ]


def _add_sequence_pieces(glyph: _GlyphDraft) -> None:
    """When the sequence model surely read several digits in the glyph, the pieces it
    read them in (cut halfway between where neighbouring digits peak) join the glyph's
    candidates: the ink's thinnest columns may offer no split of that count at all."""
    digits = _sequence_count(glyph)
    if digits is None or digits < 2 or glyph.frame is None:
        return
    assert glyph.sequence is not None
    inner = digit_bounds(glyph.sequence, glyph.frame)
    bounds = [0, *sorted({min(max(b, 1), glyph.width - 1) for b in inner}), glyph.width]
    if len(bounds) != digits + 1:
        return  # two digits peaked too close together to be cut apart
    glyph.cuts = sorted({*glyph.cuts, *bounds})
    have = {(p.start, p.stop) for p in glyph.pieces}
    for start, stop in zip(bounds, bounds[1:], strict=False):
        if (start, stop) not in have:
            glyph.pieces.append(_Piece(start, stop))


def _sequence_count(glyph: _GlyphDraft) -> int | None:
    """How many digits the sequence model surely read in the glyph (None: no such
    reading, or one that cannot be followed: a single digit too wide to read whole)."""
    sequence = glyph.sequence
    if sequence is None or sequence.confidence < SEQUENCE_SURE:
        return None
    count = len(sequence.labels)
    if not 1 <= count <= MAX_DIGITS or (count == 1 and glyph.whole is None):
        return None
    return count


def _view_scores(probabilities: np.ndarray) -> list[float]:
    """Each view's :func:`_score` (NaN for views not scored yet), at once for a table."""
    best = probabilities[:, :10].max(axis=1).astype(np.float64)
    return np.log(np.maximum(best, FLOOR)).tolist()


def _pieces_to_score(
    glyph: _GlyphDraft, scores: Sequence[float], digits: int | None = None
) -> list[_Piece]:
    """The unscored pieces that the glyph's best split may go through, given each view's
    score (:func:`_view_scores`; NaN: not scored yet, or beyond ``scores``), and, when
    ``digits`` is given, the best split into exactly that many pieces.

    A best-first search over the cuts (Dijkstra on the pieces' log-scores, which are never
    positive, so a path only loses value as it grows): the cut with the best partial split
    is expanded first; when its pieces are not scored yet, those are what is needed. The
    search ends when the glyph's far end is reached (that split is the best of all, as
    the dynamic programming of :func:`_best_split` would find among every piece) or when
    no partial split is left that could beat the glyph read whole. With a count, a state
    is a cut and the pieces taken to reach it, and the glyph read whole is no rival."""

    def unscored(piece: _Piece) -> bool:
        return piece.view is None or piece.view >= len(scores) or math.isnan(scores[piece.view])

    if CUT_PENALTY != 0:  # the search assumes no per-digit prior: then every piece may matter
        return [p for p in glyph.pieces if not p.unreadable and unscored(p)]
    if digits == 1:
        return []  # read whole
    # The glyph read whole wins ties in _segment.
    beat = scores[glyph.whole] if glyph.whole is not None and digits is None else -math.inf
    by_start: dict[int, list[_Piece]] = {}
    for piece in glyph.pieces:
        if not piece.unreadable:
            by_start.setdefault(piece.start, []).append(piece)
    best = {(0, 0): 0.0}  # (cut, pieces so far; always 0 without a count) → partial score
    done: set[tuple[int, int]] = set()
    while True:
        open_states = [state for state in best if state not in done]
        if not open_states:
            return []
        state = max(open_states, key=lambda s: (best[s], -s[0]))
        cut, count = state
        if best[state] <= beat:
            return []
        if cut == glyph.width and (digits is None or count == digits):
            return []
        if cut == glyph.width or (digits is not None and count >= digits):
            done.add(state)  # a dead end: the far end with the wrong count, or too many
            continue
        outgoing = by_start.get(cut, [])
        waiting = [p for p in outgoing if unscored(p)]
        if waiting:
            return waiting
        done.add(state)
        for piece in outgoing:
            following = (piece.stop, 0 if digits is None else count + 1)
            value = best[state] + scores[piece.view]
            if value > best.get(following, -math.inf):
                best[following] = value


def _view(ink: np.ndarray) -> np.ndarray | None:
    from digitctl.imaging import view_from_ink

    try:
        return view_from_ink(ink)
    except NoDigitFound:
        return None


def _candidate_cuts(ink: np.ndarray) -> list[int]:
    """Columns where touching digits are likely joined: the thinnest columns of the ink,
    at least a sixth of the glyph height apart (about four per digit width), ends included.
    """
    h, w = ink.shape
    profile = (ink > INK_LEVEL).sum(axis=0)
    spacing = max(2, h // 6)
    margin = max(2, int(PIECE_WIDTHS[0] * h))
    chosen: list[int] = []
    # Thinnest first; a stable sort keeps ties left to right.
    for x in np.argsort(profile[margin : w - margin + 1], kind="stable") + margin:
        if all(abs(int(x) - c) >= spacing for c in chosen):
            chosen.append(int(x))
        if len(chosen) >= 4 * w // max(1, h) + 2:
            break
    return sorted({0, w, *chosen})


def _fragments(atoms: list[Glyph]) -> bool:
    """Whether neighbours may be pieces of one digit: all but the tallest are clearly
    shorter than it, or together they stand clearly taller than any of them (a 5 drawn
    as flag, stem and bowl, pieces of about one height). Two whole digits side by side
    are neither, and are not joined, however the model would read the squeezed pair."""
    tallest = max(a.height for a in atoms)
    if sum(a.height >= FRAGMENT_HEIGHT * tallest for a in atoms) <= 1:
        return True
    top, bottom = min(a.box[1] for a in atoms), max(a.box[3] for a in atoms)
    return bottom - top >= STACKED_PIECES * tallest


def _draft_glyph(
    glyph: Glyph,
    ink_map: InkMap,
    views: list[np.ndarray],
    split_from: float | None = SPLIT_FROM_ASPECT,
) -> _GlyphDraft | None:
    """The whole view of a glyph and, when it is wider than ``split_from`` of its height
    (None: never), its candidate pieces."""
    ink = glyph.ink
    h, w = ink.shape
    scale = ink_map.scale
    ox, oy = ink_map.offset
    x0, y0, x1, y1 = glyph.box
    box = (
        ox + int(math.floor(x0 * scale)),
        oy + int(math.floor(y0 * scale)),
        ox + int(math.ceil(x1 * scale)),
        oy + int(math.ceil(y1 * scale)),
    )
    draft = _GlyphDraft(
        box=box,
        width=w,
        whole=None,
        line=glyph.line,
        ink_scale=scale,
        origin=(x0, y0),
        ink_offset=(ox, oy),
        height=h,
    )
    if w <= UNSPLIT_UP_TO_ASPECT * h:
        view = _view(ink)
        if view is None:
            return None
        draft.whole = len(views)
        views.append(view)
    if (
        split_from is not None
        and split_from * h < w <= SPLIT_UP_TO_ASPECT * h
        and h >= MIN_SPLIT_HEIGHT
    ):
        draft.cuts = _candidate_cuts(ink)
        low, high = PIECE_WIDTHS[0] * h, PIECE_WIDTHS[1] * h
        for i, start in enumerate(draft.cuts):
            for stop in draft.cuts[i + 1 :]:
                if stop - start > high:
                    break
                if stop - start < low or (start == 0 and stop == w):
                    continue
                if float(ink[:, start:stop].max()) > 0:
                    draft.pieces.append(_Piece(start, stop))
        if draft.pieces:
            draft.ink = ink
            draft.strip = sequence_input(ink)
            draft.frame = strip_frame(ink)
    if draft.whole is None and not draft.pieces:
        return None
    return draft


def draft(
    grey: np.ndarray, size: tuple[int, int], window: tuple[int, int, int, int] | None = None
) -> Draft:
    """Phase 1 for a decoded luminance image in [0, 1] (``size``: the input's w, h).

    ``window`` (x0, y0, x1, y1 in input pixels) is the part of the input ``grey`` shows
    (:func:`digitctl.imaging.decode_page` crops a big page to its ink); None: all of it.
    """
    views: list[np.ndarray] = []
    hypotheses: list[_Hypothesis] = []
    try:
        maps = ink_maps(grey)
    except NoDigitFound as exc:
        return Draft([], [], size, failure=str(exc))
    work_w = grey.shape[1]
    x0, y0, x1, _ = window if window is not None else (0, 0, size[0], size[1])
    for ink_map in maps:
        # The ink map may be upsampled (tiny inputs): boxes go back to input pixels.
        ink_map.scale = (x1 - x0) / (work_w / ink_map.scale) if work_w else 1.0
        ink_map.offset = (x0, y0)
        found = find_glyphs(ink_map.ink, faint_rules=ink_map.scale >= 1.0)
        # Other layouts of the same ink (without lines that touch the writing, or the
        # frame cell alone) are more hypotheses of the same polarity: the model's surer
        # reading wins.
        for layout in found.readings:
            hypothesis = _Hypothesis(dark_ink=ink_map.dark_ink)
            if layout is found.cell:
                hypothesis.handicap = CELL_HANDICAP
            if layout.only_rules:
                hypothesis.only_rules = True
            elif len(layout.glyphs) > MAX_GLYPHS:
                hypothesis.failure = "too many separate marks for digits (texture or a photo?)"
            else:
                hypothesis.lines = [
                    _draft_line(layout, line, ink_map, views) for line in layout.lines
                ]
            hypotheses.append(hypothesis)
            if ink_map.scale < 1.0:
                squeezed = _squeezed(layout, hypothesis, views)
                if squeezed is not None:
                    hypotheses.append(squeezed)
    return Draft(views, hypotheses, size)


def _squeezed(
    layout: Layout, hypothesis: _Hypothesis, views: list[np.ndarray]
) -> _Hypothesis | None:
    """The lone glyph of a tiny input read squeezed (see SQUEEZE_FROM_ASPECT), or None."""
    if layout.only_rules or len(layout.glyphs) != 1 or len(hypothesis.lines) != 1:
        return None
    drafted = hypothesis.lines[0].runs.get((0, 1))
    if drafted is None:
        return None
    ink = layout.glyphs[0].ink
    h, w = ink.shape
    if w < SQUEEZE_FROM_ASPECT * h:
        return None
    narrow = cv2.resize(
        np.ascontiguousarray(ink, np.float32),
        (max(2, round(w * SQUEEZED_WIDTH)), h),
        interpolation=cv2.INTER_AREA,
    )
    view = _view(narrow)
    if view is None:
        return None
    # The same glyph, read whole from the squeezed view only (never split).
    glyph = dataclasses.replace(drafted, whole=len(views), cuts=[], pieces=[], ink=None)
    views.append(view)
    return _Hypothesis(
        dark_ink=hypothesis.dark_ink,
        lines=[_LineDraft(atoms=1, runs={(0, 1): glyph})],
        handicap=hypothesis.handicap + SQUEEZE_HANDICAP,
        must_read=SQUEEZED_DIGIT,
    )


def _draft_line(
    layout: Layout, atoms: list[Glyph], ink_map: InkMap, views: list[np.ndarray]
) -> _LineDraft:
    """Candidates for one line: each atom, and runs of up to MAX_RUN neighbours joined."""
    line = _LineDraft(atoms=len(atoms))
    split_from = SPLIT_FROM_ASPECT_IN_NUMBER if len(atoms) > 1 else SPLIT_FROM_ASPECT
    tallest = max(a.height for a in atoms)
    for i in range(len(atoms)):
        for k in range(1, min(MAX_RUN, len(atoms) - i) + 1):
            if k == 1:
                glyph = atoms[i]
            else:
                x0, x1 = atoms[i].box[0], max(a.box[2] for a in atoms[i : i + k])
                y0 = min(a.box[1] for a in atoms[i : i + k])
                y1 = max(a.box[3] for a in atoms[i : i + k])
                if x1 - x0 > MERGED_UP_TO_ASPECT * (y1 - y0):
                    break
                if not _fragments(atoms[i : i + k]):
                    continue
                glyph = layout.merged(atoms[i : i + k])
            # A run of joined pieces is one digit or none: it is not split again.
            splits = k == 1 and glyph.height >= SHORT_IN_LINE * tallest
            drafted = _draft_glyph(glyph, ink_map, views, split_from if splits else None)
            if drafted is not None:
                line.runs[(i, k)] = drafted
    return line


# --------------------------------------------------------------------------------------
# phase 2: decide (with the model's probabilities)
# --------------------------------------------------------------------------------------
@dataclass
class _Choice:
    view: int
    box: tuple[int, int, int, int]
    line: int
    # The digit's probabilities when the sequence model's reading joins the view's, and
    # the not-a-digit probability left when it surely read a digit there.
    probabilities: np.ndarray | None = None
    not_digit: float | None = None


def _score(probabilities: np.ndarray) -> float:
    """Log-confidence that a view is the digit it looks most like (not-a-digit counts against)."""
    return math.log(max(float(probabilities[:10].max()), FLOOR))


def _segment(glyph: _GlyphDraft, probabilities: np.ndarray) -> tuple[float, list[_Choice]]:
    """The best way to read one glyph: whole, or split at the cuts (dynamic programming).

    When the sequence model surely read the glyph, the reading with as many digits as it
    read is preferred (SEQUENCE_BONUS is added to its value when the options are weighed).
    The value returned is the sum of the chosen views' log-scores; the caller adds the
    per-digit penalty.
    """
    whole = None
    if glyph.whole is not None:
        whole = (_score(probabilities[glyph.whole]), [_Choice(glyph.whole, glyph.box, 0)])
    digits = _sequence_count(glyph)
    split = counted = None
    if glyph.pieces:
        split = _best_split(glyph, probabilities, None)
        if digits is not None and digits > 1:
            counted = _best_split(glyph, probabilities, digits)
    options = [o for o in (whole, split, counted) if o is not None]
    if not options:
        return -math.inf, []

    def weighed(option: tuple[float, list[_Choice]]) -> float:
        follows = digits is not None and len(option[1]) == digits
        return option[0] + (SEQUENCE_BONUS if follows else 0.0)

    chosen = max(options, key=weighed)  # the whole glyph wins ties, then the free split
    if whole is not None and chosen is not whole and _letter_strokes(glyph, chosen, probabilities):
        return whole
    if digits is not None and digits > 1 and len(chosen[1]) == digits:
        assert glyph.sequence is not None
        # The two models err on different digits: each digit is read by both.
        for choice, row in zip(chosen[1], glyph.sequence.probabilities, strict=True):
            both = row * probabilities[choice.view, :10].astype(np.float64)
            choice.probabilities = both / max(float(both.sum()), FLOOR)
            if digits >= SEQUENCE_KEEPS_FROM and probabilities.shape[1] > 10:
                # A thin piece cut from touching digits looks like half a digit to the
                # classifier (it was taught to reject those); the sequence model read a
                # digit there: only as much doubt is left as both share.
                sure = glyph.sequence.confidence
                choice.not_digit = float(probabilities[choice.view, 10]) * (1 - sure)
    return chosen


def _best_split(
    glyph: _GlyphDraft, probabilities: np.ndarray, digits: int | None
) -> tuple[float, list[_Choice]] | None:
    """The glyph's best split into two or more scored pieces (into exactly ``digits``
    when given), by dynamic programming over the cuts; None when there is none."""
    by_start: dict[int, list[_Piece]] = {}
    for piece in glyph.pieces:
        by_start.setdefault(piece.start, []).append(piece)
    # (cut, pieces so far; always 0 without a count) → the best partial split there
    best: dict[tuple[int, int], tuple[float, list[_Piece]]] = {(0, 0): (0.0, [])}
    for cut in glyph.cuts:
        for (_, count), (total, path) in [(k, v) for k, v in best.items() if k[0] == cut]:
            if digits is not None and count >= digits:
                continue
            for piece in by_start.get(cut, []):
                if piece.view is None or np.isnan(probabilities[piece.view, 0]):
                    continue  # not scored: the glyph read whole was sure enough
                value = total + _score(probabilities[piece.view]) + CUT_PENALTY
                following = (piece.stop, 0 if digits is None else count + 1)
                if following not in best or value > best[following][0]:
                    best[following] = (value, [*path, piece])
    end = best.get((glyph.width, 0 if digits is None else digits))
    if end is None or len(end[1]) < 2:
        return None
    value, path = end
    value -= CUT_PENALTY * len(path)  # the caller charges each digit once
    return value, [_piece_choice(glyph, p) for p in path]


def _letter_strokes(
    glyph: _GlyphDraft, split: tuple[float, list[_Choice]], probabilities: np.ndarray
) -> bool:
    """Whether a split is the strokes of one non-digit rather than a number: every piece
    reads "1" (the legs of a V, W, M, n or h each look like one), and the glyph read whole
    is more likely "not a digit" than the split is right. A real number split into ones
    only is rare; pieces of any other digit keep the split (a touching "17")."""
    whole = probabilities[glyph.whole]
    if whole.shape[0] <= 10:
        return False
    if any(int(np.argmax(probabilities[c.view][:10])) != 1 for c in split[1]):
        return False
    return math.log(max(float(whole[10]), FLOOR)) >= split[0]


def _piece_choice(glyph: _GlyphDraft, piece: _Piece) -> _Choice:
    scale = glyph.ink_scale
    ox = glyph.origin[0]
    x0 = glyph.ink_offset[0] + int(math.floor((ox + piece.start) * scale))
    x1 = glyph.ink_offset[0] + int(math.ceil((ox + piece.stop) * scale))
    return _Choice(piece.view, (x0, glyph.box[1], x1, glyph.box[3]), 0)


def _read_line(line: _LineDraft, probabilities: np.ndarray) -> tuple[float, list[_Choice]]:
    """The best partition of a line's atoms into glyphs (dynamic programming)."""
    best: dict[int, tuple[float, list[_Choice]]] = {0: (0.0, [])}
    for i in range(line.atoms):
        if i not in best:
            continue
        total, path = best[i]
        for k in range(1, MAX_RUN + 1):
            glyph = line.runs.get((i, k))
            if glyph is None:
                continue
            value, choices = _segment(glyph, probabilities)
            if not choices:
                continue
            for choice in choices:
                choice.line = glyph.line
            candidate = total + value + CUT_PENALTY * len(choices)
            if i + k not in best or candidate > best[i + k][0]:
                best[i + k] = (candidate, [*path, *choices])
        if (i, 1) not in line.runs and (i + 1 not in best or total > best[i + 1][0]):
            # An atom with no reading of its own (a flat dash, a speck too wide to be a
            # digit) is passed over: it must not end the line and hide the digits after it.
            best[i + 1] = (total, path)
    # An atom whose candidates all fail to read stops the search: the furthest reach wins.
    end = max(best)
    return best[end] if end > 0 else (-math.inf, [])


def _read_hypothesis(
    hypothesis: _Hypothesis, probabilities: np.ndarray
) -> tuple[float, list[_Choice]]:
    total, chosen = 0.0, []
    for line in hypothesis.lines:
        value, choices = _read_line(line, probabilities)
        if choices:
            total += value - CUT_PENALTY * len(choices)
            chosen.extend(choices)
    if not chosen:
        return -math.inf, []
    if hypothesis.must_read is not None and any(
        int(np.argmax(probabilities[c.view][:10])) != hypothesis.must_read for c in chosen
    ):
        return -math.inf, []
    return total / len(chosen), chosen


def decide(
    drafted: Draft,
    probabilities: np.ndarray,
    *,
    uncertain_below: float = 0.6,
    reject_above: float | None = None,
) -> Reading:
    """Phase 2: the reading of a draft, given (N, 10) or (N, 11) probabilities of its views.

    With an 11th output (class 10, "not a digit"), a glyph whose not-a-digit probability
    exceeds ``reject_above`` is no digit.
    """
    size = drafted.size
    if drafted.failure is not None:
        return Reading("", [], "no_digit", drafted.failure, 1.0, size)
    best: tuple[float, list[_Choice], _Hypothesis] | None = None
    for rank, hypothesis in enumerate(drafted.hypotheses):
        value, chosen = _read_hypothesis(hypothesis, probabilities)
        value += (FIRST_MAP_BONUS if rank == 0 else 0.0) - hypothesis.handicap
        if best is None or value > best[0]:
            best = (value, chosen, hypothesis)
    if best is None or not best[1]:
        if any(h.only_rules for h in drafted.hypotheses):
            return Reading("", [], "not_a_digit", "not a digit: only lines or a box", 1.0, size)
        failure = next((h.failure for h in drafted.hypotheses if h.failure), None)
        if failure:
            return Reading("", [], "not_a_digit", f"not a digit: {failure}", 1.0, size)
        return Reading("", [], "no_digit", "no digit found: no ink left to read", 1.0, size)
    digits = [
        _digit(drafted.views[c.view], probabilities[c.view], c, uncertain_below) for c in best[1]
    ]
    return _assemble(digits, reject_above, size)


def _digit(
    view: np.ndarray, probabilities: np.ndarray, choice: _Choice, uncertain_below: float
) -> Digit:
    not_digit = float(probabilities[10]) if probabilities.shape[0] > 10 else 0.0
    if choice.not_digit is not None:
        not_digit = choice.not_digit
    digit_part = (
        probabilities[:10].astype(np.float64)
        if choice.probabilities is None
        else choice.probabilities
    )
    digit_part = digit_part / max(float(digit_part.sum()), FLOOR)
    label = int(np.argmax(digit_part))
    confidence = float(digit_part[label])
    return Digit(
        label=label,
        confidence=confidence,
        probabilities=[float(p) for p in digit_part],
        box=choice.box,
        not_digit=not_digit,
        uncertain=confidence < uncertain_below,
        view=view,
        line=choice.line,
    )


def _assemble(digits: list[Digit], reject_above: float | None, size: tuple[int, int]) -> Reading:
    """Drop what is no digit, and join the rest into one string per line."""
    most_likely_not = max(d.not_digit for d in digits)
    if _tight_one(digits, size):
        reject_above = None
    if reject_above is not None:
        # Among confident neighbours, a glyph is probably a digit too (a thin "1" beside
        # a "7"): in a reading of several glyphs, only a clear "not a digit" drops one.
        if len(digits) > 1 and sum(d.not_digit <= reject_above for d in digits) > 1:
            reject_above = max(reject_above, NEIGHBOURS_REJECT_ABOVE)
        rejected = [d for d in digits if d.not_digit > reject_above]
        kept = [d for d in digits if d.not_digit <= reject_above]
        rejected_mass = sum(_area(d.box) for d in rejected)
        if not kept or rejected_mass >= sum(_area(d.box) for d in kept):
            return Reading(
                "",
                [],
                "not_a_digit",
                "not a digit: the model reads it as a letter, symbol or drawing "
                f"({most_likely_not:.0%} sure)",
                most_likely_not,
                size,
            )
        digits = kept
    lines: dict[int, list[Digit]] = {}
    for digit in digits:
        lines.setdefault(digit.line, []).append(digit)
    text = "\n".join(
        "".join(str(d.label) for d in sorted(row, key=lambda d: d.box[0]))
        for _, row in sorted(lines.items())
    )
    ordered = [d for _, row in sorted(lines.items()) for d in sorted(row, key=lambda d: d.box[0])]
    return Reading(text, ordered, "ok", None, most_likely_not, size)


def _tight_one(digits: list[Digit], size: tuple[int, int]) -> bool:
    """Whether the reading is one "1" filling the height of a narrow input (NARROW_INPUT)."""
    width, height = size
    if len(digits) != 1 or height < NARROW_INPUT * width:
        return False
    digit = digits[0]
    return digit.label == 1 and digit.box[3] - digit.box[1] >= 0.8 * height


def _area(box: Sequence[int]) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def read(
    grey: np.ndarray,
    size: tuple[int, int],
    classify: Callable[[np.ndarray], np.ndarray],
    **options: Any,
) -> Reading:
    """Both phases for one decoded image: ``classify`` maps (N, 28, 28) views to probabilities."""
    drafted = draft(grey, size)
    return decide(drafted, score_views([drafted], classify)[0], **options)


def score_views(
    drafts: Sequence[Draft],
    classify: Callable[[np.ndarray], np.ndarray],
    read_strips: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Each draft's view probabilities, in batched rounds: whole glyphs first, then the
    pieces that still matter, a round for each step of the glyphs' searches for their
    best split (rows of views not scored are NaN).

    ``read_strips`` (the sequence model: (N, 28, 160) strips → (N, steps, 11)
    probabilities), when given, reads the glyphs whose split matters after the first
    round; what it read is kept on each glyph (``sequence``) and fixes its digit count."""
    scored: list[dict[int, np.ndarray]] = [{} for _ in drafts]
    width = 0

    def fill(wanted: list[tuple[int, int]]) -> None:
        nonlocal width
        if wanted:
            scores = classify(np.stack([drafts[n].views[v] for n, v in wanted]))
            width = scores.shape[1]
            for (n, v), row in zip(wanted, scores, strict=True):
                scored[n][v] = row

    def table(n: int) -> np.ndarray:
        rows = np.full((len(drafts[n].views), width or 10), np.nan, np.float32)
        for v, row in scored[n].items():
            rows[v] = row
        return rows

    fill([(n, v) for n, d in enumerate(drafts) for v in first_views(d)])
    if read_strips is not None:
        glyphs = [g for n, d in enumerate(drafts) for g in strips_to_read(d, table(n))]
        if glyphs:
            strips = read_strips(np.stack([g.strip for g in glyphs]))
            for glyph, row in zip(glyphs, strips, strict=True):
                glyph.sequence = greedy_decode(row)
                _add_sequence_pieces(glyph)
    while True:
        # A view asked for again was scored already (its row came back NaN): not again.
        wanted = [
            (n, v)
            for n, d in enumerate(drafts)
            for v in piece_views(d, table(n))
            if v not in scored[n]
        ]
        if not wanted:
            break
        fill(wanted)
    return [table(n) for n in range(len(drafts))]
