"""Fuzz-style robustness: a few hundred mutated image files through the preprocessing
function and through ``digitctl predict``. Every input must end in a result or a clear
error (an ImageError / a JSON ``error``), never a traceback, never a hang."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import realistic_images as ri
from PIL import Image

from digitctl.errors import ImageError
from digitctl.imaging import to_mnist

# Generous: a decode of a hostile header must be refused, not ground through.
SECONDS_PER_INPUT = 10
HEADERS = [
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    b"GIF89a",
    b"BM",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"II*\x00",
]


def _seed_images() -> list[bytes]:
    rng = np.random.default_rng(11)
    seeds = [ri.render(style, ri.draw_digit(7), rng) for style in ("canvas", "paper", "scan")]
    digit = Image.fromarray((ri.draw_digit(3) * 255).astype(np.uint8), "L")
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"):
        buffer = io.BytesIO()
        digit.convert("RGB" if fmt == "JPEG" else "L").save(buffer, format=fmt)
        seeds.append(buffer.getvalue())
    return seeds


def mutated_inputs(count: int = 300, seed: int = 5) -> list[bytes]:
    """Bit flips, truncations, and random bytes behind real image headers."""
    rng = np.random.default_rng(seed)
    seeds = _seed_images()
    cases: list[bytes] = []
    while len(cases) < count:
        kind = len(cases) % 3
        if kind == 0:
            data = bytearray(seeds[rng.integers(len(seeds))])
            for position in rng.integers(0, len(data), size=int(rng.integers(1, 40))):
                data[position] ^= 1 << int(rng.integers(8))
            cases.append(bytes(data))
        elif kind == 1:
            data = seeds[rng.integers(len(seeds))]
            cases.append(data[: int(rng.integers(0, len(data)))])
        else:
            header = HEADERS[rng.integers(len(HEADERS))]
            cases.append(header + rng.bytes(int(rng.integers(0, 3000))))
    return cases


@contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_preprocessing_answers_or_refuses_every_mutated_file() -> None:
    outcomes = {"view": 0, "error": 0}
    for index, data in enumerate(mutated_inputs()):
        with _deadline(SECONDS_PER_INPUT):
            try:
                view = to_mnist(data)
            except ImageError as exc:
                assert str(exc).strip() and "\n" not in str(exc), f"case {index}: {exc!r}"
                outcomes["error"] += 1
            else:
                assert view.shape == (28, 28) and view.dtype == np.float32, f"case {index}"
                assert np.isfinite(view).all() and 0 <= view.min() and view.max() <= 1
                outcomes["view"] += 1
    # Both outcomes must occur, or the mutations are not testing anything.
    assert outcomes["view"] > 10 and outcomes["error"] > 100, outcomes


def test_predict_cli_answers_every_mutated_file_in_one_run(
    tmp_path: Path, tiny_lite_model: Path
) -> None:
    folder = tmp_path / "fuzz"
    folder.mkdir()
    extensions = ["png", "jpg", "gif", "bmp", "webp", "tif"]
    cases = mutated_inputs(count=240, seed=9)
    for index, data in enumerate(cases):
        (folder / f"case{index:03d}.{extensions[index % len(extensions)]}").write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-m", "digitctl", "predict", "--json", "--model", str(tiny_lite_model),
         str(folder)],
        capture_output=True,
        text=True,
        timeout=len(cases) * SECONDS_PER_INPUT,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(cases)
    for line in lines:
        record = json.loads(line)
        if record["error"] is not None:
            assert record["label"] is None and record["error"].strip()
        elif record["label"] is not None:  # one digit read
            assert 0 <= record["label"] <= 9 and len(record["probabilities"]) == 10
            assert record["text"] == str(record["label"])
        else:  # several digits, or an answer that it is no digit
            assert len(record["text"]) != 1 and record["status"] in ("ok", "not_a_digit")
            assert (record["status"] == "ok") == bool(record["text"])
