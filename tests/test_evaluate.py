"""Evaluation: exact metrics for a model whose answers are known, every artifact written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from digitctl.cli import app
from digitctl.evaluation import compute_metrics

# The constant model below answers these probabilities for every image: always "3",
# with 60% confidence.
CONSTANT = np.array([0.02, 0.05, 0.05, 0.60, 0.04, 0.04, 0.05, 0.05, 0.05, 0.05])


def constant_model(path: Path) -> Path:
    """A Keras model that ignores its input and outputs ``CONSTANT``: zero weights, and
    biases equal to the log-probabilities so that softmax gives them back."""
    import keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    kernel, _ = model.layers[-1].get_weights()
    model.layers[-1].set_weights([np.zeros_like(kernel), np.log(CONSTANT).astype(np.float32)])
    model.save(path)
    return path


def fixture_test_labels(mirror: Path) -> np.ndarray:
    import gzip

    with gzip.open(mirror / "t10k-labels-idx1-ubyte.gz") as handle:
        return np.frombuffer(handle.read(), np.uint8, offset=8)


def test_evaluate_writes_every_artifact_with_exact_metrics(
    cli_args: list[str], mnist_mirror: Path, workspace: Path
) -> None:
    model = constant_model(workspace / "constant.keras")
    labels = fixture_test_labels(mnist_mirror)
    result = CliRunner().invoke(
        app, [*cli_args, "evaluate", "--mirror", str(mnist_mirror), "--model", str(model), "--json"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)  # stdout holds the JSON document and nothing else

    expected_accuracy = float(np.mean(labels == 3))
    expected_loss = float(-np.mean(np.log(CONSTANT[labels])))
    assert metrics["images"] == len(labels) == 100
    assert metrics["accuracy"] == pytest.approx(expected_accuracy, abs=1e-12)
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert metrics["errors"] == int(np.sum(labels != 3))
    confusion = np.array(metrics["confusion_matrix"])
    expected_confusion = np.zeros((10, 10), int)
    expected_confusion[:, 3] = np.bincount(labels, minlength=10)
    np.testing.assert_array_equal(confusion, expected_confusion)
    report = metrics["classification_report"]
    assert report["3"]["recall"] == 1.0
    assert report["3"]["precision"] == pytest.approx(expected_accuracy)
    assert report["7"]["recall"] == 0.0 and report["7"]["support"] == int(np.sum(labels == 7))

    artifacts = workspace / "artifacts"
    for name in ("metrics.json", "confusion_matrix.png", "misclassified_example.png"):
        assert (artifacts / name).is_file() and (artifacts / name).stat().st_size > 0, name
    assert json.loads((artifacts / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    # The figures land in the model's card too, where predict and the app read them.
    from digitctl.modelfiles import read_card

    card = read_card(model)
    assert card is not None and metrics["card"] == str(workspace / "constant_card.json")
    assert card.metric("test_accuracy") == metrics["accuracy"] and card.metric("test_images") == 100
    assert card.evaluation["confusion_matrix"] == metrics["confusion_matrix"]


def test_evaluate_prints_accuracy_loss_and_the_report(
    cli_args: list[str], mnist_mirror: Path, workspace: Path
) -> None:
    model = constant_model(workspace / "constant.keras")
    plain = CliRunner().invoke(
        app, [*cli_args, "evaluate", "--mirror", str(mnist_mirror), "--model", str(model)]
    )
    assert plain.exit_code == 0, plain.output
    labels = fixture_test_labels(mnist_mirror)
    assert f"{np.mean(labels == 3):.4%}" in plain.stdout and "loss" in plain.stdout
    assert "Classification report" not in plain.stdout

    detailed = CliRunner().invoke(
        app,
        [*cli_args, "evaluate", "--mirror", str(mnist_mirror), "--model", str(model), "--report"],
    )
    assert detailed.exit_code == 0, detailed.output
    assert "Classification report" in detailed.stdout
    assert "Confusion matrix" in detailed.stdout and "weighted avg" in detailed.stdout


def test_evaluate_uses_the_workspace_model_by_default(
    cli_args: list[str], mnist_mirror: Path, workspace: Path
) -> None:
    (workspace / "models").mkdir()
    constant_model(workspace / "models" / "best_model.keras")
    result = CliRunner().invoke(
        app, [*cli_args, "evaluate", "--mirror", str(mnist_mirror), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"].endswith("best_model.keras")


def test_evaluate_refuses_a_lambda_model_unless_unsafe_load(
    cli_args: list[str], mnist_mirror: Path, workspace: Path
) -> None:
    import keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Lambda(lambda t: t * 1.0)(inputs)
    x = keras.layers.Flatten()(x)
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x)).save(
        workspace / "lambda.keras"
    )
    args = [
        *cli_args,
        "evaluate",
        "--mirror",
        str(mnist_mirror),
        "--model",
        str(workspace / "lambda.keras"),
        "--json",
    ]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1 and "unsafe-load" in refused.output
    allowed = CliRunner().invoke(app, [*args, "--unsafe-load"])
    assert allowed.exit_code == 0, allowed.output


def test_evaluate_with_a_missing_model_says_so(cli_args: list[str], mnist_mirror: Path) -> None:
    result = CliRunner().invoke(app, [*cli_args, "evaluate", "--model", "nowhere.keras"])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_compute_metrics_on_hand_made_probabilities() -> None:
    probabilities = np.full((4, 10), 0.01)
    # Answers 0, 1, 2 and 2 with confidence 0.91; the last one is wrong (true 3).
    for row, digit in enumerate([0, 1, 2, 2]):
        probabilities[row, digit] = 0.91
    labels = np.array([0, 1, 2, 3])
    metrics = compute_metrics(probabilities, labels)
    assert metrics["accuracy"] == 0.75
    assert metrics["loss"] == pytest.approx(-(3 * np.log(0.91) + np.log(0.01)) / 4)
    assert metrics["confusion"][3, 2] == 1 and np.trace(metrics["confusion"]) == 3
    assert metrics["report"]["2"]["precision"] == 0.5


def test_compute_metrics_rejects_outputs_that_are_not_ten_classes() -> None:
    from digitctl.errors import ModelError

    with pytest.raises(ModelError, match="expected"):
        compute_metrics(np.zeros((4, 3)), np.array([0, 1, 2, 0]))
