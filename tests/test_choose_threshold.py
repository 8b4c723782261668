"""benchmarks/choose_threshold.py's rule: the lowest threshold that costs the digit sets
no more than the limits (its measurements need the real sets; the rule does not)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import choose_threshold as ct  # noqa: E402


def table(card: float, losses: dict[float, float]) -> dict[str, dict[float, float]]:
    """Every digit set at 0.9 at the card's threshold, ``losses[t]`` points lower at t;
    non-digits rejected more the lower the threshold."""
    rows: dict[str, dict[float, float]] = {}
    for name in ct.DIGIT_SETS:
        rows[name] = {t: 0.9 - losses.get(t, 0.0) / 100 for t in (*ct.GRID, card)}
    rows["non_digit"] = {t: 1 - t for t in (*ct.GRID, card)}
    return rows


def test_the_lowest_threshold_within_the_limits_is_chosen() -> None:
    card = 0.4875
    losses = {t: 0.0 for t in ct.GRID if t >= 0.4}
    losses.update({0.38: 0.3, 0.36: 0.6})  # 0.38: each set within 0.5 pt, the mean is not
    assert ct.choose(table(card, losses), card) == 0.4


def test_one_set_losing_too_much_stops_the_search() -> None:
    card = 0.4875
    rows = table(card, {})
    rows["tiny"][0.46] = 0.9 - (ct.MAX_SET_LOSS + 0.1) / 100
    rows["tiny"][0.3] = 0.95  # better again far below: not tried once 0.46 failed
    assert ct.choose(rows, card) == 0.48


def test_thresholds_above_the_cards_are_never_chosen() -> None:
    card = 0.4
    rows = table(card, {t: -1.0 for t in ct.GRID if t > card})  # "better" above: ignored
    assert ct.choose(rows, card) <= card
