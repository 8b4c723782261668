"""The layout stage on images the tests draw: rules, boxes, underlines, glyphs, lines.

No model here: these check what the layout hands to the classifier.
"""

from __future__ import annotations

import numpy as np
import pytest
import realistic_images as ri
from PIL import Image, ImageDraw

from digitctl.errors import NoDigitFound
from digitctl.imaging import decode_grey
from digitctl.inkmap import ink_maps
from digitctl.layout import find_glyphs
from digitctl.rules import frame_cell, line_candidates, remove_rules


def page(width: int, height: int) -> np.ndarray:
    """White paper, as luminance in [0, 1]."""
    return np.full((height, width), 0.95, np.float32)


def ink_digit(grey: np.ndarray, label: int, x: int, y: int, size: int, width: int = 10) -> None:
    """Draw ``label`` (0, 1, 3, 4 or 7) in dark ink with its top-left corner at (x, y)."""
    shape = np.asarray(
        Image.fromarray((ri.draw_digit(label, width=width) * 255).astype(np.uint8)).resize(
            (size, size), Image.Resampling.BILINEAR
        ),
        np.float32,
    ) / np.float32(255)
    region = grey[y : y + size, x : x + size]
    region[...] = np.minimum(region, 1 - 0.85 * shape[: region.shape[0], : region.shape[1]])


def layout_of(grey: np.ndarray):
    return find_glyphs(ink_maps(grey)[0].ink)


def faint_digit_in_heavy_box(
    side: int, frame: tuple[int, int], digit: tuple[int, int, int], pen: int, strength: float
) -> np.ndarray:
    """A black printed box (``frame``: its outer offset and line thickness) around a
    pencil-grey 3 (``digit``: x, y, size) drawn ``strength`` as dark as the ink."""
    grey = page(side, side)
    start, thick = frame
    stop = side - start
    grey[start : start + thick, start:stop] = grey[stop - thick : stop, start:stop] = 0.05
    grey[start:stop, start : start + thick] = grey[start:stop, stop - thick : stop] = 0.05
    drawn = page(side, side)
    ink_digit(drawn, 3, *digit, width=pen)
    return np.minimum(grey, 0.95 - strength * (0.95 - drawn))


def test_a_box_around_a_digit_is_removed() -> None:
    grey = page(160, 160)
    grey[20:24, 20:140] = grey[136:140, 20:140] = 0.1
    grey[20:140, 20:24] = grey[20:140, 136:140] = 0.1
    ink_digit(grey, 3, 40, 40, 80)
    layout = layout_of(grey)
    assert layout.rules >= 4
    assert len(layout.glyphs) == 1
    x0, y0, x1, y1 = layout.glyphs[0].box
    # The glyph is the digit (about 40..120 here), not the box (20..140).
    assert x0 > 30 and x1 < 130 and y0 > 30 and y1 < 130


@pytest.mark.parametrize(
    ("side", "frame", "digit", "pen", "strength", "inside"),
    [
        # The ink map's contrast is the box's, so the digit stands at about a third of
        # it, below the stroke level, until the writing off the lines is measured alone.
        (160, (16, 10), (40, 40, 80), 6, 0.35, (40, 35, 120, 115)),
        # A fifth of the box's height, touching none of it: its ink is a small share of
        # the box's, which alone would call it crumbs beside lines.
        (200, (10, 16), (80, 80, 40), 4, 0.7, (70, 70, 130, 130)),
    ],
    ids=["faint", "small"],
)
def test_a_faint_thin_digit_in_a_heavy_box_is_not_lost_with_it(
    side: int, frame: tuple, digit: tuple, pen: int, strength: float, inside: tuple
) -> None:
    layout = layout_of(faint_digit_in_heavy_box(side, frame, digit, pen, strength))
    assert not layout.only_rules
    assert len(layout.glyphs) == 1
    x0, y0, x1, y1 = layout.glyphs[0].box
    assert x0 > inside[0] and y0 > inside[1] and x1 < inside[2] and y1 < inside[3]


