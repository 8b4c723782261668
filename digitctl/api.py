"""The Python API: the few calls a Python user wants, each a thin wrapper over the library.

Reached as ``digitctl.load_model``, ``digitctl.read``, ``digitctl.read_many``,
``digitctl.train`` and ``digitctl.evaluate`` (``import digitctl`` loads this module only
when one of them is first used). Settings resolve as for the CLI: defaults < ``digitctl.toml`` (or
``$DIGITCTL_CONFIG``) < ``DIGITCTL_*`` variables < the keyword arguments given here; or
pass a ready :class:`~digitctl.config.Settings` as ``settings``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitctl.config import Settings, load_settings

if TYPE_CHECKING:
    from rich.progress import Progress

    from digitctl.batch import BatchProgress, BatchSummary
    from digitctl.errors import ImageError
    from digitctl.evaluation import Evaluation
    from digitctl.imaging import ImageSource
    from digitctl.inference import Predictor
    from digitctl.reading import Reading
    from digitctl.sequence import SequenceTrainResult
    from digitctl.training import TrainResult

ModelPath = str | os.PathLike[str] | None


def _settings(settings: Settings | None, overrides: dict[str, Any]) -> Settings:
    if settings is None:
        return load_settings(overrides=overrides)
    return settings.with_overrides(**overrides) if overrides else settings


def _path(model: ModelPath) -> Path | None:
    return None if model is None else Path(model)


def load_model(
    model: ModelPath = None, *, settings: Settings | None = None, **overrides: Any
) -> Predictor:
    """The predictor for ``model`` (``.keras``, ``.tflite`` or ``.onnx``; None: the
    workspace's model, else the bundled one), on its LiteRT export when there is one."""
    from digitctl.inference import load_predictor

    return load_predictor(_settings(settings, overrides), model=_path(model))


def read(source: ImageSource, model: ModelPath = None) -> Reading:
    """Every digit in one image, left to right, lines top to bottom.

    ``source`` is a path, bytes, a binary file object, a NumPy array (H×W grey, H×W×3 RGB
    or H×W×4 RGBA; uint8, or float in [0, 1]) or a PIL image; anything else is a
    TypeError. ``.text`` is the string ("2026"; "" when nothing was read), ``.digits``
    each digit with its label, confidence, probabilities and box, ``.status`` ``ok``,
    ``not_a_digit`` or ``no_digit``. A single digit is a reading of length one
    (``.label``). To read many images, use :func:`read_many` or load the model once with
    :func:`load_model`."""
    return load_model(model).read(source)


def read_many(
    sources: Iterable[ImageSource] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    *,
    model: ModelPath = None,
    workers: int | None = None,
    engine: str = "local",
    shard_size: int | None = None,
    recursive: bool = False,
    on_progress: Callable[[BatchProgress], None] | None = None,
    settings: Settings | None = None,
    **overrides: Any,
) -> Iterator[Reading | ImageError] | BatchSummary:
    """Read many images with the model loaded once.

    Without ``out``: the readings of ``sources`` (each as :func:`read` accepts) in order,
    an image that cannot be decoded yielding its ImageError instead; ``workers`` processes
    read a big batch.

    With ``out``: a batch of any size read into JSON Lines shards in ``out``, as
    ``digitctl predict --out`` does (one line per input, each the line ``predict --json``
    writes), returning a summary. Inputs are files, folders, globs or manifests
    (.txt/.csv of paths); a rerun reads only the inputs ``out`` has no answer for.
    ``engine="dask"`` reads on the Dask cluster at ``cluster_address`` (a setting), else
    on a local one of ``workers`` processes."""
    if out is None:
        if engine != "local":
            raise ValueError(f"engine={engine!r} writes its answers to shards: give out=")
        predictor = load_model(model, settings=settings, **overrides)
        return predictor.read_many(sources, workers=workers or 1)  # type: ignore[arg-type]
    from digitctl.batch import SHARD_SIZE, read_batch

    if model is not None:
        overrides["model"] = Path(model)
    return read_batch(
        [os.fspath(p) for p in sources],  # type: ignore[arg-type]
        out,
        settings=_settings(settings, overrides),
        engine=engine,
        workers=workers,
        shard_size=shard_size or SHARD_SIZE,
        recursive=recursive,
        on_progress=on_progress,
    )


def train(
    *,
    settings: Settings | None = None,
    resume: bool = False,
    save_format: str = "keras",
    progress: Progress | None = None,
    **overrides: Any,
) -> TrainResult | SequenceTrainResult:
    """Train a model into the workspace, as ``digitctl train`` does (keyword arguments
    are settings: ``recipe``, ``epochs``, ``limit``, ``workspace``, ``mirror``, ...;
    ``recipe="sequence"`` trains the touching-digits sequence model)."""
    from digitctl.training import train_model

    return train_model(
        _settings(settings, overrides), progress=progress, resume=resume, save_format=save_format
    )


def evaluate(
    model: ModelPath = None,
    *,
    settings: Settings | None = None,
    progress: Progress | None = None,
    **overrides: Any,
) -> Evaluation:
    """Evaluate a Keras model on the MNIST test set, as ``digitctl evaluate`` does."""
    from digitctl.evaluation import evaluate_model

    return evaluate_model(_settings(settings, overrides), _path(model), progress=progress)
