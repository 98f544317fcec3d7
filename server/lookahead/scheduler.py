"""The lookahead scheduler: which scene to write and which clip to render next, and how well.

Pure policy (no Redis, no asyncio, no I/O), so the server and ``bench/simulate.py`` run the same
class. The shell feeds observations in (``viewer_at``, ``viewer_chose``, ``viewer_left``,
``job_started``, ``job_done``, ``job_failed``) and applies the :data:`Decision` values that
``decisions()`` hands back to its queue (a Redis sorted set: ``Enqueue``/``Reprioritise`` are a
ZADD of ``score``, ``Cancel`` a ZREM). For an in-process queue, ``next_job`` pops by score itself.
Time passing is ``tick()``; workers coming and going is ``resize()``. Who wants which job, and how
badly, is kept in :mod:`reelfork.server.lookahead.wants`; when viewers choose is learned in
:mod:`reelfork.server.lookahead.timing`, and how many unlock a paywall in :mod:`reelfork.server.lookahead.unlocks`.

The policy
----------
* **Deadline.** A viewer ``position_s`` into a scene whose clips last ``d_0..d_n`` needs the scene's
  clip ``j`` at ``now + offset_j - position``, and the first clip of whichever child they choose
  when they choose: a choice may come at any time in the scene's choice window (``opens_at`` to
  ``closes_at`` on its timeline; the default is taken at ``closes_at``) and moves the viewer on at
  once. Without a window the choices come once the scene ends (a window of 0 s). A child's later
  clips follow at their offsets; later clips of the current scene are rendered while its first plays.
* **When viewers choose.** How long after a window opens viewers choose is learned from their choices
  (before enough are seen: ``choice_s``, give or take ``decision_grace_s``): a child is due when
  the earliest of them (``early_quantile``) choose, and degraded only if it would not be ready even
  for a typical one (``typical_quantile``). A window opening at the start of a short scene thus
  makes its children due long before the scene would end.
* **Depth.** Clips are rendered ahead ``render_depth`` levels down (children, grandchildren, ...), as
  far as the shell's ``Child.children`` reach, each level due after the one before it plus the
  shortest time to choose; a level's probability is the product of the choices leading to it, and
  a viewer stops wanting a branch where that falls below ``min_probability``. One level is not
  enough for a slow model: a child's first clip can take longer to render than its parent lasts.
* **Probability.** A child's probability is how earlier viewers chose at that node with a
  Dirichlet prior: ``(n_choice + prior) / (n_node + prior * k)``; a new node is uniform. Once a
  viewer has chosen, the chosen child is certain for them and its siblings unreachable.
* **Sharing.** A job is keyed by content (node and clip), so the same clip is one job however
  many viewers wait for it. Its deadline is the earliest interested viewer's; its probability is
  that of anyone needing it, ``1 - prod(1 - p_viewer)``.
* **Order.** ``score = deadline + probability_weight_s * (1 - probability)``, lower is sooner: earliest
  deadline first, a certain job ahead of a likely one due at the same time, and a long shot behind
  a sure thing due up to ``probability_weight_s`` later. Scores are absolute clock seconds, so they
  stay comparable in a sorted set as time passes.
* **Waiting for the choice.** Speculative work (probability below 1 for every interested viewer)
  that a full render started ``defer_margin_s`` after the viewer's next choice would still deliver
  in time gains nothing by running before it, and may be wasted: its score is raised by ``defer_s``,
  behind all other work, so it runs only on a slot that would otherwise idle (rendering ahead for
  free) and is cancelled or promoted once the choice is known. Under load only the first clips of
  the children, which cannot wait, are speculated; with a fast model, later clips mostly wait.
* **Unreachable work.** When every viewer interested in a queued job has chosen elsewhere, moved on
  or left, the job is cancelled; when some remain, it is re-scored (demoted).
* **Writing ahead.** An unwritten child gets a write job due early enough to render it in time;
  an unwritten scene further down (grandchildren, and so on to one level past ``render_depth``) is
  written only while the writers' queued work drains within ``lookahead_backlog_s``, i.e. when the
  budget allows. Nothing below an unwritten scene is known, so nothing below it is wanted.
* **Degrading.** Render profiles are ordered best first, each with a real-time factor (render
  seconds per clip second) on one slot. The queued jobs are laid out in score order over the
  ``render_slots`` (the budget: GPUs); a job that would finish after its deadline in its best
  profile gets the best one that does not, or the cheapest if none does: a worse clip rather
  than a stall. A degraded clip is re-rendered in the best profile (an upgrade, keyed with that
  profile, queued ``probability_weight_s`` behind fresh work) when a later viewer needs it and a
  full render fits before then, so one bad minute does not stay shared by every later viewer.
  Real-time factors are learned from ``job_done`` timings (a guessed one, ``measured=False``, is
  replaced by the first timing; then a running average), and the profile a worker reports it used
  wins over the planned one.
* **Segments.** With ``Budget.segment_s``, a clip streams in segments (:mod:`reelfork.server.lookahead.segments`):
  each is a job (``Enqueue.segment``) due when playback reaches it, conditioned on the one before (it is
  queued once that one is stored, and due early enough for the rest of the stream to keep up), costing its
  length plus ``Budget.overlap_s`` of conditioning frames. An unchosen child is speculated only as far as its
  lead (the segments that keep it ahead of playback once chosen, computed from the real-time factor); the rest
  waits for the choice. Segments of the scene being watched past its first choices are as likely as the
  viewer is not to have chosen by then. A stream being watched is never left to stall for speculative work:
  ``next_job`` takes its next segment first when waiting for the speculative render would make it late.
  Profiles are chosen per segment (a stream changes profile between segments), upgrades of degraded segments
  run on slots that would otherwise idle, and probability weighs ``segment_weight_s`` instead.
* **Holding back.** Speculative work that can wait for the choice is not queued at all while it is less likely
  than ``idle_probability``; an upgrade that can wait for it, while less likely to be watched than
  ``upgrade_probability``. With
  ``hold_s`` set, a segment of the scene being watched that viewers skip by choosing early starts no sooner than
  ``hold_s`` before its latest start: :meth:`Scheduler.wake_at` says when the next may start, and ``tick()``
  releases it. ``METERED`` in :mod:`reelfork.server.lookahead.tuning` holds all three back, for GPUs paid by the
  second.
* **Retries.** A failed job is queued again up to ``max_attempts``, then never asked for again.
* **The paywall.** A child that opens an episode the viewer has no entitlement for (``Child.paywall``)
  is reached only by those who unlock it: its probability is weighted by the story's observed unlock
  rate (viewers who chose into the paywall, and of them those observed in the scene afterwards,
  with a prior of ``unlock_rate`` worth ``unlock_prior`` viewers), and only its first clip (or its
  text) is wanted for this viewer, nothing deeper in the locked episode.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from reelfork.server.lookahead.budget import Budget, Profile, Slots, pick_profile
from reelfork.server.lookahead.decisions import Cancel, Decision, Enqueue, Job, Reprioritise, job_key, segment_keys
from reelfork.server.lookahead.holds import Holds
from reelfork.server.lookahead.segments import chain_deadlines, lead, segment_lengths, segment_offsets
from reelfork.server.lookahead.timing import ChoiceTiming
from reelfork.server.lookahead.tuning import Tuning
from reelfork.server.lookahead.unlocks import Unlocks
from reelfork.server.lookahead.wants import Child, Clip, Interest, QueuedJob, View, Want, Window, WorkKind

__all__ = [
    "Budget",
    "Cancel",
    "Child",
    "Clip",
    "Clock",
    "Decision",
    "Enqueue",
    "Job",
    "Profile",
    "Reprioritise",
    "Scheduler",
    "Tuning",
    "Window",
    "WorkKind",
    "job_key",
    "pick_profile",
]


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic clock (wall time in the server, virtual time in the simulation)."""
        ...