def test_a_thin_tilted_box_apart_from_the_digit_is_removed() -> None:
    # A 2 px box tilted by ~4 degrees: its sides are no long straight run, but it is a
    # frame around the digit, and must not be read as a "1" beside it.
    grey = page(180, 180)
    frame = Image.new("L", (180, 180), 0)
    ImageDraw.Draw(frame).rectangle((30, 25, 150, 155), outline=255, width=2)
    frame = np.asarray(frame.rotate(4, resample=Image.Resampling.BILINEAR), np.float32) / 255
    grey = np.minimum(grey, 1 - 0.7 * frame)
    ink_digit(grey, 3, 55, 50, 80)
    layout = layout_of(grey)
    assert len(layout.glyphs) == 1
    x0, y0, x1, y1 = layout.glyphs[0].box
    assert x0 > 45 and x1 < 140 and y0 > 40 and y1 < 140


def test_a_one_inside_a_box_is_kept_when_only_straight_lines_are_there() -> None:
    grey = page(160, 160)
    grey[10:14, 10:150] = grey[146:150, 10:150] = 0.1
    grey[10:150, 10:14] = grey[10:150, 146:150] = 0.1
    grey[40:120, 76:84] = 0.1  # a straight "1", shorter than the box and touching none of it
    layout = layout_of(grey)
    assert not layout.only_rules
    assert len(layout.glyphs) == 1
    x0, y0, x1, y1 = layout.glyphs[0].box
    assert 70 <= x0 and x1 <= 90 and 35 <= y0 and y1 <= 125


def test_a_one_in_a_comb_is_kept_apart_from_the_combs_dividers() -> None:
    # A comb (a box divided into cells, as on forms) with a straight "1" in one cell: the
    # dividers join the box and go with it; the "1" touches nothing and is the writing.
    grey = page(200, 120)
    grey[10:18, 5:195] = grey[100:108, 5:195] = 0.1
    for x in (10, 70, 130, 185):
        grey[10:108, x : x + 8] = 0.1
    grey[35:85, 96:103] = 0.1
    layout = layout_of(grey)
    assert not layout.only_rules
    assert len(layout.glyphs) == 1
    x0, y0, x1, y1 = layout.glyphs[0].box
    assert 90 <= x0 and x1 <= 110 and 30 <= y0 and y1 <= 90


def test_tilted_box_sides_left_between_removed_rules_are_dropped() -> None:
    # Ruled lines across the page are removed; the upright sides of a box drawn between
    # them lean too far to be straight runs. Left alone they would read as "1 3 1".
    grey = page(220, 160)
    grey[20:26, :] = grey[130:136, :] = 0.15
    sides = Image.new("L", (220, 160), 0)
    draw = ImageDraw.Draw(sides)
    draw.line((25, 23, 37, 133), fill=255, width=5)
    draw.line((185, 23, 197, 133), fill=255, width=5)
    grey = np.minimum(grey, 1 - 0.85 * np.asarray(sides, np.float32) / 255)
    ink_digit(grey, 3, 75, 40, 75)
    layout = layout_of(grey)
    assert len(layout.glyphs) == 1
    x0, y0, x1, y1 = layout.glyphs[0].box
    assert x0 > 60 and x1 < 165


@pytest.mark.parametrize("rule_tone", [0.3, 0.55])
def test_ruled_lines_crossing_a_digit_are_removed_and_the_strokes_bridged(rule_tone: float) -> None:
    grey = page(200, 160)
    for y in range(10, 160, 30):
        grey[y : y + 2, :] = rule_tone  # dark and grey rules across the whole page
    ink_digit(grey, 1, 60, 30, 100, width=14)
    layout = layout_of(grey)
    assert layout.rules >= 4
    assert len(layout.glyphs) == 1, "the 1 must not be cut in pieces by the removed rules"
    glyph = layout.glyphs[0]
    assert glyph.height > 65  # the whole stroke (72 px), bridged across the rules
    column_profile = (glyph.ink > 0.3).any(axis=1)
    assert column_profile.mean() > 0.95  # no gap left where a rule crossed it


