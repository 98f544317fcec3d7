"""When viewers choose, learned from their choices."""

from __future__ import annotations

import pytest
from reelfork.server.lookahead.timing import ChoiceTiming
from reelfork.server.lookahead.tuning import Tuning
from reelfork.server.lookahead.wants import Window


def test_the_priors_stand_until_enough_choices_are_seen_then_the_quantiles_tell() -> None:
    timing = ChoiceTiming(Tuning(choice_s=1.0, decision_grace_s=2.0, choice_samples=10))
    for seconds in range(9):
        timing.observe(float(seconds))
    assert timing.delays() == (1.0, 3.0)
    timing.observe(9.0)  # ten seen: 0..9 s
    early, typical = timing.delays()
    assert early == pytest.approx(1.0) and typical == pytest.approx(4.0)


def test_only_the_latest_choices_are_remembered() -> None:
    timing = ChoiceTiming(Tuning(choice_samples=4, choice_memory=4))
    for seconds in (9.0, 9.0, 9.0, 9.0, 1.0, 1.0, 1.0, 1.0):
        timing.observe(seconds)
    assert timing.delays() == (1.0, 1.0)


def test_a_scene_is_still_watched_by_those_who_have_not_chosen_yet() -> None:
    timing = ChoiceTiming(Tuning(choice_s=1.0, choice_samples=4))
    window = Window(10.0, 20.0)
    assert timing.still_watching(window, 10.5) == 1.0  # before the earliest choose
    assert timing.still_watching(window, 15.0) == 0.5  # nothing learned yet: half
    for seconds in (2.0, 4.0, 6.0, 8.0):
        timing.observe(seconds)
    assert timing.still_watching(window, 11.0) == 1.0
    assert timing.still_watching(window, 15.0) == pytest.approx(0.5)  # 6 and 8 s are yet to choose
    assert timing.still_watching(window, 30.0) == pytest.approx(0.01)  # never quite nobody
