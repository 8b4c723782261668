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
from typing import TYPE_CHECKING, Any

import numpy as np

from digitctl._native import load_tensorflow, native_stderr_silenced
from digitctl.atomic import atomic_path
from digitctl.choices import ExportFormat, choose
from digitctl.errors import DigitctlError, ModelError
from digitctl.modelfiles import lite_path_for, load_keras_model, resolve_model_path
from digitctl.runners import KerasRunner, LiteRTRunner, OnnxRunner, SavedModelRunner, run_batched

if TYPE_CHECKING:
    from digitctl.config import Settings

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
    fmt = choose(ExportFormat, fmt, "export format")
    if fmt is ExportFormat.TFLITE:
        return lite_path_for(model_path)
    if fmt is ExportFormat.ONNX:
        return model_path.with_suffix(".onnx")
    return model_path.with_name(model_path.stem + "_savedmodel")


def _ensure_called(model: Any) -> None:
    # Keras refuses to export a freshly loaded model that was "never called".
    shape = KerasRunner(model).input_shape
    model(np.zeros((1, *shape), dtype=np.float32), training=False)


@contextlib.contextmanager
def _converter_quiet(debug: bool) -> Iterator[None]:
    """The LiteRT converter logs every pass natively; hide that unless ``debug``."""
    if debug:
        yield
    else:
        with native_stderr_silenced():
            yield


def write_lite_export(model: Any, path: str | os.PathLike[str], debug: bool = False) -> Path:
    """Write ``model`` (a Keras model object) as a LiteRT flatbuffer at ``path``, atomically.

    ``debug`` lets the converter's native logs through.
    """
    load_tensorflow(debug=debug)
    path = Path(path)
    _ensure_called(model)
    with atomic_path(path) as tmp:
        try:
            with _converter_quiet(debug):
                model.export(str(tmp), format="litert", verbose=False)
        except Exception as exc:  # the converter raises many kinds
            raise ModelError(f"cannot export the model to LiteRT: {exc}") from exc
    return path


def _write_onnx(model: Any, path: Path, debug: bool = False) -> Path:
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


def _write_savedmodel(model: Any, path: Path, debug: bool = False) -> Path:
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


_WRITERS: dict[str, Callable[..., Path]] = {
    ExportFormat.TFLITE: write_lite_export,
    ExportFormat.ONNX: _write_onnx,
    ExportFormat.SAVEDMODEL: _write_savedmodel,
}
# Each opens an export: path -> callable (N, 28, 28, 1) -> (N, 10).
_RUNNERS: dict[str, Callable[[Path], Callable[[np.ndarray], np.ndarray]]] = {
    ExportFormat.TFLITE: LiteRTRunner,
    ExportFormat.ONNX: OnnxRunner,
    ExportFormat.SAVEDMODEL: SavedModelRunner,
}


def check_agreement(
    fmt: str, path: Path, model: Any, x: np.ndarray, batch: int = 256
) -> tuple[float, float]:
    """(share of images with the same top digit, max |Δp|) of the export against Keras."""
    keras_runner = KerasRunner(model)
    x = x.reshape((len(x), *keras_runner.input_shape)).astype(np.float32)
    expected = run_batched(keras_runner, x, batch)
    actual = run_batched(_RUNNERS[fmt](path), x, batch)
    agreement = float(np.mean(expected.argmax(1) == actual.argmax(1)))
    return agreement, float(np.max(np.abs(expected - actual)))


def export_model(
    model_path: Path,
    fmt: str = "tflite",
    x_test: np.ndarray | None = None,
    output: Path | None = None,
    unsafe: bool = False,
    debug: bool = False,
) -> ExportResult:
    """Export the Keras model at ``model_path`` as ``fmt`` and check it on ``x_test``.

    Raises ModelError when fewer than 99.9% of the test images get the same digit from
    the export as from Keras (the export is written either way, for inspection).
    """
    fmt = choose(ExportFormat, fmt, "export format")
    if model_path.suffix not in (".keras", ".h5"):
        raise ModelError(
            f"{model_path} is not a Keras model (.keras or .h5); export needs the Keras file"
        )
    load_tensorflow(debug=debug)
    model = load_keras_model(model_path, unsafe=unsafe, debug=debug)
    target = output if output is not None else export_path_for(model_path, fmt)
    try:
        _WRITERS[fmt](model, target, debug=debug)
    except OSError as exc:
        raise ModelError(
            f"cannot write {target}: {exc.strerror or exc}; export a copy of the model "
            "kept in a folder you can write to"
        ) from None
    if x_test is None or len(x_test) == 0:
        raise DigitctlError("no test images to check the export against")
    agreement, max_diff = check_agreement(fmt, target, model, x_test)
    result = ExportResult(
        format=fmt.value,
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
    settings: Settings, model: Path | None = None, fmt: str = "tflite", limit: int | None = None
) -> ExportResult:
    """`digitctl export`: resolve the model, load the test set, export and check."""
    from digitctl import data

    model_path = resolve_model_path(settings, model)
    splits = data.load_splits(settings)
    x_test = splits.x_test if limit is None else splits.x_test[:limit]
    return export_model(
        model_path, fmt, x_test=x_test, unsafe=settings.unsafe_load, debug=settings.debug
    )


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
