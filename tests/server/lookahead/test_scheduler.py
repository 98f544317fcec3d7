"""The lookahead scheduler's policy, on a manual clock, and a small run of the simulation that drives it."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import pytest
from reelfork.server.lookahead.scheduler import (
    Budget,
    Cancel,
    Child,
    Clip,
    Decision,
    Enqueue,
    Profile,
    Reprioritise,
    Scheduler,
    Tuning,
    Window,
    job_key,
)

from bench.simulation.engine import simulate
from bench.simulation.policies import (
    committed_tails,
    floor_work,
    online_floor_work,
    speculation_floor,
    split_work,
)
from bench.simulation.world import LTX, Model, Scenario, Scene, Streaming, Viewer, World, make_world

PROFILES = (Profile("full", 0.4), Profile("fast", 0.14), Profile("animatic", 0.02))


class ManualClock:
    def __init__(self) -> None:
        self.time = 100.0

    def now(self) -> float:
        return self.time


def scheduler(slots: int = 1, **tuning: Any) -> tuple[Scheduler, ManualClock]:
    clock = ManualClock()
    return Scheduler(clock, Budget(render_slots=slots, profiles=PROFILES), Tuning(**tuning)), clock


def child(choice: str, node: str, seconds: float = 8.0, **fields: object) -> Child:
    return Child(choice, node, (Clip(seconds),), **fields)  # type: ignore[arg-type]


PLAYING = (Clip(10.0, rendered=True),)


def enqueued(decisions: list[Decision]) -> dict[str, Enqueue]:
    return {d.key: d for d in decisions if isinstance(d, Enqueue)}


def test_one_job_per_clip_whatever_the_number_of_viewers() -> None:
    s, _ = scheduler()
    for viewer in ("ann", "bob", "cid"):
        s.viewer_at(viewer, "root", 2.0, PLAYING, [child("a", "A"), child("b", "B")])
    jobs = enqueued(s.decisions())
    assert sorted(jobs) == [job_key("render", "A"), job_key("render", "B")]
    assert s.queued() == 2


def test_earlier_deadline_first() -> None:
    s, _ = scheduler()
    s.viewer_at("late", "x", 0.0, PLAYING, [child("only", "X")])
    s.viewer_at("soon", "y", 9.0, PLAYING, [child("only", "Y")])
    first, second = s.next_job("gpu"), s.next_job("gpu")
    assert first is not None and second is not None
    assert (first.node, second.node) == ("Y", "X")
    assert first.deadline < second.deadline


def test_higher_probability_first_at_equal_deadline() -> None:
    s, _ = scheduler()
    for _ in range(8):
        s.viewer_chose("past", "root", "b")
    s.viewer_at("now", "root", 5.0, PLAYING, [child("a", "A"), child("b", "B")])
    assert s.probability("root", "b", ["a", "b"]) == pytest.approx(0.9)
    job = s.next_job("gpu")
    assert job is not None and job.node == "B"


def test_new_node_starts_from_the_prior() -> None:
    s, _ = scheduler(prior=1.0)
    assert s.probability("fresh", "a", ["a", "b", "c"]) == pytest.approx(1 / 3)
    s.viewer_chose("v", "fresh", "a")
    assert s.probability("fresh", "a", ["a", "b", "c"]) == pytest.approx(2 / 4)
    assert s.probability("fresh", "c", ["a", "b", "c"]) == pytest.approx(1 / 4)


def test_choosing_cancels_work_only_that_viewer_needed() -> None:
    s, _ = scheduler()
    s.viewer_at("ann", "root", 2.0, PLAYING, [child("a", "A"), child("b", "B"), child("c", "C")])
    s.viewer_at("bob", "root", 2.0, PLAYING, [child("a", "A"), child("b", "B"), child("c", "C")])
    s.decisions()
    s.viewer_chose("ann", "root", "a")
    assert not any(isinstance(d, Cancel) for d in s.decisions())
    s.viewer_chose("bob", "root", "b")
    cancelled = {d.key for d in s.decisions() if isinstance(d, Cancel)}
    assert cancelled == {job_key("render", "C")}
    s.viewer_left("ann")
    assert {d.key for d in s.decisions() if isinstance(d, Cancel)} == {job_key("render", "A")}


def test_the_chosen_child_is_promoted_when_its_siblings_become_unreachable() -> None:
    s, _ = scheduler()
    s.viewer_at("ann", "root", 2.0, PLAYING, [child("a", "A"), child("b", "B")])
    before = enqueued(s.decisions())[job_key("render", "B")].score
    s.viewer_chose("ann", "root", "b")
    after = [d for d in s.decisions() if isinstance(d, Reprioritise) and d.key == job_key("render", "B")]
    assert after and after[0].score < before


def test_degrades_rather_than_miss_a_deadline() -> None:
    s, _ = scheduler(slots=1, decision_grace_s=0.0)
    # 2 s left in the scene, 1 s to choose: a 10 s clip takes 4 s in full, 1.4 s in fast.
    s.viewer_at("v", "root", 8.0, PLAYING, [child("only", "A", 10.0)])
    assert enqueued(s.decisions())[job_key("render", "A")].profile == "fast"
    job = s.next_job("gpu")
    assert job is not None and job.profile == "fast"


def test_no_degrading_a_child_that_is_ready_while_its_viewer_usually_still_decides() -> None:
    s, _ = scheduler(slots=1, decision_grace_s=2.0)
    s.viewer_at("v", "root", 8.0, PLAYING, [child("only", "A", 10.0)])
    job = s.next_job("gpu")
    assert job is not None and job.profile == "full"
    assert job.deadline == pytest.approx(103.0)


def test_full_profile_when_the_budget_meets_the_deadline() -> None:
    s, _ = scheduler(slots=1)
    s.viewer_at("v", "root", 0.0, PLAYING, [child("only", "A", 10.0)])
    job = s.next_job("gpu")
    assert job is not None and job.profile == "full"


def test_the_queue_ahead_counts_against_the_deadline() -> None:
    s, _ = scheduler(slots=1)
    s.viewer_at("first", "x", 0.0, PLAYING, [child("only", "X", 10.0)])
    s.viewer_at("second", "y", 0.0, (Clip(14.0, rendered=True),), [child("only", "Y", 10.0)])
    plan = enqueued(s.decisions())
    # X is due in 11 s and takes 4 s in full; Y, due in 15 s, then finishes in 8 s: both full.
    assert plan[job_key("render", "X")].profile == plan[job_key("render", "Y")].profile == "full"
    s2, _ = scheduler(slots=1, decision_grace_s=0.0)
    s2.viewer_at("first", "x", 4.0, PLAYING, [child("only", "X", 10.0)])
    s2.viewer_at("second", "y", 4.0, (Clip(10.5, rendered=True),), [child("only", "Y", 10.0)])
    plan = enqueued(s2.decisions())
    # X is due in 7 s and goes first (4 s in full); Y is due in 7.5 s: only the fast profile makes it.
    assert plan[job_key("render", "X")].profile == "full"
    assert plan[job_key("render", "Y")].profile == "fast"


def test_later_clips_of_a_scene_render_while_the_first_plays() -> None:
    s, _ = scheduler()
    scene = (Clip(6.0, rendered=True), Clip(7.0), Clip(5.0))
    s.viewer_at("v", "root", 1.0, scene, [])
    jobs = enqueued(s.decisions())
    assert jobs[job_key("render", "root", 1)].deadline == pytest.approx(105.0)
    assert jobs[job_key("render", "root", 2)].deadline == pytest.approx(112.0)


def test_unwritten_child_is_written_before_it_is_rendered() -> None:
    s, _ = scheduler()
    s.viewer_at("v", "root", 0.0, PLAYING, [child("a", "A", written=False)])
    assert list(enqueued(s.decisions())) == [job_key("write", "A")]


def test_writes_two_levels_ahead_only_when_the_budget_allows() -> None:
    grandchildren = (child("x", "AX", written=False), child("y", "AY", written=False))
    idle, _ = scheduler(lookahead_backlog_s=6.0)
    idle.viewer_at("v", "root", 0.0, PLAYING, [child("a", "A", children=grandchildren)])
    assert {job_key("write", "AX"), job_key("write", "AY")} <= set(enqueued(idle.decisions()))

    busy, _ = scheduler(lookahead_backlog_s=6.0)
    for n in range(3):  # three scenes waiting to be written: 9 s of work for one writer
        busy.viewer_at(f"w{n}", f"other{n}", 0.0, PLAYING, [child("a", f"O{n}", written=False)])
    busy.viewer_at("v", "root", 0.0, PLAYING, [child("a", "A", children=grandchildren)])
    keys = set(enqueued(busy.decisions()))
    assert job_key("render", "A") in keys
    assert not keys & {job_key("write", "AX"), job_key("write", "AY")}


def test_done_work_is_not_queued_again_and_a_degraded_clip_is_upgraded_when_there_is_time() -> None:
    s, clock = scheduler(decision_grace_s=0.0)
    s.viewer_at("v", "root", 8.0, PLAYING, [child("only", "A", 10.0)])
    job = s.next_job("gpu")
    assert job is not None and job.profile == "fast"
    clock.time += 1.4
    s.job_done(job.key, 1.4)
    s.viewer_at("w", "root", 0.0, PLAYING, [child("only", "A", 10.0)])
    keys = set(enqueued(s.decisions()))
    assert job_key("render", "A") not in keys
    assert job_key("render", "A", 0, "full") in keys
    upgrade = s.next_job("gpu")
    assert upgrade is not None and upgrade.profile == "full"


def test_an_upgrade_the_guessed_speed_ruled_out_is_wanted_once_a_timing_shows_it_fits() -> None:
    guessed = (Profile("full", 1.0, measured=False), Profile("fast", 0.5, measured=False))
    clock = ManualClock()
    s = Scheduler(clock, Budget(render_slots=1, profiles=guessed), Tuning(decision_grace_s=0.0))
    degraded = Child("a", "A", (Clip(12.0, rendered=True, profile="fast"),))
    s.viewer_at("v", "root", 0.0, PLAYING, [degraded, child("b", "B", 8.0)])
    # A is due in 11 s: 12 s at the guessed real-time speed would not make it.
    assert job_key("render", "A", 0, "full") not in enqueued(s.decisions())
    job = s.next_job("gpu")
    assert job is not None and (job.node, job.profile) == ("B", "full")
    clock.time += 1.6
    s.job_done(job.key, 1.6, profile="full", duration_s=8.0)  # a fifth of real time
    assert job_key("render", "A", 0, "full") in enqueued(s.decisions())


def test_failed_job_is_retried_then_given_up() -> None:
    s, _ = scheduler(max_attempts=2)
    s.viewer_at("v", "root", 0.0, PLAYING, [child("only", "A")])
    s.decisions()
    job = s.next_job("gpu")
    assert job is not None
    s.job_failed(job.key)
    assert list(enqueued(s.decisions())) == [job.key]
    again = s.next_job("gpu")
    assert again is not None
    s.job_failed(again.key)
    assert s.next_job("gpu") is None
    s.viewer_at("v", "root", 1.0, PLAYING, [child("only", "A")])
    assert s.queued() == 0


def test_simulation_invariants() -> None:
    world = make_world(Scenario(viewers=40, stories=2, window_s=60.0, depth=(4, 5), width=6, seed=3))
    outcomes = {policy: simulate(world, policy, LTX, 3) for policy in ("reelfork", "oracle", "prefetch-all")}
    for outcome in outcomes.values():
        assert outcome.transitions > 0
        assert outcome.rendered_twice == 0
        assert outcome.watched_unrendered == 0
        assert len(outcome.stalls) == outcome.transitions
    assert outcomes["oracle"].unwatched_share == 0.0
    assert outcomes["oracle"].unwatched_busy_s == 0.0
    for outcome in outcomes.values():
        assert outcome.unwatched_busy_s + outcome.unwatched_upgrade_busy_s <= outcome.gpu_busy_s
        assert (outcome.unwatched_busy_s > 0) == (outcome.renders_unwatched > 0)
    assert outcomes["oracle"].stall_rate <= outcomes["reelfork"].stall_rate
    assert outcomes["reelfork"].cancels > 0


def test_simulated_streams_play_segment_by_segment() -> None:
    world = make_world(Scenario(viewers=40, stories=2, window_s=60.0, depth=(4, 5), width=6, seed=3))
    streaming = Streaming(2.0, 0.5)
    policies = ("reelfork", "segment-oracle", "prefetch-all", "on-demand")
    outcomes = {policy: simulate(world, policy, LTX, 3, streaming) for policy in policies}
    clips = simulate(world, "oracle", LTX, 3, streaming)  # the clip-granular oracle renders whole clips
    assert clips.segment_s == 0.0 and all(o.segment_s == 2.0 for o in outcomes.values())
    for outcome in outcomes.values():
        assert outcome.rendered_twice == 0 and outcome.watched_unrendered == 0
        assert len(outcome.stalls) == outcome.transitions > 0
        assert outcome.transitions == clips.transitions  # the same clips played, whatever the unit of work
        assert 0 < outcome.watched_s <= clips.watched_s + 1e-6
    assert outcomes["segment-oracle"].unwatched_busy_s == 0.0
    assert outcomes["segment-oracle"].renders > clips.renders  # more, shorter units of work
    seen, floor = floor_work(world, LTX, streaming)
    assert seen <= floor <= outcomes["reelfork"].gpu_busy_s * 1.2
    ours = outcomes["reelfork"]
    split = split_work(world, LTX, streaming, ours.rendered_s, ours.upgrade_busy_s)
    assert sum(asdict(split).values()) == pytest.approx(ours.gpu_busy_s)
    assert split.watched > 0 and split.other > 0  # it speculates past the leads on slots that would idle


@pytest.mark.parametrize("model", [LTX, Model("slow", 1.5)], ids=["ltx", "slow"])
def test_the_lead_oracle_renders_the_watched_segments_and_the_speculation_floor(model: Model) -> None:
    world = make_world(Scenario(viewers=40, stories=2, window_s=60.0, depth=(4, 5), width=6, seed=3))
    streaming = Streaming(4.0, 0.5)
    watched, lead = (simulate(world, policy, model, 400, streaming) for policy in ("segment-oracle", "lead-oracle"))
    seen, floor = floor_work(world, model, streaming)
    assert lead.stall_rate == 0.0 and lead.degraded_share == 0.0 and lead.rendered_twice == 0
    assert lead.watched_s == watched.watched_s and lead.transitions == watched.transitions
    # What it renders beyond the segment oracle is the floor's speculation, and none of it is watched.
    assert lead.gpu_busy_s - watched.gpu_busy_s == pytest.approx(lead.unwatched_busy_s)
    assert lead.unwatched_busy_s == pytest.approx(floor - seen, rel=0.1) and floor > seen
    split = split_work(world, model, streaming, lead.rendered_s, lead.upgrade_busy_s)
    assert split.watched == pytest.approx(watched.gpu_busy_s) and split.leads == pytest.approx(lead.unwatched_busy_s)
    assert split.tails == split.other == split.upgrades == 0.0


def test_segments_skipped_by_an_early_choice_count_when_they_had_to_start_before_it() -> None:
    scenes = {
        "R": Scene("R", (5.0,), ("A", "B"), (0.5, 0.5)),
        "A": Scene("A", (20.0,), ("X", "Y"), (0.5, 0.5)),
        **{leaf: Scene(leaf, (8.0,), (), ()) for leaf in ("B", "X", "Y")},
    }
    viewer = Viewer("v", 0.0, ("R", "A", "X"), (0, 0), (1.0, 1.0))
    world = World(scenes, ("R",), (viewer,), choice_window_s=10.0)
    streaming = Streaming(4.0, 0.5)
    # A's choices appear at 10 s; she leaves at 11 s, having started its segments at 0, 4 and 8 s. At rtf 0.4 a
    # segment takes 1.8 s: the one at 12 s had to start by 10.2 s, before she chose; the one at 16 s did not.
    # At rtf 1.5 (6.75 s each, one after another) both had to.
    assert [u for u in committed_tails(world, LTX, viewer, streaming) if u[0] == "A"] == [("A", 0, 3)]
    assert [u for u in committed_tails(world, Model("slow", 1.5), viewer, streaming) if u[0] == "A"] == [
        ("A", 0, 3), ("A", 0, 4)]
    _, floor = floor_work(world, LTX, streaming)
    assert online_floor_work(world, LTX, streaming) == pytest.approx(floor + 1.8)


def test_speculation_floor_reaches_grandchildren_when_a_scene_is_shorter_than_their_renders() -> None:
    scenes = {
        "R": Scene("R", (5.0,), ("A", "B"), (0.5, 0.5)),
        "A": Scene("A", (5.0,), ("AX", "AY"), (0.5, 0.5)),
        "B": Scene("B", (5.0,), ("BX", "BY"), (0.5, 0.5)),
        **{leaf: Scene(leaf, (10.0,), (), ()) for leaf in ("AX", "AY", "BX", "BY")},
    }
    viewer = Viewer("v", 0.0, ("R", "A", "AX"), (0, 0), (1.0, 1.0))
    world = World(scenes, ("R",), (viewer,))
    # Watched: A and AX, 15 s. A, B (due at 6 s) and AX, AY (due at 12 s) must be rendered before the
    # choice that picks among them: 30 s. A 10 s leaf at rtf 1.5 takes 15 s, so it must start at -3 s,
    # before anyone knows whether the viewer goes to A or B: BX and BY too, 50 s.
    assert speculation_floor(world, Model("fast", 0.4)) == pytest.approx(30.0 / 15.0)
    assert speculation_floor(world, Model("slow", 1.5)) == pytest.approx(50.0 / 15.0)


def test_with_a_choice_window_viewers_choose_while_the_scene_plays_and_lose_no_time() -> None:
    scenario = Scenario(viewers=40, stories=2, window_s=60.0, depth=(4, 5), width=6, seed=3)
    after = make_world(replace(scenario, choice_window_s=0.0, after_end_s=10.0))
    during = make_world(scenario)  # the last 10 s of each scene, the story format's default
    assert during.viewers == after.viewers  # the same paths and decision times
    lazy, eager = simulate(after, "oracle", LTX, 40), simulate(during, "oracle", LTX, 40)
    for outcome in (lazy, eager):
        assert outcome.watched_unrendered == 0 and len(outcome.stalls) == outcome.transitions
    # Most choices (1-5 s after the choices appear; a few leave it to the default) come before the scene
    # ends, and the chosen scene starts at once: the same paths end sooner, skipping the ends of scenes.
    assert eager.span_s < lazy.span_s
    assert eager.transitions <= lazy.transitions
    reelfork = simulate(during, "reelfork", LTX, 3)
    assert reelfork.transitions == eager.transitions and len(reelfork.stalls) == reelfork.transitions


def test_simulated_paywall_stops_the_viewers_who_do_not_unlock() -> None:
    scenario = Scenario(viewers=60, stories=2, window_s=60.0, depth=(6, 7), width=6, seed=3, episode_layers=3)
    free, paid = make_world(scenario), make_world(replace(scenario, paywall=True, unlock_rate=0.5))
    reach = [viewer for viewer in paid.viewers if viewer.paywall >= 0]
    buyers = [viewer for viewer in reach if viewer.unlocks]
    assert reach and buyers and len(buyers) < len(reach)
    for viewer in paid.viewers:
        paths = {v.name: v.path for v in free.viewers}
        assert viewer.path == (paths[viewer.name] if viewer.unlocks else paths[viewer.name][: viewer.paywall])
    for policy in ("reelfork", "oracle"):
        outcome = simulate(paid, policy, LTX, 40)
        assert (outcome.paywall_reached, outcome.paywall_unlocked) == (len(reach), len(buyers))
        assert outcome.watched_unrendered == 0 and len(outcome.stalls) == outcome.transitions
    assert simulate(paid, "oracle", LTX, 40).unwatched_share == 0.0
    assert simulate(paid, "oracle", LTX, 40).gpu_busy_s < simulate(free, "oracle", LTX, 40).gpu_busy_s


def latest(decisions: list[Decision]) -> dict[str, tuple[float, float]]:
    """Each queued job's last (score, deadline)."""
    out: dict[str, tuple[float, float]] = {}
    for d in decisions:
        if isinstance(d, Enqueue | Reprioritise):
            out[d.key] = (d.score, d.deadline)
        else:
            out.pop(d.key, None)
    return out


