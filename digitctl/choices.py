"""The closed sets of names digitctl accepts, one home each (Typer shows them as choices).

Each is a ``StrEnum``: a member *is* its string, so settings, JSON and file names keep
plain text, and :func:`choose` turns text from a file, the environment or Python into a
member or one clear error.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from digitctl.errors import ConfigError


class RecipeName(StrEnum):
    """Training recipes (the CNNs': :data:`digitctl.model.RECIPES`; ``sequence`` trains the
    touching-digits sequence model instead, :mod:`digitctl.sequence`; ``reader`` the line
    reader, :mod:`digitctl.reader_training`)."""

    BEST = "best"
    FAST = "fast"
    ROBUST = "robust"
    SEQUENCE = "sequence"
    READER = "reader"


class ReaderName(StrEnum):
    """How ``predict`` reads an image: ``rules`` (the layout rules and the digit
    classifier, :mod:`digitctl.reading`) or ``line`` (the line reader, a CTC model that
    reads each line whole, :mod:`digitctl.linereading`)."""

    RULES = "rules"
    LINE = "line"


class Strategy(StrEnum):
    """Distribution strategies of ``digitctl train`` (see :mod:`digitctl.distribute`)."""

    DEFAULT = "default"
    MIRRORED = "mirrored"
    MULTI_WORKER = "multi-worker"


class SaveFormat(StrEnum):
    """Files ``train`` writes: ``keras`` always, ``h5`` the legacy file as well."""

    KERAS = "keras"
    H5 = "h5"


class Engine(StrEnum):
    """Where ``predict --out`` reads a batch (see :mod:`digitctl.batch`)."""

    LOCAL = "local"
    DASK = "dask"


class ExportFormat(StrEnum):
    """Formats of ``digitctl export``."""

    TFLITE = "tflite"
    ONNX = "onnx"
    SAVEDMODEL = "savedmodel"


E = TypeVar("E", bound=StrEnum)


def names(kind: type[StrEnum]) -> str:
    return ", ".join(member.value for member in kind)


def choose(kind: type[E], value: str, what: str) -> E:
    """``value`` as a member of ``kind``, or a ConfigError (a usage error, exit 2)."""
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"unknown {what} {value!r}; choose one of {names(kind)}") from None
