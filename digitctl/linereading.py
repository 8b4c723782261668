"""Reading an image with the line reader: find the lines of writing, read each line whole
with the line model (:mod:`digitctl.linereader`), and answer in the reading contract
(:class:`digitctl.reading.Reading`) that ``predict``, the app and ``digitctl.read`` share.

No rule here decides what is furniture: the model has learned to ignore boxes, rules,
margins, patterns and letters. What is left is generic:

- a blank image (no ink stands out anywhere) is "no digit found";
- the image is read whole, as the model was trained; the writing is also looked for as
  bands of rows that hold ink (:func:`find_lines`), and read one cropped band at a time
  where the model is surer of that (two lines of writing), or where the whole reading
  found nothing and the writing is small in the image (a number on a large page);
- each digit's box comes from the CTC alignment (its columns) and the ink in them (its
  rows); its probabilities are the line model's, multiplied by the digit classifier's
  reading of that box when a classifier is given (``classify``);
- where the line model reads nothing, the digit classifier's reading of all the ink is
  a second opinion, kept when it is sure by the card's thresholds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from digitctl.errors import NoDigitFound
from digitctl.glyph import view_from_ink
from digitctl.linereader import (
    LineModel,
    LineReading,
    character_boxes,
    ink_signal,
    to_grey,
)
from digitctl.reading import Digit, Reading

# A grey spread under this (of the full range, after a 3×3 mean) is a blank image.
BLANK_CONTRAST = 0.08
# Rows whose strong ink (over half the ink's strength) covers this share of the width, or
# at least 2 px, hold writing; gaps of empty rows split lines.
ROW_INK_SHARE = 0.002
# A gap splits two bands of rows when it is at least this share of the shorter band's
# height (a 5 drawn apart from its flag stays one line) ...
LINE_GAP = 0.35
# ... and, as a second candidate for the model to judge, bands split by any empty rows
# are lines of their own when the shorter is at least this share of the tallest (two
# lines written close together: two lines 68.0 -> 83.5%, seed 1); a shorter band near
# another (a 5's flag, a comma, a dash above) joins it. Their gap is at least this share
# of the shorter band (an 8 broken at its waist is not two lines: 3 px over 15).
LINE_SHARE = 0.5
CLOSE_GAP = 0.25
# Around a line's ink, this share of its height is kept as margin when it is cropped.
LINE_MARGIN = 0.35
FIND_SIDE = 512  # lines are looked for at most this many pixels a side
# Images under this many pixels on their short side are read whole: a crop of one line or
# one digit (in a tight crop every stroke touches an edge, and looking for lines there
# only cut the digit apart: tight 68.6% read whole, 57.4% searched, seed 1).
FIND_FROM = 64
# Writing found in under this share of the image is small in it (a number on a page).
SMALL_WRITING = 0.25
# A stroke touching the image's edge and longer than this share of the side is furniture
# when looking for lines (it is still in what the model reads).
EDGE_STROKE = 0.6
# An image whose writing fills over this share of both sides is read whole, furniture and
# all, as the model was trained; a smaller patch of writing is read cropped.
READ_WHOLE_FROM = 0.6


@dataclass
class Line:
    """A band of the image to read as one line: rows ``top:bottom``, columns ``left:right``."""

    top: int
    bottom: int
    left: int
    right: int


def is_blank(grey: np.ndarray) -> bool:
    """Whether nothing at all stands out: the grey spread, after a 3×3 mean that tames
    single-pixel noise (a 1-px pen line keeps a third of its contrast), is under
    :data:`BLANK_CONTRAST`."""
    smooth = cv2.blur(np.ascontiguousarray(grey, np.float32), (3, 3))
    return float(smooth.max()) - float(smooth.min()) < BLANK_CONTRAST


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[0], mask.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def writing_mask(grey: np.ndarray) -> np.ndarray:
    """Where writing may be, for finding lines (the model still reads the image itself):
    ink against the paper around it (a median over a third of the image, at most 512 px a
    side), without long strokes that touch the image's edge (margins, a desk, rules and
    box sides cut by the crop), unless nothing else is left."""
    h, w = grey.shape
    factor = max(1.0, max(h, w) / FIND_SIDE)
    small = grey
    if factor > 1:
        size = (max(1, round(w / factor)), max(1, round(h / factor)))
        small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    levels = np.ascontiguousarray(np.clip(small * 255, 0, 255).astype(np.uint8))
    # The paper varies slowly: its level is the median at 1/8 of the size, scaled back.
    sh, sw = levels.shape
    coarse = cv2.resize(levels, (max(1, sw // 8), max(1, sh // 8)), interpolation=cv2.INTER_AREA)
    window = min(255, max(3, int(min(coarse.shape) / 3) | 1))
    if min(coarse.shape) >= 3:
        coarse = cv2.medianBlur(coarse, window)
    background = cv2.resize(coarse, (sw, sh), interpolation=cv2.INTER_LINEAR).astype(np.int16)
    dark = np.maximum(background - levels, 0)
    light = np.maximum(levels - background, 0)
    reach_dark, reach_light = (_level_quantile(side, 0.999) for side in (dark, light))
    signal = dark if reach_dark >= reach_light else light
    reach = max(float(max(reach_dark, reach_light)), BLANK_CONTRAST * 255)
    local = signal > 0.5 * reach
    # Long strokes at the edge, in the local signal and in the plain one (a wide black
    # margin darkens the median paper beside it, and only its rim stands out locally).
    furniture = _edge_strokes(local) | _edge_strokes(ink_signal(small) > 0.5)
    furniture = cv2.dilate(furniture.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    mask = local & ~furniture
    if not mask.any():  # only edge strokes: they may be the writing (a tight crop)
        mask = local
    if factor > 1:
        mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return mask


def _level_quantile(levels: np.ndarray, q: float) -> int:
    """The ``q`` quantile of grey levels 0..255, counted (not sorted)."""
    cumulative = np.cumsum(np.bincount(levels.ravel(), minlength=256))
    return int(np.searchsorted(cumulative, int(q * (levels.size - 1)) + 1))


def _edge_strokes(strong: np.ndarray) -> np.ndarray:
    """The parts of ``strong`` that touch the image's edge and are longer than
    :data:`EDGE_STROKE` of its side."""
    sh, sw = strong.shape
    count, labels, stats, _ = cv2.connectedComponentsWithStats(strong.astype(np.uint8))
    x, y, bw, bh = (stats[:, i] for i in range(4))
    at_edge = (x == 0) | (y == 0) | (x + bw == sw) | (y + bh == sh)
    long = at_edge & ((bw > EDGE_STROKE * sw) | (bh > EDGE_STROKE * sh))
    long[0] = False
    return long[labels]


def find_lines(mask: np.ndarray, close_lines: bool = False) -> list[Line]:
    """Bands of rows holding writing (``mask``: :func:`writing_mask`), top to bottom, each
    with its columns of writing and a margin; one band covering the whole image when the
    writing fills most of it. Bands are split by wide gaps (:data:`LINE_GAP`), or with
    ``close_lines`` by any gap between bands of similar height (:data:`LINE_SHARE`)."""
    h, w = mask.shape
    rows = mask.sum(axis=1) >= max(2, ROW_INK_SHARE * w)
    runs = _runs(rows)
    if not runs or min(h, w) < FIND_FROM:  # a crop of a line or a digit: read it whole
        return [Line(0, h, 0, w)]
    if close_lines:
        runs = _join_short_bands([list(run) for run in runs])
    least_gap = CLOSE_GAP if close_lines else LINE_GAP
    bands = [list(runs[0])]
    for start, stop in runs[1:]:
        last = bands[-1]
        if start - last[1] < least_gap * min(last[1] - last[0], stop - start):
            last[1] = stop
        else:
            bands.append([start, stop])
    lines = []
    for top, bottom in bands:
        cols = np.flatnonzero(mask[top:bottom].any(axis=0))
        left, right = int(cols[0]), int(cols[-1]) + 1
        margin = int(round(LINE_MARGIN * (bottom - top)))
        lines.append(
            Line(
                max(0, top - margin),
                min(h, bottom + margin),
                max(0, left - margin),
                min(w, right + margin),
            )
        )
    top, bottom = min(ln.top for ln in lines), max(ln.bottom for ln in lines)
    left, right = min(ln.left for ln in lines), max(ln.right for ln in lines)
    if (
        len(lines) == 1
        and bottom - top > READ_WHOLE_FROM * h
        and right - left > READ_WHOLE_FROM * w
    ):
        return [Line(0, h, 0, w)]
    return lines


def _join_short_bands(bands: list[list[int]]) -> list[list[int]]:
    """Bands of rows (top, bottom), top to bottom, with each band shorter than
    :data:`LINE_SHARE` of the tallest joined to its nearest neighbour when that is closer
    than half the neighbour's height (a speck far from the writing stays a band of its
    own, read as nothing), shortest first."""
    while len(bands) > 1:
        tallest = max(b[1] - b[0] for b in bands)
        candidates = []
        for i, (top, bottom) in enumerate(bands):
            if bottom - top >= LINE_SHARE * tallest:
                continue
            for j in (i - 1, i + 1):
                if 0 <= j < len(bands):
                    gap = max(bands[j][0] - bottom, top - bands[j][1])
                    if gap < 0.5 * (bands[j][1] - bands[j][0]):
                        candidates.append((bottom - top, gap, i, j))
        if not candidates:
            break
        _, _, i, j = min(candidates)
        low, high = min(i, j), max(i, j)
        bands[low : high + 1] = [[bands[low][0], bands[high][1]]]
    return bands


def read_image(
    image: np.ndarray,
    size: tuple[int, int],
    model: LineModel,
    classify: Callable[[np.ndarray], np.ndarray] | None = None,
    uncertain_below: float = 0.6,
    window: tuple[int, int, int, int] | None = None,
) -> Reading:
    """Every digit in ``image`` (a decoded image at working size; ``size`` is the input's
    own width and height), line by line, in the reading contract. ``window`` (x0, y0, x1,
    y1 in input pixels) is the part of the input ``image`` shows (all of it when None)."""
    grey = to_grey(image)
    if is_blank(grey):
        return Reading(
            "", [], "no_digit", "no digit found: the image is blank (no ink stands out)", 1.0, size
        )
    ink = ink_signal(grey)
    x0, y0, x1, y1 = window if window is not None else (0, 0, size[0], size[1])
    frame = (x0, y0, (x1 - x0) / grey.shape[1], (y1 - y0) / grey.shape[0])
    lines, readings = _lines_read(grey, model)
    digits: list[Digit] = []
    texts: list[str] = []
    separators: list[dict] = []
    line_number = 0
    for line, line_reading in zip(lines, readings, strict=True):
        if not line_reading.text:
            continue
        before = sum(len(t) for t in texts)
        found = _digits(line_reading, line, ink, frame, classify, uncertain_below)
        for digit in found:
            digit.line = line_number
        digits.extend(found)
        texts.append("".join(str(d.label) for d in found))
        separators += [
            {"char": s["char"], "after": before + s["after"], "line": line_number}
            for s in line_reading.separators()
        ]
        line_number += 1
    if not digits:
        second = _digit_model_reading(ink, model, classify, uncertain_below, size, frame)
        if second is not None:
            return second
        sure = max((r.confidence for r in readings), default=1.0)
        return Reading(
            "", [], "not_a_digit", "not a digit: the line reader reads no digit", sure, size
        )
    not_digit = max(d.not_digit for d in digits)
    return Reading("\n".join(texts), digits, "ok", None, not_digit, size, separators)


@dataclass
class DigitOpinion:
    """The digit model's reading of all of an image's ink as one digit."""

    label: int
    sure: float  # its probability among the ten digits
    not_digit: float  # the model's "not a digit" probability (0 without that class)
    probabilities: np.ndarray
    view: np.ndarray


def digit_opinion(
    ink: np.ndarray, classify: Callable[[np.ndarray], np.ndarray]
) -> DigitOpinion | None:
    """What the digit model reads in all of ``ink`` (:func:`ink_signal`), None when there
    is no ink to view."""
    try:
        view = view_from_ink(ink)
    except NoDigitFound:
        return None
    row = np.asarray(classify(view[None])[0], np.float64)
    probabilities = row[:10] / max(float(row[:10].sum()), 1e-12)
    label = int(probabilities.argmax())
    not_digit = float(row[10]) if len(row) > 10 else 0.0
    return DigitOpinion(label, float(probabilities[label]), not_digit, probabilities, view)


def _digit_model_reading(
    ink: np.ndarray,
    model: LineModel,
    classify: Callable[[np.ndarray], np.ndarray] | None,
    uncertain_below: float,
    size: tuple[int, int],
    frame: tuple[float, float, float, float],
) -> Reading | None:
    """A second opinion where the line model reads nothing: the digit model's reading of
    all the ink as one digit (:func:`digit_opinion`), kept only when it is sure it is a
    digit, by the thresholds chosen on validation sets and kept in the line model's card
    (``reading.digit_model``: ``sure_above``, ``not_digit_below``; written by
    ``benchmarks/choose_reader_thresholds.py``; no thresholds, no second opinion). A
    plain digit the line model misses is read; a letter or a shape the digit model calls
    "not a digit" stays rejected."""
    limits = getattr(model, "card", {}).get("reading", {}).get("digit_model")
    if classify is None or not limits:
        return None
    opinion = digit_opinion(ink, classify)
    if (
        opinion is None
        or opinion.not_digit >= limits["not_digit_below"]
        or opinion.sure <= limits["sure_above"]
    ):
        return None
    rows = np.flatnonzero(ink.max(axis=1) > 0.3)
    cols = np.flatnonzero(ink.max(axis=0) > 0.3)
    if not len(rows) or not len(cols):
        return None
    box = _input_box(frame, int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    digit = Digit(
        label=opinion.label,
        confidence=opinion.sure,
        probabilities=[float(p) for p in opinion.probabilities],
        box=box,
        not_digit=opinion.not_digit,
        uncertain=opinion.sure < uncertain_below,
        view=opinion.view,
    )
    return Reading(str(opinion.label), [digit], "ok", None, opinion.not_digit, size)


def _input_box(
    frame: tuple[float, float, float, float], x0: int, y0: int, x1: int, y1: int
) -> tuple[int, int, int, int]:
    """A box in the working image's pixels as a box in the input's: ``frame`` is the
    window's corner and scale (x0, y0, input pixels per working pixel across, down)."""
    left, top, scale_x, scale_y = frame
    return (
        int(round(left + x0 * scale_x)),
        int(round(top + y0 * scale_y)),
        int(round(left + x1 * scale_x)),
        int(round(top + y1 * scale_y)),
    )