SCENE_30 = (Clip(30.0, rendered=True),)


def test_a_child_is_due_when_the_choice_window_opens_not_when_the_scene_ends() -> None:
    s, clock = scheduler()
    s.viewer_at("last-10", "r1", 0.0, SCENE_30, [child("a", "A")], Window(20.0, 30.0))
    s.viewer_at("after-end", "r2", 0.0, SCENE_30, [child("a", "B")], Window(30.0, 40.0))
    s.viewer_at("no-window", "r3", 0.0, SCENE_30, [child("a", "C")])
    s.viewer_at("in-it", "r4", 25.0, SCENE_30, [child("a", "D")], Window(20.0, 30.0))
    due = {key: deadline for key, (_, deadline) in latest(s.decisions()).items()}
    choose_s = Tuning().choice_s  # until viewers' choices tell how soon they choose
    assert due[job_key("render", "A")] == pytest.approx(clock.time + 20.0 + choose_s)
    assert due[job_key("render", "B")] == pytest.approx(clock.time + 30.0 + choose_s)
    assert due[job_key("render", "C")] == pytest.approx(clock.time + 30.0 + choose_s)
    assert due[job_key("render", "D")] == pytest.approx(clock.time)  # inside the window: any moment now


def test_when_viewers_choose_in_the_window_is_learned() -> None:
    s, clock = scheduler(choice_samples=20)
    for number in range(30):
        s.viewer_at(f"v{number}", "root", 0.0, SCENE_30, [child("a", "A")], Window(20.0, 30.0))
        clock.time += 26.0  # 6 s after the choices appeared
        s.viewer_chose(f"v{number}", "root", "a")
        s.viewer_left(f"v{number}")
    assert s.choice_delays() == pytest.approx((6.0, 6.0))
    s.decisions()
    s.viewer_at("new", "other", 0.0, SCENE_30, [child("b", "B")], Window(20.0, 30.0))
    s.viewer_at("short", "third", 0.0, (Clip(3.0, rendered=True),), [child("c", "C")], Window(0.0, 3.0))
    due = {key: deadline for key, (_, deadline) in latest(s.decisions()).items()}
    assert due[job_key("render", "B")] == pytest.approx(clock.time + 26.0)
    assert due[job_key("render", "C")] == pytest.approx(clock.time + 3.0)  # the default, when it closes


