"""benchmarks/failure_sources.py's causes of a wrong reading (its measurements need the
real sets; sorting a reading into a cause does not)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from digitctl.reading import Reading

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import failure_sources as fsrc  # noqa: E402


def test_rejections_are_told_apart_from_a_layout_that_kept_only_lines() -> None:
    lines = Reading("", [], "not_a_digit", "not a digit: only lines or a box", 1.0)
    model = Reading("", [], "not_a_digit", "not a digit: the model reads it as a letter", 0.9)
    nothing = Reading("", [], "no_digit", "no digit found: no ink left to read", 1.0)
    assert fsrc.cause(lines, "7", [True]) == "only_lines"
    assert fsrc.cause(model, "7", [True]) == "rejected"
    assert fsrc.cause(nothing, "7", [True]) == "rejected"


@pytest.mark.parametrize(
    ("text", "label", "raw_right", "expected"),
    [
        ("12", "123", [True, True, True], "length"),  # a digit dropped
        ("1234", "123", [True, True, True], "length"),  # one split in two
        ("12\n3", "123", [True, True, True], "length"),  # the right digits, a line too many
        ("128", "123", [True, True, True], "view"),  # the model reads the raw 3 right
        ("128", "123", [True, True, False], "digit"),  # ... or misreads it as well
        ("723", "123", [True, False, False], "view"),  # only the wrong digit's raw counts
    ],
)
def test_a_wrong_reading_is_put_down_to_its_cause(text, label, raw_right, expected) -> None:
    assert fsrc.cause(Reading(text, [], "ok"), label, raw_right) == expected


def test_digits_are_listed_left_to_right_and_lines_top_to_bottom() -> None:
    assert fsrc.mnist_indices({"mnist_index": 42}) == [42]
    assert fsrc.mnist_indices({"mnist_index": [[5, 6], [7]]}) == [5, 6, 7]
