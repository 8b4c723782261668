"""Predictor: runs a model's LiteRT export without TensorFlow, or the Keras file as fallback.

``load_predictor`` picks the fast path when it can: a ``.tflite`` beside the ``.keras``
(same stem, written by ``train`` and ``digitctl export``) runs in the LiteRT interpreter,
which starts in ~0.1 s and ~50 MiB instead of TensorFlow's ~2 s and ~550 MiB. Only the
Keras fallback imports TensorFlow, lazily. An ``.onnx`` file given with ``--model`` runs
in ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from digitctl.errors import DigitctlError, ImageError, ModelError
from digitctl.imaging import ImageSource, is_image_path, to_mnist
from digitctl.modelfiles import ModelCard, lite_path_for, read_card, resolve_model_path
from digitctl.runners import BATCH, KerasRunner, LiteRTRunner, OnnxRunner, run_batched

if TYPE_CHECKING:
    from digitctl.config import Settings

PARALLEL_FROM = 400  # below this many images, starting worker processes does not pay
STALE_AFTER_S = 60.0  # a .keras this much newer than its .tflite was replaced since export
T = TypeVar("T")  # what stands for an input that has no view (its error)


@dataclass
class Prediction:
    """One answer: the digit, how sure the model is, and the 28×28 view it saw."""

    label: int
    confidence: float
    probabilities: list[float]
    uncertain: bool  # confidence below settings.uncertain_below
    view: np.ndarray

    def top(self, k: int = 3) -> list[tuple[int, float]]:
        order = np.argsort(self.probabilities)[::-1][:k]
        return [(int(i), float(self.probabilities[i])) for i in order]


def _softmax_if_logits(scores: np.ndarray) -> np.ndarray:
    sums = scores.sum(axis=1)
    if scores.min() >= 0 and np.allclose(sums, 1.0, atol=1e-3):
        return scores
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------------------
# Predictor
# --------------------------------------------------------------------------------------
class Predictor:
    """A loaded model that turns images (or ready 28×28 views) into predictions."""

    def __init__(
        self,
        path: Path,
        backend: str,
        runner: Callable[[np.ndarray], np.ndarray],
        input_shape: Sequence[int],
        card: ModelCard | None = None,
        uncertain_below: float = 0.6,
    ) -> None:
        self.path = path
        self.backend = backend
        self.card = card
        self.uncertain_below = uncertain_below
        self._runner = runner
        self._input_shape = tuple(input_shape)

    def __repr__(self) -> str:
        return f"Predictor(path={str(self.path)!r}, backend={self.backend!r})"

    def predict_views(self, views: np.ndarray) -> np.ndarray:
        """(N, 28, 28) views in [0, 1] → (N, 10) probabilities."""
        views = np.asarray(views, dtype=np.float32)
        if views.ndim == 2:
            views = views[None]
        count = len(views)
        if count == 0:
            return np.zeros((0, 10), dtype=np.float32)
        x = views.reshape((count, *self._input_shape))
        return _softmax_if_logits(run_batched(self._runner, x).astype(np.float32, copy=False))

    def prediction(self, view: np.ndarray, probabilities: np.ndarray) -> Prediction:
        label = int(np.argmax(probabilities))
        confidence = float(probabilities[label])
        return Prediction(
            label=label,
            confidence=confidence,
            probabilities=[float(p) for p in probabilities],
            uncertain=confidence < self.uncertain_below,
            view=view,
        )

    def predict(self, source: ImageSource) -> Prediction:
        """Preprocess ``source`` with :func:`digitctl.imaging.to_mnist` and predict it."""
        view = to_mnist(source)
        return self.prediction(view, self.predict_views(view[None])[0])

    def predict_many(
        self, sources: Iterable[ImageSource], batch: int = BATCH, workers: int = 1
    ) -> Iterator[Prediction | ImageError]:
        """Predictions in input order; an unreadable image yields its ImageError instead.

        ``workers`` > 1 preprocesses in that many forked processes (decode and
        preprocessing, not the model, are the cost of a big batch of files).
        """
        with _mapped(_view_or_error, sources, workers) as views:
            yield from self.answer(views, batch)

    def answer(
        self, prepared: Iterable[np.ndarray | T], batch: int = BATCH
    ) -> Iterator[Prediction | T]:
        """One answer per item of ``prepared``, in order: a view becomes its Prediction
        (views are run through the model ``batch`` at a time); anything else (an error)
        is passed through as it is."""
        pending: list[np.ndarray | T] = []
        for item in prepared:
            pending.append(item)
            if len(pending) >= batch:
                yield from self._answer_batch(pending)
                pending = []
        yield from self._answer_batch(pending)

    def _answer_batch(self, pending: list[np.ndarray | T]) -> list[Prediction | T]:
        answers: list[Prediction | T] = list(pending)  # type: ignore[arg-type]
        at = [i for i, item in enumerate(pending) if isinstance(item, np.ndarray)]
        if at:
            probabilities = self.predict_views(np.stack([pending[i] for i in at]))
            for i, row in zip(at, probabilities, strict=True):
                answers[i] = self.prediction(pending[i], row)  # type: ignore[arg-type]
        return answers


def _view_or_error(source: ImageSource) -> np.ndarray | ImageError:
    try:
        return to_mnist(source)
    except ImageError as exc:
        return exc


@contextlib.contextmanager
def _mapped(function: Callable[[Any], T], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """``function`` over ``items``, in order: in ``workers`` forked processes when more
    than one (and forking is available), else here."""
    pool = None
    if workers > 1:  # checked first: a one-image run should not pay for importing these
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if "fork" in multiprocessing.get_all_start_methods():
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    try:
        yield pool.map(function, items, chunksize=32) if pool else map(function, items)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def preprocess_workers(count: int) -> int:
    """How many processes should preprocess ``count`` images: one for small batches."""
    if count < PARALLEL_FROM:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def _fresh_export(keras_path: Path) -> Path | None:
    lite = lite_path_for(keras_path)
    if not lite.exists():
        return None
    if keras_path.exists() and keras_path.stat().st_mtime - lite.stat().st_mtime > STALE_AFTER_S:
        return None  # the Keras file was replaced after the export: do not trust the export
    return lite


def load_predictor(settings: Settings | None = None, model: Path | None = None) -> Predictor:
    """The predictor for ``model`` (or the settings' / workspace / bundled model).

    Uses the model's LiteRT export when present and not older than the model, else Keras
    (safe_mode unless ``settings.unsafe_load``). ``.tflite`` and ``.onnx`` files are run
    directly.
    """
    if settings is None:
        from digitctl.config import Settings

        settings = Settings()
    path = resolve_model_path(settings, model)
    suffix = path.suffix.lower()
    runner: LiteRTRunner | OnnxRunner | KerasRunner
    if suffix == ".tflite":
        runner, backend = LiteRTRunner(path), "litert"
    elif suffix == ".onnx":
        runner, backend = OnnxRunner(path), "onnx"
    elif suffix in (".keras", ".h5"):
        lite = _fresh_export(path)
        if lite is not None:
            runner, backend = LiteRTRunner(lite), "litert"
        else:
            runner = KerasRunner.from_file(path, unsafe=settings.unsafe_load, debug=settings.debug)
            backend = "keras"
    else:
        raise ModelError(
            f"{path} is not a model file digitctl can run (.keras, .h5, .tflite or .onnx)"
        )
    return Predictor(
        path=path,
        backend=backend,
        runner=runner,
        input_shape=runner.input_shape,
        card=read_card(path),
        uncertain_below=settings.uncertain_below,
    )


# --------------------------------------------------------------------------------------
# inputs of `digitctl predict`
# --------------------------------------------------------------------------------------
@dataclass
class PredictInput:
    """One input as the user named it: a path, or ``-`` for stdin; ``error`` if unusable."""

    name: str
    source: ImageSource | None
    error: str | None = None


def collect_inputs(paths: Sequence[str], recursive: bool = False) -> list[PredictInput]:
    """Expand directories into the images inside them, in a stable order.

    Problems that concern one input (missing path, empty directory) become that input's
    ``error`` so the others are still answered.
    """
    items: list[PredictInput] = []
    for raw in paths:
        if raw == "-":
            data = sys.stdin.buffer.read()
            items.append(PredictInput("-", data, None if data else "stdin is empty (0 bytes)"))
            continue
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(
                p
                for p in (path.rglob("*") if recursive else path.iterdir())
                if p.is_file() and is_image_path(p)
            )
            if not found:
                hint = "" if recursive else " (use --recursive to look in subfolders)"
                items.append(PredictInput(raw, None, f"{raw}: no images in this directory{hint}"))
            items.extend(PredictInput(str(p), p) for p in found)
        elif path.exists():
            items.append(PredictInput(raw, path))
        else:
            items.append(PredictInput(raw, None, f"{raw} does not exist"))
    return items


@dataclass
class PredictOutcome:
    name: str
    prediction: Prediction | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        p = self.prediction
        return {
            "path": self.name,
            "label": p.label if p else None,
            "confidence": round(p.confidence, 6) if p else None,
            "probabilities": [round(v, 6) for v in p.probabilities] if p else None,
            "uncertain": p.uncertain if p else False,
            "error": self.error,
        }


def _view_or_message(item: PredictInput) -> np.ndarray | str:
    """The input's 28×28 view, or the one line that says why there is none (names it)."""
    if item.error is not None:
        return item.error
    try:
        return to_mnist(item.source)  # type: ignore[arg-type]
    except ImageError as exc:
        text = str(exc)
        return text if item.name in text else f"{item.name}: {text}"


def predict_inputs(predictor: Predictor, items: Sequence[PredictInput]) -> Iterator[PredictOutcome]:
    """One outcome per item, in order; each failure carries one line that names the input."""
    usable = sum(item.error is None for item in items)
    with _mapped(_view_or_message, items, preprocess_workers(usable)) as views:
        for item, answer in zip(items, predictor.answer(views), strict=True):
            if isinstance(answer, Prediction):
                yield PredictOutcome(item.name, answer, None)
            else:
                yield PredictOutcome(item.name, None, answer)


def save_views(outcomes: Sequence[PredictOutcome], directory: Path) -> list[Path]:
    """Write each answered input's 28×28 view as ``<stem>.png`` in ``directory``."""
    from PIL import Image

    from digitctl.atomic import write_with

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DigitctlError(f"cannot create {directory} for --save-view: {exc.strerror}") from None
    written: list[Path] = []
    used: set[str] = set()
    for outcome in outcomes:
        if outcome.prediction is None:
            continue
        stem = "stdin" if outcome.name == "-" else Path(outcome.name).stem
        name, n = f"{stem}.png", 1
        while name in used:
            n += 1
            name = f"{stem}_{n}.png"
        used.add(name)
        pixels = np.round(outcome.prediction.view * 255).astype(np.uint8)
        image = Image.fromarray(pixels, "L")
        try:
            written.append(write_with(directory / name, lambda tmp, im=image: im.save(tmp, "PNG")))
        except OSError as exc:
            raise DigitctlError(f"cannot write {directory / name}: {exc.strerror}") from None
    return written


__all__ = [
    "DigitctlError",
    "Prediction",
    "Predictor",
    "load_predictor",
    "collect_inputs",
    "predict_inputs",
]
