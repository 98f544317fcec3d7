"""Discrete-event simulation of rendering ahead of playback, driving the real scheduler
(``reelfork.server.lookahead.scheduler.Scheduler``).

Run from the repository root:

    . .venv/bin/activate
    python bench/simulate.py            # full run, a few minutes on one core
    python bench/simulate.py --quick    # smaller audiences, about two minutes
    python bench/simulate.py --choice-window 0 --after-end 10   # choices offered only once a scene ends
    python bench/simulate.py --unlock-rate 0.1   # the paywall run's assumed unlock rate

It compares four ways of spending G GPUs on V viewers (``on-demand``, ``prefetch-all``, ``reelfork``
and ``oracle``, described in ``bench/simulation/policies.py``), on the same seeded stories and the
same viewers making the same choices at the same times (``bench/simulation/world.py``, which states
the assumptions about stories, audiences and render cost).

For each it prints the stall rate (share of clip transitions where the next clip was not ready),
p99 stall seconds (over all transitions), GPU utilisation, the share of renders never watched, the
share of watched clips in a degraded profile, and viewers per GPU at <= 1% stall: V over the
fewest GPUs (searched: doubling, then bisection) at which the stall rate is <= 1% and at most 5%
of watched clips are degraded. Then the sharing factor: viewers per GPU with a 10,000-viewer
audience on one story over viewers per GPU when every viewer is alone on their own story.
Figures go to ``bench/results/simulate.json``, with reelfork's render work over the oracle's at the
same GPUs (and the shares of it spent on upgrades, on clips nobody watched and on upgrades nobody
watched afterwards), and each model's speculation floor: the render work, relative to the oracle's, that any
policy without foresight does to show every clip in full and on time (it must render the chosen
child's first clips before the choice is known, so every child's; with a slow model, some of the
grandchildren's too: see ``speculation_floor`` in ``bench/simulation/policies.py``).

Scenes offer their choices in a window, as the play server does (``bench/simulation/world.py``): by
default the last 10 s of a scene (the story format's default), and a viewer who chooses starts the
chosen scene at once; ``--choice-window S --after-end A`` changes it for every scene (figures go to
``simulate-window-S-A.json``). Then, for the same audience, ``windows and paywall`` compares reelfork
and the oracle with 10 s windows, with 0 s windows (choices offered once a scene ends, the default
taken 10 s later, as before the windows), and with 10 s windows and a paywall after episode 1 at an
assumed unlock rate (``--unlock-rate``, printed; viewers who do not unlock leave there): stall
rate at one fleet (the 10 s window's fewest GPUs) and viewers per GPU at <= 1% stall. A window that
opens before the end gives every policy foresight but takes away the render time the viewers'
deciding after the end gave; the paywall takes away work (and viewers) past episode 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.simulation.engine import MAX_DEGRADED, MAX_STALL_RATE, Outcome, simulate  # noqa: E402
from bench.simulation.policies import POLICIES, speculation_floor  # noqa: E402
from bench.simulation.world import LTX, WAN, Model, Scenario, World, make_world  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "simulate.json"
MAX_GPUS = 4096


# -- the search ------------------------------------------------------------------------------


def runner(world: World, policy: str, model: Model) -> Callable[[int], Outcome]:
    return lambda gpus: simulate(world, policy, model, gpus)


def fewest_gpus(run: Callable[[int], Outcome]) -> tuple[int | None, Outcome]:
    """The fewest GPUs whose run is feasible (doubling, then bisection), and that run; None if even
    ``MAX_GPUS`` is not enough (on-demand: every first visit to a scene waits for its render), or if
    doubling them changed neither the stalls nor the degraded clips (GPUs are not what is missing)."""
    low, high = 0, 1
    best = run(high)
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


def row(outcome: Outcome, per_gpu: float | None) -> str:
    capacity = f"{per_gpu:9.1f}" if per_gpu is not None else "    never"
    return (
        f"{outcome.policy:<13}{outcome.stall_rate:>8.2%}{outcome.p99_stall_s:>9.2f}{outcome.utilisation:>8.1%}"
        f"{outcome.unwatched_share:>11.1%}{outcome.degraded_share:>10.1%}{capacity}"
    )


HEADER = f"{'policy':<13}{'stalls':>8}{'p99 s':>9}{'GPU':>8}{'unwatched':>11}{'degraded':>10}{'viewers/GPU':>12}"


def compare(scenario: Scenario, model: Model, log: Callable[[str], None]) -> dict[str, object]:
    """Every policy's fewest GPUs for this audience, and all of them at reelfork's count."""
    world = make_world(scenario)
    floor = speculation_floor(world, model)
    searches: dict[str, tuple[int | None, Outcome]] = {}
    for policy in POLICIES:
        searches[policy] = fewest_gpus(runner(world, policy, model))
        log(f"  {policy}: fewest GPUs at <= 1% stall: {searches[policy][0]}")
    gpus = searches["reelfork"][0] or searches["reelfork"][1].gpus  # never: where the search gave up
    at_gpus = {policy: simulate(world, policy, model, gpus) for policy in POLICIES}
    per_gpu = {p: (scenario.viewers / g if g else None) for p, (g, _) in searches.items()}
    log(
        f"\n{model.name}: {scenario.viewers} viewers over {scenario.window_s:.0f} s, {scenario.stories} stories;"
        f" at {gpus} GPUs (reelfork's fewest{'' if searches['reelfork'][0] else '; never: the most it tried'}):"
    )
    log(HEADER)
    for policy in POLICIES:
        log(row(at_gpus[policy], per_gpu[policy]))
    oracle, reelfork = per_gpu["oracle"], per_gpu["reelfork"]
    share = reelfork / oracle if oracle and reelfork else 0.0
    if oracle is None:
        seen = searches["oracle"][1]
        log(
            f"no policy keeps stalls <= {MAX_STALL_RATE:.0%} with <= {MAX_DEGRADED:.0%} of clips degraded: the oracle,"
            f" at {seen.gpus} GPUs, stalls {seen.stall_rate:.2%} and degrades {seen.degraded_share:.1%}"
            " (a choice comes seconds into a scene, sooner than a child's first clip renders)"
        )
    else:
        log(f"reelfork reaches {share:.0%} of the oracle's viewers per GPU (target >= 90%)")
    ours = at_gpus["reelfork"]
    work = ours.gpu_busy_s / max(1e-9, at_gpus["oracle"].gpu_busy_s)
    upgrades = ours.upgrade_busy_s / max(1e-9, ours.gpu_busy_s)
    log(f"reelfork renders {work:.2f}x the oracle's GPU seconds ({upgrades:.0%} of them upgrading degraded clips)")
    unwatched = ours.unwatched_busy_s / max(1e-9, ours.gpu_busy_s)
    unwatched_upgrades = ours.unwatched_upgrade_busy_s / max(1e-9, ours.gpu_busy_s)
    log(
        f"  of them, {unwatched:.0%} rendered clips nobody watched and {unwatched_upgrades:.0%} upgraded clips"
        " nobody watched afterwards"
    )
    log(f"without foresight, every clip in full and on time takes >= {floor:.2f}x the oracle's render work")
    return {
        "scenario": asdict(scenario),
        "model": asdict(model),
        "gpus": gpus,
        "at_reelfork_gpus": {p: o.summary() for p, o in at_gpus.items()},
        "fewest_gpus": {p: g for p, (g, _) in searches.items()},
        "viewers_per_gpu": per_gpu,
        "fewest_gpus_runs": {p: o.summary() for p, (_, o) in searches.items()},
        "reelfork_share_of_oracle": round(share, 4),
        "reelfork_work_over_oracle": round(work, 4),
        "reelfork_work_unwatched": round(unwatched, 4),
        "reelfork_work_upgrades_unwatched": round(unwatched_upgrades, 4),
        "speculation_floor": round(floor, 4),
    }


def sharing(audience: Scenario, alone: Scenario, model: Model, log: Callable[[str], None]) -> dict[str, object]:
    """Viewers per GPU for a big audience on one story over viewers per GPU for viewers alone."""
    crowd_world, alone_world = make_world(audience), make_world(alone)
    crowd_gpus, crowd = fewest_gpus(runner(crowd_world, "reelfork", model))
    alone_gpus, solo = fewest_gpus(runner(alone_world, "reelfork", model))
    crowd_per_gpu = audience.viewers / crowd_gpus if crowd_gpus else 0.0
    alone_per_gpu = alone.viewers / alone_gpus if alone_gpus else 0.0
    factor = crowd_per_gpu / alone_per_gpu if alone_per_gpu else 0.0
    log(f"\nsharing ({model.name}, reelfork, arrivals over {audience.window_s:.0f} s):")
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


WINDOWED_HEADER = HEADER.replace(f"{'policy':<13}", f"{'scenario':<36}") + f"{'oracle':>8}"


def windows(
    base: Scenario, model: Model, known: dict[str, int | None], log: Callable[[str], None]
) -> dict[str, object]:
    """Stall rate and viewers per GPU for reelfork (and the oracle's viewers per GPU) with 10 s and 0 s
    windows and with the paywall; ``known``: each policy's fewest GPUs for ``base`` (``compare``'s)."""
    scenarios = {
        "10 s window": replace(base, choice_window_s=10.0, after_end_s=0.0, paywall=False),
        "0 s window (choose after the end)": replace(base, choice_window_s=0.0, after_end_s=10.0, paywall=False),
        "10 s window, paywall after ep. 1": replace(base, choice_window_s=10.0, after_end_s=0.0, paywall=True),
    }
    fewest: dict[str, dict[str, int | None]] = {}
    for label, scenario in scenarios.items():
        if scenario == base:
            fewest[label] = known
            continue
        world = make_world(scenario)
        fewest[label] = {p: fewest_gpus(runner(world, p, model))[0] for p in ("reelfork", "oracle")}
    # The 10 s window's fewest GPUs; where there are none, the 0 s window's.
    which = "10 s" if fewest["10 s window"]["reelfork"] else "0 s"
    gpus = fewest["10 s window"]["reelfork"] or fewest["0 s window (choose after the end)"]["reelfork"] or MAX_GPUS
    paywalled = make_world(scenarios["10 s window, paywall after ep. 1"])
    reach = sum(1 for v in paywalled.viewers if v.paywall >= 0)
    buy = sum(1 for v in paywalled.viewers if v.paywall >= 0 and v.unlocks)
    log(
        f"\nwindows and paywall ({model.name}, reelfork): {base.viewers} viewers over {base.window_s:.0f} s,"
        f" {base.stories} stories; at {gpus} GPUs (the {which} window's fewest):"
    )
    log(
        f"  paywall after episode 1 ({base.episode_layers} scene layers), assumed unlock rate {base.unlock_rate:.0%}:"
        f" {reach} viewers reach it, {buy} unlock"
    )
    log(WINDOWED_HEADER)
    out: dict[str, object] = {"unlock_rate": base.unlock_rate, "paywall_reached": reach, "paywall_unlocked": buy}
    rows: dict[str, object] = {}
    for label, scenario in scenarios.items():
        outcome = simulate(make_world(scenario), "reelfork", model, gpus)
        ours, oracle = fewest[label]["reelfork"], fewest[label]["oracle"]
        per_gpu = scenario.viewers / ours if ours else None
        oracle_per_gpu = f"{scenario.viewers / oracle:8.1f}" if oracle else "   never"
        log(row(replace(outcome, policy=label), per_gpu).replace(f"{label:<13}", f"{label:<36}") + oracle_per_gpu)
        rows[label] = {
            "scenario": asdict(scenario),
            "at_gpus": outcome.summary(),
            "fewest_gpus": fewest[label],
            "viewers_per_gpu": per_gpu,
            "oracle_viewers_per_gpu": scenario.viewers / oracle if oracle else None,
        }
    out["gpus"] = gpus
    out["scenarios"] = rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller audiences, about two minutes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--choice-window",
        type=float,
        default=10.0,
        metavar="S",
        help="offer each scene's choices S seconds before it ends, while it plays on (default: 10)",
    )
    parser.add_argument(
        "--after-end", type=float, default=0.0, metavar="A", help="and keep them open A seconds after (default: 0)"
    )
    parser.add_argument(
        "--unlock-rate",
        type=float,
        default=Scenario.unlock_rate,
        metavar="R",
        help=f"assumed share of viewers at the paywall who unlock (default: {Scenario.unlock_rate})",
    )
    args = parser.parse_args()
    if args.choice_window + args.after_end <= 0:
        parser.error("--choice-window or --after-end must be above 0")
    started = time.perf_counter()
    base = Scenario(
        seed=args.seed, choice_window_s=args.choice_window, after_end_s=args.after_end, unlock_rate=args.unlock_rate
    )
    if args.quick:
        base = replace(base, viewers=200, stories=4, window_s=200.0)
    audience = replace(base, viewers=2000 if args.quick else 10_000, stories=1, window_s=1800.0)
    alone = replace(audience, viewers=60 if args.quick else 200, stories=0)
    results: dict[str, object] = {"quick": args.quick, "max_stall_rate": MAX_STALL_RATE, "max_degraded": MAX_DEGRADED}
    compared = {m.name: compare(base, m, print) for m in (LTX, WAN)}
    results["compare"] = compared
    results["windows"] = {
        m.name: windows(base, m, cast(dict[str, int | None], compared[m.name]["fewest_gpus"]), print)
        for m in (LTX, WAN)
    }
    results["sharing"] = sharing(audience, alone, LTX, print)
    results["seconds"] = round(time.perf_counter() - started, 1)
    default = (args.choice_window, args.after_end) == (10.0, 0.0)
    path = RESULTS if default else RESULTS.with_name(f"simulate-window-{args.choice_window:g}-{args.after_end:g}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{results['seconds']} s; figures in {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
