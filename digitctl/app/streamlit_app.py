"""The digitctl web app: draw a digit (or upload / photograph one) and see the prediction.

Started by ``digitctl serve`` as ``python -m streamlit run <this file>``; settings reach it
through ``DIGITCTL_*`` environment variables and ``load_settings``. It uses the same
preprocessing (:func:`digitctl.imaging.to_mnist`, via the predictor) and the same TF-free
inference path (:func:`digitctl.inference.load_predictor`) as ``digitctl predict``, and
duplicates neither. The drawing canvas is imported only inside :func:`main` because it
cannot be imported outside a running Streamlit.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st  # noqa: TID253 - this file is the Streamlit app itself
from PIL import Image

from digitctl.config import Settings, load_settings
from digitctl.errors import DigitctlError, ImageError, NoDigitFound

if TYPE_CHECKING:
    from digitctl.inference import Prediction, Predictor

_LOGGER = logging.getLogger("digitctl.app")
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]
CANVAS_SIZE = 280  # 10 screen pixels per MNIST pixel
DEFAULT_STROKE = 20
DRAW, UPLOAD, CAMERA = "Draw", "Upload an image", "Camera"
# A canvas whose brightest pixel is below this holds no ink (anti-aliasing never is).
INK_LEVEL = 32


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


def card_metric(card: dict[str, Any] | None, key: str) -> float | None:
    """A number named ``key`` at the top of a model card or one level down (a metrics table)."""
    card = card or {}
    candidates = [card.get(key)] + [v.get(key) for v in card.values() if isinstance(v, dict)]
    for value in candidates:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def percent_text(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"{value * 100 if value <= 1 else value:.2f}%"


def accuracy_text(card: dict[str, Any] | None) -> str:
    """The card's test accuracy as a percentage ("unknown" when the card lacks it)."""
    return percent_text(card_metric(card, "test_accuracy"))


def model_name(predictor: Predictor) -> str:
    card = predictor.card or {}
    return str(card.get("name") or Path(predictor.path).stem)


def view_image(view: np.ndarray, scale: int = 6) -> Image.Image:
    """The 28x28 model input, enlarged with hard pixel edges so each pixel stays visible."""
    pixels = (np.clip(np.asarray(view, dtype=np.float32), 0.0, 1.0) * 255).astype(np.uint8)
    image = Image.fromarray(pixels.reshape(pixels.shape[-2:]), mode="L")
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


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
        validation = card_metric(predictor.card, "val_accuracy")
        if card_metric(predictor.card, "test_accuracy") is None and validation is not None:
            # A freshly trained model has no test figure yet; say what is known instead.
            st.markdown(f"**Validation accuracy:** {percent_text(validation)}")
        st.markdown(f"**Backend:** {predictor.backend}")
        st.markdown("**Path:**")
        st.code(str(predictor.path), language=None, wrap_lines=True)
        st.caption(
            f"Predictions below {settings.uncertain_below:.0%} confidence are marked uncertain."
        )


def show_prediction(prediction: Prediction, settings: Settings) -> None:
    """The digit (large), its confidence, a warning when unsure, the chart and the view."""
    import pandas as pd

    label, confidence = prediction.label, prediction.confidence
    with st.container(key="prediction"):
        st.markdown(
            f"<div style='font-size:6rem;font-weight:700;line-height:1'>{label}</div>",
            unsafe_allow_html=True,
        )
        st.markdown(f"**Prediction: {label}** · confidence {confidence:.1%}")
    if prediction.uncertain:
        ranked = np.argsort(prediction.probabilities)[::-1]
        st.warning(
            f"Uncertain: the model is only {confidence:.0%} sure (below "
            f"{settings.uncertain_below:.0%}); it could also be a {int(ranked[1])}. "
            "Try drawing it larger and centred."
        )
    chart = pd.DataFrame(
        {"digit": [str(d) for d in range(10)], "probability": prediction.probabilities}
    )
    st.bar_chart(chart, x="digit", y="probability", height=220, sort=False)
    st.image(view_image(prediction.view), caption="What the model saw (28×28)", width=168)


def predict_and_show(
    predictor: Predictor,
    source: Any,
    settings: Settings,
    original: tuple[str, bytes] | None = None,
) -> Prediction | None:
    """Predict ``source`` and show it; unreadable or empty inputs become messages.

    ``original`` (name, encoded bytes) is what a correction stores; None: no buttons.
    """
    try:
        prediction = predictor.predict(source)
    except NoDigitFound as exc:
        st.warning(f"No digit found: {exc}")
        return None
    except ImageError as exc:
        st.error(f"Cannot read this image: {exc}")
        return None
    except Exception as exc:  # one odd input must not take the page down
        _LOGGER.exception("prediction failed")
        st.error(f"The prediction failed ({type(exc).__name__}: {exc}); please report this.")
        return None
    show_prediction(prediction, settings)
    if original is not None:
        show_correction(prediction, original[0], original[1], settings)
    return prediction