def test_a_locked_episode_is_weighed_by_the_unlock_rate_and_nothing_deeper_is_rendered() -> None:
    s, _ = scheduler(slots=8, unlock_rate=0.2)
    below = (child("x", "LX"), child("y", "LY"))
    two_clips = (Clip(8.0), Clip(8.0))
    locked = Child("pay", "L", two_clips, children=below, paywall="story")
    free = Child("free", "F", two_clips, children=(child("x", "FX"), child("y", "FY")))
    s.viewer_at("v", "root", 0.0, PLAYING, [locked, free])
    jobs = latest(s.decisions())
    assert job_key("render", "L", 1) not in jobs
    assert {job_key("render", "LX"), job_key("render", "LY")}.isdisjoint(jobs)
    assert {job_key("render", "F", 1), job_key("render", "FX"), job_key("render", "FY")} <= set(jobs)
    weight = Tuning().probability_weight_s
    score, deadline = jobs[job_key("render", "L")]
    assert score - deadline == pytest.approx(weight * (1 - 0.5 * 0.2))
    score, deadline = jobs[job_key("render", "F")]
    assert score - deadline == pytest.approx(weight * (1 - 0.5))
    # With the entitlement (no paywall for this viewer) the episode is rendered ahead like any other.
    s.viewer_at("paid", "root", 0.0, PLAYING, [replace(locked, paywall=""), free])
    assert {job_key("render", "L", 1), job_key("render", "LX")} <= set(latest(s.decisions()))