def test_an_underline_is_removed_but_a_sevens_bar_is_kept() -> None:
    grey = page(160, 150)
    ink_digit(grey, 7, 30, 10, 100)
    grey[125:129, 15:145] = 0.15  # underline below, not touching the digit
    layout = layout_of(grey)
    assert layout.rules == 1
    assert len(layout.glyphs) == 1
    glyph = layout.glyphs[0]
    assert glyph.box[3] < 122  # the underline is gone
    assert (glyph.ink[: glyph.height // 6] > 0.3).sum() > 50  # the bar of the 7 is there


def test_a_short_pen_underline_is_removed() -> None:
    # As wide as the digit and drawn by hand (a little slanted): no long straight run.
    grey = page(140, 160)
    ink_digit(grey, 7, 30, 10, 90)
    for x in range(50, 106):  # the 7's ink spans x 53..101 and ends at y 90
        y = 100 + (x - 50) // 8  # slanted, 7 px over the stroke
        grey[y : y + 5, x] = 0.15
    layout = layout_of(grey)
    assert len(layout.glyphs) == 1
    assert layout.glyphs[0].box[3] <= 95  # the 7 alone


def test_a_rules_thickness_ignores_a_stroke_that_touches_it() -> None:
    from digitctl.rules import _quarter, _rule_candidates

    mask = np.zeros((120, 160), np.uint8)
    mask[100:104, :] = 1  # a 4 px rule across
    mask[88:100, 40:100] = 1  # a thick bar of a digit standing on it
    (found,) = _rule_candidates(mask, True, _quarter(mask))
    assert found[2] == 4  # the rule's own thickness, not (640 + 720) / 160


def test_an_empty_box_is_only_rules() -> None:
    grey = page(120, 90)
    grey[10:13, 10:110] = grey[77:80, 10:110] = 0.1
    grey[10:80, 10:13] = grey[10:80, 107:110] = 0.1
    cleaned, rules, only_rules = remove_rules(ink_maps(grey)[0].ink)
    assert only_rules and rules >= 4
    assert float(cleaned.max()) == 0.0


def test_a_lone_stroke_is_kept_for_the_classifier() -> None:
    grey = page(60, 120)
    grey[10:110, 27:33] = 0.1  # a "1", which is also a long straight line
    layout = layout_of(grey)
    assert layout.rules == 0 and len(layout.glyphs) == 1


def test_stacked_pieces_are_one_glyph_and_lines_are_read_top_to_bottom() -> None:
    grey = page(220, 260)
    # A "5"-like glyph: a flag above a separate body.
    grey[20:26, 40:80] = 0.1
    ink_digit(grey, 3, 30, 30, 60)
    ink_digit(grey, 1, 120, 20, 70)
    ink_digit(grey, 0, 30, 150, 70)  # second line
    ink_digit(grey, 7, 120, 150, 70)
    layout = layout_of(grey)
    assert [len(line) for line in layout.lines] == [2, 2]
    first, second = layout.lines
    assert first[0].box[0] < first[1].box[0]  # left to right
    assert first[0].box[1] <= 21  # the flag joined the body below it
    assert second[0].box[1] > first[0].box[3]


def test_a_thin_pens_broken_digit_is_one_glyph() -> None:
    # A 5 whose thin stroke broke between its top and its bowl: the bowl sits 0.3 of its
    # height below the top piece, which is no line of writing of its own.
    grey = page(140, 160)
    grey[20:25, 40:100] = grey[20:45, 40:45] = 0.1  # the flag and the stem
    ink_digit(grey, 0, 40, 50, 60, width=6)  # the bowl
    layout = layout_of(grey)
    assert len(layout.lines) == 1 and len(layout.glyphs) == 1
    assert layout.glyphs[0].box[1] <= 21 and layout.glyphs[0].box[3] >= 100


def ring(ink: np.ndarray, cx: int, cy: int, faint_at: tuple[int, ...] = ()) -> None:
    """A "0" drawn straight into an ink map; its stroke fades to 0.2 (below the stroke
    level, as a thin pen's does) in 3-pixel gaps at the columns ``faint_at``."""
    yy, xx = np.mgrid[: ink.shape[0], : ink.shape[1]]
    stroke = (np.hypot(yy - cy, xx - cx) > 22) & (np.hypot(yy - cy, xx - cx) < 25)
    ink[stroke] = np.maximum(ink[stroke], 0.7)
    for x in faint_at:
        ink[stroke & (np.abs(xx - x) < 2)] = 0.2


def test_a_stroke_that_fades_below_the_stroke_level_is_still_one_glyph() -> None:
    # Faded at top and bottom, the 0's halves stood side by side as two glyphs ("00").
    ink = np.zeros((80, 80), np.float32)
    ring(ink, 40, 40, faint_at=(40,))
    layout = find_glyphs(ink)
    assert [g.box for g in layout.glyphs] == [(16, 16, 65, 65)]


def test_faint_ink_away_from_the_strokes_joins_nothing() -> None:
    # A faint printed line between two digits touches both, but only its ends lie near
    # their strokes: the digits stay two glyphs, and the line makes none of its own.
    ink = np.zeros((80, 160), np.float32)
    ring(ink, 40, 40)
    ring(ink, 115, 40)
    ink[39:42, 66:90] = 0.2
    layout = find_glyphs(ink)
    assert [g.box for g in layout.glyphs] == [(16, 16, 65, 65), (91, 16, 140, 65)]


@pytest.mark.parametrize("polarity", ["dark", "light"])
@pytest.mark.parametrize("side", [8, 12, 20, 36])
def test_tight_and_tiny_crops_are_read_whatever_the_polarity(polarity: str, side: int) -> None:
    shape = ri.draw_digit(4)
    rows = np.nonzero(shape.max(axis=1) > 0.1)[0]
    cols = np.nonzero(shape.max(axis=0) > 0.1)[0]
    crop = shape[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # ink touches every edge
    image = Image.fromarray((crop * 255).astype(np.uint8)).resize((side, side))
    levels = np.asarray(image, np.float32) / 255
    levels = np.round(levels * 3) / 3  # four grey levels
    grey = 0.9 - 0.8 * levels if polarity == "dark" else 0.1 + 0.8 * levels
    maps = ink_maps(grey.astype(np.float32))
    assert maps, "a tiny digit must not be rejected"
    # Whichever map is chosen, the likelier one has the digit as ink (a minority of pixels).
    assert float((maps[0].ink > 0.5).mean()) < 0.6


@pytest.mark.parametrize("polarity", ["dark", "light"])
@pytest.mark.parametrize("label", [0, 3])
def test_an_eight_pixel_digit_in_four_grey_levels_has_ink(polarity: str, label: int) -> None:
    # Its paper side holds the digit's own edge levels: measured as noise, they hid it.
    shape = ri.draw_digit(label)
    rows = np.nonzero(shape.max(axis=1) > 0.1)[0]
    cols = np.nonzero(shape.max(axis=0) > 0.1)[0]
    crop = shape[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    levels = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize((8, 8)), np.float32)
    levels = np.round(levels / levels.max() * 3) / 3
    grey = 0.8 - 0.7 * levels if polarity == "dark" else 0.15 + 0.7 * levels
    maps = ink_maps(grey.astype(np.float32))
    assert any(float((m.ink > 0.5).mean()) < 0.6 for m in maps)


def test_a_one_pixel_wide_crop_of_a_one_is_accepted() -> None:
    image = Image.new("L", (1, 15), 30)
    grey, size = decode_grey(image)
    assert size == (1, 15) and grey.shape == (15, 1)


def test_blank_and_uniform_images_have_no_ink() -> None:
    with pytest.raises(NoDigitFound):
        ink_maps(page(50, 50))


def test_decode_accepts_eight_pixel_images() -> None:
    grey, size = decode_grey(Image.new("L", (8, 8), 200))
    assert size == (8, 8) and grey.shape == (8, 8)


def test_component_labels_match_opencv_32_bit_labels() -> None:
    """The 16-bit labelling gives what OpenCV's 32-bit labelling gives."""
    import cv2

    from digitctl.rules import label_components

    rng = np.random.default_rng(5)
    mask = (cv2.blur(rng.random((180, 240)).astype(np.float32), (5, 5)) > 0.55).astype(np.uint8)
    count, labels, stats, _ = label_components(mask)
    expected = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
    assert count == expected[0] > 20
    assert labels.dtype == np.uint16
    np.testing.assert_array_equal(labels, expected[1])
    np.testing.assert_array_equal(stats, expected[2])


def test_component_labels_do_not_overflow_on_a_speckled_mask() -> None:
    """90,000 isolated pixels: more components than 16-bit labels hold."""
    from digitctl.rules import label_components

    mask = np.zeros((600, 600), np.uint8)
    mask[::2, ::2] = 1
    count, labels, _, _ = label_components(mask)
    assert count == 300 * 300 + 1
    assert int(labels.max()) == 300 * 300


def test_a_small_crop_of_a_heavy_comb_loses_its_thick_lines() -> None:
    # A comb cell cropped tightly: its lines are a fifth of the image thick, as thick as
    # a tight crop's strokes, but they draw a box around writing of its own.
    ink = np.zeros((72, 76), np.float32)
    ink[2:17, :] = ink[55:70, :] = 1.0  # the comb's long lines, 15 px thick
    ink[2:70, 2:17] = ink[2:70, 59:74] = 1.0  # its dividers either side of the cell
    digit = page(76, 72)
    ink_digit(digit, 7, 22, 19, 34, width=10)
    ink = np.maximum(ink, np.clip((0.95 - digit) * 1.2, 0, 1))
    cleaned, removed, only_rules = remove_rules(ink)
    assert removed == 4 and not only_rules
    ys, xs = np.nonzero(cleaned > 0.3)
    assert xs.min() >= 20 and xs.max() <= 56 and ys.min() >= 18 and ys.max() <= 53


def test_a_digit_joined_to_a_heavy_comb_is_laid_out_again_inside_its_cell() -> None:
    # Dividers too thick for rules (a quarter of the crop's height) and a bottom line the
    # digit runs into: one component with the frame. Its cell, read alone, holds the 3.
    ink = np.zeros((60, 90), np.float32)
    ink[:52, 16:30] = ink[:52, 66:80] = 1.0
    ink[48:60, :] = 1.0
    digit = page(90, 60)
    ink_digit(digit, 3, 36, 20, 28, width=7)
    ink = np.maximum(ink, np.clip((0.95 - digit) * 1.2, 0, 1))
    layout = find_glyphs(ink)
    assert [g.box for g in layout.glyphs] == [(0, 0, 90, 60)], "the frame and the 3 as one"
    assert layout.cell is not None and layout.cell in layout.readings
    (three,) = layout.cell.glyphs
    x0, y0, x1, y1 = three.box
    assert x0 >= 31 and x1 <= 65 and y1 <= 47 and y1 - y0 >= 18


def test_a_letters_stems_are_not_the_sides_of_a_cell() -> None:
    # An "N" fills its crop: two stems and the diagonal joining them, straight lines on
    # both sides of the centre, but the writing between them touches both.
    ink = np.zeros((60, 60), np.float32)
    ink[:, 4:14] = ink[:, 46:56] = 1.0
    for y in range(60):
        x = int(4 + y * 42 / 60)
        ink[y, x : x + 12] = 1.0
    candidates, _ = line_candidates(ink)
    assert frame_cell(candidates, ink) is None
    assert find_glyphs(ink).cell is None
    # The same stems as a comb's dividers, reaching past a digit written across them,
    # do hold a cell.
    comb = np.zeros((60, 60), np.float32)
    comb[:, 4:8] = comb[:, 52:56] = 1.0
    for y in range(20, 44):
        x = 6 + 2 * (y - 20)
        comb[y, x : x + 5] = 1.0  # a stroke from one divider to the other
    candidates, _ = line_candidates(comb)
    cell = frame_cell(candidates, comb)
    assert cell is not None and 8 <= cell[0] <= 12 and 48 <= cell[2] <= 52


def test_the_ones_at_both_ends_of_a_number_are_not_a_cells_sides() -> None:
    # "101" on a canvas: two straight uprights either side of the centre, as tall as
    # the writing, but neither cut by the crop nor ending on a horizontal line.
    ink = np.zeros((84, 220), np.float32)
    ink[16:70, 38:45] = ink[16:70, 178:185] = 1.0  # the two 1s
    ring(ink, 110, 42)  # the 0 between them, apart from both
    candidates, _ = line_candidates(ink)
    assert sum(not c.horizontal and c.box[3] - c.box[1] > 42 for c in candidates) >= 2
    assert frame_cell(candidates, ink) is None
    assert find_glyphs(ink).cell is None
    # The same uprights cut by the crop at the top are a comb's dividers.
    ink[:16, 38:45] = ink[:16, 178:185] = 1.0
    candidates, _ = line_candidates(ink)
    assert frame_cell(candidates, ink) is not None


def test_a_box_side_the_crop_cut_is_not_read_as_a_one_beside_the_digit() -> None:
    # A crop of a boxed "0" that kept one side of the box, cut at the top by the crop:
    # the line search keeps an upright line beside writing (it may be a "1").
    ink = np.zeros((90, 90), np.float32)
    ring(ink, 38, 46)
    ink[0:80, 74:79] = 1.0  # the side, from the top edge down, apart from the 0
    layout = find_glyphs(ink)
    assert [len(line) for line in layout.lines] == [1]
    x0, _, x1, _ = layout.glyphs[0].box
    assert x1 < 70, "the 0 alone"
    # Where the writing reaches the same edge (a crop tight to the number "01"), or the
    # upright stops short of the edges (a "1" on a page), it is writing.
    tight = np.zeros((50, 90), np.float32)
    ring(tight, 30, 25)  # from edge to edge
    tight[:, 74:79] = 1.0
    assert len(find_glyphs(tight).glyphs) == 2
    page_one = np.zeros((90, 90), np.float32)
    ring(page_one, 38, 46)
    page_one[14:80, 74:79] = 1.0
    assert len(find_glyphs(page_one).glyphs) == 2
    # A "1" no taller than the 0 beside it, touching the bottom edge of a tilted
    # photo's crop where the 0 does not, is writing too.
    tilted = np.zeros((74, 90), np.float32)
    ring(tilted, 38, 34)
    tilted[28:74, 74:79] = 1.0
    assert len(find_glyphs(tilted).glyphs) == 2


def test_only_lines_on_one_side_make_no_cell() -> None:
    ink = np.zeros((60, 80), np.float32)
    ink[:, 6:10] = 1.0  # a box's left side, the crop cut the rest
    digit = page(80, 60)
    ink_digit(digit, 7, 30, 10, 40, width=7)
    ink = np.maximum(ink, np.clip((0.95 - digit) * 1.2, 0, 1))
    candidates, _ = line_candidates(ink)
    assert frame_cell(candidates, ink) is None


def test_a_tight_crop_keeps_its_thick_strokes() -> None:
    # A tight crop of a "4": its strokes are as thick as the comb's lines above, and
    # straight, but they enclose no writing apart from them.
    ink = np.zeros((72, 76), np.float32)
    ink[:, 50:66] = 1.0  # the stem, edge to edge
    ink[40:56, :] = 1.0  # the bar
    ink[:48, 4:20] = 1.0  # the upright
    cleaned, removed, _ = remove_rules(ink)
    assert removed == 0
    np.testing.assert_array_equal(cleaned, ink)


def test_a_thick_straight_stroke_beside_a_thin_box_is_the_digits_not_the_boxs() -> None:
    # A "6" written with a broad pen in a box drawn with a thin one: its long upright
    # stroke is straight and lies left of the rest of the digit, as a box side would, but
    # it is far thicker than the box's lines and it joins the digit's loop.
    grey = page(200, 200)
    grey[8:11, 8:192] = grey[189:192, 8:192] = 0.1
    grey[8:192, 8:11] = grey[8:192, 189:192] = 0.1
    six = Image.new("L", (200, 200), 0)
    draw = ImageDraw.Draw(six)
    draw.rectangle((50, 30, 72, 165), fill=255)
    draw.ellipse((55, 90, 150, 170), outline=255, width=20)
    grey = np.minimum(grey, 1 - 0.85 * np.asarray(six, np.float32) / 255)
    layout = layout_of(grey)
    assert len(layout.glyphs) == 1
    x0, y0, x1, y1 = layout.glyphs[0].box
    assert x0 < 60 and x1 > 140, "the whole 6, its thick stem included"
    assert x0 > 12 and x1 < 188 and y0 > 12 and y1 < 188, "without the box"


@pytest.mark.parametrize(("side", "line", "tone"), [(63, 1, 0.2), (126, 2, 0.05)])
def test_a_thin_rule_through_a_thick_stroke_leaves_no_gap_in_it(
    side: int, line: int, tone: float
) -> None:
    # A thin ruled line across a broad-pen "0": where the ring's sides cross it, the
    # straight-run search takes in the stroke's rows beside the line too. Clearing all of
    # them left a gap wider than the bridge closes, and the "0" fell apart in two arcs.
    k = side / 126
    grey = page(side, side)
    ring = Image.new("L", (side, side), 0)
    ImageDraw.Draw(ring).ellipse((33 * k, 30 * k, 87 * k, 100 * k), outline=255, width=int(8 * k))
    grey = np.minimum(grey, 1 - 0.85 * np.asarray(ring, np.float32) / 255)
    for y in (int(20 * k), int(65 * k), int(110 * k)):
        grey[y : y + line, :] = np.minimum(grey[y : y + line, :], tone)
    layout = layout_of(grey)
    assert layout.rules >= 3
    assert len(layout.glyphs) == 1, "one ring, not two arcs"
    cleaned = layout.cleaned > 0.3
    y = int(65 * k)
    rows = slice(y - 2, y + line + 2)
    assert cleaned[rows, int(33 * k) : int(46 * k)].any(axis=1).all(), "the left side is whole"
    assert cleaned[rows, int(74 * k) : int(87 * k)].any(axis=1).all(), "and the right side"


def test_ruled_lines_tilted_as_in_a_phone_photo_are_still_removed() -> None:
    # Lines tilted by 3.5 degrees (a notebook photographed slightly askew) wander 10 px
    # over 160: no straight run at a tolerance of 2 degrees, so they crossed the digit.
    grey = page(160, 160)
    lines = Image.new("L", (160, 160), 0)
    draw = ImageDraw.Draw(lines)
    for y in (12, 52, 92, 132):
        draw.line((0, y, 160, y + 10), fill=255, width=3)
    grey = np.minimum(grey, 1 - 0.8 * np.asarray(lines, np.float32) / 255)
    ink_digit(grey, 3, 45, 35, 80)
    layout = layout_of(grey)
    assert layout.rules >= 3
    assert len(layout.glyphs) == 1
    x0, y0, x1, y1 = layout.glyphs[0].box
    assert x0 > 35 and x1 < 135 and y0 > 25 and y1 < 125, "the digit, not the lines"


def test_faint_broken_ruled_lines_in_a_photo_are_found_and_removed() -> None:
    # Printed lines that a photo renders faint and uneven: at the stroke-finding level
    # they break into 12 px dashes, no long run, and the dashes touching the digit stayed
    # on it. Looked for at a fainter level (in an ink map this large), they are lines.
    grey = page(160, 160)
    tone = np.where((np.arange(160) // 12) % 2 == 0, 0.95 - 0.6, 0.95 - 0.38)
    for y in (30, 70, 110):
        grey[y : y + 2, :] = np.minimum(grey[y : y + 2, :], tone)
    ink_digit(grey, 3, 40, 30, 90)
    layout = layout_of(grey)
    assert layout.rules >= 3
    assert len(layout.glyphs) == 1
    x0, y0, x1, y1 = layout.glyphs[0].box
    assert x1 <= 106 and y1 <= 110, "no dash of a line left on the digit"
