"""Where models live and how a Keras model file is opened safely.

A model is a ``.keras`` file; its lightweight export (``.tflite``) and its card
(``model_card.json``) sit beside it with the same stem. The bundled model ships inside the
package under ``digitctl/assets/model/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitctl.errors import ModelError

if TYPE_CHECKING:
    from digitctl.config import Settings

BUNDLED_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "model"
BUNDLED_MODEL_NAME = "digitctl_cnn"
WORKSPACE_MODEL_NAME = "best_model"


def bundled_model_path() -> Path:
    return BUNDLED_MODEL_DIR / f"{BUNDLED_MODEL_NAME}.keras"


def workspace_model_path(settings: Settings) -> Path:
    return settings.models_path / f"{WORKSPACE_MODEL_NAME}.keras"


def resolve_model_path(settings: Settings, model: Path | None = None) -> Path:
    """The model a command should use: ``model`` or ``settings.model``, else the
    workspace's ``models/best_model.keras`` if it exists, else the bundled model."""
    chosen = model if model is not None else settings.model
    if chosen is not None:
        path = Path(chosen).expanduser()
        if not path.exists():
            raise ModelError(f"model {path} does not exist; check --model")
        return path
    workspace = workspace_model_path(settings)
    if workspace.exists():
        return workspace
    bundled = bundled_model_path()
    if bundled.exists() or lite_path_for(bundled).exists():
        return bundled
    raise ModelError(
        "no model found: train one with `digitctl train` or pass --model PATH "
        "(the bundled model is missing from this installation)"
    )


def lite_path_for(model_path: Path) -> Path:
    """The LiteRT export that belongs to ``model_path`` (same folder, same stem)."""
    return model_path.with_suffix(".tflite")


def card_path_for(model_path: Path) -> Path:
    return (
        model_path.parent / "model_card.json"
        if model_path.parent == BUNDLED_MODEL_DIR
        else model_path.with_name(model_path.stem + "_card.json")
    )


def load_keras_model(
    path: Path, unsafe: bool = False, compile: bool = False, debug: bool = False
) -> Any:
    """Load a ``.keras`` / ``.h5`` model with Keras safe_mode on unless ``unsafe``.

    safe_mode refuses files that would run arbitrary Python on load (Lambda layers holding
    pickled code). ``compile=False`` because training-time objects (custom schedules) are
    not needed for inference and may not deserialize. ``debug`` shows TensorFlow's
    native start-up logs.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model {path} does not exist; check --model")
    from digitctl._native import load_tensorflow

    keras = load_tensorflow(debug=debug)

    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=not unsafe)
    except ValueError as exc:
        text = str(exc)
        if "safe_mode" in text or "Lambda" in text or "lambda" in text:
            raise ModelError(
                f"refused to load {path}: it contains Python code (a Lambda layer) that would "
                "run on load; pass --unsafe-load only if you trust where the file came from"
            ) from None
        raise ModelError(f"cannot load model {path}: {text.splitlines()[0]}") from None
    except (OSError, KeyError, TypeError, EOFError) as exc:
        raise ModelError(
            f"cannot load model {path}: it is not a valid Keras model ({exc})"
        ) from None
