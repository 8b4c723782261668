"""Predictor and `digitctl predict`: backends, answers, JSON Lines, bad inputs, exit codes.

The model is a tiny template matcher built in a fixture (no training): its Dense layer
holds the normalised 28×28 views of clean drawn 0, 1, 3, 4 and 7, so it answers
correctly exactly when preprocessing brings an image close to those views.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import realistic_images as ri
from PIL import Image
from typer.testing import CliRunner

from digitctl.cli import app
from digitctl.config import Settings
from digitctl.errors import ImageError, ModelError
from digitctl.imaging import to_mnist
from digitctl.inference import load_predictor

LABELS = (0, 1, 3, 4, 7)
KEYS = ["path", "label", "confidence", "probabilities", "uncertain", "error"]
READING_KEYS = ["text", "digits", "status", "reason", "separators", "model"]


def build_template_model(path: Path) -> Path:
    import keras

    weights = np.zeros((784, 10), np.float32)
    bias = np.full(10, -30.0, np.float32)
    for label in LABELS:
        view = to_mnist(Image.fromarray((ri.draw_digit(label) * 255).astype(np.uint8), "L"))
        template = view.ravel() - view.mean()
        weights[:, label] = 1.5 * template / np.linalg.norm(template)
        bias[label] = 0.0
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")]
    )
    model.layers[-1].set_weights([weights, bias])
    model.save(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``lite``: a .keras with its .tflite beside it; ``keras``: the .keras alone."""
    from digitctl.export import write_lite_export
    from digitctl.modelfiles import load_keras_model

    folder = tmp_path_factory.mktemp("models")
    (folder / "lite").mkdir()
    lite = build_template_model(folder / "lite" / "digits.keras")
    write_lite_export(load_keras_model(lite), lite.with_suffix(".tflite"))
    (folder / "keras").mkdir()
    keras_only = shutil.copy(lite, folder / "keras" / "digits.keras")
    return {"lite": lite, "keras": Path(keras_only)}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Realistic renderings of drawn digits, named <style>_<label>.<ext>."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(7)
    paths = {}
    for label in LABELS:
        for style in ("canvas", "paper", "scan"):
            data = ri.render(style, ri.draw_digit(label), rng)
            ext = "jpg" if data[:2] == b"\xff\xd8" else "png"
            paths[f"{style}_{label}"] = folder / f"{style}_{label}.{ext}"
            paths[f"{style}_{label}"].write_bytes(data)
    return paths


def run(*args: str, input: bytes | None = None):  # noqa: A002
    # Wide enough that Rich does not wrap long temporary paths in the table.
    return CliRunner().invoke(app, list(args), input=input, env={"COLUMNS": "250"})


# ---- Predictor -------------------------------------------------------------------------
def test_the_export_is_used_when_present(models: dict[str, Path]) -> None:
    predictor = load_predictor(Settings(), model=models["lite"])
    assert predictor.backend == "litert" and predictor.path == models["lite"]


def test_keras_is_the_fallback_without_export(models: dict[str, Path]) -> None:
    assert load_predictor(Settings(), model=models["keras"]).backend == "keras"


def test_a_stale_export_is_not_trusted(models: dict[str, Path], tmp_path: Path) -> None:
    keras_file = Path(shutil.copy(models["lite"], tmp_path / "m.keras"))
    lite = Path(shutil.copy(models["lite"].with_suffix(".tflite"), tmp_path / "m.tflite"))
    old = time.time() - 3600
    os.utime(lite, (old, old))  # the .keras was replaced an hour after its export
    assert load_predictor(Settings(), model=keras_file).backend == "keras"


def test_tflite_file_can_be_given_directly(models: dict[str, Path]) -> None:
    predictor = load_predictor(Settings(), model=models["lite"].with_suffix(".tflite"))
    assert predictor.backend == "litert"


def test_unknown_model_file_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "model.txt"
    path.write_text("hello")
    with pytest.raises(ModelError, match="not a model file"):
        load_predictor(Settings(), model=path)


def test_realistic_images_are_recognised(models: dict[str, Path], images: dict[str, Path]) -> None:
    predictor = load_predictor(Settings(), model=models["lite"])
    wrong = {
        name: predictor.predict(path).label
        for name, path in images.items()
        if predictor.predict(path).label != int(name.rsplit("_", 1)[1])
    }
    assert not wrong