def drawing_input() -> Image.Image | None:
    from streamlit_drawable_canvas import st_canvas  # only importable inside Streamlit

    stroke = st.slider("Stroke width", 5, 40, DEFAULT_STROKE, key="stroke_width")
    st.space("small")  # room for the canvas toolbar, which floats above the canvas
    result = st_canvas(
        stroke_width=stroke,
        stroke_color="#FFFFFF",
        background_color="#000000",
        update_streamlit=True,
        height=CANVAS_SIZE,
        width=CANVAS_SIZE,
        drawing_mode="freedraw",
        return_image_data=True,
        key="canvas",
    )
    st.caption("Draw one digit, large. The toolbar on the canvas undoes, redoes and clears (bin).")
    return canvas_image(result.image_data)


def upload_input() -> tuple[str, bytes] | None:
    upload = st.file_uploader(
        "Upload an image of one digit",
        type=UPLOAD_TYPES,
        key="upload",
        help="PNG, JPEG, WebP, GIF or BMP; dark ink on light paper or light on dark.",
    )
    return None if upload is None else (upload.name, upload.getvalue())


def camera_input() -> tuple[str, bytes] | None:
    photo = st.camera_input("Photograph one digit on paper", key="camera")
    return None if photo is None else ("camera photo", photo.getvalue())


def show_file_result(
    predictor: Predictor, name: str, data: bytes, settings: Settings, preview: Any
) -> None:
    """Predict an uploaded file or photo; a bad one is an error message, never a crash."""
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
    if predict_and_show(predictor, image, settings, original=(name, data)) is not None:
        preview.image(image.convert("RGB"), caption=name, width=168)


HINTS = {
    DRAW: "Draw a digit on the black canvas to see the prediction.",
    UPLOAD: "Upload an image of one digit to see the prediction.",
    CAMERA: "Take a photo of one digit to see the prediction.",
}


# --------------------------------------------------------------------------------------
# corrections: "Wrong? This is a …" stores the sample for `digitctl finetune`
# --------------------------------------------------------------------------------------
CORRECTION_PROMPT = "Wrong? This is a …"


def png_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def show_correction(prediction: Prediction, name: str, data: bytes, settings: Settings) -> None:
    """Ten digit buttons; the one chosen stores the input with that label (and says so)."""
    from digitctl.feedback import FeedbackStore

    st.markdown(f"**{CORRECTION_PROMPT}**")
    chosen = None
    for digit, column in enumerate(st.columns(10, gap="small")):
        if column.button(str(digit), key=f"correct_{digit}", width="stretch"):
            chosen = digit
    if chosen is None:
        return
    try:
        outcome = FeedbackStore.for_settings(settings).add(
            data, chosen, predicted=prediction.label, view=prediction.view, source=name
        )
    except DigitctlError as exc:
        st.error(f"Could not save the correction: {exc}")
        return
    said = {
        "added": "Saved",
        "duplicate": "Already saved",
        "relabelled": "Saved (relabelled)",
    }[outcome.status]
    st.success(
        f"{said}: this {name} is a {chosen}. Run `digitctl finetune` to teach the model.",
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


def main() -> None:
    st.set_page_config(page_title="digitctl: draw a digit", page_icon="✏️", layout="wide")
    try:
        settings = load_settings()
        predictor = load_app_predictor(settings)
    except DigitctlError as exc:
        st.error(f"Cannot start: {exc}")
        st.stop()
    show_sidebar(predictor, settings)

    st.title("Handwritten digit recognition")
    kind = st.radio("Input", [DRAW, UPLOAD, CAMERA], horizontal=True, key="input")
    left, right = st.columns([1, 1], gap="large")
    with left:
        drawing = drawing_input() if kind == DRAW else None
        given = upload_input() if kind == UPLOAD else camera_input() if kind == CAMERA else None
        preview = st.empty()
    with right:
        if drawing is not None:
            predict_and_show(predictor, drawing, settings, original=("drawing", png_bytes(drawing)))
        elif given is not None:
            show_file_result(predictor, given[0], given[1], settings, preview)
        else:
            st.info(HINTS[kind])
    show_feedback_sidebar(settings)


if __name__ == "__main__":
    main()
