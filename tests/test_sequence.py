"""The sequence model's NumPy side: strips, greedy CTC decoding, composed training strings,
and how a reading follows the digit count it reads."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import realistic_images as ri

from digitctl import reading, sequence
from digitctl.sequence import BLANK, STEPS, SequenceReading


def _read(labels: list[int], confidence: float, steps: list[int]) -> SequenceReading:
    """What the sequence model would say: ``labels`` at ``steps``, each at 0.91."""
    rows = [np.where(np.arange(10) == label, 0.91, 0.01) for label in labels]
    return SequenceReading(labels, confidence, steps, rows)


def _bar(height: int, width: int) -> np.ndarray:
    ink = np.zeros((height + 10, width + 10), np.float32)
    ink[5 : 5 + height, 5 : 5 + width] = 0.8
    return ink


def test_a_strip_is_the_glyph_20_px_high_with_its_aspect_kept() -> None:
    strip = sequence.sequence_input(_bar(60, 90))
    assert strip is not None and strip.shape == (28, 160) and strip.dtype == np.float32
    rows = np.flatnonzero(strip.max(axis=1) > 0.5)
    cols = np.flatnonzero(strip.max(axis=0) > 0.5)
    assert (rows[0], rows[-1]) == (4, 23), "20 px high, 4 px from the top"
    assert cols[0] == 4 and cols[-1] - cols[0] + 1 == 30, "60×90 → 20×30"
    assert strip.max() == pytest.approx(1.0), "scaled to a peak of 1"


def test_a_glyph_too_wide_for_the_strip_is_squeezed_and_a_blank_one_is_none() -> None:
    strip = sequence.sequence_input(_bar(10, 200))
    assert strip is not None
    cols = np.flatnonzero(strip.max(axis=0) > 0.5)
    assert cols[-1] == 160 - 4 - 1, "fills the strip but its right margin"
    assert sequence.sequence_input(np.zeros((30, 30), np.float32)) is None


def _path(*labels: int) -> np.ndarray:
    rows = np.full((STEPS, BLANK + 1), 0.01, np.float32)
    for step in range(STEPS):
        label = labels[step] if step < len(labels) else BLANK
        rows[step, label] = 0.9
    return rows


def test_greedy_decoding_merges_repeats_and_keeps_blank_separated_ones() -> None:
    decoded = sequence.greedy_decode(_path(BLANK, 1, 1, BLANK, 1, 7, 7, BLANK, BLANK, 0))
    assert decoded.labels == [1, 1, 7, 0] and decoded.text == "1170"
    assert decoded.steps == [1, 4, 5, 9]
    assert decoded.confidence == pytest.approx(0.9**4)
    assert sequence.greedy_decode(_path()).labels == []


def test_composed_strings_touch_are_labelled_left_to_right_and_include_non_digits() -> None:
    drawn = (0, 1, 3, 4, 7)
    images = np.stack([(ri.draw_digit(d, size=28, width=3) * 255).astype(np.uint8) for d in drawn])
    labels = np.array(drawn)
    strips, targets = sequence.training_strings(images, labels, 64, seed=3)
    assert strips.shape == (64, 28, 160) and strips.dtype == np.uint8
    assert targets.shape == (64, sequence.MAX_DIGITS)
    lengths = (targets >= 0).sum(axis=1)
    assert lengths.min() >= 1 and lengths.max() <= sequence.MAX_DIGITS and len(set(lengths)) > 3
    # Asked for, some strips are letters, symbols or scribbles: no digit to read there.
    _, mixed = sequence.training_strings(images, labels, 64, seed=3, negatives=0.2)
    assert 0 < ((mixed >= 0).sum(axis=1) == 0).sum() < 64 * 0.5
    for row in targets:  # padding only at the end
        n = int((row >= 0).sum())
        assert (row[:n] >= 0).all() and (row[n:] == -1).all()
    again, _ = sequence.training_strings(images, labels, 64, seed=3)
    assert np.array_equal(strips, again), "the same seed gives the same strings"
    # A two-digit string is one piece of ink wider than tall: the digits touch.
    rng = np.random.default_rng(0)
    ink = sequence.compose_string([images[3], images[4]], rng)  # a 4 and a 7
    assert ink.shape[1] > 0.8 * ink.shape[0], "two digits side by side"
    import cv2

    count, _ = cv2.connectedComponents((ink > 0.2).astype(np.uint8))
    assert count - 1 <= 2


def _two_piece_glyph() -> reading._GlyphDraft:
    # Cuts at 0, 10, 20, 30: pieces [0,10) [10,20) [20,30) [0,20) [10,30) are views 1-5.
    glyph = reading._GlyphDraft(box=(0, 0, 30, 20), width=30, whole=0, height=20)
    glyph.cuts = [0, 10, 20, 30]
    spans = [(0, 10), (10, 20), (20, 30), (0, 20), (10, 30)]
    glyph.pieces = [reading._Piece(a, b, view=n + 1) for n, (a, b) in enumerate(spans)]
    return glyph


def _rows(*tops: float) -> np.ndarray:
    rows = np.zeros((len(tops), 11), np.float32)
    for row, top in zip(rows, tops, strict=True):
        row[:10] = (1 - top) / 10
        row[3] = top
    return rows


def test_a_sure_sequence_reading_fixes_how_many_digits_the_glyph_is_split_into() -> None:
    glyph = _two_piece_glyph()
    # Whole 0.5; the three narrow pieces 0.9 each; the two wide ones 0.6 each.
    scores = _rows(0.5, 0.9, 0.9, 0.9, 0.6, 0.6)
    _, choices = reading._segment(glyph, scores)
    assert len(choices) == 3, "without a count: three digits (0.9³ > 0.6 · 0.9)"
    glyph.sequence = _read([3, 3], 0.8, [2, 6])
    _, choices = reading._segment(glyph, scores)
    assert [c.view for c in choices] in ([4, 3], [1, 5]), "the model read two digits"
    glyph.sequence = _read([3], 0.8, [3])
    _, choices = reading._segment(glyph, scores)
    assert [c.view for c in choices] == [0], "one digit: read whole"
    # An unsure reading changes nothing.
    glyph.sequence = _read([3, 3], reading.SEQUENCE_SURE / 2, [2, 6])
    _, choices = reading._segment(glyph, scores)
    assert len(choices) == 3
    # A count no split can give (five digits from three narrow pieces) falls back.
    glyph.sequence = _read([3] * 5, 0.9, [1, 2, 3, 4, 5])
    _, choices = reading._segment(glyph, scores)
    assert len(choices) == 3


def test_the_counted_search_finds_the_counted_split_without_scoring_every_piece() -> None:
    # Random glyphs and scores: the best split of a given count, found by scoring the pieces
    # the search asks for, is the one the dynamic programming finds among every piece.
    rng = np.random.default_rng(11)
    asked_for = every = 0
    for _ in range(200):
        width = int(rng.integers(30, 80))
        inner = sorted({int(c) for c in rng.integers(4, width - 3, size=rng.integers(2, 10))})
        cuts = [0, *inner, width]
        glyph = reading._GlyphDraft(box=(0, 0, width, 20), width=width, whole=0, height=20)
        glyph.cuts = cuts
        glyph.pieces = [
            reading._Piece(a, b, view=None)
            for i, a in enumerate(cuts)
            for b in cuts[i + 1 :]
            if 4 <= b - a <= 25 and (a, b) != (0, width)
        ]
        for n, piece in enumerate(glyph.pieces):
            piece.view = n + 1
        glyph.sequence = _read([5] * int(rng.integers(2, 5)), 0.95, [])
        full = rng.dirichlet([1.0] * 11, size=len(glyph.pieces) + 1).astype(np.float32)
        partial = np.full_like(full, np.nan)
        partial[0] = full[0]
        count = reading._sequence_count(glyph)
        while wanted := reading._pieces_to_score(glyph, reading._view_scores(partial), count):
            for piece in wanted:
                assert np.isnan(partial[piece.view, 0]), "a piece is asked for twice"
                partial[piece.view] = full[piece.view]
        value, choices = reading._segment(glyph, partial)
        expected_value, expected = reading._segment(glyph, full)
        assert [c.view for c in choices] == [c.view for c in expected]
        assert value == pytest.approx(expected_value) or math.isinf(expected_value)
        asked_for += int((~np.isnan(partial[1:, 0])).sum())
        every += len(glyph.pieces)
    assert asked_for < every


def test_train_sequence_recipe_writes_a_model_that_readings_use(
    cli_args: list[str], mnist_mirror: Path, workspace: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from digitctl.cli import app
    from digitctl.config import Settings
    from digitctl.inference import load_predictor

    command = [*cli_args, "train", "--mirror", str(mnist_mirror), "--recipe", "sequence"]
    result = CliRunner().invoke(app, [*command, "--limit", "40", "--epochs", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    models = workspace / "models"
    for name in ("digitctl_sequence.keras", "digitctl_sequence.tflite"):
        assert (models / name).stat().st_size > 0
    card = json.loads((models / "digitctl_sequence_card.json").read_text())
    assert card["kept_epoch"] == 1 and card["recipe"]["train_strings"] == 400
    assert summary["validation_string_accuracy"] == card["validation_string_accuracy"]
    assert not list(models.glob(".sequence-*")), "no scratch files left behind"
    # Readings in this workspace count touching digits with it, through the LiteRT file.
    predictor = load_predictor(Settings(workspace=workspace))
    assert predictor.sequence_model == models / "digitctl_sequence.tflite"
    strips = predictor.read_strips(np.zeros((3, 28, 160), np.float32))
    assert strips.shape == (3, sequence.STEPS, BLANK + 1)
    assert np.allclose(strips.sum(axis=2), 1, atol=1e-4)
    # Options of the CNN recipes are refused, in one line, before any work.
    refused = CliRunner().invoke(app, [*command, "--resume"])
    assert (
        refused.exit_code == 2
        and "--resume does not apply to the sequence recipe" in refused.output
    )


def test_the_digits_read_in_a_strip_are_cut_apart_in_the_glyph_s_own_columns() -> None:
    ink = np.zeros((40, 90), np.float32)
    ink[:, 5:85] = 1.0  # ink in columns 5-84, 40 rows: fitted 20 × 40 in the strip
    frame = sequence.strip_frame(ink)
    assert frame == (0, 40, 5, 85, 40)
    # Two digits peaking at steps 2 and 10: halfway is strip column 26, 22 px into the
    # ink's 40 fitted columns, which is 44 of its 80 columns, from column 5.
    read = _read([4, 7], 0.9, [2, 10])
    assert sequence.digit_bounds(read, frame) == [49]


def test_a_sure_reading_adds_its_own_pieces_and_keeps_thin_ones_as_digits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    glyph = reading._GlyphDraft(box=(0, 0, 80, 40), width=80, whole=0, height=40)
    glyph.cuts = [0, 30, 80]
    glyph.pieces = [reading._Piece(0, 30, view=1), reading._Piece(30, 80, view=2)]
    glyph.frame = (0, 40, 0, 80, 40)
    glyph.sequence = _read([1, 4, 7], 0.95, [1, 5, 8])
    reading._add_sequence_pieces(glyph)
    assert glyph.cuts == [0, 20, 30, 48, 80]  # strip columns 14 and 28, at 0.5 px a column
    spans = {(p.start, p.stop) for p in glyph.pieces}
    assert {(0, 20), (20, 48), (48, 80)} <= spans and (0, 30) in spans
    # The new pieces get views when scored; here: views 3-5. The thin "1" is half a digit
    # to the classifier (not a digit: 0.65), yet the sequence model surely read a 1 there.
    for n, piece in enumerate(p for p in glyph.pieces if p.view is None):
        piece.view = 3 + n
    rows = np.full((6, 11), 0.01, np.float32)
    # Whole 0.3 (log -1.2), the thin-cut pair 0.5 each (-1.39), the sequence model's
    # pieces 0.3, 0.9 and 0.9 (-1.41, +1 for following it): its split wins.
    rows[0, 8], rows[1, 3], rows[2, 7] = 0.3, 0.5, 0.5
    rows[3, 1], rows[3, 10] = 0.3, 0.65
    rows[4, 4], rows[5, 7] = 0.9, 0.9
    _, choices = reading._segment(glyph, rows)
    assert [c.view for c in choices] == [3, 4, 5], "three digits, as the sequence model read"
    digits = [reading._digit(np.zeros((28, 28)), rows[c.view], c, 0.6) for c in choices]
    assert [d.label for d in digits] == [1, 4, 7]
    assert digits[0].not_digit == pytest.approx(0.65), "three digits: the classifier decides"
    monkeypatch.setattr(reading, "SEQUENCE_KEEPS_FROM", 3)
    _, choices = reading._segment(glyph, rows)
    digits = [reading._digit(np.zeros((28, 28)), rows[c.view], c, 0.6) for c in choices]
    assert digits[0].not_digit == pytest.approx(0.65 * 0.05), "only the doubt both share"
    # Without a sure reading nothing is added.
    other = reading._GlyphDraft(box=(0, 0, 80, 40), width=80, whole=0, height=40)
    other.cuts, other.frame = [0, 80], (0, 40, 0, 80, 40)
    other.sequence = _read([1, 4], reading.SEQUENCE_SURE / 2, [1, 5])
    reading._add_sequence_pieces(other)
    assert other.cuts == [0, 80] and not other.pieces
