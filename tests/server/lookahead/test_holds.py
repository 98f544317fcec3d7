"""Holds on jobs until their release time: over in order, moved with their jobs, forgotten with them."""

from __future__ import annotations

from reelfork.server.lookahead.holds import Holds


def test_holds_are_over_at_their_release_earliest_first_and_once() -> None:
    holds = Holds()
    releases = {"a": 5.0, "b": 3.0, "c": 9.0}
    for key, release in releases.items():
        holds.hold(key, release)
        holds.hold(key, release)  # again: still one hold
    assert holds.next() == 3.0
    assert holds.over(2.9, releases.get) == []
    assert holds.over(5.0, releases.get) == ["b", "a"]
    assert holds.over(5.0, releases.get) == []
    assert holds.next() == 9.0


def test_a_hold_moves_with_its_job_and_is_forgotten_with_it() -> None:
    holds = Holds()
    releases: dict[str, float] = {"moved": 2.0, "gone": 2.0, "earlier": 8.0}
    for key, release in releases.items():
        holds.hold(key, release)
    releases["moved"] = 6.0  # its job's deadline moved: the hold is looked at again when it surfaces
    del releases["gone"]  # its job was chosen, run or dropped
    holds.hold("earlier", 4.0)  # moved by the scheduler itself
    releases["earlier"] = 4.0
    assert holds.over(3.0, releases.get) == []
    assert holds.next() == 4.0
    assert holds.over(10.0, releases.get) == ["earlier", "moved"]
    assert holds.next() is None