def test_the_unlock_rate_is_observed_and_a_choice_into_the_paywall_is_not_certain() -> None:
    s, _ = scheduler(unlock_rate=0.1, unlock_prior=10.0)
    locked = Child("pay", "L", (Clip(8.0),), paywall="story")
    for number in range(10):
        viewer = f"v{number}"
        s.viewer_at(viewer, "root", 9.0, PLAYING, [locked, child("free", "F")])
        s.viewer_chose(viewer, "root", "pay")
        if number < 5:  # these unlocked: the next scene they are seen in is behind the paywall
            s.viewer_at(viewer, "L", 0.0, (Clip(8.0, rendered=True),), [])
        s.viewer_left(viewer)
    assert s.unlock_rate("story") == pytest.approx((5 + 10 * 0.1) / (10 + 10))
    assert s.unlock_rate("other") == pytest.approx(0.1)
    s.decisions()
    s.viewer_at("w", "root", 9.0, PLAYING, [locked, child("free", "F")])
    s.viewer_chose("w", "root", "pay")  # at the paywall now: L is needed only if they unlock
    score, deadline = latest(s.decisions())[job_key("render", "L")]
    assert score - deadline == pytest.approx(Tuning().probability_weight_s * (1 - s.unlock_rate("story")))


def test_renders_further_ahead_while_the_branch_is_likely_enough() -> None:
    grandchildren = (child("x", "AX", 6.0), child("y", "AY", 6.0))
    s, _ = scheduler(render_depth=2, min_probability=0.2)
    s.viewer_at("v", "root", 0.0, PLAYING, [child("a", "A", 8.0, children=grandchildren), child("b", "B")])
    jobs = enqueued(s.decisions())
    # Root ends at 110, A is chosen by 111 and lasts 8 s: its children are due at 120, at 1/2 * 1/2.
    assert jobs[job_key("render", "AX")].deadline == pytest.approx(120.0)
    assert jobs[job_key("render", "AX")].score > jobs[job_key("render", "A")].score
    unlikely, _ = scheduler(render_depth=2, min_probability=0.3)
    unlikely.viewer_at("v", "root", 0.0, PLAYING, [child("a", "A", 8.0, children=grandchildren), child("b", "B")])
    assert not {job_key("render", "AX"), job_key("render", "AY")} & set(enqueued(unlikely.decisions()))
    shallow, _ = scheduler(render_depth=1)
    shallow.viewer_at("v", "root", 0.0, PLAYING, [child("a", "A", 8.0, children=grandchildren)])
    assert set(enqueued(shallow.decisions())) == {job_key("render", "A")}


