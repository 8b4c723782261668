"""The synthetic training-data generator: framed digits, negatives, training views."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from digitctl import synth
from tests.realistic_images import draw_digit


def _shape(label: int = 4) -> np.ndarray:
    """A 28×28 MNIST-like shape (white ink on black, values in [0, 1])."""
    big = Image.fromarray((draw_digit(label) * 255).astype(np.uint8), "L")
    return np.asarray(big.resize((28, 28), Image.Resampling.BOX), dtype=np.float32) / 255


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32) / 255


def _dark_paper(image: Image.Image) -> bool:
    """True when the ground (the median pixel) is darker than mid-grey."""
    return float(np.median(_pixels(image))) < 0.5


@pytest.mark.parametrize("style", synth.FRAMED_STYLES)
def test_every_style_renders_a_readable_image(style: str) -> None:
    for i in range(6):
        image = synth.render_framed(_shape(), np.random.default_rng([3, i]), style)
        assert isinstance(image, Image.Image)
        assert image.mode in ("L", "RGB", "RGBA")
        assert min(image.size) >= 8
        grey = _pixels(image)
        assert float(grey.max() - grey.min()) > 0.2, "the digit must stand out"


@pytest.mark.parametrize("kind", synth.NEGATIVE_KINDS)
def test_every_negative_kind_renders(kind: str) -> None:
    for i in range(6):
        image = synth.render_negative(np.random.default_rng([4, i]), kind)
        assert isinstance(image, Image.Image)
        assert min(image.size) >= 8


def test_unknown_style_and_kind_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown style"):
        synth.render_framed(_shape(), np.random.default_rng(0), "doodle")
    with pytest.raises(ValueError, match="unknown kind"):
        synth.render_negative(np.random.default_rng(0), "doodle")


def test_weights_cover_exactly_the_styles_and_kinds() -> None:
    assert set(synth.STYLE_WEIGHTS) == set(synth.FRAMED_STYLES)
    assert set(synth.KIND_WEIGHTS) == set(synth.NEGATIVE_KINDS)


def test_rendering_is_deterministic_for_a_seed() -> None:
    def render(seed: int) -> list[np.ndarray]:
        images = [
            synth.render_framed(_shape(7), np.random.default_rng([seed, i])) for i in range(8)
        ]
        images += [synth.render_negative(np.random.default_rng([seed, i])) for i in range(8)]
        return [np.asarray(image) for image in images]

    first, again, other = render(1), render(1), render(2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(
        a.shape == b.shape and np.array_equal(a, b) for a, b in zip(first, other, strict=True)
    )


def test_excluded_glyphs_never_become_negatives() -> None:
    assert not set(synth.GLYPHS) & synth.EXCLUDED_GLYPHS
    for lookalike in "0123456789OoDQIlijJ|/\\SsZzBbgqG":
        assert lookalike not in synth.GLYPHS
        assert lookalike in synth.EXCLUDED_GLYPHS
    for kept in "ACEFHKLMNPRTUVWXYacdefhkmnprtuvwxy+?#&%@*=$<>~^€£":
        assert kept in synth.GLYPHS
    assert len(set(synth.GLYPHS)) == len(synth.GLYPHS)


def test_every_font_renders_most_glyphs_and_no_missing_glyph_boxes() -> None:
    for name in synth._FONT_FILES:
        available = synth._glyphs_in(name)
        assert set(available) <= set(synth.GLYPHS)
        assert len(available) >= 0.8 * len(synth.GLYPHS), name


def test_tiny_styles_are_small_but_at_least_8_pixels() -> None:
    sizes = []
    for i in range(40):
        rng = np.random.default_rng([5, i])
        image = synth.render_framed(_shape(1 if i % 2 else 0), rng, "lowres")
        sizes.append(image.size)
    assert min(min(s) for s in sizes) >= 8
    assert max(max(s) for s in sizes) <= 16
    assert any(min(s) == 8 for s in sizes), "a narrow 1 is padded to exactly 8 px"
    tight = [
        synth.render_framed(_shape(), np.random.default_rng([6, i]), "tight") for i in range(30)
    ]
    assert all(8 <= min(t.size) and max(t.size) <= 40 for t in tight)
    assert min(max(t.size) for t in tight) <= 20


def test_tight_crops_have_ink_at_the_edges() -> None:
    touching = 0
    for i in range(20):
        image = synth.render_framed(_shape(0), np.random.default_rng([7, i]), "tight")
        grey = _pixels(image)
        paper = float(np.median(grey))
        ink = np.abs(grey - paper) > 0.25
        touching += bool(ink[0].any() or ink[-1].any() or ink[:, 0].any() or ink[:, -1].any())
    assert touching >= 12


def test_renders_cover_both_polarities_and_colour() -> None:
    images = [synth.render_framed(_shape(), np.random.default_rng([8, i])) for i in range(80)]
    dark = sum(_dark_paper(image) for image in images)
    assert 5 <= dark <= 40, "most on light paper, some light ink on a dark ground"
    modes = {image.mode for image in images}
    assert {"L", "RGB"} <= modes
    coloured = 0
    for image in images:
        if image.mode == "RGB":
            rgb = np.asarray(image, dtype=np.float32)
            coloured += float(np.abs(rgb[..., 0] - rgb[..., 2]).max()) > 60
    assert coloured >= 5, "coloured inks and lines"


def test_boxes_and_rules_add_long_straight_lines() -> None:
    def longest_dark_row(image: Image.Image) -> float:
        grey = _pixels(image)
        if _dark_paper(image):
            grey = 1 - grey
        paper = float(np.median(grey))
        ink = grey < paper - 0.1
        return float(ink.mean(axis=1).max())

    for style in ("box", "ruled", "underline"):
        found = [
            longest_dark_row(synth.render_framed(_shape(1), np.random.default_rng([9, i]), style))
            for i in range(12)
        ]
        # A "1" alone covers a small share of any row; a rule covers most of one.
        assert np.median(found) > 0.6, style


def _digits() -> tuple[np.ndarray, np.ndarray]:
    labels = np.array([0, 1, 3, 4, 7], dtype=np.uint8)
    return np.stack([_shape(int(label)) for label in labels]), labels


def test_training_views_shapes_labels_and_negatives() -> None:
    x, y = _digits()
    calls: list[tuple[int, int]] = []
    result = synth.render_views(
        x, y, 40, 30, seed=11, workers=1, progress=lambda d, t: calls.append((d, t))
    )
    n = len(result.labels)
    assert result.views.shape == (n, 28, 28)
    assert result.views.dtype == np.float32 and result.labels.dtype == np.int64
    assert 0.0 <= float(result.views.min()) and float(result.views.max()) <= 1.0
    assert sum(result.rendered.values()) == 70
    assert n == 70 - sum(result.skipped.values()) - sum(result.filtered.values())
    assert all(source.startswith("negative:") for source in result.filtered)
    framed = np.char.startswith(result.sources, "framed:")
    assert set(result.labels[~framed].tolist()) == {synth.NEGATIVE_LABEL}
    assert set(result.labels[framed].tolist()) <= {0, 1, 3, 4, 7}
    assert framed.sum() >= 30, "most framed digits survive preprocessing"
    assert (~framed).sum() >= 10
    # Framed first, then negatives.
    assert not framed[int(framed.sum()) :].any()
    assert calls[-1] == (70, 70)
    # Every view holds ink, fitted like MNIST.
    assert (result.views.reshape(n, -1).max(axis=1) > 0.5).all()


def test_training_views_do_not_depend_on_worker_count() -> None:
    x, y = _digits()
    one = synth.training_views(x, y, 12, 8, seed=5, workers=1)
    two = synth.training_views(x, y, 12, 8, seed=5, workers=2)
    # Small chunks so that both workers really get work.
    split = synth.render_views(x, y, 12, 8, seed=5, workers=2, chunk=3)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])
    assert np.array_equal(one[0], split.views) and np.array_equal(one[1], split.labels)
    other = synth.training_views(x, y, 12, 8, seed=6, workers=1)
    assert other[0].shape != one[0].shape or not np.array_equal(other[0], one[0])


def test_training_views_with_no_digits() -> None:
    views, labels = synth.training_views(
        np.zeros((0, 28, 28)), np.zeros(0), 0, 5, seed=1, workers=1
    )
    assert views.shape[1:] == (28, 28) and len(views) == len(labels)
    assert (labels == synth.NEGATIVE_LABEL).all()
    with pytest.raises(ValueError, match="no digits"):
        synth.training_views(np.zeros((0, 28, 28)), np.zeros(0), 3, 0, seed=1)


def _view(shape: np.ndarray) -> np.ndarray:
    """A 28×28 view of ``shape``: its ink fitted into 20×20 and centred, as MNIST does."""
    rows = np.flatnonzero(shape.max(axis=1) > 0.05)
    cols = np.flatnonzero(shape.max(axis=0) > 0.05)
    crop = shape[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = 20 / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    box = np.asarray(Image.fromarray(crop, "F").resize(size, Image.Resampling.BOX))
    view = np.zeros((28, 28), np.float32)
    top, left = (28 - box.shape[0]) // 2, (28 - box.shape[1]) // 2
    view[top : top + box.shape[0], left : left + box.shape[1]] = box
    return view


def test_touching_pairs_are_wide_negatives_and_apart_pairs_are_skipped(monkeypatch) -> None:
    x, y = _digits()
    result = synth.render_views(x, y, 0, 0, seed=3, workers=1, count_pairs=12)
    assert sum(result.rendered.values()) == 12 and set(result.rendered) == {"negative:pair"}
    assert len(result.labels) >= 6, "most pairs touch and survive preprocessing"
    assert (result.labels == synth.NEGATIVE_LABEL).all()
    assert all(synth._ink_aspect(view) >= synth.PAIR_MIN_ASPECT for view in result.views)
    # Two digits a whole width apart never touch: no image, so no negative made of one digit.
    monkeypatch.setattr(synth, "PAIR_GAP", (1.0, 1.0))
    rng = np.random.default_rng(0)
    assert synth.render_pair(x[0], x[2], rng) is None
    apart = synth.render_views(x, y, 0, 0, seed=3, workers=1, count_pairs=4)
    assert apart.skipped == {"negative:pair": 4} and len(apart.labels) == 0


def test_restroked_glyphs_have_one_pen_width() -> None:
    font = synth._font("DejaVuSans-Bold.ttf")
    glyph = synth._render_glyph("M", font)
    import cv2

    def widest_stroke(coverage: np.ndarray) -> float:
        mask = (coverage > 0.5).astype(np.uint8)
        return 2 * float(cv2.distanceTransform(np.pad(mask, 1), cv2.DIST_L2, 3).max())

    def mean_width(coverage: np.ndarray) -> float:  # ink area over skeleton length
        mask = coverage > 0.5
        return float(mask.sum()) / max(1, int(synth._skeleton(mask).sum()))

    height = glyph.shape[0]
    assert mean_width(glyph) > 0.18 * height  # a bold face: thick strokes
    for seed in range(5):
        traced = synth._restroke(glyph, np.random.default_rng(seed))
        assert mean_width(traced) <= 0.13 * height + 1
        assert widest_stroke(traced) < widest_stroke(glyph)
        # The skeleton is traced whole: the letter keeps its extent.
        rows = np.nonzero(traced.max(axis=1) > 0.5)[0]
        assert rows[-1] - rows[0] >= 0.85 * height


def test_a_lone_vertical_stroke_is_a_one_and_nothing_else_is() -> None:
    assert synth.looks_like_a_one(_view(draw_digit(1)))
    for label in (0, 3, 4, 7):
        assert not synth.looks_like_a_one(_view(draw_digit(label)))
    bar = np.zeros((60, 60), np.float32)
    bar[5:55, 27:33] = 1
    assert synth.looks_like_a_one(_view(bar))
    assert not synth.looks_like_a_one(_view(bar.T.copy()))  # a dash is no "1"
    assert not synth.looks_like_a_one(np.zeros((28, 28), np.float32))


def test_import_stays_light() -> None:
    code = (
        "import sys, digitctl.synth; "
        "heavy = ('matplotlib', 'sklearn', 'tensorflow', 'scipy'); "
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_synthetic_splits_include_pairs_and_are_cached_by_their_counts(tmp_path) -> None:
    from digitctl.robust import synthetic_splits
    from digitctl.ui import task_progress

    x, y = _digits()
    x = np.concatenate([x] * 4)[..., np.newaxis]
    y = np.concatenate([y] * 4)

    def build(pairs: int, shown: bool = False):
        # The CLI's own progress bars: its status column must find its field.
        with task_progress(transient=True) as progress:
            return synthetic_splits(
                x,
                y,
                framed=6,
                negatives=6,
                pieces=3,
                pairs=pairs,
                seed=2,
                fingerprint="f",
                cache_dir=tmp_path,
                progress=progress if shown else None,
            )

    first = build(pairs=6, shown=True)
    assert "negative:pair" in first.sources and "negative:piece" in first.sources
    assert len(first.x_train) + len(first.x_val) == len(first.sources)
    stamp = first.path.stat().st_mtime_ns
    again = build(pairs=6)
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp
    assert np.array_equal(again.x_train, first.x_train)
    without = build(pairs=0)
    assert without.path != first.path and "negative:pair" not in without.sources
