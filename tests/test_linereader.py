"""The line reader's NumPy side: generic normalisation, CTC decoding, boxes."""

from __future__ import annotations

import numpy as np
import pytest

from digitctl import linereader
from digitctl.linereader import BLANK, CHARSET, STRIDE, ctc_decode


def _page(height: int, width: int, dark_ink: bool = True) -> np.ndarray:
    paper, ink = (235, 30) if dark_ink else (20, 220)
    image = np.full((height, width), paper, np.uint8)
    image[height // 4 : 3 * height // 4, width // 3 : width // 3 + max(2, width // 20)] = ink
    return image


def test_a_strip_is_32_px_high_ink_high_whatever_the_polarity() -> None:
    dark = linereader.normalize_line(_page(64, 200))
    light = linereader.normalize_line(_page(64, 200, dark_ink=False))
    assert dark.shape == (32, 100) and dark.dtype == np.float32
    np.testing.assert_allclose(dark, light, atol=0.02)
    assert dark.max() == pytest.approx(1.0) and np.median(dark) == pytest.approx(0.0)


def test_narrow_crops_are_padded_and_very_wide_ones_squeezed() -> None:
    narrow = linereader.normalize_line(_page(120, 20))
    assert narrow.shape == (32, linereader.MIN_WIDTH)
    assert narrow[:, :8].max() == 0 and narrow[:, -8:].max() == 0, "padded on both sides"
    wide = linereader.normalize_line(_page(10, 5000))
    assert wide.shape == (32, linereader.MAX_WIDTH)


def test_a_transparent_canvas_is_paper_and_its_strokes_are_ink() -> None:
    rgba = np.zeros((60, 90, 4), np.uint8)
    rgba[10:50, 40:46] = (0, 0, 0, 255)
    strip = linereader.normalize_line(rgba)
    assert strip.max() == pytest.approx(1.0)
    assert strip[:, :10].max() < 0.05, "the transparent part reads as paper"


def test_a_white_pen_on_a_transparent_canvas_is_ink_on_dark_paper() -> None:
    rgba = np.zeros((60, 90, 4), np.uint8)  # transparent black, as canvases store it
    rgba[10:50, 40:46] = (255, 255, 255, 255)
    grey = linereader.to_grey(rgba)
    assert grey[30, 42] == pytest.approx(1.0) and grey[30, 10] == pytest.approx(0.0)
    strip = linereader.normalize_line(rgba)
    assert strip.max() == pytest.approx(1.0) and strip[:, :10].max() < 0.05


def test_an_opaque_light_page_with_a_transparent_border_stays_light() -> None:
    rgba = np.zeros((60, 90, 4), np.uint8)
    rgba[5:55, 5:85] = (240, 240, 240, 255)  # most of the image: an opaque light page
    rgba[20:40, 40:44] = (10, 10, 10, 255)
    grey = linereader.to_grey(rgba)
    assert grey[1, 1] == pytest.approx(1.0) and grey[30, 42] < 0.1


def test_ink_under_half_a_percent_of_a_page_still_reaches_full_strength() -> None:
    page = np.full((1500, 2000), 250, np.uint8)
    page[600:900, 950:970] = 10  # 0.2% of the pixels
    ink = linereader.ink_signal(linereader.to_grey(page))
    assert ink[700, 960] == pytest.approx(1.0) and ink[100, 100] == 0


def _probabilities(path: str) -> np.ndarray:
    """One step per character of ``path`` ("_" = blank), 0.9 on it."""
    rows = np.full((len(path), BLANK + 1), 0.1 / BLANK, np.float32)
    for step, char in enumerate(path):
        rows[step, BLANK if char == "_" else CHARSET.index(char)] = 0.9
    return rows


def test_decoding_merges_repeats_and_keeps_doubled_digits_apart_by_a_blank() -> None:
    reading = ctc_decode(_probabilities("_11_1__7_"))
    assert reading.text == "117" and reading.raw == "117"
    assert [c.span for c in reading.characters] == [(1, 2), (4, 4), (7, 7)]
    assert reading.confidence == pytest.approx(0.9**4)


def test_separators_are_reported_apart_from_the_digit_string() -> None:
    reading = ctc_decode(_probabilities("1_._0_0_0_._-_"))
    assert reading.text == "1000" and reading.raw == "1.000.-"
    assert reading.separators() == [
        {"char": ".", "after": 1},
        {"char": ".", "after": 4},
        {"char": "-", "after": 4},
    ]
    digit = reading.digits[0]
    assert digit.probabilities.shape == (10,) and digit.probabilities.argmax() == 1
    assert digit.probabilities.sum() == pytest.approx(1.0)


def test_nothing_read_is_the_empty_string_with_the_blanks_confidence() -> None:
    reading = ctc_decode(_probabilities("______"))
    assert reading.text == "" and reading.characters == []
    assert reading.confidence == pytest.approx(0.9)


def test_steps_past_the_strip_are_not_read() -> None:
    assert ctc_decode(_probabilities("_4__7_"), valid_steps=3).text == "4"


def test_boxes_map_the_alignment_back_to_the_input_pixels() -> None:
    reading = ctc_decode(_probabilities("__4__7__"))  # steps 2 and 5
    boxes = linereader.character_boxes(reading, image_width=128, image_height=64)
    # 64 px high → 32: two input pixels a strip column, four strip columns a step, and
    # half a step of margin on each side
    assert boxes == [(12, 0, 28, 64), (36, 0, 52, 64)]
    assert all(x1 - x0 == 2 * 2 * STRIDE for x0, _, x1, _ in boxes)


def test_quantiles_from_the_histogram_match_numpy_to_a_grey_level() -> None:
    rng = np.random.default_rng(0)
    for values in (rng.random(50_000), rng.random(50_000) ** 8, rng.integers(0, 256, 9000) / 255):
        qs = (0.01, 0.5, 0.99, 0.995)
        np.testing.assert_allclose(
            linereader.quantiles(values, qs), np.quantile(values, qs), atol=1 / 1020
        )
    levels = np.array([30, 235, 235, 235] * 2000) / 255  # an 8-bit image's own levels
    assert linereader.quantiles(levels, (0.5,)) == [pytest.approx(235 / 255, abs=1e-9)]