def test_speculative_work_that_can_wait_for_the_choice_goes_behind_everything_else() -> None:
    s, _ = scheduler(defer_s=1000.0, defer_margin_s=2.0)
    two_clips = Child("a", "A", (Clip(8.0), Clip(8.0)))
    s.viewer_at("v", "root", 0.0, PLAYING, [two_clips, child("b", "B")])
    jobs = enqueued(s.decisions())
    # A's second clip is due 8 s after the choice and takes 3.2 s in full: it can wait; first clips cannot.
    assert jobs[job_key("render", "A", 1)].score > 1000.0
    assert jobs[job_key("render", "A", 0)].score < 200.0
    s.viewer_at("w", "other", 0.0, PLAYING, [child("only", "O", 8.0)])
    s.decisions()
    order = [s.next_job("gpu") for _ in range(4)]
    assert [job.key for job in order if job is not None][-1] == job_key("render", "A", 1)


def test_deferred_work_is_promoted_once_the_viewer_chooses_it() -> None:
    s, _ = scheduler(defer_s=1000.0)
    s.viewer_at("v", "root", 0.0, PLAYING, [Child("a", "A", (Clip(8.0), Clip(8.0))), child("b", "B")])
    s.decisions()
    s.viewer_chose("v", "root", "a")
    changed = {d.key: d for d in s.decisions()}
    promoted = changed[job_key("render", "A", 1)]
    assert isinstance(promoted, Reprioritise) and promoted.score < 200.0
    assert isinstance(changed[job_key("render", "B")], Cancel)


def test_choices_counted_elsewhere_inform_the_probability() -> None:
    s, _ = scheduler(prior=1.0)
    s.count("node", "a", 6)
    assert s.probability("node", "a", ["a", "b"]) == pytest.approx(7 / 8)


