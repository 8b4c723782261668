"""The digitctl web app: draw a digit or a number (or upload / photograph one) and read it.

Started by ``digitctl serve`` as ``python -m streamlit run <this file>``; settings reach it
through ``DIGITCTL_*`` environment variables and ``load_settings``. It reads through the
same path as ``digitctl predict`` (:meth:`digitctl.inference.Predictor.read`: the shared
preprocessing and layout, the TF-free inference) and duplicates neither. The drawing canvas
is imported only inside :func:`drawing_input` because it cannot be imported outside a
running Streamlit.

The result is built from small ``show_*`` functions (the string, the warnings, the boxes,
the views, the chart) so that more rows can be added under the result.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st  # noqa: TID253 - this file is the Streamlit app itself
from PIL import Image, ImageDraw, ImageFont

from digitctl.config import Settings, load_settings
from digitctl.errors import DigitctlError, ImageError, NoDigitFound
from digitctl.process import tune_process
from digitctl.robust import NOT_A_DIGIT as NOT_A_DIGIT_ANSWER

if TYPE_CHECKING:
    from digitctl.inference import Predictor
    from digitctl.modelfiles import ModelCard
    from digitctl.reading import Digit, Reading

_LOGGER = logging.getLogger("digitctl.app")
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]
# 3:1, wide enough for a few digits of MNIST's 10 screen pixels per pixel (280 high), and
# narrow enough for the wide layout beside the sidebar on a 1280-pixel screen.
CANVAS_WIDTH, CANVAS_HEIGHT = 720, 240
DEFAULT_STROKE = 20
DRAW, UPLOAD, CAMERA = "Draw", "Upload an image", "Camera"
# A canvas whose brightest pixel is below this holds no ink (anti-aliasing never is).
INK_LEVEL = 32
NOT_A_DIGIT = "That does not look like a digit"
BOXES_MAX_SIDE = 1200  # the boxes picture is drawn no larger than this (a big photo is shrunk)
SURE, UNSURE = (60, 200, 90), (255, 170, 0)  # box colours


def canvas_image(image_data: np.ndarray | None) -> Image.Image | None:
    """The canvas drawing as a greyscale PIL image, or None while nothing is drawn.

    The canvas sends RGBA (white ink on an opaque black background); it is composited over
    black so a transparent background can never read as white.
    """
    if image_data is None:
        return None
    rgba = np.asarray(image_data)
    if rgba.ndim != 3 or rgba.shape[2] not in (3, 4) or rgba.size == 0:
        return None
    rgb = rgba[..., :3].astype(np.float32)
    if rgba.shape[2] == 4:
        rgb = rgb * (rgba[..., 3:4].astype(np.float32) / 255.0)
    grey = rgb.max(axis=2)
    if grey.max() < INK_LEVEL:
        return None
    return Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8), mode="L")


def percent_text(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"{value * 100 if value <= 1 else value:.2f}%"


def accuracy_text(card: ModelCard | None) -> str:
    """The card's test accuracy as a percentage ("unknown" when the card lacks it)."""
    return percent_text(card.metric("test_accuracy") if card else None)


def model_name(predictor: Predictor) -> str:
    return predictor.card.name if predictor.card else Path(predictor.path).stem


def view_image(view: np.ndarray, scale: int = 6) -> Image.Image:
    """The 28x28 model input, enlarged with hard pixel edges so each pixel stays visible."""
    pixels = (np.clip(np.asarray(view, dtype=np.float32), 0.0, 1.0) * 255).astype(np.uint8)
    image = Image.fromarray(pixels.reshape(pixels.shape[-2:]), mode="L")
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


def digit_caption(digit: Digit) -> str:
    return f"{digit.label} · {digit.confidence:.0%}" + (" ?" if digit.uncertain else "")


