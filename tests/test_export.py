"""Exports: LiteRT (what train writes), ONNX and SavedModel, each checked against Keras."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import realistic_images as ri
from PIL import Image
from test_predict import build_template_model
from typer.testing import CliRunner

from digitctl import export
from digitctl.cli import app
from digitctl.errors import ModelError
from digitctl.imaging import to_mnist


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template_model(tmp_path_factory.mktemp("export") / "digits.keras")


@pytest.fixture(scope="module")
def x_test() -> np.ndarray:
    """Views of drawn digits plus noisy variants: inputs where the top digit varies."""
    rng = np.random.default_rng(0)
    views = [
        to_mnist(Image.fromarray((ri.draw_digit(d) * 255).astype(np.uint8)))
        for d in (0, 1, 3, 4, 7)
    ]
    noisy = [np.clip(v + rng.normal(0, 0.3, v.shape), 0, 1) for v in views for _ in range(10)]
    return np.stack(views + noisy).astype(np.float32)[..., None]


def test_write_lite_export_on_a_freshly_loaded_model(
    keras_file: Path, tmp_path: Path, x_test: np.ndarray
) -> None:
    import keras

    model = keras.saving.load_model(keras_file)  # never called: Keras refuses to export it
    target = export.write_lite_export(model, tmp_path / "out" / "digits.tflite")
    assert target == tmp_path / "out" / "digits.tflite" and target.stat().st_size > 0
    assert sorted(p.name for p in target.parent.iterdir()) == ["digits.tflite"]  # no temp files
    agreement, max_diff = export.check_agreement("tflite", target, model, x_test)
    assert agreement == 1.0 and max_diff < 1e-4


def test_a_failed_export_leaves_nothing_behind(
    keras_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras

    model = keras.saving.load_model(keras_file)

    def broken(*args: object, **kwargs: object) -> None:
        Path(args[0]).write_bytes(b"half a flatbuffer")
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(model, "export", broken)
    with pytest.raises(ModelError, match="converter crashed"):
        export.write_lite_export(model, tmp_path / "digits.tflite")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "savedmodel"])
def test_each_format_agrees_with_keras(
    fmt: str, keras_file: Path, tmp_path: Path, x_test: np.ndarray
) -> None:
    model = Path(tmp_path / "m.keras")
    model.write_bytes(keras_file.read_bytes())
    result = export.export_model(model, fmt, x_test=x_test)
    assert result.path == export.export_path_for(model, fmt) and result.path.exists()
    assert result.agreement == 1.0 and result.images == len(x_test)
    assert result.max_abs_diff < 1e-4 and result.size_bytes > 1000


def test_disagreement_is_an_error(
    keras_file: Path, tmp_path: Path, x_test: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    def wrong_runner(path: Path):
        return lambda x: np.roll(np.eye(10, dtype=np.float32)[np.zeros(len(x), int)], 3, axis=1)

    monkeypatch.setitem(export._RUNNERS, "tflite", wrong_runner)
    model = Path(tmp_path / "m.keras")
    model.write_bytes(keras_file.read_bytes())
    with pytest.raises(ModelError, match=r"agrees with the Keras model on only"):
        export.export_model(model, "tflite", x_test=x_test)


def test_export_needs_a_keras_file(tmp_path: Path, x_test: np.ndarray) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(b"x")
    with pytest.raises(ModelError, match="not a Keras model"):
        export.export_model(path, "onnx", x_test=x_test)


def test_export_command_checks_on_the_test_set(
    keras_file: Path, cli_args: list[str], mnist_mirror: Path, workspace: Path
) -> None:
    model = workspace / "digits.keras"
    model.write_bytes(keras_file.read_bytes())
    result = CliRunner().invoke(
        app,
        [
            *cli_args,
            "export",
            "--model",
            str(model),
            "--limit",
            "40",
            "--mirror",
            str(mnist_mirror),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["images"] == 40 and document["agreement"] == 1.0
    assert (
        Path(document["path"]) == model.with_suffix(".tflite")
        and model.with_suffix(".tflite").exists()
    )


def test_export_command_rejects_unknown_formats() -> None:
    result = CliRunner().invoke(app, ["export", "--format", "pickle"])
    assert result.exit_code == 2
