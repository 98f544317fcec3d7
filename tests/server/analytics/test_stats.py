"""Variant rates, their intervals and the winner rule, on simulated viewers with known rates."""

from __future__ import annotations

import random

import pytest
from reelfork.server.analytics.stats import difference, rate, winner


def simulated(probability: float, viewers: int, rng: random.Random) -> int:
    """How many of ``viewers`` continue, each with ``probability``."""
    return sum(rng.random() < probability for _ in range(viewers))


def test_a_known_difference_names_the_right_winner_with_its_interval() -> None:
    rng = random.Random(23)
    a, b = rate(simulated(0.30, 400, rng), 400), rate(simulated(0.45, 400, rng), 400)
    assert winner({"a": a, "b": b}) == "b"
    assert b.low is not None and b.high is not None and b.low < 0.45 < b.high
    compared = difference(b, a)
    assert compared is not None and compared.p_value < 0.05
    assert 0 < compared.low < 0.15 < compared.high


def test_no_real_difference_declares_no_winner() -> None:
    rng = random.Random(5)
    declared = 0
    for _ in range(40):  # at alpha 0.05 about 2 in 40 null experiments would name a winner by chance
        rates = {"a": rate(simulated(0.4, 300, rng), 300), "b": rate(simulated(0.4, 300, rng), 300)}
        declared += winner(rates) is not None
    assert declared <= 5
    rng = random.Random(23)
    assert winner({"a": rate(simulated(0.4, 400, rng), 400), "b": rate(simulated(0.4, 400, rng), 400)}) is None


def test_three_variants_need_the_best_to_beat_both_and_empty_arms_decide_nothing() -> None:
    assert winner({"a": rate(60, 100), "b": rate(30, 100), "c": rate(31, 100)}) == "a"
    assert winner({"a": rate(60, 100), "b": rate(55, 100), "c": rate(20, 100)}) is None
    assert winner({"a": rate(60, 100), "b": rate(0, 0)}) is None
    assert rate(0, 0).rate is None
    empty = rate(0, 50)
    assert empty.rate == 0 and empty.low == 0 and empty.high == pytest.approx(0.0711, abs=1e-3)