def boxes_image(image: Image.Image, digits: list[Digit]) -> Image.Image:
    """A copy of ``image`` with each digit's box and "label · confidence" drawn over it.

    Boxes are in the input's pixels; a large input is shrunk first (boxes with it) so the
    labels stay readable and the page light. A band in the picture's border colour is added
    above and below, so that a label always has room outside the ink.
    """
    picture = image.convert("RGB")
    scale = min(1.0, BOXES_MAX_SIDE / max(picture.size))
    if scale < 1.0:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.BILINEAR)
    line = max(2, round(max(picture.size) / 250))
    font = ImageFont.load_default(size=max(14, round(min(picture.size) / 9)))
    _, top, _, bottom = ImageDraw.Draw(picture).textbbox((0, 0), "0 · 100%", font=font)
    band = bottom - top + 3 * line
    framed = Image.new("RGB", (picture.width, picture.height + 2 * band), border_colour(picture))
    framed.paste(picture, (0, band))
    pen = ImageDraw.Draw(framed)
    placed: list[tuple[int, int, int, int]] = []
    for digit in digits:
        x0, y0, x1, y1 = (round(v * scale) for v in digit.box)
        x0, x1 = max(0, x0 - line), min(picture.width - 1, x1 + line)
        y0, y1 = band + max(0, y0 - line), band + min(picture.height - 1, y1 + line)
        colour = UNSURE if digit.uncertain else SURE
        pen.rectangle([x0, y0, x1, y1], outline=colour, width=line)
        label = digit_caption(digit)
        left, top, right, bottom = pen.textbbox((0, 0), label, font=font)
        w, h = right - left + 2 * line, bottom - top + 2 * line
        x = max(0, min(x0, framed.width - w))
        # Above the box, else below it (a narrow "1" leaves no room beside its label), else
        # inside its top edge: the first spot that stays in the picture and covers no label.
        spots = [(x, y0 - h), (x, y1 + 1), (x, y0 + line)]
        tags = [(x, y, x + w, y + h) for x, y in spots]
        tag = next((t for t in tags if _free(t, framed.size, placed)), tags[0])
        placed.append(tag)
        pen.rectangle(tag, fill=colour)
        pen.text((tag[0] + line - left, tag[1] + line - top), label, fill=(0, 0, 0), font=font)
    return framed


def border_colour(picture: Image.Image) -> tuple[int, int, int]:
    """The mean colour of the picture's outermost rows and columns (its paper or canvas)."""
    pixels = np.asarray(picture, dtype=np.float32)
    edges = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    r, g, b = (int(v) for v in edges.mean(axis=0).round())
    return r, g, b


def _free(
    tag: tuple[int, int, int, int],
    size: tuple[int, int],
    placed: list[tuple[int, int, int, int]],
) -> bool:
    x0, y0, x1, y1 = tag
    inside = x0 >= 0 and y0 >= 0 and x1 <= size[0] and y1 <= size[1]
    return inside and all(x1 <= a or a1 <= x0 or y1 <= b or b1 <= y0 for a, b, a1, b1 in placed)


@st.cache_resource(show_spinner="Loading the model…")
def cached_predictor(
    model: str,
    version: tuple[int, ...],
    uncertain_below: float,
    unsafe_load: bool,
    _settings: Settings,
) -> Predictor:
    """The predictor, loaded once per model file (and its version on disk) and settings."""
    from digitctl.inference import load_predictor

    return load_predictor(_settings, model=Path(model))


def load_app_predictor(settings: Settings) -> Predictor:
    from digitctl.modelfiles import lite_path_for, resolve_model_path

    model = resolve_model_path(settings)
    # A model retrained (or re-exported) while the server runs is picked up on the next rerun.
    version = tuple(p.stat().st_mtime_ns for p in (model, lite_path_for(model)) if p.exists())
    return cached_predictor(
        str(model), version, settings.uncertain_below, settings.unsafe_load, settings
    )


def show_sidebar(predictor: Predictor, settings: Settings) -> None:
    with st.sidebar:
        st.header("Model")
        st.markdown(f"**Name:** {model_name(predictor)}")
        st.markdown(f"**Test accuracy:** {accuracy_text(predictor.card)}")
        card = predictor.card
        validation = card.metric("val_accuracy") if card else None
        if card and card.metric("test_accuracy") is None and validation is not None:
            # A freshly trained model has no test figure yet; say what is known instead.
            st.markdown(f"**Validation accuracy:** {percent_text(validation)}")
        st.markdown(f"**Backend:** {predictor.backend}")
        st.markdown("**Path:**")
        st.code(str(predictor.path), language=None, wrap_lines=True)
        st.caption(f"Digits below {settings.uncertain_below:.0%} confidence are marked uncertain.")


