"""The line reader's training scenes: every kind renders, and its target is what it shows."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import render_digits

from digitctl import scenes
from digitctl.linereader import CHARSET, STRIP_HEIGHT


@pytest.fixture(scope="module")
def pools() -> scenes.DigitPools:
    images, labels = render_digits(200, seed=3)
    return scenes.DigitPools.from_arrays(images, labels)


def _scene(pools: scenes.DigitPools, seed: int, **force) -> scenes.Scene:
    return scenes.render_scene(pools, np.random.default_rng([seed, 7]), **force)


@pytest.mark.parametrize("kind", scenes.FURNITURE)
def test_each_kind_of_furniture_renders_and_leaves_the_target_alone(pools, kind) -> None:
    within = {"comb": "box", "grid": "ruled"}  # kinds drawn only with another
    force = frozenset({kind, within.get(kind, kind)})
    changed = 0
    for seed in range(6):
        bare = _scene(pools, seed, negative=False, furniture=frozenset())
        furnished = _scene(pools, seed, negative=False, furniture=force)
        assert furnished.target == bare.target, "furniture is never part of the target"
        assert furnished.target and set(furnished.target) <= set(CHARSET)
        assert furnished.target[0].isdigit(), "a string starts with a digit"
        changed += furnished.image.shape != bare.image.shape or not np.array_equal(
            furnished.image, bare.image
        )
    assert changed >= 4, f"{kind} should show in the image"


@pytest.mark.parametrize("source", list(scenes.SOURCE_WEIGHTS))
def test_each_source_of_handwriting_writes_its_digits(pools, source) -> None:
    scene = _scene(pools, 11, negative=False, source=source, furniture=frozenset())
    assert scene.target and scene.image.dtype == np.uint8 and scene.image.ndim == 2
    strip = scenes.training_strip(scene.image)
    assert (strip > 0.5).sum() >= 20, "the digits are drawn"


def test_a_negative_scene_has_the_empty_target(pools) -> None:
    targets = {_scene(pools, seed, negative=True).target for seed in range(12)}
    assert targets == {""}


def test_strings_put_separators_only_between_digits_or_at_the_end() -> None:
    rng = np.random.default_rng(0)
    strings = [scenes._digit_string(rng) for _ in range(3000)]
    assert any("." in s for s in strings) and any("," in s for s in strings)
    assert any(s.endswith("-") for s in strings) and any(":" in s for s in strings)
    for s in strings:
        assert s[0].isdigit() and len(s) <= scenes.MAX_LABEL
        assert 1 <= sum(c.isdigit() for c in s) <= 8


def test_targets_encode_to_class_indices_padded_with_minus_one() -> None:
    codes = scenes.encode_target("1.000,-")
    assert codes.tolist()[:8] == [1, 10, 0, 0, 0, 11, 12, -1]
    assert len(codes) == scenes.MAX_LABEL
    assert scenes.encode_target("").tolist() == [-1] * scenes.MAX_LABEL


def test_batches_are_strips_of_the_training_width_and_depend_only_on_seed_and_index(
    pools,
) -> None:
    strips, targets = scenes.render_batch(pools, seed=5, start=0, count=8)
    assert strips.shape == (8, STRIP_HEIGHT, scenes.TRAIN_WIDTH) and strips.dtype == np.uint8
    assert targets.shape == (8, scenes.MAX_LABEL)
    later, later_targets = scenes.render_batch(pools, seed=5, start=5, count=3)
    np.testing.assert_array_equal(later, strips[5:8])
    np.testing.assert_array_equal(later_targets, targets[5:8])
    other, _ = scenes.render_batch(pools, seed=6, start=0, count=8)
    assert not np.array_equal(other, strips)
