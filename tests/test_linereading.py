"""Reading an image with the line reader: lines found, the reading contract, boxes,
separators, blank and not-a-digit answers (a scripted model stands in for the network)."""

from __future__ import annotations

import numpy as np
import pytest

from digitctl import linereading
from digitctl.linereader import BLANK, CHARSET, LineReading, ctc_decode, normalize_line


class ScriptedModel:
    """Reads what it is told, spread evenly over the strip; records what it was shown."""

    def __init__(self, *texts: str | tuple[str, float]) -> None:
        self.texts = list(texts)
        self.shown: list[np.ndarray] = []

    def read(self, image: np.ndarray) -> LineReading:
        self.shown.append(image)
        text = self.texts.pop(0)
        peak = 0.9
        if isinstance(text, tuple):  # (text, how sure of each character)
            text, peak = text
        steps = normalize_line(image).shape[1] // 4
        rows = np.full((steps, BLANK + 1), 0.01, np.float32)
        rows[:, BLANK] = 0.9
        for i, char in enumerate(text):
            step = int((i + 0.5) * steps / len(text))
            rows[step] = 0.01
            rows[step, CHARSET.index(char)] = peak
        return ctc_decode(rows)


def _paper(height: int, width: int) -> np.ndarray:
    return np.full((height, width), 0.95, np.float32)


def _write(page: np.ndarray, top: int, left: int, height: int, width: int) -> None:
    page[top : top + height, left : left + width : 7] = 0.05  # upright strokes 1 px apart


def test_a_blank_image_is_no_digit_and_the_model_is_not_asked() -> None:
    model = ScriptedModel()
    answer = linereading.read_image(_paper(60, 200), (200, 60), model)
    assert answer.status == "no_digit" and "blank" in answer.reason and not model.shown


def test_a_number_with_separators_reads_its_digits_and_reports_the_separators() -> None:
    page = _paper(60, 300)
    _write(page, 10, 10, 40, 280)
    answer = linereading.read_image(page, (600, 120), ScriptedModel("1.000"))
    assert answer.status == "ok" and answer.text == "1000"
    assert answer.separators == [{"char": ".", "after": 1, "line": 0}]
    assert [d.label for d in answer.digits] == [1, 0, 0, 0]
    lefts = [d.box[0] for d in answer.digits]
    assert lefts == sorted(lefts), "left to right"
    for digit in answer.digits:
        x0, y0, x1, y1 = digit.box
        assert 0 <= x0 < x1 <= 600 and 0 <= y0 < y1 <= 120, "in the input's pixels"
        assert digit.view.shape == (28, 28)
        assert sum(digit.probabilities) == pytest.approx(1.0)


def test_nothing_read_is_not_a_digit() -> None:
    page = _paper(60, 200)
    _write(page, 10, 50, 40, 60)
    answer = linereading.read_image(page, (200, 60), ScriptedModel(""))
    assert answer.status == "not_a_digit" and answer.text == "" and not answer.digits


def test_two_lines_are_read_one_at_a_time_top_to_bottom() -> None:
    page = _paper(200, 300)
    _write(page, 20, 20, 50, 200)
    _write(page, 130, 40, 50, 220)
    model = ScriptedModel(("81", 0.4), "12", "345")  # read whole first: unsure
    answer = linereading.read_image(page, (300, 200), model)
    assert answer.text == "12\n345" and [d.line for d in answer.digits] == [0, 0, 1, 1, 1]
    whole, *lines = model.shown
    assert whole.shape == (200, 300) and len(lines) == 2
    assert all(shown.shape[0] < 100 for shown in lines)


def test_a_whole_reading_the_model_is_surer_of_than_of_the_lines_is_kept() -> None:
    page = _paper(200, 300)
    _write(page, 20, 20, 50, 200)
    _write(page, 130, 40, 50, 220)
    # read whole: "8", sure; the lines: "0" and "0", unsure
    answer = linereading.read_image(page, (300, 200), ScriptedModel("8", ("0", 0.5), ("0", 0.5)))
    assert answer.text == "8"


