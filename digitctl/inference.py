"""Predictor: runs a model's LiteRT export without TensorFlow, or the Keras file as fallback.

``load_predictor`` picks the fast path when it can: a ``.tflite`` beside the ``.keras``
(same stem, written by ``train`` and ``digitctl export``) runs in the LiteRT interpreter,
which starts in ~0.1 s and ~50 MiB instead of TensorFlow's ~2 s and ~550 MiB. Only the
Keras fallback imports TensorFlow, lazily. An ``.onnx`` file given with ``--model`` runs
in ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitctl._native import native_stderr_silenced
from digitctl.errors import DigitctlError, ImageError, ModelError
from digitctl.imaging import ImageSource, is_image_path, to_mnist
from digitctl.modelfiles import card_path_for, lite_path_for, resolve_model_path

if TYPE_CHECKING:
    from digitctl.config import Settings

BATCH = 256  # big enough to amortise interpreter calls, small enough for little memory
PARALLEL_FROM = 400  # below this many images, starting worker processes does not pay
STALE_AFTER_S = 60.0  # a .keras this much newer than its .tflite was replaced since export


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


# --------------------------------------------------------------------------------------
# runners: (N, *input_shape) float32 -> (N, 10)
# --------------------------------------------------------------------------------------
class LiteRTRunner:
    """A LiteRT interpreter that accepts any batch size."""

    def __init__(self, path: Path, num_threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        threads = num_threads or min(4, os.cpu_count() or 1)
        try:
            self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load LiteRT model {path}: {exc}") from None
        detail = self._interpreter.get_input_details()[0]
        self._input = detail["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self.input_shape = tuple(int(d) for d in detail["shape"][1:])
        self._batch = -1

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if len(x) != self._batch:
            self._interpreter.resize_tensor_input(self._input, [len(x), *self.input_shape])
            with native_stderr_silenced():
                self._interpreter.allocate_tensors()
            self._batch = len(x)
        self._interpreter.set_tensor(self._input, np.ascontiguousarray(x, dtype=np.float32))
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()


class OnnxRunner:
    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load ONNX model {path}: {exc}") from None
        detail = self._session.get_inputs()[0]
        self._name = detail.name
        self.input_shape = tuple(28 if not isinstance(d, int) else d for d in detail.shape[1:])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._name: x.astype(np.float32, copy=False)})[0]


class KerasRunner:
    """The fallback: imports TensorFlow (slow to start, heavy), used when no export exists."""

    def __init__(self, path: Path, unsafe: bool = False) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from digitctl.modelfiles import load_keras_model

        self._model = load_keras_model(path, unsafe=unsafe)
        shape = self._model.inputs[0].shape[1:]
        self.input_shape = tuple(28 if d is None else int(d) for d in shape)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._model(x, training=False))


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
        card: dict[str, Any] | None = None,
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
        out = [self._runner(x[i : i + BATCH]) for i in range(0, count, BATCH)]
        return _softmax_if_logits(np.concatenate(out).astype(np.float32, copy=False))

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
        pending: list[np.ndarray | ImageError] = []

        def flush() -> Iterator[Prediction | ImageError]:
            views = [item for item in pending if isinstance(item, np.ndarray)]
            probabilities = iter(self.predict_views(np.stack(views)) if views else [])
            for item in pending:
                yield (
                    item
                    if isinstance(item, ImageError)
                    else self.prediction(item, next(probabilities))
                )
            pending.clear()

        with _view_pool(workers) as pool:
            views = (
                pool.map(_view_or_error, sources, chunksize=32)
                if pool
                else map(_view_or_error, sources)
            )
            for item in views:
                pending.append(item)
                if len(pending) >= batch:
                    yield from flush()
        yield from flush()


def _view_or_error(source: ImageSource) -> np.ndarray | ImageError:
    try:
        return to_mnist(source)
    except ImageError as exc:
        return exc


@contextlib.contextmanager
def _view_pool(workers: int) -> Iterator[Any]:
    """A process pool for preprocessing, or None where forking is unavailable or pointless."""
    pool = None
    if workers > 1:  # checked first: a one-image run should not pay for importing these
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if "fork" in multiprocessing.get_all_start_methods():
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    try:
        yield pool
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def preprocess_workers(count: int) -> int:
    """How many processes should preprocess ``count`` images: one for small batches."""
    if count < PARALLEL_FROM:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def _read_card(path: Path) -> dict[str, Any] | None:
    card = card_path_for(path)
    try:
        return json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


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
            runner, backend = KerasRunner(path, unsafe=settings.unsafe_load), "keras"
    else:
        raise ModelError(
            f"{path} is not a model file digitctl can run (.keras, .h5, .tflite or .onnx)"
        )
    return Predictor(
        path=path,
        backend=backend,
        runner=runner,
        input_shape=runner.input_shape,
        card=_read_card(path),
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


def _with_name(name: str, error: ImageError) -> str:
    text = str(error)
    return text if name in text else f"{name}: {text}"


def predict_inputs(predictor: Predictor, items: Sequence[PredictInput]) -> Iterator[PredictOutcome]:
    """Outcomes for ``items`` in order; each failure carries one line that names the input."""
    usable = [item.source for item in items if item.error is None]
    results = predictor.predict_many(usable, workers=preprocess_workers(len(usable)))  # type: ignore[arg-type]
    for item in items:
        if item.error is not None:
            yield PredictOutcome(item.name, None, item.error)
            continue
        result = next(results)
        if isinstance(result, ImageError):
            yield PredictOutcome(item.name, None, _with_name(item.name, result))
        else:
            yield PredictOutcome(item.name, result, None)


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


def plot_prediction(source: ImageSource, prediction: Prediction, path: Path) -> Path:
    """The input, the model's 28×28 view and the probability bars, in one figure."""
    from digitctl.imaging import load_image
    from digitctl.plots import _pyplot, save_figure

    plt = _pyplot()
    image = load_image(source)
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1, 1, 1.6]})
    shown = image.convert("RGBA") if "A" in image.getbands() else image.convert("RGB")
    axes[0].imshow(shown)
    axes[0].set_title("input")
    axes[1].imshow(prediction.view, cmap="gray", vmin=0, vmax=1)
    axes[1].set_title("what the model saw (28×28)")
    for axis in axes[:2]:
        axis.axis("off")
    colours = ["tab:orange" if d == prediction.label else "tab:blue" for d in range(10)]
    axes[2].bar(range(10), prediction.probabilities, color=colours)
    axes[2].set_xticks(range(10))
    axes[2].set_ylim(0, 1)
    axes[2].set_xlabel("digit")
    axes[2].set_ylabel("probability")
    verdict = " (uncertain)" if prediction.uncertain else ""
    axes[2].set_title(f"prediction: {prediction.label}, {prediction.confidence:.1%}{verdict}")
    return save_figure(figure, path)


__all__ = [
    "DigitctlError",
    "Prediction",
    "Predictor",
    "load_predictor",
    "collect_inputs",
    "predict_inputs",
]