def test_litert_and_keras_agree(models: dict[str, Path], images: dict[str, Path]) -> None:
    views = np.stack([to_mnist(path) for path in images.values()])
    lite = load_predictor(Settings(), model=models["lite"]).predict_views(views)
    keras = load_predictor(Settings(), model=models["keras"]).predict_views(views)
    assert lite.shape == (len(views), 10)
    np.testing.assert_allclose(lite.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(lite, keras, atol=1e-5)


def test_litert_runs_any_batch_size_the_same(models: dict[str, Path]) -> None:
    from digitctl.runners import LiteRTRunner

    runner = LiteRTRunner(models["lite"].with_suffix(".tflite"), num_threads=1)
    x = np.random.default_rng(0).random((83, 28, 28, 1), dtype=np.float32)
    one_by_one = np.concatenate([runner(x[i : i + 1]) for i in range(len(x))])
    for batch in (2, 5, 17, 64, 83):
        out = np.concatenate([runner(x[i : i + batch]) for i in range(0, len(x), batch)])
        np.testing.assert_allclose(out, one_by_one, atol=1e-5)
    assert runner(x[:0]).shape == (0, 10)


@pytest.mark.parametrize("model", ["lite", "keras"])
def test_worker_processes_read_what_one_process_reads(
    models: dict[str, Path], images: dict[str, Path], tmp_path: Path, model: str
) -> None:
    predictor = load_predictor(Settings(), model=models[model])
    sources = [*images.values(), tmp_path / "missing.png"]
    alone = list(predictor.read_many(sources, workers=1))
    forked = list(predictor.read_many(sources, workers=2))
    assert isinstance(alone[-1], ImageError) and isinstance(forked[-1], ImageError)
    assert [r.text for r in alone[:-1]] == [r.text for r in forked[:-1]]
    for a, b in zip(alone[:-1], forked[:-1], strict=True):
        np.testing.assert_allclose(
            [d.confidence for d in a.digits], [d.confidence for d in b.digits], atol=1e-5
        )


def test_prediction_fields(models: dict[str, Path], images: dict[str, Path]) -> None:
    predictor = load_predictor(Settings(uncertain_below=0.6), model=models["lite"])
    result = predictor.predict(images["canvas_7"])
    assert predictor.uncertain_below == 0.6
    assert result.label == 7 and result.confidence == max(result.probabilities)
    assert len(result.probabilities) == 10 and result.view.shape == (28, 28)
    assert result.uncertain is False
    assert (
        load_predictor(Settings(uncertain_below=1.0), model=models["lite"])
        .predict(images["canvas_7"])
        .uncertain
    )


# ---- the command -----------------------------------------------------------------------
def _bad_inputs(folder: Path) -> dict[str, Path]:
    folder.mkdir(exist_ok=True)
    good = io.BytesIO()
    Image.fromarray((ri.draw_digit(3) * 255).astype(np.uint8), "L").save(good, "PNG")
    files = {
        "missing": (None, "does not exist"),
        "empty_dir": ("dir", "no images"),
        "zero.png": (b"", "empty"),
        "truncated.png": (good.getvalue()[:200], "truncated"),
        "text.png": (b"just text\n", "not an image format"),
        "one.png": ("1x1", "too small"),
        "bomb.png": ("bomb", "decompression bomb"),
        "drawing.svg": (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not an image format"),
        "blank.png": ("blank", "no digit found"),
    }
    paths = {}
    for name, (content, expected) in files.items():
        path = folder / name
        if content == "dir":
            path.mkdir(exist_ok=True)
        elif content == "1x1":
            Image.new("L", (1, 1), 0).save(path)
        elif content == "bomb":
            from test_imaging import _png_header_only

            path.write_bytes(_png_header_only(40000, 40000))
        elif content == "blank":
            Image.new("RGB", (100, 100), "white").save(path)
        elif content is not None:
            path.write_bytes(content)
        paths[name] = (path, expected)
    return paths


def test_json_lines_answer_every_input_in_order(
    models: dict[str, Path], images: dict[str, Path], tmp_path: Path
) -> None:
    bad = _bad_inputs(tmp_path / "bad")
    good = [images["paper_4"], images["canvas_0"]]
    args = [str(good[0]), *(str(p) for p, _ in bad.values()), str(good[1])]
    result = run("predict", "--model", str(models["lite"]), "--json", *args)
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == args
    # The 0.1 keys first, in their order (scripts index them), then the reading's.
    assert all(list(line) == [*KEYS, *READING_KEYS] for line in lines)
    assert (lines[0]["label"], lines[-1]["label"]) == (4, 0)
    assert lines[0]["error"] is None and len(lines[0]["probabilities"]) == 10
    assert isinstance(lines[0]["confidence"], float) and lines[0]["uncertain"] is False
    for line, (_, expected) in zip(lines[1:-1], bad.values(), strict=True):
        assert expected in line["error"], line
        assert line["label"] is None and line["probabilities"] is None
    errors = [line for line in result.stderr.strip().splitlines() if "Warning" not in line]
    assert len(errors) == len(bad) and all(e.startswith("Error: ") for e in errors)
    assert "Traceback" not in result.output


def test_table_for_people_and_exit_zero(models: dict[str, Path], images: dict[str, Path]) -> None:
    result = run(
        "predict", "--model", str(models["lite"]), str(images["scan_1"]), str(images["canvas_3"])
    )
    assert result.exit_code == 0, result.output
    assert "scan_1.png" in result.stdout and "canvas_3.png" in result.stdout
    assert "top-3" in result.stdout and "litert" in result.stdout


def test_directories_and_recursion(
    models: dict[str, Path], images: dict[str, Path], tmp_path: Path
) -> None:
    top = tmp_path / "photos"
    (top / "nested").mkdir(parents=True)
    shutil.copy(images["canvas_7"], top / "a.png")
    shutil.copy(images["canvas_1"], top / "nested" / "b.png")
    (top / "notes.txt").write_text("not an image")
    flat = run("predict", "--model", str(models["lite"]), "--json", str(top))
    assert [json.loads(x)["label"] for x in flat.stdout.splitlines()] == [7]
    deep = run("predict", "--model", str(models["lite"]), "--json", "--recursive", str(top))
    assert [json.loads(x)["label"] for x in deep.stdout.splitlines()] == [7, 1]
    (top / "empty").mkdir()
    empty = run("predict", "--model", str(models["lite"]), "--json", str(top / "empty"))
    assert empty.exit_code == 1 and "--recursive" in json.loads(empty.stdout)["error"]


def test_stdin(models: dict[str, Path], images: dict[str, Path]) -> None:
    result = run(
        "predict",
        "--model",
        str(models["lite"]),
        "--json",
        "-",
        input=images["paper_3"].read_bytes(),
    )
    line = json.loads(result.stdout)
    assert result.exit_code == 0 and line["path"] == "-" and line["label"] == 3


def test_save_view_writes_what_the_model_saw(
    models: dict[str, Path], images: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "views"
    result = run(
        "predict",
        "--model",
        str(models["lite"]),
        "--save-view",
        str(out),
        str(images["canvas_4"]),
        str(images["scan_0"]),
    )
    assert result.exit_code == 0
    saved = sorted(p.name for p in out.iterdir())
    assert saved == ["canvas_4.png", "scan_0.png"]
    view = np.asarray(Image.open(out / "canvas_4.png"), np.float32) / 255
    assert view.shape == (28, 28)
    np.testing.assert_allclose(view, to_mnist(images["canvas_4"]), atol=1 / 255)


def test_plot_one_image(models: dict[str, Path], images: dict[str, Path], workspace: Path) -> None:
    result = run(
        "--workspace",
        str(workspace),
        "predict",
        "--model",
        str(models["lite"]),
        "--plot",
        str(images["paper_7"]),
    )
    assert result.exit_code == 0, result.output
    plot = workspace / "artifacts" / "prediction_result.png"
    assert Image.open(plot).size[0] > 300


def test_plot_needs_exactly_one_image(models: dict[str, Path], images: dict[str, Path]) -> None:
    result = run(
        "predict",
        "--model",
        str(models["lite"]),
        "--plot",
        str(images["paper_7"]),
        str(images["paper_1"]),
    )
    assert result.exit_code == 2


def test_usage_errors_exit_2() -> None:
    assert run("predict").exit_code == 2
    assert run("predict", "--no-such-flag", "x.png").exit_code == 2


def test_missing_model_is_one_line(images: dict[str, Path], tmp_path: Path) -> None:
    result = run("predict", "--model", str(tmp_path / "nope.keras"), str(images["scan_1"]))
    assert result.exit_code == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.output


# Modules a one-image predict must not import. TensorFlow/Keras: seconds and ~500 MB.
# The rest cost 10-200 ms each against a 0.4 s cold-start budget: pydantic comes with
# typer >= 0.29 (hence the pin), numpy.ma with np.median, multiprocessing with the
# preprocessing pool, rich.progress and tomllib with other commands' needs.
NOT_ON_PREDICTS_PATH = (
    "tensorflow",
    "keras",
    "pydantic",
    "numpy.ma",
    "multiprocessing",
    "rich.progress",
    "tomllib",
)


@pytest.mark.parametrize("output", [["--json"], []], ids=["json", "table"])
def test_predict_with_an_export_imports_nothing_heavy(
    models: dict[str, Path], images: dict[str, Path], output: list[str]
) -> None:
    code = (
        "import sys\n"
        "from digitctl.cli import app\n"
        f"sys.argv = ['digitctl', 'predict', *{output!r}, '--model', {str(models['lite'])!r}, "
        f"{str(images['paper_0'])!r}]\n"
        "try:\n    app()\nexcept SystemExit as exc:\n    code = exc.code\n"
        f"heavy = [m for m in {NOT_ON_PREDICTS_PATH!r} if m in sys.modules]\n"
        "print('HEAVY', heavy, 'EXIT', code, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY [] EXIT 0" in result.stderr, result.stderr
    if output:
        assert json.loads(result.stdout)["label"] == 0
    else:
        assert "paper_0" in result.stdout
    assert "INFO" not in result.stderr  # LiteRT's delegate banner stays hidden


def test_worker_processes_give_the_same_answers(
    models: dict[str, Path], images: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    sources = [*images.values(), bad]
    predictor = load_predictor(Settings(), model=models["lite"])
    serial = list(predictor.read_many(sources))
    parallel = list(predictor.read_many(sources, workers=2))
    assert [getattr(r, "text", None) for r in parallel] == [
        getattr(r, "text", None) for r in serial
    ]
    assert isinstance(parallel[-1], ImageError) and "not an image format" in str(parallel[-1])
    for a, b in zip(serial[:-1], parallel[:-1], strict=True):
        for x, y in zip(a.digits, b.digits, strict=True):
            np.testing.assert_allclose(x.view, y.view)


# ---- which model answers ---------------------------------------------------------------
def test_the_model_that_answers_is_named_with_where_it_came_from(
    models: dict[str, Path], images: dict[str, Path], workspace: Path
) -> None:
    # A model trained in this folder (digits only: no "not a digit" output) is the default.
    (workspace / "models").mkdir()
    shutil.copy(models["lite"], workspace / "models" / "best_model.keras")
    shutil.copy(models["lite"].with_suffix(".tflite"), workspace / "models" / "best_model.tflite")
    inputs = [str(images["scan_1"]), str(images["canvas_3"])]
    result = run("predict", *inputs)
    assert result.exit_code == 0, result.output
    assert "Predictions: best_model (workspace, litert)" in result.stdout
    assert result.stderr.count('cannot say "not a digit"') == 1, result.stderr

    result = run("predict", "--json", *inputs)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["model"]["source"] for line in lines] == ["workspace", "workspace"]
    assert lines[0]["model"]["name"] == "best_model" and not lines[0]["model"]["not_a_digit"]
    assert all(list(line) == [*KEYS, *READING_KEYS] for line in lines)
    assert result.stderr.count('cannot say "not a digit"') == 1

    result = run("predict", "--json", "--model", "bundled", *inputs)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["model"]["source"] for line in lines] == ["bundled", "bundled"]
    assert lines[0]["model"]["name"] == "digitctl_cnn" and lines[0]["model"]["not_a_digit"]
    assert "not a digit" not in result.stderr

    result = run("predict", "--model", str(models["lite"]), inputs[0])
    assert "Predictions: digits (--model, litert)" in result.stdout


# ---- progress and summary ---------------------------------------------------------------
def test_a_long_run_shows_progress_in_a_terminal_and_ends_with_a_summary(
    models: dict[str, Path], images: dict[str, Path], tmp_path: Path, monkeypatch
) -> None:  # noqa: ANN001
    from digitctl import ui

    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    letter = tmp_path / "broken.png"
    letter.write_bytes(b"not an image")
    inputs = [str(images["scan_1"]), str(images["canvas_3"]), str(blank), str(letter)]
    monkeypatch.setattr(ui, "PROGRESS_AFTER_S", 0.0)  # every run counts as a long one here
    terminal = {"COLUMNS": "100", "TTY_COMPATIBLE": "1"}
    args = ["predict", "--model", str(models["lite"]), *inputs]
    result = CliRunner().invoke(app, args, env=terminal)
    assert result.exit_code == 1
    assert "reading" in result.stderr and "4/4" in result.stderr  # the bar, on stderr
    summary = result.stderr.strip().splitlines()[-1]
    assert "4 images: 2 read, 0 not a digit, 2 errors in " in summary
    assert summary.endswith("images/s)")
    assert "reading" not in result.stdout and "images/s" not in result.stdout

    # Not in a terminal: no bar, only the summary.
    quiet = CliRunner().invoke(app, args, env={"COLUMNS": "100", "TTY_COMPATIBLE": "0"})
    assert "4/4" not in quiet.stderr and "4 images: 2 read" in quiet.stderr

    # --json: stdout holds the same JSON lines, and stderr no summary.
    plain = CliRunner().invoke(app, [*args[:3], "--json", *inputs], env={"COLUMNS": "100"})
    shown = CliRunner().invoke(app, [*args[:3], "--json", *inputs], env=terminal)
    strip = lambda out: [{**json.loads(line), "model": None} for line in out.splitlines()]  # noqa: E731
    assert strip(shown.stdout) == strip(plain.stdout) and len(strip(plain.stdout)) == 4
    assert "images/s" not in shown.stderr + shown.stdout
