"""Readings: whole numbers left to right, lines, merging, splitting, boxes, the JSON contract.

These use the bundled model (it ships with the package), on numbers the tests draw.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import realistic_images as ri
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from digitctl import reading
from digitctl.cli import app
from digitctl.inference import Predictor, load_predictor
from digitctl.reading import Reading


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return load_predictor()


def number_image(
    labels: str, gap: float = 0.35, size: int = 90, lines: int = 1, margin: int = 20
) -> Image.Image:
    """Dark ink digits on white paper; ``gap`` in digit widths (negative: they overlap)."""
    rows = labels.split("\n")
    shapes = {d: ri.draw_digit(int(d), size=size, width=max(3, size // 9)) for d in "01347"}
    boxes = {}
    for d, shape in shapes.items():
        cols = np.nonzero(shape.max(axis=0) > 0.1)[0]
        boxes[d] = shape[:, cols[0] : cols[-1] + 1]
    width = max(
        sum(boxes[d].shape[1] for d in row) + int(gap * size * 0.6) * (len(row) - 1) for row in rows
    )
    canvas = np.zeros(
        (margin * 2 + len(rows) * size + (len(rows) - 1) * size // 3, width + 2 * margin)
    )
    y = margin
    for row in rows:
        x = margin
        for d in row:
            glyph = boxes[d]
            region = canvas[y : y + size, x : x + glyph.shape[1]]
            np.maximum(region, glyph, out=region)
            x += glyph.shape[1] + int(gap * size * 0.6)
        y += size + size // 3
    return Image.fromarray(((1 - 0.85 * canvas) * 255).astype(np.uint8), "L")


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_a_number_is_read_left_to_right_with_boxes(predictor: Predictor) -> None:
    image = number_image("1730")
    reading = predictor.read(image)
    assert reading.text == "1730"
    assert reading.status == "ok" and len(reading.digits) == 4
    lefts = [d.box[0] for d in reading.digits]
    assert lefts == sorted(lefts)
    for digit in reading.digits:
        x0, y0, x1, y1 = digit.box
        assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height
        assert digit.view.shape == (28, 28)
        assert abs(sum(digit.probabilities) - 1) < 1e-4
    assert reading.label is None  # several digits: no single label


def test_one_digit_is_a_reading_of_length_one(predictor: Predictor) -> None:
    reading = predictor.read(number_image("4"))
    assert reading.text == "4" and reading.label == 4 and len(reading.digits) == 1


def test_touching_digits_are_split(predictor: Predictor) -> None:
    image = number_image("47", gap=-0.3)
    ink = np.asarray(image) < 128
    from digitctl.layout import _components

    assert len(_components(ink.astype(np.float32))[1]) == 1, "the digits must touch here"
    assert predictor.read(image).text == "47"


def test_two_lines_are_read_top_to_bottom(predictor: Predictor) -> None:
    reading = predictor.read(number_image("10\n47"))
    assert reading.text == "10\n47"
    assert [d.line for d in reading.digits] == [0, 0, 1, 1]


def test_a_broken_digit_is_merged_back(predictor: Predictor) -> None:
    image = np.asarray(number_image("4"), np.float32)
    # Cut the 4's stroke with a vertical paper-coloured gap: two components side by side.
    cols = np.nonzero((image < 128).any(axis=0))[0]
    middle = (cols[0] + cols[-1]) // 2 - 8
    image[:, middle : middle + 3] = 242
    reading = predictor.read(Image.fromarray(image.astype(np.uint8), "L"))
    assert reading.text == "4"


def test_boxes_are_in_input_pixels_for_reduced_and_tiny_inputs(predictor: Predictor) -> None:
    big = number_image("37").resize((1600, 760))
    reading = predictor.read(big)
    assert reading.text == "37"
    assert reading.digits[-1].box[2] > 1000  # not working-size coordinates
    tiny = number_image("7", size=60, margin=2).resize((12, 14))
    small = predictor.read(tiny)
    assert small.text == "7"
    assert small.digits[0].box[2] <= 12 and small.digits[0].box[3] <= 14


def test_empty_box_and_blank_image_are_no_digits(predictor: Predictor) -> None:
    grey = np.full((90, 120), 240, np.uint8)
    grey[10:13, 10:110] = grey[77:80, 10:110] = 20
    grey[10:80, 10:13] = grey[10:80, 107:110] = 20
    boxed = predictor.read(Image.fromarray(grey, "L"))
    assert boxed.status == "not_a_digit" and boxed.text == "" and boxed.digits == []
    assert boxed.reason and boxed.reason.startswith("not a digit")
    blank = predictor.read(Image.new("L", (50, 50), 200))
    assert blank.status == "no_digit" and blank.text == ""


def test_read_many_keeps_order_and_reports_errors(predictor: Predictor) -> None:
    sources = [png(number_image("10")), b"not an image", png(number_image("7"))]
    answers = list(predictor.read_many(sources))
    assert isinstance(answers[0], Reading) and answers[0].text == "10"
    assert not isinstance(answers[1], Reading)
    assert isinstance(answers[2], Reading) and answers[2].text == "7"
    parallel = list(predictor.read_many(sources * 3, workers=2))
    assert [a.text if isinstance(a, Reading) else None for a in parallel] == [
        "10",
        None,
        "7",
    ] * 3


def test_predict_json_keeps_the_old_keys_and_adds_the_reading(tmp_path: Path) -> None:
    single, number = tmp_path / "single.png", tmp_path / "number.png"
    number_image("3").save(single)
    number_image("401").save(number)
    result = CliRunner().invoke(app, ["predict", "--json", str(single), str(number)])
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    for record in (first, second):
        assert list(record)[:6] == [
            "path",
            "label",
            "confidence",
            "probabilities",
            "uncertain",
            "error",
        ]
        assert {"text", "digits", "status", "reason"} <= set(record)
    assert first["label"] == 3 and first["text"] == "3" and len(first["probabilities"]) == 10
    assert second["label"] is None and second["text"] == "401" and second["probabilities"] is None
    assert [d["label"] for d in second["digits"]] == [4, 0, 1]
    assert all(len(d["box"]) == 4 for d in second["digits"])


def test_save_view_writes_each_digit(tmp_path: Path) -> None:
    number = tmp_path / "n.png"
    number_image("71").save(number)
    views = tmp_path / "views"
    result = CliRunner().invoke(app, ["predict", str(number), "--save-view", str(views)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in views.iterdir()) == ["n_digit1.png", "n_digit2.png"]
    assert Image.open(views / "n_digit1.png").size == (28, 28)


def _glyph_in_two_pieces() -> reading._GlyphDraft:
    pieces = [reading._Piece(0, 5, view=1), reading._Piece(5, 10, view=2)]
    return reading._GlyphDraft(
        box=(0, 0, 10, 10), width=10, whole=0, cuts=[0, 5, 10], pieces=pieces, height=10
    )


def _rows(whole: list[float], *pieces: int) -> np.ndarray:
    rows = [whole]
    for label in pieces:
        row = [0.005] * 11
        row[label] = 0.95
        rows.append(row)
    return np.asarray(rows, dtype=np.float32)


def test_a_non_digit_is_not_split_into_ones() -> None:
    glyph = _glyph_in_two_pieces()
    letter = [0.004] * 10 + [0.96]  # the whole glyph (a "V") is surely not a digit
    _, choices = reading._segment(glyph, _rows(letter, 1, 1))
    assert [c.view for c in choices] == [0], "the legs of a V are no '11'"
    # Pieces that read as other digits keep the split: a touching "17".
    _, choices = reading._segment(glyph, _rows(letter, 1, 7))
    assert [c.view for c in choices] == [1, 2]
    # A whole less surely "not a digit" than the split is right keeps the split.
    doubtful = [0.01] * 10 + [0.5]
    _, choices = reading._segment(glyph, _rows(doubtful, 1, 1))
    assert [c.view for c in choices] == [1, 2], "log(0.5) < 2 log(0.95): the split wins"
    # A 10-class model has no "not a digit" to compare with.
    _, choices = reading._segment(glyph, _rows(letter, 1, 1)[:, :10])
    assert [c.view for c in choices] == [1, 2]


def test_the_best_split_is_found_without_scoring_every_piece() -> None:
    # Random glyphs, cuts and scores: scoring pieces as the search asks for them gives the
    # segmentation that scoring every piece gives, and scores fewer of them.
    rng = np.random.default_rng(5)
    asked_for = every = 0
    for trial in range(300):
        height = 20
        width = int(rng.integers(20, 50))
        inner = sorted({int(c) for c in rng.integers(4, width - 3, size=rng.integers(1, 9))})
        cuts = [0, *inner, width]
        pieces = [
            reading._Piece(a, b, view=None)
            for i, a in enumerate(cuts)
            for b in cuts[i + 1 :]
            if 4 <= b - a <= 25 and (a, b) != (0, width)
        ]
        whole = None if trial % 5 == 0 else 0
        glyph = reading._GlyphDraft(
            box=(0, 0, width, height), width=width, whole=whole, height=height, cuts=cuts
        )
        glyph.pieces = pieces
        for n, piece in enumerate(pieces):
            piece.view = n + 1
        # Each view is a confident digit (p of 0.5-0.999) or a doubtful one.
        full = rng.dirichlet([1.0] * 11, size=len(pieces) + 1).astype(np.float32)
        for row in full:
            if rng.random() < 0.5:
                top = rng.uniform(0.5, 0.999)
                row[:] = (1 - top) / 10
                row[rng.integers(10)] = top
        if trial % 7 == 0 and pieces:
            full[1 + rng.integers(len(pieces))] = np.nan  # a piece whose view was unreadable
            for piece in pieces:
                if np.isnan(full[piece.view, 0]):
                    piece.unreadable = True
        if whole is not None and trial % 2:
            # The whole glyph about as likely as the best split: the search's bound decides.
            glyph.whole = None
            split_value, _ = reading._segment(glyph, full)
            glyph.whole = 0
            if split_value > -math.inf:
                top = min(0.999, math.exp(split_value + rng.uniform(-0.4, 0.4)))
                full[0] = (1 - top) / 10
                full[0, 3] = top
        partial = np.full_like(full, np.nan)
        partial[0] = full[0]
        while wanted := reading._pieces_to_score(glyph, reading._view_scores(partial)):
            for piece in wanted:
                assert np.isnan(partial[piece.view, 0]), "a piece is asked for twice"
                partial[piece.view] = full[piece.view]
        value, choices = reading._segment(glyph, partial)
        expected_value, expected = reading._segment(glyph, full)
        assert [c.view for c in choices] == [c.view for c in expected]
        assert value == pytest.approx(expected_value)
        asked_for += int((~np.isnan(partial[1:, 0])).sum())
        every += sum(not p.unreadable for p in pieces)
    assert asked_for < 0.8 * every


def test_an_atom_with_no_reading_does_not_end_the_line() -> None:
    def whole(view: int, x0: int) -> reading._GlyphDraft:
        return reading._GlyphDraft(box=(x0, 0, x0 + 10, 20), width=10, whole=view, height=20)

    # Atom 1 (a flat dash, too wide and low to be a digit or to split) has no candidate.
    line = reading._LineDraft(atoms=3, runs={(0, 1): whole(0, 0), (2, 1): whole(1, 40)})
    _, choices = reading._read_line(line, _rows([0.01] * 11, 4)[1:].repeat(2, axis=0))
    assert [c.view for c in choices] == [0, 1], "the digit after the dash is read too"


def test_pieces_of_one_height_stacked_may_be_one_digit() -> None:
    # A 5 drawn as flag, stem and bowl: pieces of about one height whose union stands
    # twice as tall may be one digit; two whole digits side by side may not.
    from digitctl.layout import Glyph

    def atom(x0: int, y0: int, x1: int, y1: int) -> Glyph:
        return Glyph(box=(x0, y0, x1, y1), ink=np.ones((y1 - y0, x1 - x0), np.float32))

    flag, stem, bowl = atom(28, 0, 70, 10), atom(3, 5, 19, 29), atom(0, 34, 32, 55)
    assert reading._fragments([bowl, stem, flag])
    assert reading._fragments([bowl, stem])
    assert not reading._fragments([atom(0, 0, 40, 60), atom(50, 2, 90, 60)])


def test_an_underline_touching_the_digit_is_weighed_as_furniture_and_as_a_stroke(
    predictor: Predictor,
) -> None:
    # A 7 written on its underline: the line touches the stem, so it may be a stroke (a
    # 2's base would too) and is not simply removed. The layout offers both readings,
    # and the classifier's surer one wins: with the line the 7 was read as a "1".
    from test_layout import ink_digit, page

    from digitctl.inkmap import ink_maps
    from digitctl.layout import find_glyphs

    grey = page(160, 160)
    ink_digit(grey, 7, 30, 20, 110)
    rows, cols = np.nonzero(grey < 0.5)
    bottom = int(rows.max())
    grey[bottom - 2 : bottom + 3, 40:120] = 0.1  # the underline, barely wider than the 7
    layout = find_glyphs(ink_maps(grey)[0].ink)
    assert layout.alternative is not None
    assert all(g.box[3] < bottom - 2 for g in layout.alternative.glyphs), "no line in it"
    image = Image.fromarray((grey * 255).astype(np.uint8))
    assert predictor.read(image).text == "7"


@pytest.mark.parametrize(("pair", "gap"), [("17", -0.2), ("14", -0.15)])
def test_a_narrow_touching_pair_is_split_beside_other_digits(
    predictor: Predictor, pair: str, gap: float
) -> None:
    """A "1" squeezed against its neighbour makes a glyph narrower than most pairs
    (0.75-0.9 of its height): in a number it is tried as two digits, alone it is not."""
    from digitctl.imaging import decode_grey

    squeezed = number_image(pair, gap=gap)
    number = Image.fromarray(
        np.concatenate([np.asarray(number_image("3")), np.asarray(squeezed)], axis=1)
    )
    assert predictor.read(number).text == "3" + pair
    alone = reading.draft(*decode_grey(squeezed))
    glyphs = [g for line in alone.hypotheses[0].lines for g in line.runs.values()]
    assert len(glyphs) == 1 and glyphs[0].width < reading.SPLIT_FROM_ASPECT * glyphs[0].height
    assert glyphs[0].pieces == [], "a lone narrow glyph is read whole (a v is not 11)"


def flattened(label: str, aspect: float) -> Image.Image:
    """``label`` drawn as in number_image, squashed to ``aspect`` times wider than tall."""
    drawn = number_image(label)
    ink = np.asarray(drawn) < 128
    rows, cols = np.nonzero(ink)
    glyph = drawn.crop((cols.min(), rows.min(), cols.max() + 1, rows.max() + 1))
    glyph = glyph.resize((int(glyph.height * aspect), glyph.height))
    page = Image.new("L", (glyph.width + 40, glyph.height + 40), int(np.asarray(drawn).max()))
    page.paste(glyph, (20, 20))
    return page


@pytest.mark.parametrize("label", ["0", "3", "7"])
@pytest.mark.parametrize("aspect", [1.8, 2.1])
def test_a_flat_wide_digit_is_read_whole(predictor: Predictor, label: str, aspect: float) -> None:
    # A "2" with a long base stands twice as wide as tall in MNIST's own test set; up to
    # 1.7 such a glyph was only tried as several digits.
    assert predictor.read(flattened(label, aspect)).text == label


def test_a_fragment_much_lower_than_its_line_is_never_split() -> None:
    # A dash or a 5's flag drawn apart beside tall digits: its pieces, each as tall as the
    # dash, were read as digits of their own ("5054" read "50524").
    from digitctl.imaging import decode_grey

    image = np.asarray(number_image("47", gap=1.2)).copy()
    ink_columns = np.nonzero((image < 128).any(axis=0))[0]
    gap = [x for x in range(ink_columns[0], ink_columns[-1]) if x not in set(ink_columns)]
    middle = (gap[0] + gap[-1]) // 2
    image[30:48, middle - 20 : middle + 20] = 40  # 40 × 18 px in the gap; digits 71 px tall
    drafted = reading.draft(*decode_grey(Image.fromarray(image)))
    atoms = [line.runs[(i, 1)] for line in drafted.hypotheses[0].lines for i in range(line.atoms)]
    dash = min(atoms, key=lambda g: g.height)
    assert dash.height < reading.SHORT_IN_LINE * max(g.height for g in atoms)
    assert dash.pieces == []
    assert all(g.pieces == [] or g.height > 60 for g in atoms)


def one_cropped_to_its_ink(width: int, height: int, stroke: float) -> np.ndarray:
    """A slanted "1" cropped tightly: its stroke runs corner to corner and covers most of
    the crop (luminance in [0, 1], dark ink)."""
    grey = np.full((height, width), 0.9, np.float32)
    columns = np.arange(width)
    for y in range(height):
        centre = (width - 1) * (1 - y / (height - 1))
        coverage = np.clip(stroke / 2 + 0.5 - np.abs(columns - centre), 0, 1)
        grey[y] = 0.9 - 0.8 * coverage
    return grey


@pytest.mark.parametrize(("width", "height", "stroke"), [(3, 15, 2.5), (5, 24, 3.0)])
@pytest.mark.parametrize("polarity", ["dark", "light"])
def test_a_one_cropped_to_its_ink_is_a_one(
    predictor: Predictor, width: int, height: int, stroke: float, polarity: str
) -> None:
    # Its ink outnumbers its paper, so the majority named the wrong polarity; and read
    # right, the lone bar looked like a box side to the model ("not a digit").
    grey = one_cropped_to_its_ink(width, height, stroke)
    if polarity == "light":
        grey = 1 - grey
    image = Image.fromarray((grey * 255).astype(np.uint8))
    reading = predictor.read(image)
    assert (reading.status, reading.text) == ("ok", "1")


@pytest.mark.parametrize("size", [8, 12, 16])
@pytest.mark.parametrize("polarity", ["dark", "light"])
def test_a_one_stretched_to_fill_a_tiny_frame_is_a_one(
    predictor: Predictor, size: int, polarity: str
) -> None:
    # Small scans stretch each digit to fill its frame: a "1" becomes a fat bar from corner
    # to corner, which the model, fitting it into 20×20 as it is, read "0".
    grey = one_cropped_to_its_ink(size, size, 0.6 * size)
    if polarity == "light":
        grey = 1 - grey
    answer = predictor.read(Image.fromarray((grey * 255).astype(np.uint8)))
    assert (answer.status, answer.text) == ("ok", "1")


@pytest.mark.parametrize("label", ["0", "3", "4"])
@pytest.mark.parametrize("size", [10, 14])
def test_other_digits_stretched_to_a_tiny_frame_keep_their_reading(
    predictor: Predictor, label: str, size: int
) -> None:
    shape = ri.draw_digit(int(label), size=90, width=10)
    rows, cols = np.nonzero(shape > 0.1)
    crop = shape[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    tiny = Image.fromarray(((1 - 0.85 * crop) * 255).astype(np.uint8)).resize((size, size))
    assert predictor.read(tiny).text == label


def test_only_a_tiny_lone_glyph_is_also_read_squeezed_and_only_as_a_one() -> None:
    from digitctl.imaging import decode_grey

    bar = (one_cropped_to_its_ink(12, 12, 7.0) * 255).astype(np.uint8)
    tiny = reading.draft(*decode_grey(Image.fromarray(bar)))
    squeezed = [h for h in tiny.hypotheses if h.must_read is not None]
    assert squeezed and all(h.must_read == reading.SQUEEZED_DIGIT for h in squeezed)
    view = squeezed[0].lines[0].runs[(0, 1)].whole
    assert (tiny.views[view] > 0.5).sum(axis=0).nonzero()[0].size < 12  # narrower than 20
    large = reading.draft(*decode_grey(Image.fromarray(bar).resize((48, 48))))
    assert all(h.must_read is None for h in large.hypotheses)

    rows = np.full((len(tiny.views), 11), 0.001, np.float32)
    rows[:, 3] = 0.99  # every view reads "3", squeezed or not
    assert reading._read_hypothesis(squeezed[0], rows)[0] == -math.inf
    rows[view, 3], rows[view, 1] = 0.001, 0.99
    assert reading._read_hypothesis(squeezed[0], rows)[0] > -math.inf


@pytest.mark.parametrize(
    ("labels", "gap"), [("770", -0.2), ("303", -0.12), ("7007", -0.12), ("0413", -0.05)]
)
def test_overlapping_digits_are_counted_and_read_with_the_sequence_model(
    predictor: Predictor, labels: str, gap: float
) -> None:
    # Overlapping strokes leave no thin column to cut at: without the bundled sequence
    # model these read "", "323", "7057" and "043".
    assert predictor.sequence_model is not None and predictor.sequence_model.exists()
    answer = predictor.read(number_image(labels, gap=gap))
    assert answer.text == labels and answer.status == "ok"
    lefts = [d.box[0] for d in answer.digits]
    assert lefts == sorted(lefts) and len(set(lefts)) == len(labels)
    for digit in answer.digits:
        assert abs(sum(digit.probabilities) - 1) < 1e-4 and digit.view.shape == (28, 28)


def test_read_and_read_many_take_every_kind_of_source(tmp_path: Path) -> None:
    import digitctl

    drawn = Image.fromarray((ri.draw_digit(7, size=96) * 255).astype(np.uint8), "L")
    drawn = Image.eval(drawn, lambda v: 255 - v)  # dark ink on white paper
    path = tmp_path / "seven.png"
    drawn.save(path)
    data = path.read_bytes()
    grey = np.asarray(drawn)
    sources = [
        path,
        str(path),
        data,
        io.BytesIO(data),
        drawn,
        grey,
        grey / 255.0,
        np.stack([grey] * 3, axis=-1),
        np.dstack([grey] * 3 + [np.full_like(grey, 255)]),
    ]
    assert digitctl.read(grey).text == "7"
    readings = list(digitctl.read_many(sources))
    assert [r.text for r in readings] == ["7"] * len(sources)
    with pytest.raises(TypeError, match="a path, bytes, a binary file object, a NumPy array"):
        digitctl.read([[0, 255], [255, 0]])
    with pytest.raises(TypeError, match="PIL image"):
        list(digitctl.read_many([data, 42]))


# ---- small writing on a big page ------------------------------------------------------
def test_a_clear_digit_on_a_large_clean_page_is_read(predictor: Predictor) -> None:
    # The 7: under 0.5% of the pixels are ink.
    page = Image.new("L", (2000, 1500), 255)
    ImageDraw.Draw(page).line([(900, 600), (1100, 600), (950, 900)], fill=0, width=20)
    reading = predictor.read(png(page))
    assert (reading.status, reading.text) == ("ok", "7")
    x0, y0, x1, y1 = reading.digits[0].box
    assert abs(x0 - 890) <= 20 and abs(y0 - 590) <= 20 and abs(x1 - 1110) <= 20
    assert abs(y1 - 910) <= 20


def test_a_number_on_a_big_photographed_sheet_is_read(predictor: Predictor) -> None:
    # A 6000×4000 photo (uneven light, grain, JPEG) holding a ~1180×313 number.
    rng = np.random.default_rng(5)
    drawn = number_image("3170", gap=1.3, margin=0)
    drawn = drawn.resize((round(drawn.width * 313 / drawn.height), 313), Image.Resampling.BICUBIC)
    number = np.asarray(drawn, np.float32) / 255
    h, w = number.shape
    assert 1000 < w < 1400 and h == 313
    yy, xx = np.mgrid[0:4000, 0:6000].astype(np.float32)
    paper = 0.8 + 0.02 * (xx / 6000) - 0.015 * (yy / 4000)
    paper += rng.normal(0, 0.01, paper.shape).astype(np.float32)
    top, left = 2300, 3500
    ink = 1 - number  # number_image: dark ink (0.15) on white
    paper[top : top + h, left : left + w] *= 1 - 0.9 * ink / ink.max()
    assert float((paper < 0.7).mean()) < 0.005  # too little ink for the quantile test
    buffer = io.BytesIO()
    Image.fromarray((paper.clip(0, 1) * 255).astype(np.uint8), "L").convert("RGB").save(
        buffer, "JPEG", quality=88
    )
    reading = predictor.read(buffer.getvalue())
    assert (reading.status, reading.text) == ("ok", "3170")


def test_a_big_blank_page_stays_blank(predictor: Predictor) -> None:
    rng = np.random.default_rng(2)
    page = np.clip(0.9 + rng.normal(0, 0.01, (1500, 2000)), 0, 1)
    reading = predictor.read(Image.fromarray((page * 255).astype(np.uint8), "L"))
    assert reading.status == "no_digit" and reading.text == ""
