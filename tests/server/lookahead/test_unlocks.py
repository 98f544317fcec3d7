"""Paywall unlock rates: observed, with a prior."""

from __future__ import annotations

import pytest
from reelfork.server.lookahead.tuning import Tuning
from reelfork.server.lookahead.unlocks import Unlocks


def test_a_paywall_nobody_reached_unlocks_at_the_prior_rate() -> None:
    assert Unlocks(Tuning(unlock_rate=0.1)).rate("story") == pytest.approx(0.1)


def test_the_observed_rate_outweighs_the_prior_as_viewers_come() -> None:
    unlocks = Unlocks(Tuning(unlock_rate=0.1, unlock_prior=10.0))
    unlocks.count("story", 10, 5)
    assert unlocks.rate("story") == pytest.approx((5 + 1) / 20)
    unlocks.count("story", 990, 495)
    assert unlocks.rate("story") == pytest.approx((500 + 1) / 1010)
    assert unlocks.rate("other") == pytest.approx(0.1)  # each paywall its own


def test_the_rate_stays_a_probability() -> None:
    unlocks = Unlocks(Tuning(unlock_rate=0.5, unlock_prior=0.0))
    unlocks.count("story", 1, 3)  # viewers seen behind it who were not seen choosing into it
    assert unlocks.rate("story") == 1.0
    assert Unlocks(Tuning(unlock_prior=0.0)).rate("story") == 0.0
