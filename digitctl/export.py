"""Keras model → LiteRT / ONNX / SavedModel exports, each checked against the Keras model.

``train`` calls :func:`write_lite_export` so every trained model gets the LiteRT file that
``predict`` and the app run without TensorFlow. ``digitctl export`` calls
:func:`export_model`, which also measures agreement with Keras on the MNIST test set.

TensorFlow/Keras are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitctl._native import load_tensorflow, native_stderr_silenced, wants_native_logs
from digitctl.atomic import atomic_path
from digitctl.errors import DigitctlError, ModelError
from digitctl.modelfiles import lite_path_for, load_keras_model, resolve_model_path

FORMATS = ("tflite", "onnx", "savedmodel")
REQUIRED_AGREEMENT = 0.999


@dataclass(frozen=True)
class ExportResult:
    """What ``digitctl export`` wrote and how closely it agrees with the Keras model."""

    format: str
    source: Path
    path: Path
    images: int
    agreement: float  # share of test images where the export's top digit equals Keras'
    max_abs_diff: float  # largest |p_export - p_keras| over all images and classes
    size_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def export_path_for(model_path: Path, fmt: str) -> Path:
    """Where the ``fmt`` export of ``model_path`` goes: beside it, same stem."""
    if fmt == "tflite":
        return lite_path_for(model_path)
    if fmt == "onnx":
        return model_path.with_suffix(".onnx")
    if fmt == "savedmodel":
        return model_path.with_name(model_path.stem + "_savedmodel")
    raise DigitctlError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _input_shape(model: Any) -> tuple[int, ...]:
    shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else (28, 28, 1)
    return tuple(28 if d is None else int(d) for d in shape)


def _ensure_called(model: Any) -> None:
    # Keras refuses to export a freshly loaded model that was "never called".
    model(np.zeros((1, *_input_shape(model)), dtype=np.float32), training=False)


@contextlib.contextmanager
def _converter_quiet() -> Iterator[None]:
    """The LiteRT converter logs every pass natively; hide that unless --debug."""
    if wants_native_logs():
        yield
    else:
        with native_stderr_silenced():
            yield


def write_lite_export(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` (a Keras model object) as a LiteRT flatbuffer at ``path``, atomically."""
    load_tensorflow()
    path = Path(path)
    _ensure_called(model)
    with atomic_path(path) as tmp:
        try:
            with _converter_quiet():
                model.export(str(tmp), format="litert", verbose=False)
        except Exception as exc:  # the converter raises many kinds
            raise ModelError(f"cannot export the model to LiteRT: {exc}") from exc
    return path


def _write_onnx(model: Any, path: Path) -> Path:
    _ensure_called(model)
    with atomic_path(path) as tmp:
        try:
            model.export(str(tmp), format="onnx", verbose=False)
        except ImportError as exc:
            raise ModelError(
                f"ONNX export needs the tf2onnx and onnx packages ({exc}); "
                'install them with `pip install "digitctl[export]"`'
            ) from None
        except Exception as exc:
            raise ModelError(f"cannot export the model to ONNX: {exc}") from exc
    return path


def _write_savedmodel(model: Any, path: Path) -> Path:
    """SavedModel is a directory: build it beside the target, then swap it in."""
    _ensure_called(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    built = staging / "savedmodel"
    try:
        model.export(str(built), format="tf_saved_model", verbose=False)
        old = None
        if path.exists():
            old = staging / "old"
            os.replace(path, old)
        os.replace(built, path)
    except Exception as exc:
        raise ModelError(f"cannot export the model as a SavedModel: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _lite_runner(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    from digitctl.inference import LiteRTRunner

    return LiteRTRunner(path)


def _onnx_runner(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: x.astype(np.float32)})[0]

    return run


def _savedmodel_runner(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    key = next(iter(serve.structured_input_signature[1]))

    def run(x: np.ndarray) -> np.ndarray:
        outputs = serve(**{key: tf.constant(x, dtype=tf.float32)})
        return next(iter(outputs.values())).numpy()

    return run


_WRITERS = {"tflite": write_lite_export, "onnx": _write_onnx, "savedmodel": _write_savedmodel}
_RUNNERS = {"tflite": _lite_runner, "onnx": _onnx_runner, "savedmodel": _savedmodel_runner}


def _batched(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([run(x[i : i + batch]) for i in range(0, len(x), batch)])


def check_agreement(
    fmt: str, path: Path, model: Any, x: np.ndarray, batch: int = 256
) -> tuple[float, float]:
    """(share of images with the same top digit, max |Δp|) of the export against Keras."""
    x = x.reshape((len(x), *_input_shape(model))).astype(np.float32)
    expected = np.concatenate(
        [np.asarray(model(x[i : i + batch], training=False)) for i in range(0, len(x), batch)]
    )
    actual = _batched(_RUNNERS[fmt](path), x, batch)
    agreement = float(np.mean(expected.argmax(1) == actual.argmax(1)))
    return agreement, float(np.max(np.abs(expected - actual)))


def export_model(
    model_path: Path,
    fmt: str = "tflite",
    x_test: np.ndarray | None = None,
    output: Path | None = None,
    unsafe: bool = False,
) -> ExportResult:
    """Export the Keras model at ``model_path`` as ``fmt`` and check it on ``x_test``.

    Raises ModelError when fewer than 99.9% of the test images get the same digit from
    the export as from Keras (the export is written either way, for inspection).
    """
    if fmt not in FORMATS:
        raise DigitctlError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if model_path.suffix not in (".keras", ".h5"):
        raise ModelError(
            f"{model_path} is not a Keras model (.keras or .h5); export needs the Keras file"
        )
    load_tensorflow()
    model = load_keras_model(model_path, unsafe=unsafe)
    target = output if output is not None else export_path_for(model_path, fmt)
    try:
        _WRITERS[fmt](model, target)
    except OSError as exc:
        raise ModelError(
            f"cannot write {target}: {exc.strerror or exc}; export a copy of the model "
            "kept in a folder you can write to"
        ) from None
    if x_test is None or len(x_test) == 0:
        raise DigitctlError("no test images to check the export against")
    agreement, max_diff = check_agreement(fmt, target, model, x_test)
    result = ExportResult(
        format=fmt,
        source=model_path,
        path=target,
        images=len(x_test),
        agreement=agreement,
        max_abs_diff=max_diff,
        size_bytes=_size(target),
    )
    if agreement < REQUIRED_AGREEMENT:
        raise ModelError(
            f"the {fmt} export at {target} agrees with the Keras model on only "
            f"{agreement:.2%} of {len(x_test)} test images (at least "
            f"{REQUIRED_AGREEMENT:.1%} required); do not use it"
        )
    return result


def export_for_settings(
    settings: Any, model: Path | None = None, fmt: str = "tflite", limit: int | None = None
) -> ExportResult:
    """`digitctl export`: resolve the model, load the test set, export and check."""
    from digitctl import data

    model_path = resolve_model_path(settings, model)
    splits = data.load_splits(settings)
    x_test = splits.x_test if limit is None else splits.x_test[:limit]
    return export_model(model_path, fmt, x_test=x_test, unsafe=settings.unsafe_load)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
