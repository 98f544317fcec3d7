"""Discrete-event simulation of rendering ahead of playback, driving the real scheduler
(``reelfork.server.lookahead.scheduler.Scheduler``), with clips streamed in segments.

Run from the repository root:

    . .venv/bin/activate
    python bench/simulate.py                # full run (seed 7), long: run it with nice
    python bench/simulate.py --quick        # smaller audiences
    python bench/simulate.py --seed 8       # another world
    python bench/simulate.py --quick --sweep   # reelfork's fewest GPUs for several segment lengths
    python bench/simulate.py --segment 2 --overlap 0.5 --gpu-hour 2.50
    python bench/simulate.py --part ltx     # one model's comparisons (or wan, or sharing): a full run in parts

A clip is rendered as an ordered stream of ``--segment`` second segments, each conditioned on the one
before and re-reading ``--overlap`` seconds of conditioning frames (its fixed cost, so short segments
are not free); playback starts when the first segment exists, and a segment is due when playback
reaches it (``bench/simulation/world.py`` states the assumptions). The ways of spending G GPUs on V
viewers are compared (``bench/simulation/policies.py``) on the same seeded stories and the same
viewers making the same choices at the same times: ``on-demand``, ``prefetch-all`` (every clip of
every child, whole, first come first served), ``reelfork`` (the real scheduler, at segment
granularity; ``reelfork-metered`` is the same scheduler tuned for GPUs paid by the second, the
``REELFORK_GPU_BILLING=metered`` setting: nothing rendered ahead on idle slots), ``segment-oracle``
(knows every choice, renders exactly the watched segments),
``lead-oracle`` (the segment oracle that also renders what no policy without foresight can skip: every
unchosen continuation's lead, due at the choice; an estimate of the most any such policy can reach) and ``oracle``, the
clip-granular oracle of the earlier simulation, unchanged: whole clips, played once complete. It is the
anchor of the summary line.

For the LTX-class and the slow model, with 10 s choice windows (the story format's default: the last
10 s of a scene) and 0 s windows (choices offered once a scene ends, the default taken 10 s later),
it prints for each policy the stall rate (share of clips whose playback waited, at their start or in
their middle), p99 stall seconds (over all clips), GPU utilisation, the share of renders never watched,
the share of watched clips in a degraded profile, viewers per GPU at <= 1% stall and <= 5% degraded
(V over the fewest GPUs that meet both: doubling, then bisection) and the cost per viewer-hour at
those GPUs (``--gpu-hour`` dollars per H100 hour, GPUs x the run's span over the seconds watched).
Then reelfork's render work (GPU seconds) over the segment-granular speculation floor (the work any
policy without foresight does to show every segment in full and on time: ``floor_work`` in
``bench/simulation/policies.py``; it knows when each viewer will choose, and ``online_floor_work`` adds what
must be begun before a choice whose time is not known; ``split_work`` says what reelfork's work went to), and the
sharing factor: viewers per GPU with a 10,000-viewer audience on one story over viewers per GPU when every viewer is
alone on their own story.
Figures go to ``bench/results/simulate*.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.simulation.engine import MAX_DEGRADED, MAX_STALL_RATE, Outcome, simulate  # noqa: E402
from bench.simulation.policies import CLIP_POLICIES, POLICIES, floor_work, online_floor_work, split_work  # noqa: E402
from bench.simulation.world import CLIPS, LTX, WAN, Model, Scenario, Streaming, World, make_world  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MAX_GPUS = 4096
TARGETS = {LTX.name: 0.95, WAN.name: 0.80}
"""reelfork's share of the clip-granular oracle's viewers per GPU, per model."""
WINDOWS = {"10 s window": (10.0, 0.0), "0 s window": (0.0, 10.0)}
"""Choice window (seconds before a scene ends, seconds after) of each compared scenario."""


# -- the search ------------------------------------------------------------------------------

SEARCH_ORDER = ("oracle", "segment-oracle", "lead-oracle", "on-demand", "prefetch-all", "reelfork", "reelfork-metered")
"""Each policy's search starts from a count found before it (see ``compare``)."""


def runner(world: World, policy: str, model: Model, streaming: Streaming) -> Callable[[int], Outcome]:
    used = CLIPS if policy in CLIP_POLICIES else streaming
    return lambda gpus: simulate(world, policy, model, gpus, used)