def _lines_read(grey: np.ndarray, model: LineModel) -> tuple[list[Line], list[LineReading]]:
    """The image read whole, as the model was trained, and, when lines are found in it,
    read line by line: a line reading is kept when the model is surer of the lines than
    of the whole (:func:`_sureness`; of two ways to split lines, the surer), or when the
    whole read nothing and the writing found is small in the image (a number on a page;
    a letter that fills its crop stays "not a digit"). The model judges, so that a digit
    the search cut apart (an 8 with a broken waist) or a band that is only a rule does
    not replace a good whole reading."""
    h, w = grey.shape
    whole = [Line(0, h, 0, w)]
    whole_reading = model.read(grey)
    mask = writing_mask(grey)
    whole_sure = _sureness([whole_reading])
    best: tuple[float, list[Line], list[LineReading]] | None = None
    tried = [whole]
    for close_lines in (False, True):
        lines = find_lines(mask, close_lines)
        if lines in tried:
            continue
        tried.append(lines)
        readings = [model.read(grey[ln.top : ln.bottom, ln.left : ln.right]) for ln in lines]
        read = [r for r in readings if r.text]
        if not read:
            continue
        sure = _sureness(read)
        found_small = sum((ln.bottom - ln.top) * (ln.right - ln.left) for ln in lines) < (
            SMALL_WRITING * h * w
        )
        if sure > whole_sure or (not whole_reading.text and found_small):
            if best is None or sure > best[0]:
                best = (sure, lines, readings)
    if best is not None:
        return best[1], best[2]
    return whole, [whole_reading]


