"""The scheduler's knobs: the tuning of the policy in :mod:`reelfork.server.lookahead.scheduler`."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Tuning:
    prior: float = 1.0
    """Dirichlet pseudo-count per choice: how many viewers' worth of doubt a new node starts with."""
    probability_weight_s: float = 10.0
    """How many seconds of deadline a job gives up for being unlikely (see the module docstring)."""
    lookahead_backlog_s: float = 6.0
    """Write grandchildren only while the queued writes drain within this many seconds."""
    render_depth: int = 3
    """How many levels of descendants' clips are rendered ahead (1: children only), as far as the
    shell's ``Child.children`` reach."""
    min_probability: float = 0.05
    """A viewer's interest in a descendant below the children ends where their chance of reaching it
    falls below this."""
    defer_margin_s: float = 2.0
    """Speculative work that a full render started this long after the viewer's choice still delivers
    in time waits for the choice (see ``defer_s``)."""
    defer_s: float = 100_000.0
    """Score offset of work that can wait for a choice: behind everything else, run only by a slot
    that would otherwise idle."""
    max_attempts: int = 3
    plan_depth: int = 16
    """How many queued render jobs, from the head, are laid out to choose their profiles (the rest
    are planned when they get there; a worker re-checks with ``pick_profile`` when it starts one)."""
    choice_s: float = 1.0
    """Seconds the earliest viewers take to choose once the choices are offered, until their choices
    tell: children are due that much after the window opens."""
    decision_grace_s: float = 2.0
    """Further seconds a typical viewer takes to choose, until their choices tell: a child's clip is
    degraded only if even that late it would not be ready (a stall that short is less likely than a
    worse clip is certain)."""
    early_quantile: float = 0.1
    """Once learned, children are due when this share of viewers has chosen after the window opened."""
    typical_quantile: float = 0.5
    """Once learned, a child's clip is degraded only if not ready when this share of viewers has chosen."""
    choice_samples: int = 20
    """Choices seen before their timing replaces ``choice_s`` and ``decision_grace_s``."""
    choice_memory: int = 1000
    """The latest choices whose timing is kept."""
    after_end_s: float = 10.0
    """For a scene given without a window: its choices are offered when it ends, and close this much later."""
    unlock_rate: float = 0.1
    """Prior share of viewers reaching a paywall who unlock it (see ``unlock_prior``)."""
    unlock_prior: float = 10.0
    """How many viewers' worth of evidence the prior unlock rate counts as."""
    learning_rate: float = 0.2
    """Weight of each finished job's timing in the running real-time factor estimate."""
    idle_probability: float = 0.2
    """How likely speculative work that could wait for the choice must be for a slot that would otherwise idle to
    render it (0: all of it; above 1: none); until then it is not queued at all. The simulation's quick runs
    (seeds 7 and 8) against rendering all of it: the same GPUs within one (LTX-class 14 and 13 instead of 14 and
    14 with 0 s windows, 19 and 17 instead of 19 and 18 with 10 s; the slow model 61 and 56 instead of 61 and 57,
    130 and 111 instead of 129 and 110), and 1.08-1.09x the speculation floor's work with 0 s windows instead of
    1.12-1.15x, 1.29-1.31x with 10 s windows instead of 1.34-1.41x. Held to likelier work still (0.34, 0.5) or
    none, LTX-class with 0 s windows needs 15, 15 and 16 GPUs."""
    upgrade_probability: float = 0.0
    """How likely a degraded segment's upgrade must be to be watched for it to be queued before the viewer's choice
    (0: every upgrade that fits before it is due), if it is the first segment of its clip or could wait for the
    choice (past the clip's lead): a viewer who chooses its clip watches at most its first segment degraded. Only
    while the best profile renders faster than real time: with a slower one more chosen clips start degraded (in
    the simulation, the slow model held so degrades 7% of the segments watched, over the 5% bar)."""
    hold_s: float | None = None
    """Segments of a scene being watched that its viewers skip by choosing early (past the choice window's
    opening) start no sooner than this many seconds before their latest start; None: as soon as a slot is free.
    A shell that lays the queue out on ticks (:meth:`Scheduler.tick`) adds a tick to it."""
    segment_weight_s: float = 1.0
    """``probability_weight_s`` when clips stream in segments: a segment is due seconds after the one before,
    so a long shot gives up less deadline (a later segment of a sure stream is not worth a stall at a choice)."""
    segment_margin_s: float = 0.5
    """``defer_margin_s`` when clips stream in segments: the first segments past the choice wait less."""


METERED = Tuning(idle_probability=math.inf, upgrade_probability=0.75, hold_s=0.5)
"""For GPUs paid by the second (serverless, autoscaled): render only what must be ready, each segment viewers may
skip as late as it safely can be, and leave unlikely upgrades to the choice. ``bench/simulate.py``, seeds 7 and 8,
quick and full runs, against the default tuning: LTX-class with 10 s windows, 1.06-1.09x the speculation floor's
work at 18-31 GPUs (default: 1.29-1.40x at 17-29); with 0 s windows 0.95-0.98x at 15-27 GPUs (default:
1.08-1.16x at 13-24). The slow model with 0 s windows, 1.03-1.05x at 66-117 GPUs (default: 1.08-1.13x at 56-104);
with 10 s windows 1.19-1.20x at 113-197 GPUs (default: 1.29-1.30x at 111-192), where no policy that does not know
when viewers choose does less than 1.12-1.13x (the online floor)."""
