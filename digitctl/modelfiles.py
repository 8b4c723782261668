"""Where models live, what is known about them (the model card), and how a Keras model
file is opened safely.

A model is a ``.keras`` file; its lightweight export (``.tflite``) and its card
(``<stem>_card.json``, a :class:`ModelCard`) sit beside it with the same stem. The bundled
model ships inside the package under ``digitctl/assets/model/``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitctl.errors import ModelError

if TYPE_CHECKING:
    from digitctl.config import Settings

BUNDLED_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "model"
BUNDLED_MODEL_NAME = "digitctl_cnn"
WORKSPACE_MODEL_NAME = "best_model"


def bundled_sequence_path() -> Path:
    """The bundled sequence model (touching digits, see :mod:`digitctl.sequence`)."""
    return BUNDLED_MODEL_DIR / "digitctl_sequence.tflite"


def bundled_reader_path() -> Path:
    """The bundled line reader (see :mod:`digitctl.linereader`)."""
    return BUNDLED_MODEL_DIR / "digitctl_reader.tflite"


def bundled_model_path() -> Path:
    return BUNDLED_MODEL_DIR / f"{BUNDLED_MODEL_NAME}.keras"


def workspace_model_path(settings: Settings) -> Path:
    return settings.models_path / f"{WORKSPACE_MODEL_NAME}.keras"


BUNDLED, WORKSPACE, GIVEN = "bundled", "workspace", "--model"  # where a model came from


def resolve_model_path(settings: Settings, model: Path | None = None) -> Path:
    """The model a command should use: ``model`` or ``settings.model``, else the
    workspace's ``models/best_model.keras`` if it exists, else the bundled model."""
    return resolve_model(settings, model)[0]


def resolve_model(settings: Settings, model: Path | None = None) -> tuple[Path, str]:
    """The model a command should use and where it came from (``BUNDLED``, ``WORKSPACE``
    or ``GIVEN``): ``model`` or ``settings.model`` (``bundled``: the shipped model), else
    the workspace's ``models/best_model.keras`` if it exists, else the bundled model."""
    chosen = model if model is not None else settings.model
    if chosen is not None:
        path = Path(chosen).expanduser()
        if str(chosen) == BUNDLED and not path.exists():
            return _bundled(), BUNDLED
        if not path.exists():
            raise ModelError(
                f"model {path} does not exist; check --model (`--model bundled`: the shipped model)"
            )
        if path.resolve() == bundled_model_path():
            return path, BUNDLED
        return path, GIVEN
    workspace = workspace_model_path(settings)
    if workspace.exists():
        return workspace, WORKSPACE
    return _bundled(), BUNDLED


def _bundled() -> Path:
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
    """The card of ``model_path`` (or of its export: same folder, same stem)."""
    return model_path.with_name(model_path.stem + "_card.json")


# --------------------------------------------------------------------------------------
# The model card
# --------------------------------------------------------------------------------------
CARD_SCHEMA = 2
DIGITS = tuple(str(d) for d in range(10))
# Figures of merit, kept flat in ``ModelCard.metrics`` (fractions, counts, losses).
METRIC_KEYS = (
    "test_accuracy", "test_loss", "test_errors", "test_images",
    "val_accuracy", "val_loss", "train_accuracy", "train_loss",
)  # fmt: skip


@dataclass
class ModelCard:
    """Everything known about one model, in one schema (``schema: 2`` in the file).

    Written by ``train`` (training record, validation metrics, history) and ``evaluate``
    (test metrics, per-class report, confusion matrix); read by ``predict`` and the app.
    ``classes`` names the model's outputs in order (an 11th "not a digit" class may
    follow the digits); ``temperature`` divides the log-probabilities before the softmax
    (calibration; 1.0: none); ``reject_threshold`` is the calibrated "not a digit"
    probability above which a glyph is answered as no digit (None: the model cannot
    tell); ``base_model`` names the model a fine-tuned one started from. ``extra`` keeps
    anything else, so no field is ever lost in a round trip.
    """

    name: str
    description: str = ""
    classes: list[str] = field(default_factory=lambda: list(DIGITS))
    temperature: float = 1.0
    reject_threshold: float | None = None
    base_model: str | None = None
    input: str = "float32 (N, 28, 28, 1), white digit on black, values in [0, 1]"
    output: str = "softmax probabilities over the classes"
    files: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def metric(self, key: str) -> float | None:
        """``metrics[key]`` as a float, or None when absent or not a number."""
        value = self.metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None

    def to_json(self) -> dict[str, Any]:
        return {"schema": CARD_SCHEMA, **asdict(self)}

    @classmethod
    def from_json(cls, document: Mapping[str, Any], name: str = "model") -> ModelCard:
        """A card from its JSON: this schema, or a legacy one (the flat card the bundled
        model had, or the ``final_metrics`` run record ``train`` wrote before)."""
        if document.get("schema") == CARD_SCHEMA:
            known = {f.name for f in fields(cls)}
            values = {k: v for k, v in document.items() if k in known}
            unknown = {k: v for k, v in document.items() if k not in known | {"schema"}}
            values.setdefault("name", name)
            values["extra"] = {**values.get("extra", {}), **unknown}
            return cls(**values)
        return _legacy_card(dict(document), name)

    def write(self, path: Path) -> Path:
        """Write the card to ``path`` atomically."""
        from digitctl.atomic import write_json

        return write_json(path, self.to_json())


def _legacy_card(document: dict[str, Any], name: str) -> ModelCard:
    record = dict(document.pop("training_record", None) or {})
    if "final_metrics" in document:  # the run record itself
        record, document = document, {}
    metrics = {k: v for k, v in (record.pop("final_metrics", None) or {}).items() if v is not None}
    model_file = record.get("model")
    metrics.update({k: document.pop(k) for k in METRIC_KEYS if k in document})
    if "command" in document:
        record["command"] = document.pop("command")
    evaluation = {
        new: document.pop(old)
        for old, new in (
            ("per_class", "per_class"),
            ("confusion_matrix", "confusion_matrix"),
            ("evaluate_command", "command"),
        )
        if old in document
    }
    # Summary figures the flat card repeated from its training record.
    for key, where in (
        ("parameters", ("architecture", "parameters")),
        ("epochs_run", ("epochs_run",)),
        ("best_epoch", ("best_epoch",)),
        ("train_seconds", ("timings", "train_seconds")),
        ("total_seconds", ("timings", "total_seconds")),
    ):
        if key in document and _lookup(record, where) == document[key]:
            del document[key]
    fallback = Path(model_file).stem if model_file else name
    return ModelCard(
        name=str(document.pop("name", fallback)),
        description=str(
            document.pop("description", "") or record.get("architecture", {}).get("description", "")
        ),
        **{k: document.pop(k) for k in ("input", "output", "files", "history") if k in document},
        metrics=metrics,
        evaluation=evaluation,
        training=record,
        extra=document,
    )


def _lookup(document: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(document, Mapping):
            return None
        document = document.get(key)  # type: ignore[assignment]
    return document


def read_card(model_path: Path) -> ModelCard | None:
    """The card beside ``model_path``; None when there is none or it cannot be read."""
    path = card_path_for(model_path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    return ModelCard.from_json(document, name=model_path.stem)


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
