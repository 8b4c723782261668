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
        self.input_shape = concrete_shape(detail["shape"][1:])
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
