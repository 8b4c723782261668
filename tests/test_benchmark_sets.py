"""The benchmark sets of benchmarks/framing_sets.py are what they claim to be.

They use drawn digit shapes instead of MNIST (tests need no data): sizes, label files,
digit strings, line boxes and determinism by seed.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import framing_sets as fs  # noqa: E402
from realistic_images import draw_digit  # noqa: E402


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    labels = np.array([0, 1, 3, 4, 7] * 4)
    images = np.stack([draw_digit(int(d), size=28, width=3) for d in labels])
    return images, labels


def open_image(blob: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(blob))
    image.load()
    return image


@pytest.mark.parametrize("name", fs.FRAMING_SETS)
def test_single_glyph_items_carry_their_digit(name, data):
    for index in range(6):
        blob, ext, entry = fs.render_item(name, index, 0, *data)
        image = open_image(blob)
        assert image.format == {"png": "PNG", "jpg": "JPEG"}[ext]
        assert entry["label"] == str(int(data[1][entry["mnist_index"]]))
        assert min(image.size) >= 2


def test_tight_crops_are_12_to_40_px_and_inked_to_the_edges(data):
    for index in range(12):
        blob, _, entry = fs.render_item("tight", index, 0, *data)
        image = open_image(blob)
        assert 10 <= max(image.size) <= 42  # 12-40 px, a pixel more or less per side
        grey = np.asarray(image.convert("F"))
        ink = grey < grey.mean() if entry["polarity"] == "dark" else grey > grey.mean()
        border = np.r_[ink[0], ink[-1], ink[:, 0], ink[:, -1]]
        assert border.any()  # the strokes reach the image edge


def test_tiny_digits_are_8_to_16_px_with_few_grey_levels(data):
    seen_levels = set()
    for index in range(16):
        blob, _, entry = fs.render_item("tiny", index, 0, *data)
        image = open_image(blob)
        assert 8 <= image.width <= 16 and 8 <= image.height <= 16
        assert list(image.size[::-1]) == entry["size"]
        if image.mode == "L":
            assert len(np.unique(np.asarray(image))) <= entry["levels"]
        seen_levels.add(entry["levels"])
    assert len(seen_levels) > 2


def test_both_polarities_occur(data):
    polarities = {fs.render_item("tight", i, 0, *data)[2]["polarity"] for i in range(20)}
    assert polarities == {"dark", "light"}


@pytest.mark.parametrize("name", fs.NUMBER_SETS)
def test_numbers_are_digit_strings_with_a_box_per_line(name, data):
    for index in range(4):
        blob, _, entry = fs.render_item(name, index, 0, *data)
        lines = entry["label"].split("\n")
        assert len(lines) == (2 if name == "numbers_two_lines" else 1)
        assert all(line.isdigit() and 2 <= len(line) <= 6 for line in lines)
        assert len(entry["line_boxes"]) == len(lines)
        image = open_image(blob)
        for x0, y0, x1, y1 in entry["line_boxes"]:
            assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height
        if name == "numbers_canvas":
            assert image.mode == "RGBA" and np.asarray(image)[..., 3].min() == 0
        assert entry["touching"] is (name == "numbers_touching")


def test_non_digits_have_no_label_and_no_digit_like_characters(data):
    assert not set(fs.LETTERS) & set("OoDQIlijJSsZzBbgqG")
    kinds = set()
    for index in range(30):
        blob, _, entry = fs.render_item(fs.NON_DIGIT_SET, index, 0, *data)
        open_image(blob)
        assert entry["label"] is None
        kinds.add(entry["kind"].split("_")[0])
    assert {"font", "pen", "photo"} <= kinds


def test_write_set_writes_images_and_labels_and_is_deterministic(tmp_path, data):
    a = fs.write_set("box", 5, seed=3, root=tmp_path / "a", data=data)
    b = fs.write_set("box", 5, seed=3, root=tmp_path / "b", data=data)
    c = fs.write_set("box", 5, seed=4, root=tmp_path / "c", data=data)
    document = json.loads((a / "labels.json").read_text())
    assert document["count"] == 5 and len(document["items"]) == 5
    assert sorted(p.name for p in a.iterdir()) == sorted(
        ["labels.json", *(i["file"] for i in document["items"])]
    )
    for item in document["items"]:
        assert (a / item["file"]).read_bytes() == (b / item["file"]).read_bytes()
    assert any(
        (a / i["file"]).read_bytes() != (c / i["file"]).read_bytes()
        for i in document["items"]
        if (c / i["file"]).exists()
    )
    # A bigger set starts with the smaller one's items; a second call reuses the folder.
    big = fs.write_set("box", 8, seed=3, root=tmp_path / "a", data=data)
    assert (big / "00004.png").exists() or (big / "00004.jpg").exists()
    first = document["items"][0]["file"]
    assert (big / first).read_bytes() == (a / first).read_bytes()
    stamp = (a / "labels.json").stat().st_mtime_ns
    assert fs.write_set("box", 5, seed=3, root=tmp_path / "a", data=data) == a
    assert (a / "labels.json").stat().st_mtime_ns == stamp


def test_the_non_digit_set_records_its_fonts_and_follows_them(data, tmp_path, monkeypatch):
    folder = fs.write_set(fs.NON_DIGIT_SET, 4, 0, tmp_path, data=data)
    assert fs.read_labels(folder)["fonts"] == fs.font_names() != []
    stamp = (folder / "labels.json").stat().st_mtime_ns
    assert fs.write_set(fs.NON_DIGIT_SET, 4, 0, tmp_path, data=data) == folder
    assert (folder / "labels.json").stat().st_mtime_ns == stamp  # reused as it was
    # Fonts installed since (or removed): the set is rendered again, with the new list.
    monkeypatch.setattr(fs, "font_names", lambda: ["SomeNewFont-Regular"])
    fs.write_set(fs.NON_DIGIT_SET, 4, 0, tmp_path, data=data)
    assert fs.read_labels(folder)["fonts"] == ["SomeNewFont-Regular"]
