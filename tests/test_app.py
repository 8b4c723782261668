"""The Streamlit app through AppTest (no browser, no JavaScript): drawings, uploads, errors.

The model is a template matcher built here: one dense layer whose weights are the 28×28
views of a few synthetic digit pictures, exported to LiteRT. For those pictures the right
digit wins by construction, so the tests check the app's wiring (drawing or upload → the
shared reading path → the LiteRT predictor → what the page shows) with real values and no
training. AppTest cannot draw on the canvas (no JavaScript): a drawing is injected as the
canvas's session state, whose layout is internal to streamlit-drawable-canvas 0.13 (see
``inject_drawing``); the mouse drawing itself is tested by tests/test_browser.py.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitctl.serve import app_path

TEMPLATE_DIGITS = (0, 1, 4, 7)
# Pen strokes in 0..1 of the picture (a 0 is an ellipse).
STROKES: dict[int, list[list[tuple[float, float]]]] = {
    1: [[(0.5, 0.15), (0.5, 0.85)]],
    4: [[(0.62, 0.85), (0.62, 0.15), (0.22, 0.6), (0.8, 0.6)]],
    7: [[(0.25, 0.2), (0.75, 0.2), (0.42, 0.85)]],
}


def digit_picture(digit: int, side: int = 300, ink: int = 30, paper: int = 235) -> Image.Image:
    """A thick-pen digit on paper: dark ink on a light background, like a photo or scan."""
    image = Image.new("RGB", (side, side), (paper, paper - 3, paper - 10))
    pen = ImageDraw.Draw(image)
    width = side // 12
    if digit == 0:
        pen.ellipse(
            [0.3 * side, 0.15 * side, 0.7 * side, 0.85 * side], outline=(ink,) * 3, width=width
        )
    for stroke in STROKES.get(digit, []):
        pen.line(
            [(x * side, y * side) for x, y in stroke], fill=(ink,) * 3, width=width, joint="curve"
        )
    return image


def number_picture(digits: str, side: int = 300) -> Image.Image:
    """The digits' pictures side by side on one sheet of paper: a written number."""
    sheet = Image.new("RGB", (side * len(digits), side))
    for i, digit in enumerate(digits):
        sheet.paste(digit_picture(int(digit), side), (i * side, 0))
    return sheet


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def template_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LiteRT model that recognises the pictures of TEMPLATE_DIGITS, with a model card."""
    import keras

    from digitctl.imaging import to_mnist

    weights = np.zeros((28 * 28, 10), dtype=np.float32)
    for digit in TEMPLATE_DIGITS:
        view = to_mnist(encode(digit_picture(digit))).reshape(-1)
        weights[:, digit] = view / np.linalg.norm(view)
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")]
    )
    model.layers[-1].set_weights([weights, np.zeros(10, dtype=np.float32)])
    folder = tmp_path_factory.mktemp("template-model")
    path = folder / "templates.tflite"
    model.export(str(path), format="litert", verbose=False)
    (folder / "templates_card.json").write_text(
        json.dumps({"name": "template-matcher", "test_accuracy": 0.4}), encoding="utf-8"
    )
    return path


@pytest.fixture
def run_app(template_model: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    """Start the app with the template model (and extra DIGITCTL_* settings) in AppTest."""
    from streamlit.testing.v1 import AppTest

    def start(**settings: str) -> AppTest:
        monkeypatch.setenv("DIGITCTL_MODEL", str(template_model))
        for name, value in settings.items():
            monkeypatch.setenv(f"DIGITCTL_{name.upper()}", value)
        at = AppTest.from_file(str(app_path()), default_timeout=60)
        at.run()
        assert not at.exception, at.exception
        return at

    return start


def upload(at, name: str, data: bytes, mime: str = "image/png"):  # noqa: ANN001, ANN201
    at.radio(key="input").set_value("Upload an image").run()
    at.get("file_uploader")[0].set_value((name, data, mime)).run()
    assert not at.exception, at.exception
    return at


def shown_prediction(at) -> str | None:  # noqa: ANN001
    """The string on the "Prediction: …" line (lines joined by " / "), or None."""
    for element in at.markdown:
        if element.value.startswith("**Prediction: "):
            return element.value.removeprefix("**Prediction: ").split("**")[0]
    return None


def image_count(at) -> int:  # noqa: ANN001
    """How many pictures the page shows (a row of views counts each view)."""
    return sum(len(element.proto.imgs) for element in at.get("image"))


def image_captions(at) -> list[str]:  # noqa: ANN001
    return [img.caption for element in at.get("image") for img in element.proto.imgs]


def view_captions(at) -> list[str]:  # noqa: ANN001
    """The captions of the per-digit 28×28 views ("7 · 99%"), in reading order."""
    return [c for c in image_captions(at) if re.fullmatch(r"\d · \d+%( \?)?", c)]


def chart_probabilities(at) -> list[float]:  # noqa: ANN001
    import pyarrow as pa

    charts = at.get("vega_lite_chart")
    assert len(charts) == 1
    proto = charts[0].proto
    raw = proto.datasets[0].data.data if proto.datasets else proto.data.data
    table = pa.ipc.open_stream(raw).read_all().to_pandas()
    assert list(table["digit"]) == [str(d) for d in range(10)]
    return [float(p) for p in table["probability"]]


# ---- the page ---------------------------------------------------------------------------------
def test_first_page_asks_for_a_drawing_and_shows_the_model(run_app, template_model: Path) -> None:  # noqa: ANN001
    at = run_app()
    assert "Draw a digit" in at.info[0].value
    assert at.get("bidi_component"), "the drawing canvas is missing"
    assert at.slider(key="stroke_width").value == 20
    sidebar = " ".join(e.value for e in at.sidebar.markdown)
    assert "template-matcher" in sidebar
    assert "40.00%" in sidebar
    assert at.sidebar.code[0].value == str(template_model)
    assert shown_prediction(at) is None


@pytest.mark.parametrize("digit", [7, 1, 4, 0])
def test_upload_of_a_digit_shows_that_digit_and_its_chart(run_app, digit: int) -> None:  # noqa: ANN001
    at = upload(run_app(), f"digit-{digit}.png", encode(digit_picture(digit)))
    assert not at.error
    assert shown_prediction(at) == str(digit)
    probabilities = chart_probabilities(at)
    assert int(np.argmax(probabilities)) == digit
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-3)
    # The upload with the digit's box, and the 28×28 view captioned with label and confidence.
    assert f"digit-{digit}.png" in image_captions(at)
    [view] = view_captions(at)
    assert view.startswith(f"{digit} · ")
    assert image_count(at) == 2


def test_upload_of_a_number_reads_every_digit(run_app) -> None:  # noqa: ANN001
    at = upload(run_app(), "number.png", encode(number_picture("7140")))
    assert not at.error
    assert shown_prediction(at) == "7140"
    assert "4 digits" in next(m.value for m in at.markdown if m.value.startswith("**Prediction"))
    # The upload with its boxes, then one captioned view per digit, in reading order.
    assert image_count(at) == 1 + 4
    assert "number.png" in image_captions(at)
    assert [c.split(" · ")[0] for c in view_captions(at)] == ["7", "1", "4", "0"]
    assert not at.get("vega_lite_chart")  # confident digits: no chart for several


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif"), ("BMP", "image/bmp")],
)
def test_every_upload_format_is_read(run_app, fmt: str, mime: str) -> None:  # noqa: ANN001
    at = upload(run_app(), f"seven.{fmt.lower()}", encode(digit_picture(7), fmt), mime)
    assert not at.error
    assert shown_prediction(at) == "7"


def test_bad_upload_shows_the_reason_and_the_app_keeps_working(run_app) -> None:  # noqa: ANN001
    at = upload(run_app(), "broken.png", b"this is not a picture")
    assert len(at.error) == 1
    message = at.error[0].value
    assert "broken.png" in message and "not an image" in message, message
    assert shown_prediction(at) is None
    # The next upload works in the same session.
    at.get("file_uploader")[0].set_value(("seven.png", encode(digit_picture(7)), "image/png"))
    at.run()
    assert not at.exception
    assert not at.error
    assert shown_prediction(at) == "7"


def test_blank_upload_says_no_digit_found(run_app) -> None:  # noqa: ANN001
    blank = Image.new("RGB", (200, 200), (240, 240, 240))
    at = upload(run_app(), "blank.png", encode(blank))
    assert not at.error
    assert any(w.value.startswith("No digit found") for w in at.warning)
    assert not any(w.value.startswith("That does not look like a digit") for w in at.warning)
    assert shown_prediction(at) is None
    assert image_captions(at) == ["blank.png"]  # what was looked at


def test_upload_of_an_empty_form_box_is_not_a_digit(run_app) -> None:  # noqa: ANN001
    form = Image.new("RGB", (400, 200), (240, 240, 235))
    ImageDraw.Draw(form).rectangle([40, 30, 360, 170], outline=(20, 20, 30), width=6)
    at = upload(run_app(), "empty-box.png", encode(form))
    assert not at.error
    messages = [w.value for w in at.warning]
    assert any(m.startswith("That does not look like a digit: ") for m in messages), messages
    assert shown_prediction(at) is None


def test_low_confidence_is_called_uncertain(run_app) -> None:  # noqa: ANN001
    at = upload(run_app(uncertain_below="1.0"), "seven.png", encode(digit_picture(7)))
    assert shown_prediction(at) == "7"
    assert any(w.value.startswith("Uncertain") for w in at.warning)


def test_uncertain_digits_of_a_number_are_named(run_app) -> None:  # noqa: ANN001
    at = upload(run_app(uncertain_below="1.0"), "seventeen.png", encode(number_picture("17")))
    assert shown_prediction(at) == "17"
    warning = next(w.value for w in at.warning if w.value.startswith("Uncertain"))
    assert "digit 1 (read as 1," in warning and "digit 2 (read as 7," in warning, warning
    assert len(view_captions(at)) == 2
    assert all(c.endswith(" ?") for c in view_captions(at))
    assert len(chart_probabilities(at)) == 10  # the least sure digit's chart


def test_confident_prediction_is_not_called_uncertain(run_app) -> None:  # noqa: ANN001
    at = upload(run_app(uncertain_below="0.0"), "seven.png", encode(digit_picture(7)))
    assert not any(w.value.startswith("Uncertain") for w in at.warning)


def test_upload_over_the_size_cap_is_refused(run_app) -> None:  # noqa: ANN001
    big = encode(
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (900, 900, 3), np.uint8))
    )
    assert len(big) > 2**20
    at = upload(run_app(max_upload_mb="1"), "huge.png", big)
    assert "over the 1 MB limit" in at.error[0].value
    assert shown_prediction(at) is None


def test_missing_model_is_an_error_on_the_page(run_app, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DIGITCTL_MODEL", str(tmp_path / "gone.keras"))
    at = AppTest.from_file(str(app_path()), default_timeout=60).run()
    assert not at.exception
    assert "Cannot start" in at.error[0].value and "gone.keras" in at.error[0].value


def test_camera_input_is_offered_and_waits_for_a_photo(run_app) -> None:  # noqa: ANN001
    at = run_app()
    at.radio(key="input").set_value("Camera").run()
    assert not at.exception
    assert at.get("camera_input")
    assert "Take a photo" in at.info[0].value
    assert not at.get("bidi_component")  # the canvas is not rendered meanwhile


# ---- the canvas ------------------------------------------------------------------------------
def canvas_rgba(digits: str | None, transparent: bool = False, box: bool = False) -> np.ndarray:
    """What the canvas sends back: RGBA, white ink on opaque black (or transparent).

    ``digits`` are drawn side by side, each in a square as high as the canvas; ``box``
    draws an empty rectangle instead (only lines: no digit).
    """
    from digitctl.app.streamlit_app import CANVAS_HEIGHT, CANVAS_WIDTH

    picture = Image.new("L", (CANVAS_WIDTH, CANVAS_HEIGHT), 0)
    pen = ImageDraw.Draw(picture)
    side = CANVAS_HEIGHT
    for i, digit in enumerate(digits or ""):
        for stroke in STROKES[int(digit)]:
            points = [(side * (i + x), side * y) for x, y in stroke]
            pen.line(points, fill=255, width=20, joint="curve")
    if box:
        pen.rectangle([60, 30, CANVAS_WIDTH - 60, CANVAS_HEIGHT - 30], outline=255, width=20)
    ink = np.asarray(picture)
    alpha = ink if transparent else np.full_like(ink, 255)
    return np.dstack([ink, ink, ink, alpha])


def draw_on_canvas(at, rgba: np.ndarray):  # noqa: ANN001, ANN201
    """Hand the app a drawing as the canvas would after a stroke, and rerun.

    The session-state layout (``{"drawing": {"raw": fabric JSON, "data": PNG data URL}}``)
    is streamlit-drawable-canvas 0.13's; pyproject pins the canvas for this.
    """
    png = encode(Image.fromarray(rgba, mode="RGBA"))
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    at.session_state["canvas"] = {"drawing": {"raw": {"objects": []}, "data": url}}
    at.run()
    assert not at.exception, at.exception
    return at


def test_drawn_number_shows_the_string_its_boxes_and_views(run_app) -> None:  # noqa: ANN001
    at = draw_on_canvas(run_app(), canvas_rgba("17"))
    assert not at.error
    assert shown_prediction(at) == "17"
    big = [m.value for m in at.markdown if "font-size:6rem" in m.value]
    assert len(big) == 1 and ">17</div>" in big[0]
    assert "Your drawing, as read" in image_captions(at)
    assert [c.split(" · ")[0] for c in view_captions(at)] == ["1", "7"]
    assert image_count(at) == 1 + 2
    assert not at.info  # the hint is gone once something is drawn


def test_drawn_single_digit_keeps_its_chart(run_app) -> None:  # noqa: ANN001
    at = draw_on_canvas(run_app(), canvas_rgba("4"))
    assert shown_prediction(at) == "4"
    assert int(np.argmax(chart_probabilities(at))) == 4


def test_drawn_empty_box_says_it_is_not_a_digit(run_app) -> None:  # noqa: ANN001
    at = draw_on_canvas(run_app(), canvas_rgba(None, box=True))
    assert not at.error
    messages = [w.value for w in at.warning]
    assert any(m.startswith("That does not look like a digit: ") for m in messages), messages
    assert shown_prediction(at) is None
    assert image_count(at) == 0


def test_empty_canvas_keeps_the_hint(run_app) -> None:  # noqa: ANN001
    at = draw_on_canvas(run_app(), canvas_rgba(None))
    assert "Draw a digit or a number" in at.info[0].value
    assert shown_prediction(at) is None


def test_a_failing_reading_is_a_message_not_a_crash(run_app, monkeypatch) -> None:  # noqa: ANN001
    from digitctl.inference import Predictor

    def broken(self, source):  # noqa: ANN001, ANN202
        raise ValueError("odd input")

    at = run_app()
    monkeypatch.setattr(Predictor, "read", broken)
    draw_on_canvas(at, canvas_rgba("7"))
    assert "The reading failed (ValueError: odd input)" in at.error[0].value
    monkeypatch.undo()
    at = draw_on_canvas(at, canvas_rgba("7"))  # the same session reads the next drawing
    assert not at.error
    assert shown_prediction(at) == "7"


def test_canvas_image_is_none_before_any_drawing() -> None:
    from digitctl.app.streamlit_app import canvas_image

    assert canvas_image(None) is None
    assert canvas_image(canvas_rgba(None)) is None
    assert canvas_image(canvas_rgba(None, transparent=True)) is None


@pytest.mark.parametrize("transparent", [False, True])
def test_canvas_drawing_is_read_through_the_shared_path(
    template_model: Path, transparent: bool
) -> None:
    from digitctl.app.streamlit_app import CANVAS_HEIGHT, CANVAS_WIDTH, canvas_image
    from digitctl.inference import load_predictor

    image = canvas_image(canvas_rgba("71", transparent=transparent))
    assert image is not None and image.mode == "L" and image.size == (CANVAS_WIDTH, CANVAS_HEIGHT)
    assert CANVAS_WIDTH == 3 * CANVAS_HEIGHT
    assert np.asarray(image).max() == 255 and np.asarray(image)[0, 0] == 0
    assert load_predictor(model=template_model).read(image).text == "71"


# ---- the boxes picture ---------------------------------------------------------------------------
def fake_digit(box: tuple[int, int, int, int], uncertain: bool = False):  # noqa: ANN201
    from digitctl.reading import Digit

    probabilities = [0.0] * 10
    probabilities[3] = 1.0
    view = np.zeros((28, 28), np.float32)
    return Digit(3, 0.5 if uncertain else 1.0, probabilities, box, 0.0, uncertain, view)


def test_boxes_are_drawn_on_a_copy_where_the_digits_are() -> None:
    from digitctl.app.streamlit_app import SURE, UNSURE, boxes_image

    drawing = Image.new("L", (600, 200), 0)
    digits = [fake_digit((100, 80, 200, 180)), fake_digit((400, 20, 500, 120), uncertain=True)]
    picture = boxes_image(drawing, digits)
    assert np.asarray(drawing).max() == 0  # the input is untouched
    assert picture.mode == "RGB" and picture.width == drawing.width
    band = (picture.height - drawing.height) // 2  # room for labels above and below
    assert band > 0 and picture.height == drawing.height + 2 * band
    pixels = np.asarray(picture)
    assert tuple(pixels[band + 130, 100 - 1]) == SURE  # the left edge of the first box
    assert tuple(pixels[band + 100, 501]) == UNSURE  # the right edge of the second (exclusive)
    assert tuple(pixels[band + 130, 150]) == (0, 0, 0)  # inside a box stays as drawn
    assert tuple(pixels[band + 190, 300]) == (0, 0, 0)  # far from any box too
    assert tuple(pixels[1, 300]) == (0, 0, 0)  # the band has the drawing's black
    assert tuple(pixels[band + 80 - 3, 102]) == SURE  # a label sits on top of the first box


def test_labels_of_narrow_neighbours_do_not_cover_each_other() -> None:
    from digitctl.app.streamlit_app import SURE, boxes_image

    drawing = Image.new("L", (300, 100), 0)
    # Two narrow "1"s close together: the second label goes under its box.
    picture = np.asarray(
        boxes_image(drawing, [fake_digit((20, 10, 30, 90)), fake_digit((45, 10, 55, 90))])
    )
    band = (picture.shape[0] - 100) // 2
    # A label's left margin (2 px) is plain colour: look there, beside the box's left edge.
    assert tuple(picture[band + 10 - 4, 18]) == SURE  # the first label, above
    assert tuple(picture[band + 90 + 6, 43]) == SURE  # the second label, below
    assert tuple(picture[band + 90 + 6, 18]) == (0, 0, 0)  # not under the first box


def test_boxes_of_a_big_photo_are_shrunk_with_it() -> None:
    from digitctl.app.streamlit_app import BOXES_MAX_SIDE, SURE, boxes_image

    photo = Image.new("RGB", (4000, 2000), (255, 255, 255))
    picture = boxes_image(photo, [fake_digit((2000, 1000, 3000, 1800))])
    band = (picture.height - BOXES_MAX_SIDE // 2) // 2
    assert picture.size == (BOXES_MAX_SIDE, BOXES_MAX_SIDE // 2 + 2 * band)
    assert tuple(np.asarray(picture)[band + 400, 600 - 2]) == SURE  # 2000 px × 0.3
    assert tuple(np.asarray(picture)[1, 10]) == (255, 255, 255)  # the band is the paper's


def test_accuracy_text_reads_fractions_and_percentages() -> None:
    from digitctl.app.streamlit_app import accuracy_text
    from digitctl.modelfiles import ModelCard

    def card(document: dict) -> ModelCard:
        return ModelCard.from_json(document)

    assert accuracy_text(card({"test_accuracy": 0.9931})) == "99.31%"  # a legacy flat card
    assert accuracy_text(card({"test_accuracy": 99.31})) == "99.31%"
    assert accuracy_text(card({"schema": 2, "metrics": {"test_accuracy": 0.99}})) == "99.00%"
    assert accuracy_text(card({"final_metrics": {"val_accuracy": 0.99}})) == "unknown"
    assert accuracy_text(card({"test_accuracy": True})) == "unknown"
    assert accuracy_text(card({})) == "unknown"
    assert accuracy_text(None) == "unknown"


# ---- corrections --------------------------------------------------------------------------------
def test_wrong_button_saves_the_upload_as_that_digit(run_app, tmp_path: Path) -> None:  # noqa: ANN001
    from digitctl.feedback import FeedbackStore

    store = FeedbackStore(tmp_path / "fb")
    data = encode(digit_picture(7))
    at = upload(run_app(feedback_dir=str(store.directory)), "seven.png", data)
    assert shown_prediction(at) == "7"
    assert any(m.value == "**Wrong? This is a …**" for m in at.markdown)
    assert [at.button(key=f"correct_{d}").label for d in range(10)] == [str(d) for d in range(10)]
    assert "**Corrections stored:** 0" in [m.value for m in at.sidebar.markdown]
    assert store.samples() == []

    at.button(key="correct_1").click().run()
    assert not at.exception, at.exception
    assert any("Saved" in s.value and "is a 1" in s.value for s in at.success)
    [sample] = store.samples()
    assert (sample.label, sample.predicted, sample.source) == (1, 7, "seven.png")
    assert (store.samples_path / sample.image_file).read_bytes() == data  # the original bytes
    assert "**Corrections stored:** 1" in [m.value for m in at.sidebar.markdown]
    assert "digitctl finetune" in [c.value for c in at.sidebar.code]

    at.button(key="correct_1").click().run()  # the same image again is stored once
    assert any(s.value.startswith("Already saved") for s in at.success)
    assert len(store.samples()) == 1


def test_no_correction_buttons_without_a_prediction(run_app, tmp_path: Path) -> None:  # noqa: ANN001
    at = run_app(feedback_dir=str(tmp_path / "fb"))
    assert not at.get("button")
    at = upload(at, "broken.png", b"not a picture")
    assert not at.get("button")


def test_wrong_digit_of_a_number_saves_that_digits_crop(run_app, tmp_path: Path) -> None:  # noqa: ANN001
    from digitctl.feedback import FeedbackStore

    store = FeedbackStore(tmp_path / "fb")
    at = upload(
        run_app(feedback_dir=str(store.directory)), "number.png", encode(number_picture("71"))
    )
    assert shown_prediction(at) == "71"
    at.selectbox(key="correct_which").set_value(1).run()
    at.button(key="correct_4").click().run()
    assert not at.exception, at.exception
    [sample] = store.samples()
    assert (sample.label, sample.predicted, sample.source) == (4, 1, "number.png (digit 2)")
    crop = Image.open(store.samples_path / sample.image_file)
    assert crop.width < Image.open(io.BytesIO(encode(number_picture("71")))).width / 1.5
