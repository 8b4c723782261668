"""Evaluation on the MNIST test set: accuracy, loss, confusion matrix, per-class report.

Writes ``artifacts/metrics.json``, ``artifacts/confusion_matrix.png`` and
``artifacts/misclassified_example.png`` (the most confident mistakes), and records the
test figures in the model's card (:class:`digitctl.modelfiles.ModelCard`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitctl.atomic import write_json
from digitctl.errors import ModelError
from digitctl.modelfiles import (
    BUNDLED_MODEL_DIR,
    ModelCard,
    card_path_for,
    load_keras_model,
    read_card,
    resolve_model_path,
)

if TYPE_CHECKING:
    from rich.progress import Progress

    from digitctl.config import Settings

NUM_CLASSES = 10
# Keras clips probabilities the same way in its cross-entropy.
EPSILON = 1e-7
MISCLASSIFIED_SHOWN = 30
BATCH = 512


@dataclass
class Evaluation:
    """Metrics of one model on one labelled set, and the files written for them."""

    model_path: Path
    images: int
    accuracy: float
    loss: float
    errors: int
    confusion: np.ndarray
    report: dict[str, Any]
    fingerprint: str | None = None
    metrics_path: Path | None = None
    artifacts: list[Path] = field(default_factory=list)
    card_path: Path | None = None  # the model card updated with these figures

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": str(self.model_path),
            "images": self.images,
            "accuracy": self.accuracy,
            "loss": self.loss,
            "errors": self.errors,
            "confusion_matrix": self.confusion.tolist(),
            "classification_report": self.report,
            "data_fingerprint": self.fingerprint,
            "metrics": str(self.metrics_path) if self.metrics_path else None,
            "artifacts": [str(p) for p in self.artifacts],
            "card": str(self.card_path) if self.card_path else None,
        }


def compute_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy, mean cross-entropy, confusion matrix and scikit-learn's classification
    report for softmax outputs ``probabilities`` (N, 10) against integer ``labels``.

    A model with an 11th "not a digit" output is scored on its digit columns."""
    from sklearn.metrics import classification_report, confusion_matrix

    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if (
        probabilities.ndim != 2
        or probabilities.shape[:1] != (len(labels),)
        or (probabilities.shape[1] not in (NUM_CLASSES, NUM_CLASSES + 1))
    ):
        raise ModelError(
            f"the model's output has shape {probabilities.shape}, expected ({len(labels)}, 10): "
            "is it a digit classifier?"
        )
    if probabilities.shape[1] > NUM_CLASSES:
        # A "not a digit" class: MNIST accuracy is over the digits, as for any digit model.
        digits_only = probabilities[:, :NUM_CLASSES]
        probabilities = digits_only / np.maximum(digits_only.sum(axis=1, keepdims=True), 1e-12)
    predictions = probabilities.argmax(axis=1)
    picked = np.clip(probabilities[np.arange(len(labels)), labels], EPSILON, 1.0 - EPSILON)
    digits = list(range(NUM_CLASSES))
    return {
        "accuracy": float(np.mean(predictions == labels)) if len(labels) else 0.0,
        "loss": float(-np.mean(np.log(picked))) if len(labels) else 0.0,
        "predictions": predictions,
        "confidence": probabilities.max(axis=1),
        "confusion": confusion_matrix(labels, predictions, labels=digits),
        "report": classification_report(
            labels,
            predictions,
            labels=digits,
            target_names=[str(d) for d in digits],
            output_dict=True,
            zero_division=0,
        ),
    }


def predict_probabilities(
    model: Any, images: np.ndarray, progress: Progress | None = None
) -> np.ndarray:
    """Softmax outputs of ``model`` for ``images``, in batches."""
    task = (
        progress.add_task("evaluate", total=len(images), status="")
        if progress is not None
        else None
    )
    outputs = []
    for start in range(0, len(images), BATCH):
        batch = images[start : start + BATCH]
        try:
            outputs.append(np.asarray(model.predict_on_batch(batch)))
        except (ValueError, TypeError) as exc:
            raise ModelError(
                f"the model cannot take 28×28×1 images: {str(exc).splitlines()[0]}"
            ) from None
        if progress is not None and task is not None:
            progress.update(task, advance=len(batch))
    if not outputs:
        return np.zeros((0, NUM_CLASSES))
    return np.concatenate(outputs)


