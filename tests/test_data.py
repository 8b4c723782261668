"""IDX parsing, the stratified split and the processed-data cache."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import idx_bytes
from typer.testing import CliRunner

from digitctl import data
from digitctl.cli import app
from digitctl.config import Settings
from digitctl.errors import DataError


def test_parse_idx_round_trip() -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(data.parse_idx(idx_bytes(array)), array)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x01\x00\x08\x01", "bad magic"),
        (b"\x00\x00\x0d\x01\x00\x00\x00\x01", "type 0x0d"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
        (idx_bytes(np.zeros((5, 28, 28), np.uint8))[:-10], "truncated or corrupt"),
    ],
)
def test_parse_idx_rejects_corrupt_data(raw: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message):
        data.parse_idx(raw, name="x.idx")


def test_read_idx_names_a_corrupt_file(tmp_path: Path) -> None:
    broken = tmp_path / "train-images-idx3-ubyte.gz"
    broken.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8)))[:-8])
    with pytest.raises(DataError, match=str(broken)):
        data.read_idx(broken)


def test_labels_out_of_range_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.array([1, 2, 12], np.uint8))))
    with pytest.raises(DataError, match="0-9, found 12"):
        data.validate_mnist_file(path, "train-labels-idx1-ubyte.gz")


def test_stratified_split_is_seeded_and_keeps_class_balance() -> None:
    labels = np.repeat(np.arange(10, dtype=np.uint8), 100)
    train, val = data.stratified_split(labels, 0.2, seed=3)
    assert len(val) == 200 and len(train) == 800
    assert set(train).isdisjoint(val)
    assert np.all(np.bincount(labels[val], minlength=10) == 20)
    again_train, again_val = data.stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)
    _, other_val = data.stratified_split(labels, 0.2, seed=4)
    assert not np.array_equal(val, other_val)


def test_preprocess_builds_scaled_splits_and_plots(fixture_settings: Settings) -> None:
    result = data.preprocess(fixture_settings)
    assert not result.cached
    assert result.counts == {"train": 360, "val": 40, "test": 100}
    splits = data.load_splits(fixture_settings)
    assert splits.x_train.shape == (360, 28, 28, 1) and splits.x_train.dtype == np.float32
    assert 0.0 <= splits.x_train.min() and splits.x_train.max() <= 1.0
    assert splits.x_train.max() > 0.9
    assert np.all(np.bincount(splits.y_val, minlength=10) == 4)
    assert splits.fingerprint == result.fingerprint
    for name in ("class_distribution.png", "sample_images.png"):
        assert (fixture_settings.artifacts_path / name).read_bytes()[:4] == b"\x89PNG"


def test_rerun_is_cached_and_changed_parameters_rebuild(fixture_settings: Settings) -> None:
    first = data.preprocess(fixture_settings)
    before = first.path.stat()
    again = data.preprocess(fixture_settings)
    assert again.cached and again.path == first.path
    after = first.path.stat()  # a lookup, not a rebuild: the cache file was not rewritten
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )
    changed = data.preprocess(fixture_settings.with_overrides(val_split=0.25))
    assert not changed.cached and changed.fingerprint != first.fingerprint
    assert changed.counts["val"] == 100


def test_mismatched_image_and_label_counts_are_an_error(tmp_path: Path, workspace: Path) -> None:
    from conftest import build_mnist_folder, write_idx_gz

    folder = build_mnist_folder(tmp_path / "m")
    write_idx_gz(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(7, np.uint8))
    settings = Settings(workspace=workspace, cache_dir=workspace / "c", mirror=str(folder))
    with pytest.raises(DataError, match="100 images but t10k-labels-idx1-ubyte.gz holds 7"):
        data.preprocess(settings)


def test_preprocess_cli_downloads_when_needed_and_reports_json(
    cli_args: list[str], mnist_mirror: Path
) -> None:
    runner = CliRunner()
    first = runner.invoke(app, [*cli_args, "preprocess", "--mirror", str(mnist_mirror), "--json"])
    assert first.exit_code == 0, first.output
    document = json.loads(first.stdout)
    assert document["cached"] is False and document["counts"]["test"] == 100
    second = runner.invoke(app, [*cli_args, "preprocess", "--mirror", str(mnist_mirror)])
    assert second.exit_code == 0 and "reused" in second.output


def test_preprocess_without_data_or_mirror_fails_cleanly(
    cli_args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "PUBLIC_MIRRORS", ("http://127.0.0.1:9/",))
    result = CliRunner().invoke(app, [*cli_args, "preprocess"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "--mirror" in result.output