def _sureness(readings: list[LineReading]) -> float:
    """How sure the model is of some readings, per decision it made: the geometric mean
    of their path probabilities over their characters and one blank each (so that two
    lines of three digits are not less sure than one line of one digit for being more)."""
    decisions = sum(len(r.characters) + 1 for r in readings)
    logs = sum(np.log(max(r.confidence, 1e-30)) for r in readings)
    return float(np.exp(logs / decisions))


def _columns(line_reading: LineReading, crop: np.ndarray) -> list[tuple[int, int]]:
    """Each character's columns of ``crop``: the line cut halfway between the CTC
    alignments of neighbouring characters, then trimmed to the ink in that part."""
    boxes = character_boxes(line_reading, crop.shape[1], crop.shape[0])
    cuts = [0]
    for (_, _, right, _), (left, _, _, _) in zip(boxes, boxes[1:], strict=False):
        cuts.append(max(cuts[-1], (right + left) // 2))
    cuts.append(crop.shape[1])
    strong = crop.max(axis=0) > 0.3
    spans = []
    for (x0, _, x1, _), start, stop in zip(boxes, cuts, cuts[1:], strict=False):
        inked = np.flatnonzero(strong[start:stop])
        if len(inked):
            spans.append((start + int(inked[0]), start + int(inked[-1]) + 1))
        else:  # no ink of its own: the alignment's columns
            spans.append((x0, x1))
    return spans


def _digits(
    line_reading: LineReading,
    line: Line,
    ink: np.ndarray,
    frame: tuple[float, float, float, float],
    classify: Callable[[np.ndarray], np.ndarray] | None,
    uncertain_below: float,
) -> list[Digit]:
    crop = ink[line.top : line.bottom, line.left : line.right]
    spans = _columns(line_reading, crop)
    found: list[tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]] = []
    for character, (x0, x1) in zip(line_reading.characters, spans, strict=True):
        if not character.is_digit:
            continue
        column = crop[:, x0:x1]
        rows = np.flatnonzero(column.max(axis=1) > 0.3) if column.size else np.zeros(0, int)
        y0, y1 = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, crop.shape[0])
        piece = column[y0:y1]
        try:
            view = view_from_ink(piece)
        except NoDigitFound:  # no ink in the box: an empty view, read by the line model alone
            view = np.zeros((28, 28), np.float32)
        box = _input_box(frame, line.left + x0, line.top + y0, line.left + x1, line.top + y1)
        found.append((character.probabilities, view, box))
    scored = classify(np.stack([v for _, v, _ in found])) if classify and found else None
    digits = []
    for i, (line_probabilities, view, box) in enumerate(found):
        probabilities = np.asarray(line_probabilities, np.float64)
        not_digit = 0.0
        if scored is not None:
            row = np.asarray(scored[i], np.float64)
            if len(row) > 10:
                not_digit = float(row[10])
            cnn = row[:10] / max(float(row[:10].sum()), 1e-12)
            probabilities = probabilities * cnn
            probabilities = probabilities / max(float(probabilities.sum()), 1e-300)
        label = int(probabilities.argmax())
        confidence = float(probabilities[label])
        digits.append(
            Digit(
                label=label,
                confidence=confidence,
                probabilities=[float(p) for p in probabilities],
                box=box,
                not_digit=not_digit,
                uncertain=confidence < uncertain_below,
                view=view,
            )
        )
    return digits
