"""The feedback store and `digitctl feedback`: atomic, deduplicated, safe with many writers."""

from __future__ import annotations

import io
import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from digitctl import feedback
from digitctl.cli import app
from digitctl.config import Settings
from digitctl.errors import DigitctlError, ImageError
from digitctl.feedback import FeedbackStore


def digit_png(seed: int, side: int = 64) -> bytes:
    """A distinct white-on-black scribble (different bytes for every seed)."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", (side, side), 0)
    points = [tuple(int(v) for v in rng.integers(10, side - 10, 2)) for _ in range(4)]
    ImageDraw.Draw(image).line(points, fill=255, width=5)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_sample_keeps_the_image_the_view_the_label_and_the_answer(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb")
    data = digit_png(1)
    outcome = store.add(data, 7, predicted=1, source="a.png")
    assert outcome.status == "added"
    [sample] = store.samples()
    assert (sample.label, sample.predicted, sample.source) == (7, 1, "a.png")
    assert sample.id == feedback.image_id(data)
    assert (store.samples_path / sample.image_file).read_bytes() == data
    assert sample.image_file.endswith(".png") and sample.created.endswith("Z")
    x, y, _ = store.views()
    assert x.shape == (1, 28, 28) and y.tolist() == [7]
    from digitctl.imaging import to_mnist

    assert np.abs(x[0] - to_mnist(data)).max() <= 0.5 / 255 + 1e-6


def test_the_same_image_is_stored_once_and_a_new_label_replaces_the_old(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    data = digit_png(2)
    assert store.add(data, 3).status == "added"
    assert store.add(data, 3).status == "duplicate"
    assert store.add(data, 5).status == "relabelled"
    [sample] = store.samples()
    assert sample.label == 5
    assert store.summary().counts[5] == 1 and store.summary().total == 1
    assert len(list(store.samples_path.iterdir())) == 3  # record, image, view


def test_bad_images_and_labels_are_refused(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    with pytest.raises(ImageError):
        store.add(b"not an image", 3)
    with pytest.raises(ImageError):
        store.add(b"", 3)
    with pytest.raises(DigitctlError, match="0-9"):
        store.add(digit_png(3), 10)
    assert store.samples() == []


def test_a_write_that_dies_midway_leaves_no_sample(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    store = FeedbackStore(tmp_path)
    real = feedback.write_bytes
    calls = []

    def dying(target: Path, data: bytes) -> Path:
        calls.append(target)
        if str(target).endswith(".view.png"):
            raise KeyboardInterrupt  # Ctrl-C (or a crash) between the image and the record
        return real(target, data)

    monkeypatch.setattr(feedback, "write_bytes", dying)
    with pytest.raises(KeyboardInterrupt):
        store.add(digit_png(4), 4)
    assert calls and store.samples() == []
    assert not any(p.suffix == ".json" for p in store.samples_path.iterdir())
    assert not any(".tmp" in p.name for p in store.samples_path.iterdir())
    monkeypatch.setattr(feedback, "write_bytes", real)
    assert store.add(digit_png(4), 4).status == "added"  # and it can be added afterwards


def test_unreadable_records_are_skipped_not_fatal(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    store.add(digit_png(5), 1)
    (store.samples_path / "garbage.json").write_text("{not json", encoding="utf-8")
    (store.samples_path / "wrong.json").write_text('{"label": 42}', encoding="utf-8")
    assert [s.label for s in store.samples()] == [1]


def _writer(directory: str, worker: int, seeds: list[int], queue) -> None:  # noqa: ANN001
    store = FeedbackStore(directory)
    statuses = {}
    for seed in seeds:
        data = digit_png(seed)
        statuses[seed] = store.add(data, seed % 10, view=np.full((28, 28), 0.5)).status
    queue.put((worker, statuses))


def test_concurrent_writers_store_each_image_exactly_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    shared = list(range(100, 130))  # every worker adds these
    workers = [
        context.Process(
            target=_writer,
            args=(str(tmp_path), w, shared[w:] + shared[:w] + [1000 + w, 2000 + w], queue),
        )
        for w in range(4)
    ]
    for process in workers:
        process.start()
    results = dict(queue.get(timeout=120) for _ in workers)
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    store = FeedbackStore(tmp_path)
    samples = store.samples()
    assert len(samples) == len(shared) + 2 * len(workers)
    assert len({s.id for s in samples}) == len(samples)
    for seed in shared:  # exactly one writer added it, the others saw a duplicate
        statuses = [results[w][seed] for w in results]
        assert sorted(statuses) == ["added"] + ["duplicate"] * (len(workers) - 1), statuses
    for path in store.samples_path.glob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))  # every record is whole
    assert not [p for p in store.samples_path.iterdir() if ".tmp" in p.name]


def test_clear_removes_everything(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    for seed in range(3):
        store.add(digit_png(seed), 2)
    assert store.clear() == 3
    assert store.samples() == [] and not store.samples_path.exists()
    assert store.add(digit_png(0), 2).status == "added"  # usable after clearing


# ---- the CLI ---------------------------------------------------------------------------
def write_images(folder: Path, seeds: range) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        path = folder / f"img{seed}.png"
        path.write_bytes(digit_png(seed))
        paths.append(str(path))
    return paths


def test_feedback_add_reports_each_bad_image_and_adds_the_rest(
    workspace: Path, cli_args: list[str]
) -> None:
    good = write_images(workspace / "in", range(3))
    broken = workspace / "in" / "broken.png"
    broken.write_bytes(b"garbage")
    missing = str(workspace / "in" / "missing.png")
    result = CliRunner().invoke(
        app,
        [*cli_args, "feedback", "add", "--label", "4", good[0], str(broken), missing, *good[1:]],
    )
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 2
    assert "broken.png" in errors[0] and "missing.png" in errors[1]
    summary = FeedbackStore(workspace / "feedback").summary()
    assert summary.counts[4] == 3 and summary.total == 3


def test_feedback_add_json_and_list_json(workspace: Path, cli_args: list[str]) -> None:
    paths = write_images(workspace / "in", range(2))
    runner = CliRunner()
    result = runner.invoke(
        app, [*cli_args, "feedback", "add", "-l", "9", "--json", *paths, paths[0]]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["status"] for line in lines] == ["added", "added", "duplicate"]
    assert all(line["label"] == 9 and isinstance(line["predicted"], int) for line in lines)
    listed = json.loads(runner.invoke(app, [*cli_args, "feedback", "list", "--json"]).stdout)
    assert listed["total"] == 2 and listed["counts"]["9"] == 2
    assert listed["directory"] == str(workspace / "feedback")


def test_feedback_add_needs_a_digit_label(workspace: Path, cli_args: list[str]) -> None:
    paths = write_images(workspace / "in", range(1))
    assert CliRunner().invoke(app, [*cli_args, "feedback", "add", *paths]).exit_code == 2
    result = CliRunner().invoke(app, [*cli_args, "feedback", "add", "-l", "12", *paths])
    assert result.exit_code == 2


def test_feedback_dir_setting_moves_the_store(
    workspace: Path, cli_args: list[str], monkeypatch
) -> None:  # noqa: ANN001
    monkeypatch.setenv("DIGITCTL_FEEDBACK_DIR", str(workspace / "elsewhere"))
    paths = write_images(workspace / "in", range(1))
    assert CliRunner().invoke(app, [*cli_args, "feedback", "add", "-l", "1", *paths]).exit_code == 0
    assert FeedbackStore(workspace / "elsewhere").summary().total == 1
    assert Settings(workspace=workspace).feedback_path == workspace / "feedback"


def test_feedback_clear_asks_first(workspace: Path, cli_args: list[str]) -> None:
    paths = write_images(workspace / "in", range(2))
    runner = CliRunner()
    runner.invoke(app, [*cli_args, "feedback", "add", "-l", "0", *paths])
    refused = runner.invoke(app, [*cli_args, "feedback", "clear"], input="n\n")
    assert refused.exit_code == 1 and "nothing deleted" in refused.output
    assert FeedbackStore(workspace / "feedback").summary().total == 2
    done = runner.invoke(app, [*cli_args, "feedback", "clear"], input="y\n")
    assert done.exit_code == 0 and "deleted 2" in done.output
    runner.invoke(app, [*cli_args, "feedback", "add", "-l", "0", *paths])
    assert runner.invoke(app, [*cli_args, "feedback", "clear", "--yes"]).exit_code == 0
    assert FeedbackStore(workspace / "feedback").summary().total == 0


class AnsweringPredictor:
    """A stand-in model: ``read`` answers from a list of readings (None: not a digit);
    its ten digit scores alone would always say 1, as a digits-only argmax would."""

    def __init__(self, answers: list[int | None]) -> None:
        self.answers = list(answers)

    def predict_views(self, views: np.ndarray) -> np.ndarray:
        return np.tile(np.eye(10, dtype=np.float32)[1], (len(views), 1))

    def read(self, source: object):  # noqa: ANN201
        from digitctl.reading import Digit, Reading

        answer = self.answers.pop(0)
        if answer is None:
            return Reading("", [], status="not_a_digit", reason="not a digit", not_digit=0.9)
        probabilities = [float(d == answer) for d in range(10)]
        digit = Digit(answer, 1.0, probabilities, (0, 0, 8, 8), 0.0, False, np.zeros((28, 28)))
        return Reading(str(answer), [digit])


def test_a_not_a_digit_answer_for_a_labelled_digit_is_a_misreading(
    workspace: Path, cli_args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import digitctl.inference

    fake = AnsweringPredictor([None, None, 7, None, None])
    monkeypatch.setattr(digitctl.inference, "load_predictor", lambda settings: fake)
    paths = write_images(workspace / "ones", range(5))
    result = CliRunner().invoke(app, [*cli_args, "feedback", "add", "-l", "1", *paths])
    assert result.exit_code == 0, result.output
    assert "read 5 of 5 wrong" in result.stderr
    summary = FeedbackStore(workspace / "feedback").summary()
    assert summary.counts[1] == 5 and summary.misread[1] == 5
    assert sorted(s.predicted for s in FeedbackStore(workspace / "feedback").samples()) == [
        7,
        10,
        10,
        10,
        10,
    ]


def test_a_right_answer_is_not_a_misreading(tmp_path: Path) -> None:
    settings = Settings(workspace=tmp_path, feedback_dir=tmp_path / "fb")
    paths = write_images(tmp_path / "in", range(2))
    outcomes = feedback.add_images(settings, paths, 3, predictor=AnsweringPredictor([3, None]))
    assert [o.sample.predicted for o in outcomes if o.sample] == [3, 10]
    assert FeedbackStore(tmp_path / "fb").summary().misread[3] == 1