class Scheduler:
    def __init__(self, clock: Clock, budget: Budget, tuning: Tuning | None = None) -> None:
        self.clock = clock
        self.budget = budget
        self.tuning = tuning or Tuning()
        self._rtf = {profile.name: profile.rtf for profile in budget.profiles}
        self._guessed = {profile.name for profile in budget.profiles if not profile.measured}
        self._write_s = budget.write_s
        self._counts: dict[str, dict[str, int]] = {}
        self._views: dict[str, View] = {}
        self._jobs: dict[str, QueuedJob] = {}
        self._queued: dict[WorkKind, set[str]] = {"write": set(), "render": set()}
        self._heaps: dict[WorkKind, list[tuple[float, int, str]]] = {"write": [], "render": []}
        self._holds = Holds()
        """The segments held back by ``Tuning.hold_s``."""
        self._running: dict[str, QueuedJob] = {}
        self._done: dict[str, str] = {}
        self._failed: set[str] = set()
        self._told: dict[str, tuple[float, str]] = {}
        self._changed: dict[str, None] = {}
        self._replan = False
        """Whether the queue or the running jobs changed since the last plan."""
        self._versions = 0
        self._timing = ChoiceTiming(self.tuning)
        self._unlocks = Unlocks(self.tuning)
        self._successor: dict[str, str] = {}
        """A segment's job → the job of the segment after it, waiting for it."""

    # -- observations ------------------------------------------------------------------------

    def viewer_at(
        self,
        viewer: str,
        node: str,
        position_s: float,
        clips: Sequence[Clip],
        children: Sequence[Child],
        window: Window | None = None,
    ) -> None:
        """``viewer`` is ``position_s`` seconds into ``node``'s scene, made of ``clips`` in order, whose
        choices are offered in ``window`` (None: once it ends, closing ``after_end_s`` later). A viewer
        seen next in the scene behind the paywall they chose into has unlocked it."""
        view = self._views.get(viewer)
        chosen = view.chosen if view is not None and view.node == node else None
        if view is not None and view.node != node and view.chosen is not None:
            behind = next((c for c in view.children if c.choice == view.chosen), None)
            if behind is not None and behind.paywall and behind.node == node:
                self.count_unlocks(behind.paywall, 0, 1)
        wants = view.wants if view is not None else {}
        now = self.clock.now()
        self._views[viewer] = View(node, position_s, now, tuple(clips), tuple(children), chosen, wants, window)
        self._refresh(viewer)

    def viewer_chose(self, viewer: str, node: str, choice: str) -> None:
        """Counts the choice, and when in its window it came; for this viewer the chosen child becomes
        certain (behind a paywall: as likely as the unlock) and its siblings unreachable."""
        self.count(node, choice)
        view = self._views.get(viewer)
        if view is not None and view.node == node and view.chosen is None:
            window = self._window(view)
            elapsed = view.position_s + self.clock.now() - view.seen_at
            self._timing.observe(min(max(0.0, elapsed - window.opens_at), window.closes_at - window.opens_at))
            child = next((c for c in view.children if c.choice == choice), None)
            if child is not None and child.paywall:
                self.count_unlocks(child.paywall, 1, 0)
            view.chosen = choice
            self._refresh(viewer)

    def count_unlocks(self, paywall: str, reached: int, unlocked: int) -> None:
        """``reached`` more viewers chose into ``paywall`` without an entitlement; ``unlocked`` more went on."""
        self._unlocks.count(paywall, reached, unlocked)

    def unlock_rate(self, paywall: str) -> float:
        """How likely a viewer who reaches ``paywall`` unlocks it: the observed rate, with the prior."""
        return self._unlocks.rate(paywall)

    def choice_delays(self) -> tuple[float, float]:
        """Seconds after a window opens that the earliest (``early_quantile``) and a typical
        (``typical_quantile``) viewer choose: learned, or the priors until ``choice_samples`` are seen."""
        return self._timing.delays()

    def count(self, node: str, choice: str, times: int = 1) -> None:
        """Earlier viewers took ``choice`` at ``node`` ``times`` more times."""
        choices = self._counts.setdefault(node, {})
        choices[choice] = choices.get(choice, 0) + times

    def count_total(self, node: str, choice: str, total: int) -> None:
        """The audience took ``choice`` at ``node`` at least ``total`` times (a stored tally). A count never
        goes down: a tally read before some choices were counted here does not undo them."""
        choices = self._counts.setdefault(node, {})
        choices[choice] = max(choices.get(choice, 0), total)

    def viewer_left(self, viewer: str) -> None:
        view = self._views.pop(viewer, None)
        if view is not None:
            self._apply(viewer, view.wants, {})

    def job_started(self, key: str, worker: str, profile: str | None = None) -> Job | None:
        """A worker took ``key`` off the shared queue (rendering in ``profile``, when it says); returns
        it as the scheduler sees it (None if unknown)."""
        job = self._jobs.get(key)
        if job is None or job.running:
            return None
        return self._start(job, self.clock.now(), profile)

    def job_done(self, key: str, seconds: float, profile: str | None = None, duration_s: float | None = None) -> None:
        """``key`` finished in ``seconds`` (rendered in ``profile``, ``duration_s`` long, when known); the
        timing refines the real-time factor of that profile."""
        job = self._jobs.pop(key, None)
        self._told.pop(key, None)
        self._running.pop(key, None)
        self._replan = True
        if job is None:
            return
        self._queued[job.kind].discard(key)
        profile = profile or job.profile
        duration_s = duration_s or job.duration_s
        self._done[key] = profile
        if job.upgrade:
            self._done[self._plain_key(job)] = profile
        after = self._successor.pop(key, None)
        if after is not None and after in self._jobs:
            self._changed[after] = None  # its segment before is stored: it can be queued now
        rate = self.tuning.learning_rate
        first_timing = False
        if job.kind == "write":
            self._write_s += rate * (seconds - self._write_s)
        elif profile in self._rtf and duration_s > 0:
            first_timing = profile in self._guessed
            if first_timing:
                self._guessed.discard(profile)
                rate = 1.0
            self._rtf[profile] += rate * (seconds / self.budget.work_s(duration_s) - self._rtf[profile])
        for viewer in job.interests:
            view = self._views.get(viewer)
            if view is not None:
                view.wants.pop(key, None)
        if first_timing:
            # What fits before a deadline was judged on the guess (an upgrade, a write's lead time): judge again.
            for viewer in list(self._views):
                self._refresh(viewer)

    def job_failed(self, key: str) -> None:
        """Requeue ``key`` (a new ``Enqueue``) until ``max_attempts``; then give up on it for good."""
        job = self._jobs.get(key)
        if job is None:
            return
        job.running = False
        self._running.pop(key, None)
        job.attempts += 1
        self._told.pop(key, None)
        if job.attempts >= self.tuning.max_attempts or not job.interests:
            if job.interests:
                self._failed.add(key)
            self._drop(job)
            return
        self._queue(job)

    # -- what the policy says ----------------------------------------------------------------

    def probability(self, node: str, choice: str, choices: Sequence[str]) -> float:
        """How likely a viewer at ``node`` picks ``choice`` among ``choices``, from earlier viewers and the prior."""
        counts = self._counts.get(node, {})
        prior = self.tuning.prior
        total = sum(counts.get(c, 0) for c in choices)
        return (counts.get(choice, 0) + prior) / (total + prior * len(choices))

    def decisions(self) -> list[Decision]:
        """What changed in the queue since the last call, for the shell to apply in order."""
        out: list[Decision] = []
        planned = self._plan() if self._replan else {}
        self._replan = False
        for key in self._changed:
            job = self._jobs.get(key)
            if job is None or job.running:
                if job is None and self._told.pop(key, None) is not None:
                    out.append(Cancel(key))
                continue
            if self.held(job):  # told once the choice (or its chance, or its hold's end) makes it worth a slot
                if self._told.pop(key, None) is not None:
                    out.append(Cancel(key))
                continue
            if self._blocked(job):  # told once the segment before it is stored
                continue
            job.profile = planned.get(key, job.profile or self._default_profile(job))
            told = self._told.get(key)
            if told is None:
                fields = (job.kind, job.node, job.clip, job.duration_s, job.score, job.profile, job.deadline)
                out.append(Enqueue(key, *fields, job.segment))
            elif told != (job.score, job.profile):
                out.append(Reprioritise(key, job.score, job.profile, job.deadline))
            self._told[key] = (job.score, job.profile)
        self._changed.clear()
        for key, profile in planned.items():
            told = self._told.get(key)
            if told is not None and told[1] != profile:
                job = self._jobs[key]
                job.profile = profile
                out.append(Reprioritise(key, job.score, profile, job.deadline))
                self._told[key] = (job.score, profile)
        return out

    def next_job(self, worker: str, kind: WorkKind = "render") -> Job | None:
        """For an in-process queue: pop the lowest score of ``kind`` that can start (a segment waits for the
        one before it), profile chosen for now. A started stream is never left to stall for speculative work:
        a certain job that would be late if it waited for the lowest score's render goes first."""
        heap = self._heaps[kind]
        held: list[tuple[float, int, str]] = []
        chosen: QueuedJob | None = None
        while heap:
            entry = heapq.heappop(heap)
            if not self._current(entry):
                continue
            job = self._jobs[entry[2]]
            if self._blocked(job) or self.held(job):
                held.append(entry)
                continue
            chosen = job
            break
        for entry in held:
            heapq.heappush(heap, entry)
        if chosen is None:
            return None
        now = self.clock.now()
        if kind == "render" and not chosen.playing:
            urgent = self._urgent(now + self._cost(chosen))
            if urgent is not None:
                heapq.heappush(heap, (chosen.score, chosen.version, chosen.key))
                chosen = urgent
        return self._start(chosen, now)

    def job(self, key: str) -> QueuedJob | None:
        """The job wanted under ``key`` (queued, waiting for the segment before, or running), if any."""
        return self._jobs.get(key)

    def held(self, job: QueuedJob) -> bool:
        """Whether ``job`` waits unqueued: speculative work that could wait for the viewer's choice, too unlikely
        (``Tuning.idle_probability``) to be worth a slot that would otherwise idle; an upgrade too unlikely to be
        watched (``Tuning.upgrade_probability``); or a segment viewers may skip, until its release
        (``Tuning.hold_s``), which is remembered for :meth:`wake_at` and :meth:`tick`."""
        if job.running:
            return False
        if job.upgrade:  # choosing its clip, a viewer watches at most its first segment degraded
            can_wait = job.segment == 0 or not job.eager
            return can_wait and job.probability < self.tuning.upgrade_probability and self._best_rtf() <= 1.0
        release = self._release(job)
        if release is not None and release > self.clock.now():
            self._holds.hold(job.key, release)
            return True
        return not job.eager and job.probability < self.tuning.idle_probability

    def wake_at(self) -> float | None:
        """When the next segment held back by ``Tuning.hold_s`` may start (None: none is): a slot left idle should
        ask again (:meth:`next_job`) then."""
        self._release_due()
        return self._holds.next()

    def queued(self, kind: WorkKind = "render") -> int:
        return len(self._queued[kind])

    def rtf(self, profile: str) -> float:
        """The current estimate of ``profile``'s real-time factor (render seconds per clip second)."""
        return self._rtf[profile]

    def tick(self) -> list[str]:
        """Time has passed: lay the queue out over the slots again at the next ``decisions()``, so a job
        whose viewer came closer is degraded (or no longer is) though nothing else changed, and a segment
        whose hold is over (``Tuning.hold_s``) is told. Returns those segments' keys: one still waiting for the
        segment before it is told later, but a stream's job may render it now."""
        self._replan = True
        return self._release_due()

    def resize(self, render_slots: int, pool: str | None = None) -> None:
        """The number of render slots (of ``pool``, else of every pool not counted apart) changed."""
        slots = max(1, render_slots)
        if pool is None and slots != self.budget.render_slots:
            self.budget = replace(self.budget, render_slots=slots)
            self._replan = True
        elif pool is not None and self.budget.pool_slots.get(pool) != slots:
            self.budget = replace(self.budget, pool_slots={**self.budget.pool_slots, pool: slots})
            self._replan = True

    # -- internals ---------------------------------------------------------------------------

    def _release(self, job: QueuedJob) -> float | None:
        """When a segment that viewers skip by choosing early may start (``Tuning.hold_s`` before its latest start);
        None for any other job, or when segments are not held."""
        hold = self.tuning.hold_s
        if hold is None or job.upgrade or not job.playing or job.probability >= 1.0:
            return None
        return job.deadline - self._cost(job) - hold

    def _release_due(self) -> list[str]:
        """The held segments whose hold is over: changed (told at the next ``decisions()``), and their keys."""
        released = self._holds.over(self.clock.now(), self._release_of)
        self._changed.update(dict.fromkeys(released))
        return released

    def _release_of(self, key: str) -> float | None:
        job = self._jobs.get(key)
        return None if job is None or job.running else self._release(job)

    def _cost(self, job: QueuedJob) -> float:
        """Seconds ``job`` takes in the best profile."""
        return self._best_rtf() * self.budget.work_s(job.duration_s)

    def _best_rtf(self) -> float:
        return self._rtf[self.budget.profiles[0].name]

    def _blocked(self, job: QueuedJob) -> bool:
        """Whether ``job`` is a segment whose predecessor is not stored yet."""
        return bool(job.after) and job.after not in self._done

    def _urgent(self, until: float) -> QueuedJob | None:
        """The earliest due job of a stream being watched, among the head of the render queue, that must start
        before ``until``."""
        found: QueuedJob | None = None
        for job in self._head("render", self.tuning.plan_depth):
            late = job.playing and not self._blocked(job) and job.deadline - self._cost(job) < until
            if late and (found is None or job.deadline < found.deadline):
                found = job
        return found

    def _profiles(self) -> list[Profile]:
        return [replace(p, rtf=self._rtf[p.name]) for p in self.budget.profiles]

    def _default_profile(self, job: QueuedJob) -> str:
        return self.budget.profiles[0].name if job.kind == "render" else ""

    def _start(self, job: QueuedJob, now: float, profile: str | None = None) -> Job:
        job.running = True
        job.started = now
        self._running[job.key] = job
        self._replan = True
        self._queued[job.kind].discard(job.key)
        self._told.pop(job.key, None)
        if profile in self._rtf:
            job.profile = str(profile)
        elif job.upgrade:
            job.profile = self.budget.profiles[0].name
        elif job.kind == "render":
            job.profile = self._pick(job, now).name
        return Job(
            job.key, job.kind, job.node, job.clip, job.duration_s, job.profile, job.deadline, job.score, job.segment
        )

    def _plan(self) -> dict[str, str]:
        """Lay the head of the render queue out over the slots; the profile each job should use."""
        if not self._queued["render"]:
            return {}
        now = self.clock.now()
        pools = {profile.name: profile.pool for profile in self.budget.profiles}
        work = self.budget.work_s
        busy = [
            (pools.get(j.profile, ""), j.started + self._rtf.get(j.profile, 0.0) * work(j.duration_s))
            for j in self._running.values()
            if j.kind == "render"
        ]
        slots = Slots(self.budget, self._profiles(), now, busy)
        return {
            job.key: slots.place(work(job.duration_s), job.latest, best=job.upgrade).name
            for job in self._head("render", self.tuning.plan_depth)
            if not self._blocked(job)
        }

    def _head(self, kind: WorkKind, count: int) -> list[QueuedJob]:
        """The first ``count`` queued jobs of ``kind`` by score."""
        heap = self._heaps[kind]
        if len(heap) > 4 * len(self._queued[kind]) + 256:
            heap[:] = [entry for entry in heap if self._current(entry)]
            heapq.heapify(heap)
        # Walk the heap from its root, smallest first: a few dozen steps however long the queue is.
        head: list[QueuedJob] = []
        frontier = [(heap[0], 0)] if heap else []
        while frontier and len(head) < count:
            entry, at = heapq.heappop(frontier)
            if self._current(entry):
                head.append(self._jobs[entry[2]])
            for below in (2 * at + 1, 2 * at + 2):
                if below < len(heap):
                    heapq.heappush(frontier, (heap[below], below))
        return head

    def _current(self, entry: tuple[float, int, str]) -> bool:
        job = self._jobs.get(entry[2])
        return job is not None and not job.running and job.version == entry[1]

    def _pick(self, job: QueuedJob, start: float, profiles: list[Profile] | None = None) -> Profile:
        """The profile for a render started at ``start``; an upgrade is always in the best one."""
        profiles = profiles or self._profiles()
        if job.upgrade:
            return profiles[0]
        return pick_profile(profiles, self.budget.work_s(job.duration_s), start, job.latest)

    def _write_backlog_s(self) -> float:
        return len(self._queued["write"]) * self._write_s / max(1, self.budget.write_slots)

    def _window(self, view: View | Child, total: float | None = None) -> Window:
        """The choice window of a scene, or the end of it when none is given."""
        if view.window is not None:
            return view.window
        if total is None:
            total = sum(clip.duration_s for clip in view.clips)
        return Window(total, total + self.tuning.after_end_s)

    def _choice_times(self, window: Window) -> tuple[float, float]:
        """When, on a scene's timeline, the earliest and a typical viewer choose in ``window``."""
        early, typical = self.choice_delays()
        length = window.closes_at - window.opens_at
        return window.opens_at + min(early, length), window.opens_at + min(typical, length)

    def _refresh(self, viewer: str) -> None:
        view = self._views[viewer]
        self._apply(viewer, view.wants, self._wanted(view))

    def _wanted(self, view: View) -> dict[str, Want]:
        """Every job this viewer's next minutes depend on, with when and how likely they need it."""
        now = self.clock.now()
        total = sum(clip.duration_s for clip in view.clips)
        elapsed = view.position_s + (now - view.seen_at)
        played = min(total, elapsed)
        wants: dict[str, Want] = {}
        offset = 0.0
        window = self._window(view, total) if view.chosen is None and view.children else None
        for index, clip in enumerate(view.clips):
            if offset + clip.duration_s > played:
                self._want_clip(wants, view.node, index, clip, now + offset - played, 1.0, window=window, at_s=offset)
            offset += clip.duration_s
        early, typical = self._choice_times(self._window(view, total))
        at = now + max(0.0, early - elapsed)
        grace = max(0.0, typical - elapsed) - max(0.0, early - elapsed)
        choices = [child.choice for child in view.children]
        for child in view.children:
            if view.chosen is None:
                chance = self.probability(view.node, child.choice, choices)
                self._want_scene(wants, child, at, chance, grace, 1, at)
            elif child.choice == view.chosen:  # the viewer moves on as they choose
                child_early, _ = self._choice_times(self._window(child))
                self._want_scene(wants, child, now, 1.0, 0.0, 1, now + child_early)
        return wants

    def _want_scene(
        self,
        wants: dict[str, Want],
        child: Child,
        at: float,
        probability: float,
        grace_s: float,
        depth: int,
        decided: float,
    ) -> None:
        """The text of a scene ``depth`` levels ahead if unwritten, else its clips from ``at`` on, then
        its own children's, while within ``render_depth`` and ``min_probability``. ``decided`` is when
        the viewer's next choice tells more."""
        first = segment_lengths(child.clips[0].duration_s, self.budget.segment_s)[0] if child.clips else 0.0
        if child.paywall:
            probability *= self.unlock_rate(child.paywall)
        if not child.written:
            if depth == 1 or self._write_backlog_s() <= self.tuning.lookahead_backlog_s:
                deadline = at - self._best_rtf() * self.budget.work_s(first)
                self._want(wants, "write", child.node, 0, first, deadline, probability)
            return
        if depth > self.tuning.render_depth:
            return
        if child.paywall:  # nothing deeper in a locked episode for a viewer without the entitlement
            if child.clips:
                self._want_clip(wants, child.node, 0, child.clips[0], at, probability, grace_s, decided)
            return
        offset = 0.0
        for index, clip in enumerate(child.clips):
            self._want_clip(wants, child.node, index, clip, at + offset, probability, grace_s, decided)
            offset += clip.duration_s
        early, typical = self._choice_times(self._window(child, offset))
        choices = [grandchild.choice for grandchild in child.children]
        for grandchild in child.children:
            chance = probability * self.probability(child.node, grandchild.choice, choices)
            if chance >= self.tuning.min_probability:
                self._want_scene(wants, grandchild, at + early, chance, typical - early, depth + 1, decided)

    def _want_clip(
        self,
        wants: dict[str, Want],
        node: str,
        index: int,
        clip: Clip,
        start: float,
        p: float,
        grace_s: float = 0.0,
        decided: float = -math.inf,
        window: Window | None = None,
        at_s: float = 0.0,
    ) -> None:
        """A clip's render, playback reaching it at ``start`` (in the past: it is playing); or, if it was
        degraded and a full render fits before it is due, its upgrade. Streamed in segments, each segment
        is a job due when playback reaches it, and speculative ones (``p < 1``) past the clip's lead wait
        for the choice (at ``decided``). With the ``window`` of the scene being watched (the clip ``at_s``
        into it), a segment past the window's opening is needed only if the viewer has not chosen by then."""
        now = self.clock.now()
        best = self.budget.profiles[0].name
        if self.budget.segment_s <= 0:
            key = job_key("render", node, index)
            deadline = max(now, start)
            if not clip.rendered and key not in self._done:
                full = self._rtf[best] * clip.duration_s
                deferrable = p < 1.0 and deadline - decided >= full + self.tuning.defer_margin_s
                self._want(
                    wants, "render", node, index, clip.duration_s, deadline, p, grace_s=grace_s, deferrable=deferrable
                )
                return
            have = clip.profile or self._done.get(key, best)
            if have != best and deadline - now >= self._rtf[best] * clip.duration_s:
                self._want(wants, "render", node, index, clip.duration_s, deadline, p, upgrade=True)
            return
        lengths = segment_lengths(clip.duration_s, self.budget.segment_s)
        offsets = segment_offsets(lengths)
        costs = [self._rtf[best] * self.budget.work_s(length) for length in lengths]
        eager = len(lengths)
        if p < 1.0 and math.isfinite(decided):
            eager = lead(costs, offsets, start - decided - self.tuning.segment_margin_s)
        chain = chain_deadlines([start + offset for offset in offsets], costs)
        stored_before = True
        keys = segment_keys(node, index, len(lengths))
        for segment, (length, offset, cost) in enumerate(zip(lengths, offsets, costs, strict=True)):
            key = keys[segment]
            stored_as = self._stored(clip, key, segment)
            chance = p if window is None else p * self._timing.still_watching(window, at_s + offset)
            if start + offset + length <= now:  # played already
                stored_before = stored_as is not None
                continue
            deadline = max(now, chain[segment])
            fresh = stored_as is None  # else an upgrade, if it is degraded and a full render fits before it is due
            if fresh or (stored_as != best and deadline - now >= cost):
                self._want(
                    wants,
                    "render",
                    node,
                    index,
                    length,
                    deadline,
                    chance,
                    upgrade=not fresh,
                    grace_s=grace_s if fresh else 0.0,
                    deferrable=segment >= eager,
                    segment=segment,
                    after="" if stored_before or not fresh else keys[segment - 1],
                    playing=fresh and (window is not None or (p >= 1.0 and not math.isfinite(decided))),
                )
            stored_before = stored_as is not None

    def _stored(self, clip: Clip, key: str, segment: int) -> str | None:
        """The profile a segment of ``clip`` was stored in, or None if it is not (yet)."""
        if segment < len(clip.segments):
            return clip.segments[segment]
        if clip.rendered:
            return clip.profile or self.budget.profiles[0].name
        return self._done.get(key)

    def _plain_key(self, job: QueuedJob) -> str:
        """The key of the clip (or segment) that ``job`` renders or upgrades."""
        segment = job.segment if self.budget.segment_s > 0 else None
        return job_key("render", job.node, job.clip, segment=segment)

    def _want(
        self,
        wants: dict[str, Want],
        kind: WorkKind,
        node: str,
        clip: int,
        duration_s: float,
        deadline: float,
        p: float,
        upgrade: bool = False,
        grace_s: float = 0.0,
        deferrable: bool = False,
        segment: int | None = None,
        after: str = "",
        playing: bool = False,
    ) -> None:
        key = job_key(kind, node, clip, self.budget.profiles[0].name if upgrade else "", segment)
        if key in self._done or key in self._failed:
            return
        known = wants.get(key)
        if known is not None:
            deadline = min(deadline, known.interest.deadline)
            p = max(p, known.interest.probability)
            grace_s = min(grace_s, known.interest.grace_s)
            deferrable = deferrable and known.interest.deferrable
            playing = playing or known.interest.playing
        interest = Interest(deadline, p, grace_s, deferrable, playing)
        wants[key] = Want(kind, node, clip, duration_s, interest, upgrade, segment or 0, after)

    def _apply(self, viewer: str, old: dict[str, Interest], new: dict[str, Want]) -> None:
        """Move this viewer's interests from ``old`` to ``new``, touching only the jobs that changed."""
        for key in [k for k in old if k not in new]:
            del old[key]
            job = self._jobs.get(key)
            if job is not None:
                job.interest(viewer, None)
                self._touch(job)
        for key, want in new.items():
            if old.get(key) == want.interest:
                continue
            old[key] = want.interest
            job = self._jobs.get(key)
            if job is None:
                job = QueuedJob(
                    key, want.kind, want.node, want.clip, want.duration_s, want.upgrade, want.segment, want.after
                )
                self._jobs[key] = job
                self._queued[job.kind].add(key)
                if want.after:
                    self._successor[want.after] = key
            elif job.after and not want.after:
                job.after = ""  # the segment before was stored meanwhile
            job.interest(viewer, want.interest)
            self._touch(job)

    def _touch(self, job: QueuedJob) -> None:
        """Recompute a job's deadline, probability and score from its interests; cancel it if none is left."""
        if not job.interests:
            if not job.running:
                self._drop(job)
            return
        if job.stale:
            job.deadline = min(i.deadline for i in job.interests.values())
            job.latest = min(i.deadline + i.grace_s for i in job.interests.values())
            job.stale = False
        job.probability = 1.0 if job.certain else 1.0 - math.exp(job.log_miss)
        weight = self.tuning.segment_weight_s if self.budget.segment_s > 0 else self.tuning.probability_weight_s
        score = job.deadline + weight * (1.0 - job.probability) + (weight if job.upgrade else 0.0)
        if not job.eager or (job.upgrade and self.budget.segment_s > 0):
            score += self.tuning.defer_s
        if job.running or score == job.score:
            return
        job.score = score
        self._queue(job)

    def _queue(self, job: QueuedJob) -> None:
        self._versions += 1
        job.version = self._versions
        self._queued[job.kind].add(job.key)
        heapq.heappush(self._heaps[job.kind], (job.score, job.version, job.key))
        self._changed[job.key] = None
        self._replan = True

    def _drop(self, job: QueuedJob) -> None:
        del self._jobs[job.key]
        self._successor.pop(job.key, None)
        self._queued[job.kind].discard(job.key)
        for viewer in job.interests:
            view = self._views.get(viewer)
            if view is not None:
                view.wants.pop(job.key, None)
        self._changed[job.key] = None