def test_real_time_factors_are_learned_from_the_workers_timings() -> None:
    s, _ = scheduler(decision_grace_s=0.0)
    s.viewer_at("v", "root", 0.0, PLAYING, [child("only", "A", 8.0)])  # A due in 11 s: full takes 3.2 s
    first = enqueued(s.decisions())[job_key("render", "A")]
    assert first.profile == "full"
    for n in range(12):  # the GPUs turn out slower than assumed: 2 render seconds per clip second
        key = job_key("render", f"warm-{n}")
        s.viewer_at(f"w{n}", "root", 0.0, PLAYING, [child("only", f"warm-{n}", 8.0)])
        s.job_done(key, 16.0, profile="full", duration_s=8.0)
    assert s.rtf("full") == pytest.approx(2.0, abs=0.2)
    job = s.next_job("gpu")
    assert job is not None and job.key == job_key("render", "A")
    assert job.profile == "fast"  # 16 s in full would miss its 11 s deadline now


def test_a_worker_that_rendered_a_cheaper_profile_than_planned_gets_its_clip_upgraded() -> None:
    s, _ = scheduler(decision_grace_s=0.0)
    s.viewer_at("v", "root", 0.0, PLAYING, [child("only", "A", 10.0)])
    assert enqueued(s.decisions())[job_key("render", "A")].profile == "full"
    started = s.job_started(job_key("render", "A"), "gpu-1", profile="animatic")  # as the worker says
    assert started is not None and started.profile == "animatic"
    s.job_done(job_key("render", "A"), 0.2, profile="animatic", duration_s=10.0)
    s.viewer_at("w", "root", 0.0, PLAYING, [child("only", "A", 10.0)])
    assert job_key("render", "A", 0, "full") in enqueued(s.decisions())


def test_more_render_slots_stop_degrading() -> None:
    s, _ = scheduler(slots=1, decision_grace_s=0.0)
    s.viewer_at("v", "root", 6.0, PLAYING, [child("a", "A", 8.0), child("b", "B", 8.0)])
    profiles = {d.key: d.profile for d in s.decisions() if isinstance(d, Enqueue)}
    assert sorted(profiles.values()) == ["fast", "full"]  # one GPU: the second child cannot be full in 5 s
    s.resize(2)
    changed = {d.key: d.profile for d in s.decisions() if isinstance(d, Reprioritise)}
    assert set(changed.values()) == {"full"}


def test_each_pool_of_workers_has_its_own_slots() -> None:
    gpu_and_cpu = (Profile("full", 0.4, pool="diffuse"), Profile("animatic", 0.02, pool="render"))
    budget = Budget(render_slots=8, profiles=gpu_and_cpu, pool_slots={"diffuse": 1})
    s = Scheduler(ManualClock(), budget, Tuning(decision_grace_s=0.0))
    # Four viewers whose child's 8 s clip is due in 7 s: 3.2 s in full on the one GPU, so two make it.
    for n in range(4):
        s.viewer_at(f"v{n}", f"root{n}", 4.0, PLAYING, [child("only", f"C{n}", 8.0)])
    profiles = sorted(d.profile for d in enqueued(s.decisions()).values())
    assert profiles == ["animatic", "animatic", "full", "full"]  # not four full on nine "slots"
    s.resize(2, "diffuse")
    changed = {d.key: d.profile for d in s.decisions() if isinstance(d, Reprioritise)}
    assert sorted(changed.values()) == ["full", "full"]


def test_a_guessed_real_time_factor_is_replaced_by_the_first_timing() -> None:
    clock = ManualClock()
    guess = (Profile("full", 1.0, measured=False), Profile("fast", 0.5, measured=False))
    s = Scheduler(clock, Budget(render_slots=1, profiles=guess))
    s.viewer_at("v", "root", 0.0, PLAYING, [child("a", "A", 10.0), child("b", "B", 10.0)])
    s.decisions()
    s.job_done(job_key("render", "A"), 0.6, profile="full", duration_s=10.0)
    assert s.rtf("full") == pytest.approx(0.06)  # measured at once, not 1.0 averaged down over many renders
    s.job_done(job_key("render", "B"), 1.6, profile="full", duration_s=10.0)
    assert s.rtf("full") == pytest.approx(0.06 + 0.2 * (0.16 - 0.06))  # then a running average
    assert s.rtf("fast") == 0.5


# -- clips streamed in segments ------------------------------------------------------------------


def streaming(slots: int = 1, rtf: float = 0.4, **tuning: Any) -> tuple[Scheduler, ManualClock]:
    clock = ManualClock()
    profiles = (Profile("full", rtf), Profile("fast", rtf * 0.35), Profile("animatic", rtf * 0.05))
    budget = Budget(render_slots=slots, profiles=profiles, segment_s=2.0, overlap_s=0.5)
    return Scheduler(clock, budget, Tuning(**tuning)), clock


def segment(node: str, clip: int, index: int, upgrade: str = "") -> str:
    return job_key("render", node, clip, upgrade, segment=index)


def test_an_unchosen_child_is_speculated_only_as_far_as_its_lead_and_the_rest_waits_for_the_choice() -> None:
    s, _ = streaming(defer_s=1000.0)
    s.viewer_at("v", "root", 0.0, PLAYING, [child("a", "A", 8.0), child("b", "B", 8.0)])
    jobs = enqueued(s.decisions())
    # A segment waits for the one before it: only the first of each child is queued, both due at the choice.
    assert sorted(jobs) == [segment("A", 0, 0), segment("B", 0, 0)]
    assert all(job.score < 1000.0 and job.segment == 0 and job.duration_s == 2.0 for job in jobs.values())
    s.job_done(segment("A", 0, 0), 1.0)
    after = enqueued(s.decisions())[segment("A", 0, 1)]
    assert after.score > 1000.0  # rtf 0.4: once chosen, the rest keeps ahead of playback; it can wait
    s.viewer_chose("v", "root", "a")
    promoted = {d.key: d for d in s.decisions()}
    second = promoted[segment("A", 0, 1)]
    assert isinstance(second, Reprioritise) and second.score < 1000.0
    assert isinstance(promoted[segment("B", 0, 0)], Cancel)


