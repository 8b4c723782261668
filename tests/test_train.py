"""Training: one epoch on the tiny fixture, its files, the model card, Ctrl-C and --resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from digitctl.cli import app
from digitctl.config import Settings
from digitctl.model import RECIPES, build_and_compile, get_recipe
from digitctl.training import resolve_plan

# Small and quick: the fast recipe's network, 200 images, batches of 50.
QUICK = ["--recipe", "fast", "--limit", "200", "--batch-size", "50"]


def _train(cli_args: list[str], mirror: Path, *extra: str) -> object:
    return CliRunner().invoke(app, [*cli_args, "train", "--mirror", str(mirror), *QUICK, *extra])


def test_one_epoch_writes_model_history_curves_and_run_record(
    cli_args: list[str], mnist_mirror: Path, workspace: Path
) -> None:
    result = _train(
        cli_args, mnist_mirror, "--epochs", "1", "--augment", "--format", "h5", "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["epochs_run"] == 1 and summary["best_epoch"] == 1
    assert summary["plan"]["augment"] is True and summary["train_images"] == 200

    models, artifacts = workspace / "models", workspace / "artifacts"
    for path in (
        models / "best_model.keras",
        models / "best_model.h5",
        artifacts / "training_history.png",
        artifacts / "augmented_sample.png",
    ):
        assert path.is_file() and path.stat().st_size > 0, path
    history = json.loads((artifacts / "history.json").read_text())
    assert history["epochs"] == [1] and len(history["val_accuracy"]) == 1
    assert 0.0 <= history["val_accuracy"][0] <= 1.0 and history["loss"][0] > 0

    card = json.loads((models / "best_model_card.json").read_text())
    assert card["schema"] == 2 and card["name"] == "best_model"
    assert card["files"] == {"keras": "best_model.keras", "h5": "best_model.h5",
                             "tflite": "best_model.tflite"}  # fmt: skip
    record = card["training"]
    assert record["plan"]["epochs"] == 1 and record["plan"]["recipe"] == "fast"
    assert len(record["data"]["fingerprint"]) == 64 and record["data"]["train_images"] == 200
    assert record["data"]["validation_images"] == 40  # 10% of the 400 fixture images
    assert {"tensorflow", "keras", "python", "digitctl"} <= set(record["versions"])
    assert record["timings"]["train_seconds"] > 0
    assert card["metrics"]["val_accuracy"] == pytest.approx(history["val_accuracy"][0])
    # A finished run leaves nothing to resume and no large checkpoint behind.
    assert not (models / "last_checkpoint.keras").exists()
    assert json.loads((models / "train_state.json").read_text())["finished"] is True

    from digitctl.modelfiles import load_keras_model

    model = load_keras_model(models / "best_model.keras")  # safe_mode, no optimizer
    probabilities = np.asarray(model(np.zeros((3, 28, 28, 1), np.float32)))
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_fast_recipe_learns_the_fixture_digits(
    cli_args: list[str], mnist_mirror: Path, workspace: Path
) -> None:
    # The fixture digits are rendered from a font: 8 short epochs must do far better
    # than chance (10%), or the pipeline is broken (labels shuffled apart from images...).
    result = CliRunner().invoke(
        app,
        [
            *cli_args,
            "train",
            "--mirror",
            str(mnist_mirror),
            "--recipe",
            "fast",
            "--epochs",
            "6",
            "--batch-size",
            "16",
            "--learning-rate",
            "0.01",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["best"]["val_accuracy"] >= 0.5


def test_interrupt_keeps_best_model_and_resume_continues(
    cli_args: list[str], mnist_mirror: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras

    from digitctl import training

    class CtrlCAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            raise KeyboardInterrupt

    original = training._make_callbacks
    monkeypatch.setattr(
        training, "_make_callbacks", lambda run: [*original(run), CtrlCAfterFirstEpoch()]
    )
    interrupted = _train(cli_args, mnist_mirror, "--epochs", "3")
    assert interrupted.exit_code == 130
    assert "digitctl train --resume" in interrupted.output
    models = workspace / "models"
    assert (models / "best_model.keras").is_file()
    assert (models / "last_checkpoint.keras").is_file()
    state = json.loads((models / "train_state.json").read_text())
    assert state["epochs_done"] == 1 and state["finished"] is False

    monkeypatch.setattr(training, "_make_callbacks", original)
    # A flag asking for a different run is refused, not silently ignored.
    changed = CliRunner().invoke(
        app, [*cli_args, "train", "--mirror", str(mnist_mirror), "--resume", "--epochs", "5"]
    )
    assert changed.exit_code == 1 and "Traceback" not in changed.output
    assert "cannot resume with different training settings: epochs 5" in changed.output
    assert (models / "last_checkpoint.keras").is_file()  # still resumable
    # Flags of the original run need not be repeated: the saved plan is used.
    resumed = CliRunner().invoke(
        app, [*cli_args, "train", "--mirror", str(mnist_mirror), "--resume", "--json"]
    )
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout)
    assert summary["resumed_from"] == 1 and summary["epochs_run"] == 3
    assert summary["plan"]["limit"] == 200 and summary["plan"]["recipe"] == "fast"
    history = json.loads((workspace / "artifacts" / "history.json").read_text())
    assert history["epochs"] == [1, 2, 3] and len(history["loss"]) == 3
    # The learning-rate schedule continued rather than restarting its warm-up.
    assert history["learning_rate"][1] != pytest.approx(history["learning_rate"][0])

    again = CliRunner().invoke(app, [*cli_args, "train", "--mirror", str(mnist_mirror), "--resume"])
    assert again.exit_code == 1 and "nothing to resume" in again.output


def test_resume_without_an_interrupted_run_says_what_to_do(
    cli_args: list[str], mnist_mirror: Path
) -> None:
    result = _train(cli_args, mnist_mirror, "--resume")
    assert result.exit_code == 1
    assert "nothing to resume" in result.output and "without --resume" in result.output


def test_unknown_format_is_a_usage_error(cli_args: list[str], mnist_mirror: Path) -> None:
    result = _train(cli_args, mnist_mirror, "--format", "pickle")
    assert result.exit_code == 2 and "'pickle' is not one of" in result.output
    # The library refuses it the same way: a usage (configuration) error.
    from digitctl.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown format 'pickle'; choose one of keras, h5"):
        resolve_plan(Settings(), save_format="pickle")


def test_plan_takes_recipe_values_unless_settings_override_them() -> None:
    fast = resolve_plan(Settings(recipe="fast"))
    assert (fast.epochs, fast.batch_size, fast.augment) == (2, 256, False)
    best = resolve_plan(Settings())
    assert best.recipe == "best" and best.augment is True and best.epochs == RECIPES["best"].epochs
    # An explicit --augment beats the recipe's default; so do the other flags.
    forced = resolve_plan(
        Settings().with_overrides(recipe="fast", augment=True, epochs=5, learning_rate=0.02)
    )
    assert (forced.augment, forced.epochs, forced.learning_rate) == (True, 5, 0.02)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipes_build_and_compile_a_softmax_classifier(name: str) -> None:
    model = build_and_compile(name, total_steps=10, seed=0)
    # Ten digits, and "not a digit" for the robust recipe.
    assert model.output_shape == (None, 11 if name == "robust" else 10)
    assert model.optimizer is not None
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"Conv2D", "BatchNormalization", "MaxPooling2D", "Dense"} <= kinds


def test_unknown_recipe_is_a_config_error() -> None:
    from digitctl.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown recipe"):
        get_recipe("slowest")


REAL_MNIST = Path(
    os.environ.get("DIGITCTL_TEST_MNIST")
    or Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
)


@pytest.mark.slow
@pytest.mark.skipif(
    not (REAL_MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason="real MNIST not found (set DIGITCTL_TEST_MNIST to its folder)",
)
def test_fast_recipe_reaches_99_percent_on_real_mnist(cli_args: list[str]) -> None:
    mirror = str(REAL_MNIST.resolve())  # absolute: the workspace fixture changes directory
    trained = CliRunner().invoke(
        app, [*cli_args, "train", "--mirror", mirror, "--recipe", "fast", "--json"]
    )
    assert trained.exit_code == 0, trained.output
    evaluated = CliRunner().invoke(app, [*cli_args, "evaluate", "--mirror", mirror, "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["accuracy"] >= 0.99


def test_the_training_pipeline_gives_the_float_images_from_their_uint8_values() -> None:
    # The images are kept as uint8 (a quarter of the memory) and scaled back in the
    # pipeline: every batch must hold exactly the float32 values preprocess wrote.
    from digitctl.training import _as_uint8, training_dataset, validation_dataset

    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(50, 28, 28, 1), dtype=np.uint8)
    x = raw.astype(np.float32) / np.float32(255.0)
    y = rng.integers(0, 10, size=50).astype(np.uint8)
    assert np.array_equal(_as_uint8(x), raw)
    assert _as_uint8(x * 0.5) is None  # not scaled from uint8: kept as float32
    seen = []
    for images, labels in training_dataset(raw, y, 16, seed=1, augmenter=None).take(4):
        images, labels = images.numpy(), labels.numpy()
        assert images.dtype == np.float32 and images.shape[1:] == (28, 28, 1)
        for image, label in zip(images, labels, strict=True):
            index = int(np.flatnonzero((x == image).all(axis=(1, 2, 3)))[0])
            assert y[index] == label
            seen.append(index)
    assert len(set(seen[:50])) == 50  # one epoch: every image once
    batches = list(validation_dataset(x, y, 16))
    assert [len(b[0]) for b in batches] == [16, 16, 16, 2]
    assert np.array_equal(np.concatenate([b[0].numpy() for b in batches]), x)
