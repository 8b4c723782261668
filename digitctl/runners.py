"""Runners: a model file behind one call, ``(N, *input_shape) float32 → (N, classes)``.

One runner per engine, used by the predictor (:mod:`digitctl.inference`) and by the
export check (:mod:`digitctl.export`): LiteRT and ONNX Runtime run without TensorFlow;
the Keras and SavedModel runners import it. Each has ``input_shape``, the per-image input
shape with unknown sides read as 28 (:func:`concrete_shape`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from digitctl._native import native_stderr_silenced
from digitctl.errors import ModelError

SIDE = 28  # MNIST's side: what an unknown (dynamic) input dimension is taken to be
BATCH = 256  # big enough to amortise interpreter calls, small enough for little memory


def concrete_shape(dims: Iterable[Any]) -> tuple[int, ...]:
    """A per-image input shape with unknown sides (None, -1, symbolic names) as 28."""
    return tuple(SIDE if d is None or isinstance(d, str) or int(d) < 0 else int(d) for d in dims)


def run_batched(
    runner: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int = BATCH
) -> np.ndarray:
    """``runner`` over ``x`` in batches of ``batch``, outputs concatenated."""
    return np.concatenate([np.asarray(runner(x[i : i + batch])) for i in range(0, len(x), batch)])


class LiteRTRunner:
    """A LiteRT interpreter that accepts any batch size.

    Resizing an interpreter's input re-plans the whole graph (about 2 ms here, more than
    running a few views), and readings ask for ever-changing batch sizes. So a batch is
    run in chunks of fixed sizes (64, 16, 4, 1), each with its own interpreter, planned
    once when first needed.
    """

    CHUNKS = (64, 16, 4, 1)

    def __init__(self, path: Path, num_threads: int | None = None) -> None:
        self.path = path
        self.num_threads = num_threads or min(4, os.cpu_count() or 1)
        probe = self._load()
        detail = probe.get_input_details()[0]
        output = probe.get_output_details()[0]
        self._input = detail["index"]
        self._output = output["index"]
        self._classes = int(output["shape"][-1])
        self.input_shape = concrete_shape(detail["shape"][1:])
        self._interpreters: dict[int, Any] = {1: self._planned(probe, 1)}

    def reopened(self) -> LiteRTRunner:
        """A runner of its own on the same file (for a forked worker process)."""
        return LiteRTRunner(self.path, self.num_threads)

    def _load(self) -> Any:
        from ai_edge_litert.interpreter import Interpreter

        try:
            return Interpreter(model_path=str(self.path), num_threads=self.num_threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load LiteRT model {self.path}: {exc}") from None

    def _planned(self, interpreter: Any, size: int) -> Any:
        interpreter.resize_tensor_input(self._input, [size, *self.input_shape])
        with native_stderr_silenced():
            interpreter.allocate_tensors()
        return interpreter

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        outputs = []
        start = 0
        while start < len(x):
            size = next(c for c in self.CHUNKS if c <= len(x) - start)
            interpreter = self._interpreters.get(size)
            if interpreter is None:
                interpreter = self._interpreters[size] = self._planned(self._load(), size)
            interpreter.set_tensor(self._input, x[start : start + size])
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(self._output).copy())
            start += size
        if not outputs:
            return np.zeros((0, self._classes), np.float32)
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)


class OnnxRunner:
    """An ONNX Runtime session on the CPU."""

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
        self.input_shape = concrete_shape(detail.shape[1:])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._name: x.astype(np.float32, copy=False)})[0]


class KerasRunner:
    """A Keras model object (imports TensorFlow: slow to start, heavy)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        inputs = getattr(model, "inputs", None)
        self.input_shape = concrete_shape(inputs[0].shape[1:]) if inputs else (SIDE, SIDE, 1)

    @classmethod
    def from_file(cls, path: Path, unsafe: bool = False, debug: bool = False) -> KerasRunner:
        """The model at ``path``, loaded with safe_mode unless ``unsafe``."""
        from digitctl.modelfiles import load_keras_model

        return cls(load_keras_model(path, unsafe=unsafe, debug=debug))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(x, training=False))


class SavedModelRunner:
    """A TensorFlow SavedModel directory's serving signature."""

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        self._tf = tf
        self._serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        self._key, spec = next(iter(self._serve.structured_input_signature[1].items()))
        self.input_shape = concrete_shape(spec.shape[1:])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        outputs = self._serve(**{self._key: self._tf.constant(x, dtype=self._tf.float32)})
        return next(iter(outputs.values())).numpy()
