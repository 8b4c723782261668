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
    load it. ``debug`` keeps that
    logging on. A value the user already set is never replaced.
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