def test_unlikely_work_that_can_wait_for_the_choice_is_not_queued_until_the_viewer_chooses_it() -> None:
    s, _ = streaming(defer_s=1000.0)  # idle_probability 0.2
    s.viewer_at("v", "root", 0.0, PLAYING, [child("a", "A", 8.0), child("b", "B", 8.0)])  # a half each, by the prior
    s.viewer_at("w", "other", 0.0, PLAYING, [child(name.lower(), name, 8.0) for name in "DEFGHI"])  # a sixth each
    s.decisions()
    s.job_done(segment("A", 0, 0), 1.0)
    s.job_done(segment("D", 0, 0), 1.0)
    told = enqueued(s.decisions())
    # Past their leads, the rest of A waits behind everything else for a slot that would idle; the rest of D is
    # too unlikely for that: neither queued nor ever handed to a worker, until the viewer chooses it.
    assert told[segment("A", 0, 1)].score > 1000.0
    assert segment("D", 0, 1) not in told and s.job(segment("D", 0, 1)) is not None
    while (job := s.next_job("gpu")) is not None:
        assert job.key != segment("D", 0, 1)
        s.job_done(job.key, 1.0)
    s.viewer_chose("w", "other", "d")
    assert enqueued(s.decisions())[segment("D", 0, 1)].score < 1000.0
    assert s.next_job("gpu") is not None


def test_a_job_that_becomes_too_unlikely_to_wait_for_an_idle_slot_is_withdrawn() -> None:
    s, _ = streaming(defer_s=1000.0)
    s.viewer_at("v", "root", 0.0, PLAYING, [child("a", "A", 8.0), child("b", "B", 8.0)])
    s.decisions()
    s.job_done(segment("A", 0, 0), 1.0)
    assert segment("A", 0, 1) in enqueued(s.decisions())
    s.count("root", "b", 9)  # others chose B: A is 1/12 likely now
    s.viewer_at("v", "root", 1.0, PLAYING, [child("a", "A", 8.0), child("b", "B", 8.0)])
    assert isinstance({d.key: d for d in s.decisions()}[segment("A", 0, 1)], Cancel)


def test_a_slow_models_child_is_speculated_as_far_as_its_real_time_factor_requires() -> None:
    s, _ = streaming(rtf=1.5, defer_s=1000.0, segment_margin_s=0.0)
    s.viewer_at("v", "root", 0.0, PLAYING, [child("a", "A", 10.0), child("b", "B", 10.0)])
    scores = {d.key: d.score for d in enqueued(s.decisions()).values()}
    for index in range(1, 5):  # each stored in turn, the next one is queued
        s.job_done(segment("A", 0, index - 1), 3.75)
        scores |= {d.key: d.score for d in enqueued(s.decisions()).values()}
    # Each 2 s segment takes 3.75 s. Of a 10 s clip chosen as it starts, the last of the 5 - k segments
    # rendered after the choice ends at 3.75 (5 - k) and is due at 8 s: k >= 2.9, so 3 before the choice.
    eager = [index for index in range(5) if scores[segment("A", 0, index)] < 1000.0]
    assert eager == [0, 1, 2]


def test_a_segment_is_due_when_playback_reaches_it_and_waits_for_the_one_before() -> None:
    s, clock = streaming(slots=4, decision_grace_s=0.0)
    s.viewer_at("v", "root", 0.0, (Clip(6.0),), [])
    jobs = enqueued(s.decisions())
    assert list(jobs) == [segment("root", 0, 0)] and jobs[segment("root", 0, 0)].deadline == clock.time
    first = s.next_job("gpu-1")
    assert first is not None and first.key == segment("root", 0, 0)
    assert s.next_job("gpu-2") is None  # the second segment is conditioned on the first: not before it
    s.job_done(first.key, 1.0)
    second = enqueued(s.decisions())[segment("root", 0, 1)]
    assert second.deadline == pytest.approx(clock.time + 2.0)


def test_a_started_stream_is_never_left_to_stall_for_a_speculative_job() -> None:
    s, clock = streaming(slots=1)
    playing = (Clip(8.0, segments=("full",)),)  # its first segment stored, the viewer 1.5 s into it
    s.viewer_at("v", "root", 1.5, playing, [child("a", "A", 8.0), child("b", "B", 8.0)], Window(0.0, 8.0))
    s.decisions()
    # The children are due as soon as the earliest viewers choose, a long shot scoring a little later; the
    # stream's next segment is due in 0.5 s and takes 1 s: it goes first.
    job = s.next_job("gpu")
    assert job is not None and job.key == segment("root", 0, 1)
    assert job.deadline == pytest.approx(clock.time + 0.5)


def test_a_stream_changes_profile_between_segments() -> None:
    s, clock = streaming(slots=1, decision_grace_s=0.0)
    playing = (Clip(8.0, segments=("full",)),)
    s.viewer_at("v", "root", 1.8, playing, [])
    first = s.next_job("gpu")  # due in 0.2 s: 1 s in full would stall, so a cheaper profile
    assert first is not None and first.key == segment("root", 0, 1) and first.profile != "full"
    s.job_done(first.key, 0.1, profile=first.profile)
    clock.time += 0.1
    then = s.next_job("gpu")  # due in 2.1 s: full fits again
    assert then is not None and then.key == segment("root", 0, 2) and then.profile == "full"
    # A later viewer, with time to spare, gets the degraded segment upgraded.
    s.viewer_at("w", "root", 0.0, (Clip(8.0, segments=("full", first.profile, "full")),), [])
    assert segment("root", 0, 1, "full") in {d.key for d in s.decisions() if isinstance(d, Enqueue)}


