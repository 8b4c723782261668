"""Model resolution and safe loading of untrusted .keras files."""

from __future__ import annotations

from pathlib import Path

import pytest

from digitctl import modelfiles
from digitctl.config import Settings
from digitctl.errors import ModelError


@pytest.fixture(scope="module")
def lambda_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)  # Python code stored in the file
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(x))
    path = tmp_path_factory.mktemp("models") / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    return path


def test_a_lambda_model_is_refused_with_a_clear_error(lambda_model_path: Path) -> None:
    with pytest.raises(ModelError, match=r"refused to load .*Lambda.*--unsafe-load"):
        modelfiles.load_keras_model(lambda_model_path)


def test_unsafe_load_opens_it_when_asked(lambda_model_path: Path) -> None:
    model = modelfiles.load_keras_model(lambda_model_path, unsafe=True)
    assert model.output_shape == (None, 10)


def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.keras"
    fake.write_bytes(b"this is not a zip file")
    with pytest.raises(ModelError, match="cannot load model"):
        modelfiles.load_keras_model(fake)


def test_resolution_prefers_flag_then_workspace_then_bundled(tmp_path: Path) -> None:
    settings = Settings(workspace=tmp_path)
    assert modelfiles.bundled_model_path().is_file()  # the package always ships one
    assert modelfiles.resolve_model_path(settings) == modelfiles.bundled_model_path()
    workspace_model = modelfiles.workspace_model_path(settings)
    workspace_model.parent.mkdir(parents=True)
    workspace_model.write_bytes(b"x")
    assert modelfiles.resolve_model_path(settings) == workspace_model
    chosen = tmp_path / "other.keras"
    chosen.write_bytes(b"x")
    assert modelfiles.resolve_model_path(settings, chosen) == chosen
    with pytest.raises(ModelError, match="does not exist"):
        modelfiles.resolve_model_path(settings, tmp_path / "missing.keras")
