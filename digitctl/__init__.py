"""digitctl: handwritten-digit recognition from the command line, and from Python.

Importing this package is cheap: no TensorFlow, no NumPy. ``load_model``, ``read``,
``train`` and ``evaluate`` (:mod:`digitctl.api`) are loaded when first used, and they
import the heavy libraries they need then.
"""

from typing import Any

from digitctl.config import Settings, load_settings
from digitctl.errors import DigitctlError

__version__ = "0.1.0"

_API = ("evaluate", "finetune", "load_model", "read", "read_many", "train")


def __getattr__(name: str) -> Any:
    # Loaded on first use: importing digitctl stays free of TensorFlow and NumPy.
    if name == "finetune":
        from digitctl.finetuning import finetune

        return finetune
    if name in _API:
        from digitctl import api

        return getattr(api, name)
    raise AttributeError(f"module 'digitctl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = ["DigitctlError", "Settings", "__version__", "load_settings", *_API]