# ---- the result: small pieces, composed by show_reading ----------------------------------------
def show_text(reading: Reading) -> None:
    """The string read (large), and one line with the confidence."""
    digits = reading.digits
    lines = reading.text.split("\n")
    if len(digits) == 1:
        summary = f"**Prediction: {reading.text}** · confidence {digits[0].confidence:.1%}"
    else:
        summary = (
            f"**Prediction: {' / '.join(lines)}** · {len(digits)} digits"
            + (f" on {len(lines)} lines" if len(lines) > 1 else "")
            + f" · lowest confidence {reading.confidence:.1%}"
        )
    with st.container(key="prediction"):
        st.markdown(
            "<div style='font-size:6rem;font-weight:700;line-height:1;letter-spacing:0.05em'>"
            f"{'<br>'.join(lines)}</div>",
            unsafe_allow_html=True,
        )
        st.markdown(summary)


def show_uncertain(reading: Reading, settings: Settings) -> None:
    """A warning naming each digit the model is unsure of, and what else it could be."""
    unsure = [(i, d) for i, d in enumerate(reading.digits, 1) if d.uncertain]
    if not unsure:
        return
    threshold = f"{settings.uncertain_below:.0%}"
    if len(reading.digits) == 1:
        digit = unsure[0][1]
        st.warning(
            f"Uncertain: the model is only {digit.confidence:.0%} sure (below {threshold}); "
            f"it could also be a {digit.top(2)[1][0]}. Try drawing it larger and centred."
        )
        return
    named = "; ".join(
        f"digit {i} (read as {d.label}, {d.confidence:.0%} sure; could also be a {d.top(2)[1][0]})"
        for i, d in unsure
    )
    st.warning(
        f"Uncertain, below {threshold}: {named}. Try writing the digits larger, "
        "with a little space between them."
    )


def show_not_read(reading: Reading) -> None:
    """Why nothing was read: no ink at all, or ink the model says is no digit."""
    reason = reading.reason or ""
    if reading.status == "not_a_digit":
        detail = reason.removeprefix("not a digit:").strip()
        st.warning(f"{NOT_A_DIGIT}" + (f": {detail}." if detail else "."))
    else:
        detail = reason.removeprefix("no digit found:").strip()
        st.warning("No digit found" + (f": {detail}." if detail else "."))


def show_boxes(image: Image.Image, reading: Reading, caption: str) -> None:
    st.image(boxes_image(image, reading.digits), caption=caption, width="content")


def show_views(reading: Reading) -> None:
    """The 28×28 view of each digit, in reading order, with its label and confidence."""
    st.caption("What the model saw (28×28 per digit)")
    st.image(
        [view_image(d.view, scale=3) for d in reading.digits],
        caption=[digit_caption(d) for d in reading.digits],
        width=84,
    )


def show_chart(digit: Digit) -> None:
    import pandas as pd

    chart = pd.DataFrame({"digit": [str(d) for d in range(10)], "probability": digit.probabilities})
    st.bar_chart(chart, x="digit", y="probability", height=220, sort=False)


def show_reading(
    reading: Reading,
    image: Image.Image,
    settings: Settings,
    caption: str,
    original: tuple[str, bytes] | None = None,
) -> None:
    """What was read in ``image``: the string, warnings, boxes over the input, views, chart.

    ``original`` (name, encoded bytes) is what a correction stores; None: no buttons.
    """
    if not reading.digits:
        show_not_read(reading)
        if original is not None and reading.status == "not_a_digit":
            show_correction(reading, image, original, settings)
        return
    text_column, picture_column = st.columns([2, 3], gap="large")
    with text_column:
        show_text(reading)
        show_uncertain(reading, settings)
        if original is not None:
            show_correction(reading, image, original, settings)
        show_views(reading)
    with picture_column:
        show_boxes(image, reading, caption)
        if len(reading.digits) == 1:
            show_chart(reading.digits[0])
        elif reading.uncertain:
            least = min(reading.digits, key=lambda d: d.confidence)
            st.caption(f"Probabilities of the least sure digit (read as {least.label})")
            show_chart(least)