def evaluate_model(
    settings: Settings,
    model_path: Path | None = None,
    *,
    progress: Progress | None = None,
) -> Evaluation:
    """Evaluate a model on the 10k test set and write the metrics and figures.

    The model is ``model_path``, else ``settings.model``, else the workspace's best model,
    else the bundled one; it is loaded with Keras safe_mode unless ``settings.unsafe_load``.
    """
    path = resolve_model_path(settings, model_path)
    if path.suffix not in (".keras", ".h5"):
        raise ModelError(f"{path} is not a Keras model (.keras or .h5); evaluate needs one")
    model = load_keras_model(path, unsafe=settings.unsafe_load, debug=settings.debug)

    from digitctl.data import load_splits

    splits = load_splits(settings, progress=progress)
    probabilities = predict_probabilities(model, splits.x_test, progress=progress)
    evaluation = write_evaluation(
        path,
        splits.x_test,
        splits.y_test,
        probabilities,
        settings.artifacts_path,
        fingerprint=splits.fingerprint,
    )
    evaluation.card_path = record_in_card(evaluation)
    return evaluation


def record_in_card(evaluation: Evaluation) -> Path | None:
    """Put the test figures into the model's card (made if missing) and return its path.

    None, and nothing written, for the bundled model (its shipped card holds its one
    official test run) or where the model's folder cannot be written.
    """
    path = evaluation.model_path
    if path.resolve().parent == BUNDLED_MODEL_DIR:
        return None
    card = read_card(path) or ModelCard(name=path.stem)
    card.metrics.update(
        test_accuracy=evaluation.accuracy,
        test_loss=evaluation.loss,
        test_errors=evaluation.errors,
        test_images=evaluation.images,
    )
    card.evaluation = {
        "per_class": {str(d): evaluation.report[str(d)] for d in range(NUM_CLASSES)},
        "averages": {k: evaluation.report[k] for k in ("macro avg", "weighted avg")},
        "confusion_matrix": evaluation.confusion.tolist(),
        "data_fingerprint": evaluation.fingerprint,
    }
    try:
        return card.write(card_path_for(path))
    except OSError:
        return None


def write_evaluation(
    model_path: Path,
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    artifacts: Path,
    fingerprint: str | None = None,
) -> Evaluation:
    """Compute the metrics of ``probabilities`` and write metrics.json and the figures."""
    from digitctl import plots

    metrics = compute_metrics(probabilities, labels)
    predictions, confidence = metrics["predictions"], metrics["confidence"]
    wrong = np.flatnonzero(predictions != np.asarray(labels))
    evaluation = Evaluation(
        model_path=model_path,
        images=len(labels),
        accuracy=metrics["accuracy"],
        loss=metrics["loss"],
        errors=len(wrong),
        confusion=metrics["confusion"],
        report=metrics["report"],
        fingerprint=fingerprint,
        metrics_path=artifacts / "metrics.json",
    )
    confusion_png = plots.plot_confusion_matrix(
        evaluation.confusion,
        artifacts / "confusion_matrix.png",
        title=f"Confusion matrix — accuracy {evaluation.accuracy:.2%} on {len(labels):,} images",
    )
    # The most confident mistakes first: those are the interesting ones.
    shown = wrong[np.argsort(-confidence[wrong], kind="stable")][:MISCLASSIFIED_SHOWN]
    misclassified_png = plots.plot_image_grid(
        images[shown],
        [f"true {int(labels[i])} → {int(predictions[i])}\n{confidence[i]:.0%}" for i in shown],
        artifacts / "misclassified_example.png",
        f"Misclassified test images: {len(wrong)} of {len(labels):,}"
        + (" (most confident shown)" if len(wrong) > MISCLASSIFIED_SHOWN else ""),
    )
    evaluation.artifacts = [confusion_png, misclassified_png]
    write_json(evaluation.metrics_path, evaluation.as_dict())
    return evaluation
