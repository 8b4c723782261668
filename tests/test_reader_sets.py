"""The line reader's evaluation sets (benchmarks/reader_sets.py) are what they claim to be.

They render from a small fake MNIST drawn here (tests need no data): every set writes
image files and labels, labels are digit strings (or "" for the negatives), and the same
seed gives the same bytes.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import reader_sets as rs  # noqa: E402

# Rough strokes for each digit in a 28 px box: enough ink for glyph() to scale.
STROKES = {
    0: [(8, 5), (20, 5), (20, 23), (8, 23), (8, 5)],
    1: [(14, 4), (14, 24)],
    2: [(8, 6), (20, 6), (20, 14), (8, 22), (20, 22)],
    3: [(8, 5), (20, 5), (14, 13), (20, 18), (8, 23)],
    4: [(18, 24), (18, 4), (7, 17), (21, 17)],
    5: [(20, 5), (8, 5), (8, 13), (20, 15), (18, 23), (8, 23)],
    6: [(19, 4), (9, 14), (9, 23), (19, 23), (19, 15), (9, 15)],
    7: [(7, 5), (21, 5), (12, 24)],
    8: [(9, 5), (19, 5), (9, 23), (19, 23), (9, 5)],
    9: [(19, 14), (9, 14), (9, 5), (19, 5), (19, 24)],
}


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(20) % 10
    images = []
    for digit in labels:
        image = Image.new("L", (28, 28), 0)
        ImageDraw.Draw(image).line(STROKES[int(digit)], fill=255, width=3)
        images.append(np.asarray(image, np.float32) / 255)
    return np.stack(images), labels


@pytest.mark.parametrize("name", rs.SETS)
def test_each_set_writes_files_with_labels_and_is_deterministic(name, data, tmp_path):
    if name in rs.FONT_SETS and not rs.printed_fonts():
        pytest.skip("no Liberation, FreeFont or URW fonts installed")
    folder = rs.write_set(name, 3, seed=5, root=tmp_path / "a", data=data)
    again = rs.write_set(name, 3, seed=5, root=tmp_path / "b", data=data)
    document = json.loads((folder / "labels.json").read_text())
    assert document["set"] == name and document["count"] == 3
    assert len(document["items"]) == 3
    for item in document["items"]:
        blob = (folder / item["file"]).read_bytes()
        assert blob == (again / item["file"]).read_bytes()
        image = Image.open(io.BytesIO(blob))
        image.load()
        assert min(image.size) >= 8
        label = item["label"]
        if name == "shapes":
            assert label == ""
        else:
            assert label and label.isdigit()
        if name == "canvas_one":
            assert label == "1" and image.size in ((720, 240), (280, 280))
        if name == "page":
            assert max(image.size) >= 1200 and 1 <= len(label) <= 4
    other = rs.render_item(name, 0, 6, *data)[0]
    assert other != (folder / document["items"][0]["file"]).read_bytes()


def test_cheque_label_is_the_digits_of_the_written_amount(data):
    seen_separator = False
    for index in range(12):
        _, _, entry = rs.render_item("cheque", index, 0, *data)
        raw, label = entry["raw"], entry["label"]
        assert label == "".join(c for c in raw if c.isdigit())
        assert set(raw) <= set("0123456789.,-")
        assert 1 <= len(label) <= 7
        seen_separator |= any(c in raw for c in ".,-")
    assert seen_separator


def test_ledger_numbers_are_one_to_three_digits(data):
    for index in range(10):
        _, _, entry = rs.render_item("ledger", index, 0, *data)
        assert 1 <= len(entry["label"]) <= 3 and entry["label"][0] != "0"


def test_rgba_canvas_has_transparent_paper(data):
    found = False
    for index in range(20):
        blob, _, entry = rs.render_item("mouse", index, 0, *data)
        if entry["mode"] != "rgba":
            continue
        alpha = np.asarray(Image.open(io.BytesIO(blob)))[..., 3]
        assert (alpha == 0).mean() > 0.5 and alpha.max() == 255
        found = True
    assert found


def test_rendering_does_not_import_tensorflow():
    code = (
        "import sys, numpy as np; sys.path.insert(0, 'benchmarks'); import reader_sets as rs; "
        "x = np.zeros((10, 28, 28), np.float32); x[:, 5:23, 12:16] = 1; "
        "rs.render_item('cheque', 0, 0, x, np.arange(10)); "
        "print('tensorflow' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