def read_and_show(
    predictor: Predictor,
    image: Image.Image,
    settings: Settings,
    caption: str,
    original: tuple[str, bytes] | None = None,
) -> Reading | None:
    """Read ``image`` and show it; unreadable inputs and failures become messages."""
    try:
        reading = predictor.read(image)
        show_reading(reading, image, settings, caption, original)
    except NoDigitFound as exc:
        st.warning(f"No digit found: {exc}")
        return None
    except ImageError as exc:
        st.error(f"Cannot read this image: {exc}")
        return None
    except Exception as exc:  # one odd input must not take the page down
        _LOGGER.exception("reading failed")
        st.error(f"The reading failed ({type(exc).__name__}: {exc}); please report this.")
        return None
    return reading


# ---- the inputs ---------------------------------------------------------------------------------
def drawing_input() -> Image.Image | None:
    from streamlit_drawable_canvas import st_canvas  # only importable inside Streamlit

    slider, hint = st.columns([1, 2], vertical_alignment="bottom")
    with slider:
        stroke = st.slider("Stroke width", 5, 40, DEFAULT_STROKE, key="stroke_width")
    with hint:
        st.caption(
            "Write a digit or a number, large, digits side by side. The toolbar on the "
            "canvas undoes, redoes and clears (bin)."
        )
    st.space("small")  # room for the canvas toolbar, which floats above the canvas
    result = st_canvas(
        stroke_width=stroke,
        stroke_color="#FFFFFF",
        background_color="#000000",
        update_streamlit=True,
        height=CANVAS_HEIGHT,
        width=CANVAS_WIDTH,
        drawing_mode="freedraw",
        return_image_data=True,
        key="canvas",
    )
    return canvas_image(result.image_data)


def upload_input() -> tuple[str, bytes] | None:
    upload = st.file_uploader(
        "Upload an image of a digit or a number",
        type=UPLOAD_TYPES,
        key="upload",
        help="PNG, JPEG, WebP, GIF or BMP; dark ink on light paper or light on dark.",
    )
    return None if upload is None else (upload.name, upload.getvalue())


def camera_input() -> tuple[str, bytes] | None:
    photo = st.camera_input("Photograph a digit or a number on paper", key="camera")
    return None if photo is None else ("camera photo", photo.getvalue())


def show_file_result(predictor: Predictor, name: str, data: bytes, settings: Settings) -> None:
    """Read an uploaded file or photo; a bad one is an error message, never a crash."""
    from digitctl.imaging import load_image

    limit = settings.max_upload_mb * 2**20
    if len(data) > limit:
        st.error(
            f"Cannot read this image: {name} is {len(data) / 2**20:.1f} MB, over the "
            f"{settings.max_upload_mb} MB limit."
        )
        return
    try:
        image = load_image(data)
    except ImageError as exc:
        st.error(f"Cannot read {name}: {exc}")
        return
    reading = read_and_show(predictor, image, settings, caption=name, original=(name, data))
    if reading is not None and not reading.digits:
        # Nothing was read: show the picture, so it is clear what was looked at.
        st.image(image.convert("RGB"), caption=name, width=240)


# ---- corrections: "Wrong? This is a …" stores the sample for `digitctl finetune` -------------
CORRECTION_PROMPT = "Wrong? This is a …"


