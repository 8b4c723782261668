"""Process-wide tuning for running digitctl as a program: the one place that sets it.

``digitctl`` (the CLI) and the bundled app call :func:`tune_process` before they start
work; a Python program using the library may call it too. The library itself never
changes the process environment, and plots never select a matplotlib backend for whoever
imports them (they draw on the Agg canvas of their own figures).
"""

from __future__ import annotations

import os
import sys


def tune_process(*, predicting: bool = False, debug: bool = False) -> None:
    """Environment defaults that only take effect when set before the libraries load.

    ``predicting``: a short, mostly single-image run (``predict``, the app). OpenBLAS
    then starts one thread, not one per core that spin after each call (preprocessing's
    tiny solves gain nothing from them: 0.12 s of CPU per run, measured), OpenCV runs on
    one thread, and TensorFlow's C++ logging stays at errors should the Keras fallback
    load it, and freed memory is kept for reuse (:func:`keep_freed_memory`). ``debug``
    keeps that logging on. A value the user already set is never replaced.
    """
    if not predicting:
        return
    if "numpy" not in sys.modules:  # OpenBLAS reads it once, when numpy loads
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if not debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # OpenCV's own thread pool: the layout stage works on images of a few hundred pixels,
    # where waking threads costs more than it saves, and big batches run one process per
    # core anyway (digitctl.inference.preprocess_workers).
    import cv2

    cv2.setNumThreads(1)
    keep_freed_memory()


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEPT_BYTES = 64 << 20
_KEEPING = False


def keep_freed_memory() -> None:
    """Let glibc's malloc reuse freed memory instead of returning it to the system.

    Reading an image allocates and frees a few dozen arrays of 0.1–1 MB. By default
    glibc serves each from fresh mmap'd pages (or trims the heap after freeing it), so
    every image costs hundreds of page faults: 0.5 million over 1,000 photos, a sixth of
    the batch's CPU time. With arrays up to 64 MB served from the heap, and up to 128 MB
    of free heap kept rather than trimmed, the same memory is reused. Only for processes
    digitctl owns (the CLI, the app, the worker processes that read big batches); a no-op
    where malloc is not glibc's.
    """
    global _KEEPING
    if _KEEPING or not sys.platform.startswith("linux"):
        return
    _KEEPING = True
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_TRIM_THRESHOLD, 2 * _KEPT_BYTES)
    mallopt(_M_MMAP_THRESHOLD, _KEPT_BYTES)
