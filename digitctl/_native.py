"""Keeping native libraries' start-up chatter off the user's terminal.

TensorFlow 2.21 logs through absl before its own log level applies, so
``TF_CPP_MIN_LOG_LEVEL`` does not hide lines like "oneDNN custom operations are on" or
"failed call to cuInit". They are written by C++ straight to file descriptor 2, so the
only way to hide them is to point fd 2 elsewhere while TensorFlow starts.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send what native code writes to fd 2 to /dev/null for the duration of the block."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters, some runners)
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load_tensorflow(debug: bool = False) -> Any:
    """Import TensorFlow and Keras and initialise the devices, quietly; return ``keras``.

    Idempotent and cheap after the first call. Call it before the first TensorFlow work
    of a command so that the start-up lines never reach the terminal; ``debug``
    (``settings.debug``, ``digitctl --debug``) lets them through.
    """
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return sys.modules["keras"]
    context = contextlib.nullcontext() if debug else native_stderr_silenced()
    with context:
        import keras
        import tensorflow as tf

        # Device discovery is where the CUDA probe logs its error on CPU-only machines.
        tf.config.list_physical_devices()
    return keras
