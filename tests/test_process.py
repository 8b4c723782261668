"""Process tuning: freed memory kept for reuse in the processes digitctl owns."""

from __future__ import annotations

import sys

import pytest

import digitctl.process as process


class _FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_raises_the_mmap_and_trim_thresholds_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ctypes

    libc = _FakeLibc()
    monkeypatch.setattr(ctypes, "CDLL", lambda name: libc)
    monkeypatch.setattr(process, "_KEEPING", False)
    process.keep_freed_memory()
    process.keep_freed_memory()
    assert libc.calls == [(-1, 128 << 20), (-3, 64 << 20)]  # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD


def test_keep_freed_memory_is_harmless_without_mallopt(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes

    monkeypatch.setattr(ctypes, "CDLL", lambda name: object())  # a libc without mallopt
    monkeypatch.setattr(process, "_KEEPING", False)
    process.keep_freed_memory()  # no error


def test_predicting_processes_and_workers_keep_freed_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cv2

    from digitctl import inference

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # so that tune_process changes no variable
    threads = cv2.getNumThreads()
    calls: list[str] = []
    monkeypatch.setattr(process, "keep_freed_memory", lambda: calls.append("kept"))
    process.tune_process(predicting=False)
    assert calls == []
    try:
        process.tune_process(predicting=True)
    finally:
        cv2.setNumThreads(threads)
    assert calls == ["kept"]
    inference._worker_start(lambda: calls.append("then"))
    assert calls == ["kept", "kept", "then"]