def test_a_small_number_on_a_large_page_is_read_from_a_crop_around_it() -> None:
    page = _paper(1000, 1400)
    _write(page, 500, 600, 60, 90)
    model = ScriptedModel("", "7")
    answer = linereading.read_image(page, (2800, 2000), model)
    assert answer.text == "7"
    _, shown = model.shown
    assert shown.shape[0] < 150 and shown.shape[1] < 200, "cropped around the writing"
    x0, y0, x1, y1 = answer.digits[0].box
    assert 1150 < x0 < x1 < 1450 and 950 < y0 < y1 < 1150, "boxed in the input's pixels"


def test_long_strokes_at_the_edge_are_not_taken_for_writing() -> None:
    page = _paper(200, 300)
    page[:, :12] = 0.0  # a black scanner margin
    page[5:7, :] = 0.1  # a rule along the top
    _write(page, 80, 120, 40, 40)
    mask = linereading.writing_mask(page)
    assert not mask[:, :12].any() and not mask[5:7, 20:].any()
    (line,) = linereading.find_lines(mask)
    assert line.left > 60 and line.top > 40


def test_two_lines_written_close_are_found_as_two_and_read_top_to_bottom() -> None:
    page = _paper(150, 300)
    _write(page, 20, 30, 50, 200)
    _write(page, 85, 40, 50, 220)  # a gap of 15 px: under LINE_GAP, over CLOSE_GAP
    mask = linereading.writing_mask(page)
    assert len(linereading.find_lines(mask)) == 1, "the wide-gap rule joins them"
    top, bottom = linereading.find_lines(mask, close_lines=True)
    assert top.bottom <= 90 and bottom.top >= 60
    model = ScriptedModel(("3", 0.3), ("12", 0.95), ("345", 0.95))  # whole, then each line
    answer = linereading.read_image(page, (300, 150), model)
    assert answer.text == "12\n345" and [d.line for d in answer.digits] == [0, 0, 1, 1, 1]


def test_a_digit_broken_at_its_waist_is_not_split_into_two_lines() -> None:
    page = _paper(120, 120)
    _write(page, 20, 40, 38, 40)
    _write(page, 61, 40, 38, 40)  # 3 px apart: under a quarter of a band
    mask = linereading.writing_mask(page)
    assert len(linereading.find_lines(mask, close_lines=True)) == 1


def test_a_short_band_near_a_line_joins_it() -> None:
    page = _paper(150, 300)
    _write(page, 20, 30, 8, 40)  # a flag or dash above, 8 px high
    _write(page, 34, 30, 60, 200)
    (line,) = linereading.find_lines(linereading.writing_mask(page), close_lines=True)
    assert line.top <= 20 and line.bottom >= 94


def test_a_tight_crop_is_read_whole() -> None:
    page = _paper(40, 30)
    page[:, 12:18] = 0.05  # a "1" from edge to edge
    model = ScriptedModel("1")
    answer = linereading.read_image(page, (30, 40), model)
    assert answer.text == "1" and model.shown[0].shape == (40, 30)


def test_the_digit_model_s_reading_is_multiplied_in() -> None:
    page = _paper(60, 80)
    _write(page, 10, 20, 40, 30)

    def unsure_classifier(views: np.ndarray) -> np.ndarray:
        rows = np.full((len(views), 11), 0.05, np.float32)
        rows[:, 7] = 0.5
        return rows

    plain = linereading.read_image(page, (80, 60), ScriptedModel("1"))
    both = linereading.read_image(page, (80, 60), ScriptedModel("1"), unsure_classifier)
    assert plain.digits[0].label == 1 and plain.digits[0].not_digit == 0.0
    assert both.digits[0].not_digit == pytest.approx(0.05)
    assert both.digits[0].probabilities[7] > plain.digits[0].probabilities[7]


def test_predict_with_the_line_reader_and_none_installed_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from PIL import Image
    from typer.testing import CliRunner

    from digitctl import inference
    from digitctl.cli import app

    monkeypatch.setattr(inference, "find_reader_model", lambda models_dir=None: None)
    image = tmp_path / "seven.png"
    Image.new("L", (40, 40), 255).save(image)
    result = CliRunner().invoke(
        app, ["--workspace", str(tmp_path), "predict", "--reader", "line", str(image)]
    )
    assert result.exit_code == 1, result.output
    assert "digitctl train --recipe reader" in result.output
    assert "Traceback" not in result.output


