"""`digitctl finetune`: the refusal rules, installing, Ctrl-C, JSON, with a tiny model.

The model here is a one-convolution network pre-trained for a moment on the shipped
MNIST replay set, so a whole fine-tuning run (LiteRT export included) takes seconds.
The corrections are Pillow-font digits (tests/conftest.py's ``render_digits``).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import render_digits
from PIL import Image
from typer.testing import CliRunner

from digitctl import finetuning as ft
from digitctl.cli import app
from digitctl.config import Settings
from digitctl.errors import DigitctlError, TrainingInterrupted
from digitctl.feedback import FeedbackStore

CORRECTED = (2, 5, 7)


def tiny_model(classes: int) -> object:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, strides=2, use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, strides=2)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    replay = ft.load_replay(ft.REPLAY_PATH)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(replay.x_train[:1500], replay.y_train[:1500], epochs=1, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """A 10-output and an 11-output tiny model, each a .keras with its LiteRT export."""
    from digitctl.export import write_lite_export

    folder = tmp_path_factory.mktemp("tiny-finetune")
    paths = {}
    for classes in (10, 11):
        model = tiny_model(classes)
        path = folder / f"tiny{classes}.keras"
        model.save(path)
        write_lite_export(model, path.with_suffix(".tflite"))
        paths[classes] = path
    return paths


def install_as_workspace_model(source: Path, settings: Settings) -> Path:
    models = settings.models_path
    models.mkdir(parents=True, exist_ok=True)
    target = models / "best_model.keras"
    shutil.copy(source, target)
    shutil.copy(source.with_suffix(".tflite"), models / "best_model.tflite")
    return target


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).resize((84, 84)).save(buffer, format="PNG")
    return buffer.getvalue()


def add_corrections(settings: Settings, per_digit: int = 10, digits=CORRECTED) -> None:  # noqa: ANN001
    images, labels = render_digits(400, seed=7)
    store = FeedbackStore.for_settings(settings)
    for digit in digits:
        for image in images[labels == digit][:per_digit]:
            store.add(png(image), digit)


@pytest.fixture
def settings(workspace: Path) -> Settings:
    return Settings(workspace=workspace, cache_dir=workspace / "cache")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- pure rules ------------------------------------------------------------------------
def F(accuracy: float, loss: float = 0.5, images: int = 100) -> ft.Figures:  # noqa: N802
    return ft.Figures(accuracy, loss, images)


def test_mnist_may_drop_by_at_most_three_tenths_of_a_point() -> None:
    assert ft.refusal(F(0.5), F(0.9), F(0.9950), F(0.9920)) is None
    reason = ft.refusal(F(0.5), F(0.9), F(0.9950), F(0.9919))
    assert reason is not None and "MNIST" in reason and "0.31 points" in reason


def test_the_held_out_corrections_must_be_read_better() -> None:
    assert "not better" in ft.refusal(F(0.8), F(0.7), F(0.99), F(0.99))
    assert "not better" in ft.refusal(F(0.8, 0.4), F(0.8, 0.5), F(0.99), F(0.99))
    # Already all right before: a lower loss is the only improvement possible.
    assert ft.refusal(F(1.0, 0.4), F(1.0, 0.1), F(0.99), F(0.99)) is None
    assert ft.refusal(F(0.8), F(0.9), F(0.99), F(0.995)) is None


def test_the_holdout_is_stratified_and_leaves_every_digit_something_to_learn() -> None:
    labels = np.array([2] * 5 + [5] * 12 + [7] * 30)
    train, held = ft.stratified_holdout(labels, 0.2, seed=1)
    assert sorted(np.concatenate([train, held]).tolist()) == list(range(len(labels)))
    assert [int(np.sum(labels[held] == d)) for d in (2, 5, 7)] == [1, 2, 6]
    again = ft.stratified_holdout(labels, 0.2, seed=1)
    assert np.array_equal(again[1], held)


def test_an_empty_store_and_too_few_samples_are_clear_errors(settings: Settings) -> None:
    with pytest.raises(DigitctlError, match="no feedback stored"):
        ft.finetune_model(settings)
    add_corrections(settings, per_digit=10, digits=(2,))
    add_corrections(settings, per_digit=3, digits=(5,))
    with pytest.raises(DigitctlError, match=r"too few corrections.*digit 5: 3.*at least 5"):
        ft.finetune_model(settings)


def test_the_shipped_replay_is_stratified_uint8_mnist() -> None:
    with np.load(ft.REPLAY_PATH) as stored:
        assert stored["x_train"].dtype == np.uint8 and stored["x_train"].shape[1:] == (28, 28)
        assert np.bincount(stored["y_train"]).tolist() == [300] * 10
        assert np.bincount(stored["y_test"]).tolist() == [300] * 10
        assert "CC BY-SA 3.0" in json.loads(str(stored["meta"]))["source"]
        # "Not a digit" views for 11-output models, rendered once when the asset was built.
        negatives = stored["x_negative"]
    assert negatives.dtype == np.uint8 and negatives.shape[1:] == (28, 28)
    assert len(negatives) >= 300 and negatives.reshape(len(negatives), -1).max(1).min() > 0
    assert ft.REPLAY_PATH.stat().st_size < 1.5e6
    assert "CC BY-SA 3.0" in (ft.REPLAY_PATH.parent / "README.md").read_text(encoding="utf-8")


def test_the_full_test_set_is_used_when_it_is_cached(fixture_settings: Settings) -> None:
    assert ft.cached_test_set(fixture_settings) is None  # nothing cached, nothing downloaded
    assert not fixture_settings.raw_data_path.exists()
    from digitctl.data import download_mnist

    download_mnist(fixture_settings)
    x, y = ft.cached_test_set(fixture_settings)
    assert x.shape == (100, 28, 28, 1) and len(y) == 100 and 0.0 <= x.min() <= x.max() <= 1.0


# ---- whole runs --------------------------------------------------------------------------
def test_a_forced_run_installs_model_export_and_card(
    settings: Settings, tiny_models: dict[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = install_as_workspace_model(tiny_models[10], settings)
    old_digest = digest(old)
    add_corrections(settings)
    result = ft.finetune_model(settings, force=True, epochs=1)
    assert result.installed
    assert result.base_model == old and result.mnist_source == "shipped subset"
    assert result.mnist_before.images == 3000
    assert result.feedback_counts[2] == 10 and result.holdout_counts[2] == 2
    assert result.train_counts[5] == 8 and result.feedback_counts[0] == 0
    assert digest(old) != old_digest  # replaced ...
    previous = settings.models_path / "previous" / "best_model.keras"
    assert digest(previous) == old_digest  # ... and the old one kept
    card = json.loads((settings.models_path / "best_model_card.json").read_text())
    assert card["finetune"]["base_model_sha256"] == old_digest
    assert card["finetune"]["feedback"]["counts"]["7"] == 10
    assert card["finetune"]["holdout"]["after"]["accuracy"] == result.holdout_after.accuracy
    assert card["schema"] == 2 and card["reject_threshold"] is None  # 10 outputs: no reject
    assert "test_accuracy" not in card["metrics"]  # only the subset was measured
    # predict uses the new export at once, and it agrees with the Keras figures.
    from digitctl.inference import load_predictor

    predictor = load_predictor(settings)
    assert predictor.backend == "litert" and predictor.path == old
    x, y, _ = FeedbackStore.for_settings(settings).views()
    _, held = ft.stratified_holdout(y, 0.2, settings.seed)
    lite_accuracy = np.mean(predictor.predict_views(x[held]).argmax(1) == y[held])
    assert lite_accuracy == pytest.approx(result.holdout_after.accuracy)
    assert not [p for p in settings.models_path.iterdir() if ".tmp" in p.name]


def test_a_model_that_is_not_better_is_refused_and_nothing_changes(
    workspace: Path,
    cli_args: list[str],
    tiny_models: dict[int, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(workspace=workspace, cache_dir=workspace / "cache")
    old = install_as_workspace_model(tiny_models[10], settings)
    before = {p.name: digest(p) for p in settings.models_path.iterdir()}
    add_corrections(settings)
    monkeypatch.setattr(ft, "_fit", lambda *a, **k: None)  # learns nothing: not better
    result = CliRunner().invoke(app, [*cli_args, "finetune", "--json"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "not better on the held-out corrections" in errors[0]
    summary = json.loads(result.stdout)
    assert summary["installed"] is False and summary["refused"].startswith("the new model")
    assert summary["holdout"]["before"] == summary["holdout"]["after"]
    assert {p.name: digest(p) for p in settings.models_path.iterdir()} == before
    assert old.exists()
    # --force installs it anyway, and says so.
    forced = CliRunner().invoke(app, [*cli_args, "finetune", "--force", "--json"])
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["installed"] and json.loads(forced.stdout)["forced"]
    assert "--force" in forced.stderr


def test_a_big_mnist_drop_is_refused(
    settings: Settings, tiny_models: dict[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    install_as_workspace_model(tiny_models[10], settings)
    add_corrections(settings)
    monkeypatch.setattr(ft, "MAX_MNIST_DROP", -1.0)  # any result "drops too much"
    monkeypatch.setattr(ft, "_fit", lambda *a, **k: None)
    result = ft.finetune_model(settings, epochs=1)
    assert not result.installed and "MNIST test accuracy would drop" in result.refused
    assert not (settings.models_path / "best_model_card.json").exists()


def test_a_better_model_is_installed_without_force(
    settings: Settings, tiny_models: dict[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    install_as_workspace_model(tiny_models[10], settings)
    add_corrections(settings, per_digit=15)
    monkeypatch.setattr(ft, "MAX_MNIST_DROP", 1.0)  # a tiny model forgets; not the point here
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ft.finetune_model(settings, epochs=2)
    assert result.holdout_after.accuracy > result.holdout_before.accuracy, result.as_dict()
    assert result.installed and not result.forced and result.refused is None
    # Nothing for the user's terminal: Keras warned that fit's shuffle is ignored.
    assert not [w for w in caught if "shuffle" in str(w.message)]


@pytest.mark.parametrize("where", ["training", "writing"])
def test_ctrl_c_leaves_the_previous_model_in_place(
    settings: Settings,
    tiny_models: dict[int, Path],
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    install_as_workspace_model(tiny_models[10], settings)
    before = {p.name: digest(p) for p in settings.models_path.iterdir()}
    add_corrections(settings)

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    if where == "training":
        monkeypatch.setattr(ft, "_fit", interrupt)
    else:
        import digitctl.export

        monkeypatch.setattr(digitctl.export, "write_lite_export", interrupt)
    with pytest.raises(TrainingInterrupted, match="previous model is unchanged") as caught:
        ft.finetune_model(settings, force=True, epochs=1)
    assert caught.value.exit_code == 130
    assert {p.name: digest(p) for p in settings.models_path.iterdir()} == before


def test_an_eleven_output_model_keeps_its_width(
    settings: Settings, tiny_models: dict[int, Path]
) -> None:
    install_as_workspace_model(tiny_models[11], settings)
    add_corrections(settings)
    result = ft.finetune_model(settings, force=True, epochs=1)
    assert result.output_classes == 11
    from digitctl.modelfiles import load_keras_model

    assert load_keras_model(result.model_path).output_shape[-1] == 11
    with np.load(ft.REPLAY_PATH) as stored:  # the shipped negatives, none rendered here
        assert result.negative_replay == len(stored["x_negative"])
    assert not any("not a digit" in w for w in result.warnings)


def test_the_installed_card_keeps_the_base_models_reject_threshold(
    settings: Settings, tiny_models: dict[int, Path]
) -> None:
    """predict reads the card: without the base's threshold and temperature the tuned
    11-output model could never answer "not a digit"."""
    base = install_as_workspace_model(tiny_models[11], settings)
    base_card = {
        "schema": 2, "name": "tiny11", "classes": [*map(str, range(10)), "not a digit"],
        "temperature": 1.5, "reject_threshold": 0.42,
    }  # fmt: skip
    (settings.models_path / "best_model_card.json").write_text(json.dumps(base_card))
    add_corrections(settings)
    ft.finetune_model(settings, force=True, epochs=1)
    from digitctl.inference import load_predictor

    predictor = load_predictor(settings)
    assert predictor.path == base and predictor.card.name == "tiny11-finetuned"
    assert predictor.reject_threshold == 0.42 and predictor.temperature == 1.5
    assert predictor.card.classes[10] == "not a digit"
    assert predictor.card.extra["finetune"]["base_model_name"] == "tiny11"


def test_the_python_api_is_lazy_and_is_the_same_function() -> None:
    code = (
        "import sys, digitctl\n"
        "heavy = [m for m in ('numpy', 'tensorflow', 'keras') if m in sys.modules]\n"
        "from digitctl.finetuning import finetune\n"
        "print(heavy, digitctl.finetune is finetune)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[] True"


def test_the_next_run_reuses_the_installed_exports_mnist_figure(
    settings: Settings, tiny_models: dict[int, Path]
) -> None:
    install_as_workspace_model(tiny_models[10], settings)
    add_corrections(settings)
    first = ft.finetune_model(settings, force=True, epochs=1)
    assert first.mnist_before_from == "measured"
    second = ft.finetune_model(settings, force=True, epochs=1)
    # Same export (by SHA-256), same images: the figure measured after the first run.
    assert second.mnist_before_from == "recorded"
    assert second.mnist_before.accuracy == first.mnist_after.accuracy
    assert second.as_dict()["mnist_test"]["before_from"] == "recorded"
    # A changed test set is another key: measured again.
    cache = ft.figures_cache_path(settings)
    assert len(json.loads(cache.read_text())) == 3  # base, first and second exports


def test_the_shipped_figures_are_the_bundled_exports_own() -> None:
    """A stale record would never be used (its key would not match), but fine-tuning the
    bundled model would then measure it again: rebuild it with make_replay_subset.py."""
    from digitctl.modelfiles import bundled_model_path

    export = ft.lite_path_for(bundled_model_path())
    replay = ft.load_replay(ft.REPLAY_PATH)
    key = ft._figures_key(export, digest(export), ft.test_set_digest(replay.x_test, replay.y_test))
    shipped = json.loads(ft.SHIPPED_FIGURES_PATH.read_text(encoding="utf-8"))
    assert key in shipped, "rebuild digitctl/assets/replay with make_replay_subset.py"
    measured = ft.figures(ft.lite_runner(export), replay.x_test, replay.y_test)
    assert shipped[key]["accuracy"] == measured.accuracy and shipped[key]["images"] == 3000
    assert shipped[key]["loss"] == pytest.approx(measured.loss, rel=1e-4)


def test_the_replay_comes_from_the_cached_training_set_when_it_is_bigger(
    fixture_settings: Settings, tiny_models: dict[int, Path], tmp_path: Path
) -> None:
    from digitctl.data import download_mnist

    download_mnist(fixture_settings)  # the fixture mirror: 400 training, 100 test images
    install_as_workspace_model(tiny_models[10], fixture_settings)
    add_corrections(fixture_settings)
    with np.load(ft.REPLAY_PATH) as stored:
        arrays = dict(stored)
    arrays["x_train"], arrays["y_train"] = arrays["x_train"][:200], arrays["y_train"][:200]
    small = tmp_path / "small_replay.npz"
    np.savez(small, **arrays)
    result = ft.finetune_model(fixture_settings, force=True, epochs=1, replay_path=small)
    assert result.replay_source == "cached training set" and result.replay_images == 400
    assert result.mnist_source == "full test set" and result.mnist_before.images == 100
    # The shipped replay (3,000) is bigger than this cache: it stays the replay.
    again = ft.finetune_model(fixture_settings, force=True, epochs=1)
    assert again.replay_source == "shipped subset" and again.replay_images == 3000


def test_the_progress_bar_counts_every_training_step_once(
    settings: Settings, tiny_models: dict[int, Path]
) -> None:
    """Keras reports once per call of several steps: the bar must still end at its total."""
    import io

    from rich.console import Console
    from rich.progress import Progress

    install_as_workspace_model(tiny_models[10], settings)
    add_corrections(settings)
    with Progress(console=Console(file=io.StringIO())) as progress:
        ft.finetune_model(settings, force=True, epochs=2, progress=progress)
    (task,) = progress.tasks
    assert task.total == 2 * ft.DEFAULTS["steps_per_epoch"] and task.completed == task.total
