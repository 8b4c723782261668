"""Shared fixtures: tiny MNIST-format data built on the fly, clean environment."""

from __future__ import annotations

import gzip
import os
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from digitctl.config import Settings
from digitctl.ui import reset_consoles

# A test run started from a script's background job inherits SIGINT as *ignored*, and so
# would every process the tests start: then the Ctrl-C tests (train, serve) send a SIGINT
# nobody receives. A handler here (reset to the default on exec) gives children the
# disposition a terminal gives them.
signal.signal(signal.SIGINT, signal.default_int_handler)


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an (uncompressed) IDX file."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


def write_idx_gz(path: Path, array: np.ndarray) -> Path:
    path.write_bytes(gzip.compress(idx_bytes(array), mtime=0))
    return path


def render_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Digit-like 28×28 images (white glyphs on black, randomly placed) and their labels.

    Rendered from Pillow's built-in font, so a small network can learn them: fixtures
    that train produce a model whose answers mean something.
    """
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    font = ImageFont.load_default(size=18)
    labels = np.arange(count, dtype=np.uint8) % 10
    rng.shuffle(labels)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    for index, label in enumerate(labels):
        canvas = Image.new("L", (28, 28), 0)
        dx, dy = rng.integers(-2, 3, size=2)
        ImageDraw.Draw(canvas).text((9 + dx, 3 + dy), str(int(label)), fill=255, font=font)
        noise = rng.integers(0, 30, size=(28, 28))
        images[index] = np.clip(np.asarray(canvas, dtype=np.int32) + noise * (noise > 25), 0, 255)
    return images, labels


def build_mnist_folder(folder: Path, n_train: int = 400, n_test: int = 100) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = render_digits(n_train, seed=1)
    test_x, test_y = render_digits(n_test, seed=2)
    write_idx_gz(folder / "train-images-idx3-ubyte.gz", train_x)
    write_idx_gz(folder / "train-labels-idx1-ubyte.gz", train_y)
    write_idx_gz(folder / "t10k-images-idx3-ubyte.gz", test_x)
    write_idx_gz(folder / "t10k-labels-idx1-ubyte.gz", test_y)
    return folder


@pytest.fixture(scope="session")
def mnist_mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding four tiny MNIST-format .gz files (400 train, 100 test images)."""
    return build_mnist_folder(tmp_path_factory.mktemp("mnist-mirror"))


@pytest.fixture(scope="session")
def tiny_lite_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 28×28 → 10 softmax model (.keras) with its LiteRT export beside it."""
    import keras

    from digitctl.export import write_lite_export

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")]
    )
    path = tmp_path_factory.mktemp("tiny-model") / "tiny.keras"
    model.save(path)
    write_lite_export(model, path.with_suffix(".tflite"))
    return path


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace that is also the working directory."""
    path = tmp_path / "workspace"
    path.mkdir()
    monkeypatch.chdir(path)
    return path


@pytest.fixture
def fixture_settings(workspace: Path, mnist_mirror: Path) -> Settings:
    """Settings for a workspace whose data comes from the tiny fixture mirror."""
    return Settings(workspace=workspace, cache_dir=workspace / "cache", mirror=str(mnist_mirror))


@pytest.fixture
def cli_args(workspace: Path, mnist_mirror: Path) -> list[str]:
    """Top-level CLI options pointing the workspace and cache at tmp folders."""
    return ["--workspace", str(workspace), "--cache-dir", str(workspace / "cache")]


@pytest.fixture(autouse=True, scope="session")
def _suite_variables_hidden() -> Iterator[None]:
    """The suite's own switches (DIGITCTL_REQUIRE_BROWSER, DIGITCTL_TEST_MNIST, ...: read
    by the test modules at import) are not settings: digitctl would refuse them as
    unknown, so no process the tests start may see them."""
    saved = {key: os.environ.pop(key) for key in list(os.environ) if key.startswith("DIGITCTL_")}
    yield
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own DIGITCTL_* variables must not leak into the tests.
    for key in list(os.environ):
        if key.startswith("DIGITCTL_"):
            monkeypatch.delenv(key, raising=False)
    reset_consoles()