def test_the_app_is_told_which_reader_to_use() -> None:
    from digitctl.config import Settings
    from digitctl.serve import app_environment

    env = app_environment(Settings(reader="line"), None, base={})
    assert env["DIGITCTL_READER"] == "line"
    assert app_environment(Settings(), None, base={})["DIGITCTL_READER"] == "rules"


def test_the_reader_setting_is_checked() -> None:
    from digitctl.config import load_settings
    from digitctl.errors import ConfigError

    assert load_settings(overrides={"reader": "line"}).reader == "line"
    with pytest.raises(ConfigError, match="reader"):
        load_settings(overrides={"reader": "ocr"})


def _drawn(draw_lines, size=(280, 280)) -> np.ndarray:
    from PIL import Image, ImageDraw

    image = Image.new("L", size, 255)
    draw_lines(ImageDraw.Draw(image))
    return np.asarray(image)


def _printed(text: str) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    from digitctl.synth import font_folder

    font = ImageFont.truetype(f"{font_folder()}/DejaVuSans.ttf", 48)
    image = Image.new("L", (40 * len(text) + 40, 80), 255)
    ImageDraw.Draw(image).text((20, 10), text, fill=0, font=font)
    return np.asarray(image)


def test_the_bundled_line_reader_reads_digits_and_not_letters_or_shapes() -> None:
    from digitctl.config import Settings
    from digitctl.inference import load_predictor
    from digitctl.modelfiles import bundled_reader_path

    assert bundled_reader_path().exists(), "the line reader ships in the package"
    predictor = load_predictor(Settings(reader="line"))
    assert predictor.line_model == bundled_reader_path()
    one = _drawn(lambda d: d.line([(140, 40), (145, 240)], fill=0, width=18))
    assert predictor.read(one).text == "1", "a single stroke drawn in the canvas is a 1"
    assert predictor.read(_printed("2026")).text == "2026"
    letter_a = _drawn(
        lambda d: (
            d.line([(60, 240), (140, 40), (220, 240)], fill=0, width=14),
            d.line([(95, 160), (185, 160)], fill=0, width=14),
        )
    )
    assert predictor.read(letter_a).status == "not_a_digit", "a drawn A is no 4"
    triangle = _drawn(lambda d: d.polygon([(140, 40), (240, 240), (40, 240)], outline=0, width=10))
    assert predictor.read(triangle).status == "not_a_digit"


def _digit_model(label: int, sure: float, not_digit: float):
    def classify(views: np.ndarray) -> np.ndarray:
        row = np.full(11, (1 - sure) / 9, np.float32)
        row[label] = sure
        row[10] = not_digit
        return np.tile(row, (len(views), 1))

    return classify


LIMITS = {"reading": {"digit_model": {"sure_above": 0.95, "not_digit_below": 0.1}}}


def test_where_the_line_model_reads_nothing_a_sure_digit_model_reads_the_digit() -> None:
    page = _paper(60, 60)
    _write(page, 10, 20, 40, 20)
    model = ScriptedModel("")
    model.card = LIMITS
    answer = linereading.read_image(page, (60, 60), model, _digit_model(7, 0.99, 0.01))
    assert answer.status == "ok" and answer.text == "7"
    x0, y0, x1, y1 = answer.digits[0].box
    assert (x0, y0) == (20, 10) and 30 < x1 <= 41 and y1 == 50, "boxed around the ink"


@pytest.mark.parametrize(
    ("sure", "not_digit", "card"),
    [(0.99, 0.5, LIMITS), (0.9, 0.01, LIMITS), (0.99, 0.01, {})],
    ids=["digit-model-says-not-a-digit", "digit-model-unsure", "no-thresholds-in-the-card"],
)
def test_the_digit_model_s_second_opinion_needs_sureness_and_thresholds(
    sure: float, not_digit: float, card: dict
) -> None:
    page = _paper(60, 60)
    _write(page, 10, 20, 40, 20)
    model = ScriptedModel("")
    model.card = card
    answer = linereading.read_image(page, (60, 60), model, _digit_model(7, sure, not_digit))
    assert answer.status == "not_a_digit" and answer.text == ""