def test_segments_past_the_choices_are_needed_only_by_viewers_who_have_not_chosen() -> None:
    s, _ = streaming(slots=8)
    s.viewer_at("v", "root", 0.0, (Clip(10.0),), [child("a", "A", 8.0)], Window(2.0, 10.0))
    s.decisions()
    chances = {key: job.probability for key, job in s._jobs.items() if job.node == "root"}
    assert chances[segment("root", 0, 0)] == 1.0 and chances[segment("root", 0, 1)] == 1.0
    assert chances[segment("root", 0, 3)] == 0.5  # 6 s into it, 4 s after the choices: as likely chosen as not


def test_a_held_segment_that_viewers_may_skip_starts_shortly_before_its_latest_start() -> None:
    held, clock = streaming(slots=2, hold_s=0.5)
    eager, _ = streaming(slots=2)
    for s in (held, eager):
        s.viewer_at("v", "root", 0.0, (Clip(10.0),), [child("a", "A", 8.0)], Window(2.0, 10.0))
        for index in range(3):  # stored, one after another
            s.decisions()
            s.job_done(segment("root", 0, index), 1.0)
    # The fourth segment (6-8 s) is watched only if the viewer has not chosen by then; it takes 1 s and is due
    # when playback reaches it: without a hold it starts now, with one 0.5 s before it must.
    assert enqueued(eager.decisions()).keys() >= {segment("root", 0, 3)}
    assert segment("root", 0, 3) not in enqueued(held.decisions())
    job = held.next_job("gpu")
    assert job is None or job.node != "root"
    assert held.wake_at() == pytest.approx(clock.time + 6.0 - 1.0 - 0.5)
    clock.time += 4.4
    held.tick()
    assert segment("root", 0, 3) not in enqueued(held.decisions())
    clock.time += 0.1
    held.tick()  # the hold is over: told at the next decisions, and handed out
    assert segment("root", 0, 3) in enqueued(held.decisions())
    job = held.next_job("gpu")
    assert job is not None and job.key == segment("root", 0, 3)
    assert held.wake_at() == pytest.approx(clock.time + 2.0)  # the fifth, 2 s later, though it waits for the fourth


def test_a_viewer_who_stays_in_the_scene_gets_its_held_segments_on_time() -> None:
    s, clock = streaming(slots=1, hold_s=0.5)
    playing = (Clip(10.0, segments=("full",)),)  # its first segment stored
    s.viewer_at("v", "root", 0.0, playing, [child("a", "A", 8.0)], Window(2.0, 10.0))
    woken = []
    for index in range(1, 5):
        s.decisions()
        job = s.next_job("gpu")
        while job is not None and job.node != "root":  # the child's segments, on another slot
            s.job_done(job.key, 1.0)
            job = s.next_job("gpu")
        if job is None:  # nothing to do until the next segment's hold is over
            wake = s.wake_at()
            assert wake is not None and wake > clock.time
            clock.time = wake
            s.tick()
            woken.append(index)
            job = s.next_job("gpu")
        assert job is not None and job.key == segment("root", 0, index)
        assert clock.time + 1.0 <= job.deadline  # started in time to be stored when playback reaches it
        clock.time += 1.0
        s.job_done(job.key, 1.0)
    assert woken == [2, 3, 4]  # those past the window's opening (2 s), each as late as it safely can be


def test_an_unlikely_upgrade_waits_for_the_choice_unless_a_chosen_clip_would_start_longer_degraded() -> None:
    stored = (Clip(8.0, segments=("fast",) * 4),)  # all of A degraded
    children = [Child("a", "A", stored), child("b", "B", 8.0)]
    upgrades = [segment("A", 0, index, "full") for index in range(4)]
    told = {}
    for rtf, need in ((0.9, 0.0), (0.9, 0.75), (1.5, 0.75)):
        s, _ = streaming(slots=4, rtf=rtf, upgrade_probability=need)
        s.viewer_at("v", "root", 0.0, PLAYING, children)
        queued = enqueued(s.decisions())
        told[rtf, need] = [key for key in upgrades if key in queued]
    # A is as likely as B. At rtf 0.9 its lead is two segments: held, the second's upgrade would leave a viewer who
    # chooses A two degraded segments, so it is queued; the first's (one degraded segment at most) and those that
    # can be rendered after she chooses A wait for it, unless every upgrade is wanted.
    assert told[0.9, 0.0] == upgrades
    assert told[0.9, 0.75] == [upgrades[1]]
    # Slower than real time, more chosen clips would start degraded: every upgrade is wanted.
    assert told[1.5, 0.75] == upgrades
    s, _ = streaming(slots=4, rtf=0.9, upgrade_probability=0.75)
    s.viewer_at("v", "root", 0.0, PLAYING, children)
    s.decisions()
    s.viewer_chose("v", "root", "a")
    chosen = enqueued(s.decisions())
    assert upgrades[2] in chosen and upgrades[3] in chosen  # in time once she chose A; its start plays degraded


def test_the_metered_tuning_in_the_simulation_plays_every_clip_and_holds_segments_until_needed() -> None:
    world = make_world(Scenario(viewers=40, stories=2, window_s=60.0, depth=(4, 5), width=6, seed=3))
    streaming = Streaming(4.0, 0.5)
    reserved, metered = (simulate(world, policy, LTX, 3, streaming) for policy in ("reelfork", "reelfork-metered"))
    assert metered.transitions == reserved.transitions and len(metered.stalls) == metered.transitions
    assert metered.rendered_twice == 0 and metered.watched_unrendered == 0
    split = split_work(world, LTX, streaming, metered.rendered_s, metered.upgrade_busy_s)
    speculated = split_work(world, LTX, streaming, reserved.rendered_s, reserved.upgrade_busy_s)
    assert split.other < speculated.other  # nothing rendered ahead on idle slots, nor begun before it had to be
    assert metered.gpu_busy_s < reserved.gpu_busy_s