def fewest_gpus(run: Callable[[int], Outcome], start: int = 1) -> tuple[int | None, Outcome]:
    """The fewest GPUs whose run is feasible (from ``start``: halving while feasible, or doubling until it is,
    then bisection), and that run; None if even ``MAX_GPUS`` is not enough (on-demand: every first visit to a
    scene waits for its render), or if doubling them changed neither the stalls nor the degraded clips (GPUs
    are not what is missing)."""
    high = max(1, start)
    best = run(high)
    low = 0
    if best.feasible:  # go down while it stays feasible: few runs near the answer, none at a handful of GPUs
        while high > 1:
            lower = max(1, high // 2)
            outcome = run(lower)
            if not outcome.feasible:
                low = lower
                break
            high, best = lower, outcome
    else:
        while not best.feasible:
            if high >= MAX_GPUS:
                return None, best
            low, high = high, high * 2
            before, best = best, run(high)
            if high >= 64 and (best.stalls, best.degraded) == (before.stalls, before.degraded):
                return None, best
    while high - low > 1:
        middle = (low + high) // 2
        outcome = run(middle)
        if outcome.feasible:
            high, best = middle, outcome
        else:
            low = middle
    return high, best


# -- the report ------------------------------------------------------------------------------


def cost_per_viewer_hour(outcome: Outcome, gpu_hour: float) -> float:
    """Dollars per hour watched: the GPUs' hours over the run's span, over the hours the viewers watched."""
    return gpu_hour * outcome.gpus * outcome.span_s / max(1e-9, outcome.watched_s)


def row(outcome: Outcome, per_gpu: float | None, dollars: float | None) -> str:
    capacity = f"{per_gpu:9.1f}" if per_gpu is not None else "    never"
    price = f"{dollars:9.3f}" if dollars is not None else "        -"
    return (
        f"{outcome.policy:<17}{outcome.stall_rate:>8.2%}{outcome.p99_stall_s:>9.2f}{outcome.utilisation:>8.1%}"
        f"{outcome.unwatched_share:>11.1%}{outcome.degraded_share:>10.1%}{capacity}{price}"
    )


HEADER = (
    f"{'policy':<17}{'stalls':>8}{'p99 s':>9}{'GPU':>8}{'unwatched':>11}{'degraded':>10}{'viewers/GPU':>12}"
    f"{'$/view-h':>9}"
)


def compare(
    scenario: Scenario, model: Model, streaming: Streaming, gpu_hour: float, log: Callable[[str], None]
) -> dict[str, object]:
    """Every policy's fewest GPUs for this audience, and all of them at reelfork's count."""
    world = make_world(scenario)
    seen_s, floor_s = floor_work(world, model, streaming)
    online_s = online_floor_work(world, model, streaming)
    clip_seen_s, clip_floor_s = floor_work(world, model, CLIPS)
    searches: dict[str, tuple[int | None, Outcome]] = {}
    for policy in SEARCH_ORDER:
        # Each search starts near the oracles' count (the oracles from one GPU), the metered one at reelfork's:
        # fewer of the slow runs.
        anchor = searches["segment-oracle"][0] if "segment-oracle" in searches else None
        anchor = searches["reelfork"][0] or anchor if policy == "reelfork-metered" else anchor
        searches[policy] = fewest_gpus(runner(world, policy, model, streaming), anchor or 1)
        log(f"  {policy}: fewest GPUs at <= 1% stall: {searches[policy][0]}")
    gpus = searches["reelfork"][0] or searches["reelfork"][1].gpus  # never: where the search gave up
    at_gpus = {policy: runner(world, policy, model, streaming)(gpus) for policy in POLICIES}
    per_gpu = {p: (scenario.viewers / g if g else None) for p, (g, _) in searches.items()}
    dollars = {p: (cost_per_viewer_hour(o, gpu_hour) if g else None) for p, (g, o) in searches.items()}
    window = f"{scenario.choice_window_s:g} s window" + (
        f" (+{scenario.after_end_s:g} s)" if scenario.after_end_s else ""
    )
    log(
        f"\n{model.name}, {window}: {scenario.viewers} viewers over {scenario.window_s:.0f} s,"
        f" {scenario.stories} stories, {streaming.segment_s:g} s segments (+{streaming.overlap_s:g} s overlap);"
        f" at {gpus} GPUs (reelfork's fewest{'' if searches['reelfork'][0] else '; never: the most it tried'}):"
    )
    log(HEADER)
    for policy in POLICIES:
        log(row(at_gpus[policy], per_gpu[policy], dollars[policy]))
    reelfork, oracle, seg_oracle, prefetch = (
        per_gpu[p] for p in ("reelfork", "oracle", "segment-oracle", "prefetch-all")
    )
    share = reelfork / oracle if oracle and reelfork else 0.0
    if oracle is None:
        seen = searches["oracle"][1]
        log(
            f"no clip-granular oracle keeps stalls <= {MAX_STALL_RATE:.0%} with <= {MAX_DEGRADED:.0%} degraded:"
            f" at {seen.gpus} GPUs it stalls {seen.stall_rate:.2%} and degrades {seen.degraded_share:.1%}"
        )
    else:
        log(f"reelfork reaches {share:.0%} of the oracle's viewers per GPU (target >= {TARGETS[model.name]:.0%})")
    seg_share = reelfork / seg_oracle if seg_oracle and reelfork else 0.0
    over_prefetch = reelfork / prefetch if prefetch and reelfork else None
    log(
        f"  and {seg_share:.0%} of the segment-granular oracle's; "
        + (f"{over_prefetch:.1f}x prefetch-all's" if over_prefetch else "prefetch-all never meets the bar")
        + " (target >= 2x)"
    )
    bound = per_gpu["lead-oracle"]
    bound_share = bound / oracle if bound and oracle else None
    lead_share = reelfork / bound if bound and reelfork else 0.0
    if bound is None:
        log("  the lead oracle never meets the bar either (like the oracles, it never re-renders a degraded clip)")
    elif lead_share > 1.0:
        log(
            f"  reelfork needs fewer GPUs than the lead oracle ({bound:.1f} viewers per GPU"
            + (f", {bound_share:.0%} of the oracle's" if bound_share else "")
            + "): the oracles never re-render a clip they degraded, so here it is no bound"
        )
    else:
        log(
            f"  at most about the lead oracle's {bound:.1f} viewers per GPU for a policy without foresight: "
            + (f"{bound_share:.0%} of the oracle's" if bound_share else "no clip oracle to compare")
            + (f", {bound / prefetch:.1f}x prefetch-all's" if prefetch else "")
            + f"; reelfork reaches {lead_share:.0%} of it"
        )
    ours = searches["reelfork"][1]
    work = ours.gpu_busy_s / max(1e-9, floor_s)
    upgrades = ours.upgrade_busy_s / max(1e-9, ours.gpu_busy_s)
    unwatched = ours.unwatched_busy_s / max(1e-9, ours.gpu_busy_s)
    log(
        f"reelfork renders {work:.2f}x the segment-granular speculation floor's GPU seconds (target <= 1.1x;"
        f" {upgrades:.0%} of them upgrading degraded clips, {unwatched:.0%} on segments nobody watched)"
    )
    split = split_work(world, model, streaming, ours.rendered_s, ours.upgrade_busy_s)
    log(
        "  its GPU seconds as shares of the floor's: "
        + ", ".join(f"{name} {seconds / max(1e-9, floor_s):.3f}" for name, seconds in asdict(split).items())
        + " (watched and leads: the floor's own units, a degraded one costing less; tails: skipped by early"
        " choosers but due to begin before the choice; other: speculation past the leads, and segments begun"
        " before they had to be)"
    )
    log(
        f"  the floor: {floor_s / max(1e-9, seen_s):.2f}x the work of rendering what is watched, in segments"
        f" ({clip_floor_s / max(1e-9, clip_seen_s):.2f}x in whole clips); {online_s / max(1e-9, floor_s):.2f}x the"
        f" floor without knowing when a viewer chooses (reelfork: {ours.gpu_busy_s / max(1e-9, online_s):.2f}x that)"
    )
    metered_gpus, metered = searches["reelfork-metered"]
    metered_work = metered.gpu_busy_s / max(1e-9, floor_s)
    metered_split = split_work(world, model, streaming, metered.rendered_s, metered.upgrade_busy_s)
    metered_share = scenario.viewers / metered_gpus / oracle if metered_gpus and oracle else None
    log(
        "reelfork metered (REELFORK_GPU_BILLING=metered: nothing speculated on idle slots): "
        + (f"{metered_gpus} GPUs" if metered_gpus else "never meets the bar")
        + (f", {metered_share:.0%} of the oracle's viewers per GPU" if metered_share else "")
        + f"; renders {metered_work:.2f}x the floor's GPU seconds (target <= 1.1x),"
        f" {metered.gpu_busy_s / max(1e-9, online_s):.2f}x the online floor's; as shares of the floor: "
        + ", ".join(f"{name} {seconds / max(1e-9, floor_s):.3f}" for name, seconds in asdict(metered_split).items())
    )
    return {
        "scenario": asdict(scenario),
        "model": asdict(model),
        "streaming": asdict(streaming),
        "gpus": gpus,
        "at_reelfork_gpus": {p: o.summary() for p, o in at_gpus.items()},
        "fewest_gpus": {p: g for p, (g, _) in searches.items()},
        "viewers_per_gpu": per_gpu,
        "dollars_per_viewer_hour": {p: (round(d, 4) if d is not None else None) for p, d in dollars.items()},
        "fewest_gpus_runs": {p: o.summary() for p, (_, o) in searches.items()},
        "reelfork_share_of_oracle": round(share, 4),
        "reelfork_share_of_segment_oracle": round(seg_share, 4),
        "lead_oracle_share_of_oracle": round(bound_share, 4) if bound_share else None,
        "reelfork_share_of_lead_oracle": round(lead_share, 4),
        "reelfork_over_prefetch_all": round(over_prefetch, 3) if over_prefetch else None,
        "reelfork_work_over_segment_floor": round(work, 4),
        "reelfork_work_upgrades": round(upgrades, 4),
        "reelfork_work_unwatched": round(unwatched, 4),
        "segment_floor_over_watched": round(floor_s / max(1e-9, seen_s), 4),
        "clip_floor_over_watched": round(clip_floor_s / max(1e-9, clip_seen_s), 4),
        "segment_floor_gpu_s": round(floor_s, 1),
        "online_floor_over_segment_floor": round(online_s / max(1e-9, floor_s), 4),
        "reelfork_work_over_online_floor": round(ours.gpu_busy_s / max(1e-9, online_s), 4),
        "reelfork_work_split_over_segment_floor": {
            name: round(seconds / max(1e-9, floor_s), 4) for name, seconds in asdict(split).items()
        },
        "metered_share_of_oracle": round(metered_share, 4) if metered_share else None,
        "metered_work_over_segment_floor": round(metered_work, 4),
        "metered_work_over_online_floor": round(metered.gpu_busy_s / max(1e-9, online_s), 4),
        "metered_work_split_over_segment_floor": {
            name: round(seconds / max(1e-9, floor_s), 4) for name, seconds in asdict(metered_split).items()
        },
    }


def sharing(
    audience: Scenario, alone: Scenario, model: Model, streaming: Streaming, log: Callable[[str], None]
) -> dict[str, object]:
    """Viewers per GPU for a big audience on one story over viewers per GPU for viewers alone."""
    crowd_world, alone_world = make_world(audience), make_world(alone)
    crowd_gpus, crowd = fewest_gpus(runner(crowd_world, "reelfork", model, streaming))
    alone_gpus, solo = fewest_gpus(runner(alone_world, "reelfork", model, streaming))
    crowd_per_gpu = audience.viewers / crowd_gpus if crowd_gpus else 0.0
    alone_per_gpu = alone.viewers / alone_gpus if alone_gpus else 0.0
    factor = crowd_per_gpu / alone_per_gpu if alone_per_gpu else 0.0
    log(
        f"\nsharing ({model.name}, reelfork, {streaming.segment_s:g} s segments,"
        f" arrivals over {audience.window_s:.0f} s):"
    )
    log(
        f"  {audience.viewers} viewers on one story: {crowd_gpus} GPUs, {crowd_per_gpu:.1f} viewers/GPU"
        f" (stalls {crowd.stall_rate:.2%}, degraded {crowd.degraded_share:.1%})"
    )
    log(
        f"  {alone.viewers} viewers each alone:    {alone_gpus} GPUs, {alone_per_gpu:.1f} viewers/GPU"
        f" (stalls {solo.stall_rate:.2%}, degraded {solo.degraded_share:.1%})"
    )
    log(f"  sharing factor {factor:.1f}x (target >= 10x)")
    return {
        "audience": asdict(audience),
        "alone": asdict(alone),
        "audience_gpus": crowd_gpus,
        "alone_gpus": alone_gpus,
        "audience_viewers_per_gpu": round(crowd_per_gpu, 2),
        "alone_viewers_per_gpu": round(alone_per_gpu, 2),
        "sharing_factor": round(factor, 2),
        "audience_run": crowd.summary(),
        "alone_run": solo.summary(),
    }


def sweep(base: Scenario, overlap_s: float, lengths: list[float], log: Callable[[str], None]) -> dict[str, object]:
    """reelfork's fewest GPUs (and the segment-granular oracle's) for each segment length: LTX-class, 10 s
    windows (the slow model's runs take much longer)."""
    world = make_world(base)
    log(f"\nsegment length ({overlap_s:g} s overlap each), {LTX.name}, {base.viewers} viewers, 10 s windows:")
    log(f"{'segment s':>10}{'reelfork GPUs':>15}{'segment oracle':>16}")
    out: dict[str, object] = {}
    for length in lengths:
        streaming = Streaming(length, overlap_s)
        oracle = fewest_gpus(runner(world, "segment-oracle", LTX, streaming))[0]
        ours = fewest_gpus(runner(world, "reelfork", LTX, streaming), oracle or 1)[0]
        log(f"{length:>10g}{ours or 0:>15}{oracle or 0:>16}")
        out[f"{length:g}"] = {"reelfork": ours, "segment-oracle": oracle}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller audiences")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--segment", type=float, default=Streaming.segment_s, metavar="S", help="segment length")
    parser.add_argument(
        "--overlap",
        type=float,
        default=Streaming.overlap_s,
        metavar="S",
        help="conditioning seconds each segment re-reads",
    )
    parser.add_argument(
        "--gpu-hour", type=float, default=2.50, metavar="USD", help="H100 price per hour (default 2.50)"
    )
    parser.add_argument("--sweep", action="store_true", help="only compare segment lengths (reelfork, segment oracle)")
    parser.add_argument(
        "--part",
        choices=["ltx", "wan", "sharing"],
        help="only this model's comparisons, or only the sharing run (for running a full run in parallel parts)",
    )
    args = parser.parse_args()
    if args.segment <= 0:
        parser.error("--segment must be above 0 (the clip-granular oracle is always run in whole clips)")
    started = time.perf_counter()
    base = Scenario(seed=args.seed)
    if args.quick:
        base = replace(base, viewers=200, stories=4, window_s=200.0)
    streaming = Streaming(args.segment, args.overlap)
    name = "simulate" + ("-quick" if args.quick else "") + ("" if args.seed == 7 else f"-seed-{args.seed}")
    name += f"-{args.part}" if args.part else ""
    models = [m for m in (LTX, WAN) if args.part in (None, m.name.split("-")[0])]
    results: dict[str, object] = {
        "quick": args.quick,
        "seed": args.seed,
        "max_stall_rate": MAX_STALL_RATE,
        "max_degraded": MAX_DEGRADED,
        "gpu_hour_usd": args.gpu_hour,
        "streaming": asdict(streaming),
    }
    if args.sweep:
        results["sweep"] = sweep(base, args.overlap, [1.0, 2.0, 3.0, 4.0, 6.0], print)
        name += "-sweep"
    else:
        results["compare"] = {
            m.name: {
                label: compare(
                    replace(base, choice_window_s=window, after_end_s=after), m, streaming, args.gpu_hour, print
                )
                for label, (window, after) in WINDOWS.items()
            }
            for m in models
        }
    if not args.sweep and args.part in (None, "sharing"):
        audience = replace(base, viewers=2000 if args.quick else 10_000, stories=1, window_s=1800.0)
        alone = replace(audience, viewers=60 if args.quick else 200, stories=0)
        results["sharing"] = sharing(audience, alone, LTX, streaming, print)
    results["seconds"] = round(time.perf_counter() - started, 1)
    path = RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{results['seconds']} s; figures in {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