def png_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def correction_sample(
    reading: Reading, image: Image.Image, original: tuple[str, bytes], index: int
) -> tuple[str, bytes, int, np.ndarray | None]:
    """(name, bytes, model's answer, view) of what a correction stores: the whole input
    for a one-digit (or not-a-digit) reading, else the chosen digit's crop of the input."""
    name, data = original
    if len(reading.digits) <= 1:
        if not reading.digits:
            # No digit read is a wrong answer too: stored as NOT_A_DIGIT, a misreading.
            return name, data, NOT_A_DIGIT_ANSWER, None
        return name, data, reading.digits[0].label, reading.digits[0].view
    digit = reading.digits[index]
    x0, y0, x1, y1 = digit.box
    pad = max(2, (y1 - y0) // 8)
    crop = image.crop(
        (
            max(0, x0 - pad),
            max(0, y0 - pad),
            min(image.width, x1 + pad),
            min(image.height, y1 + pad),
        )
    )
    return f"{name} (digit {index + 1})", png_bytes(crop), digit.label, digit.view


def show_correction(
    reading: Reading, image: Image.Image, original: tuple[str, bytes], settings: Settings
) -> None:
    """Ten digit buttons (and, for a number, which digit); the one chosen stores the sample
    with that label, through the same store as `digitctl feedback add`, and says so."""
    from digitctl.feedback import FeedbackStore

    st.markdown(f"**{CORRECTION_PROMPT}**")
    index = 0
    if len(reading.digits) > 1:
        index = st.selectbox(
            "Which digit is wrong?",
            range(len(reading.digits)),
            format_func=lambda i: f"digit {i + 1}, read as {reading.digits[i].label}",
            key="correct_which",
        )
    chosen = None
    for digit, column in enumerate(st.columns(10, gap="small")):
        if column.button(str(digit), key=f"correct_{digit}", width="stretch"):
            chosen = digit
    if chosen is None:
        return
    name, data, predicted, view = correction_sample(reading, image, original, index)
    try:
        outcome = FeedbackStore.for_settings(settings).add(
            data, chosen, predicted=predicted, view=view, source=name
        )
    except DigitctlError as exc:
        st.error(f"Could not save the correction: {exc}")
        return
    said = {"added": "Saved", "duplicate": "Already saved", "relabelled": "Saved (relabelled)"}
    st.success(
        f"{said[outcome.status]}: this {name} is a {chosen}. "
        "Run `digitctl finetune` to teach the model.",
        icon="✅",
    )


def show_feedback_sidebar(settings: Settings) -> None:
    from digitctl.feedback import FeedbackStore

    summary = FeedbackStore.for_settings(settings).summary()
    with st.sidebar:
        st.header("Your corrections")
        st.markdown(f"**Corrections stored:** {summary.total}")
        if summary.total:
            counts = ", ".join(f"{d}: {n}" for d, n in summary.counts.items() if n)
            st.caption(f"Per digit: {counts}")
        st.markdown("Teach the model your handwriting (at least 5 of each corrected digit):")
        st.code("digitctl finetune", language="bash")


HINTS = {
    DRAW: "Draw a digit or a number on the black canvas to see what the model reads.",
    UPLOAD: "Upload an image of a digit or a number to see what the model reads.",
    CAMERA: "Take a photo of a digit or a number to see what the model reads.",
}


def main() -> None:
    st.set_page_config(page_title="digitctl: read digits", page_icon="✏️", layout="wide")
    try:
        settings = load_settings()
        tune_process(predicting=True, debug=settings.debug)
        predictor = load_app_predictor(settings)
    except DigitctlError as exc:
        st.error(f"Cannot start: {exc}")
        st.stop()
    show_sidebar(predictor, settings)

    st.title("Handwritten digit recognition")
    kind = st.radio("Input", [DRAW, UPLOAD, CAMERA], horizontal=True, key="input")
    # The input on top, full width (the canvas is 3:1), the result under it.
    drawing = drawing_input() if kind == DRAW else None
    given = upload_input() if kind == UPLOAD else camera_input() if kind == CAMERA else None
    st.divider()
    if drawing is not None:
        read_and_show(
            predictor,
            drawing,
            settings,
            caption="Your drawing, as read",
            original=("drawing", png_bytes(drawing)),
        )
    elif given is not None:
        show_file_result(predictor, given[0], given[1], settings)
    else:
        st.info(HINTS[kind])
    show_feedback_sidebar(settings)


if __name__ == "__main__":
    main()
