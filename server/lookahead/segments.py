"""A clip as a stream of segments: their lengths, what each costs, and how many must exist before a choice.

A render job produces a clip as an ordered stream of short segments, each conditioned on the one before
(so segment ``k`` cannot start before segment ``k - 1`` is stored), and playback starts as soon as the first
exists. Each segment re-reads the conditioning frames it continues from (``overlap_s`` seconds of video
rendered again): a fixed cost per segment, so shorter segments are not free.

An unchosen child needs only its *lead* before the choice: the segments that keep its stream ahead of playback
once it is chosen and the rest renders one after another. A model faster than real time needs the first one
(or two, when a segment's cost exceeds the time between the choice and the clip's start); a slower one falls
behind by ``rtf * length - length`` a segment, so it needs as many as cover that deficit over the clip
(:func:`lead`, computed, not guessed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache


@lru_cache(maxsize=4096)
def segment_lengths(duration_s: float, segment_s: float) -> tuple[float, ...]:
    """The lengths of a clip's segments, in order: ``segment_s`` each, the last one shorter (never below a
    tenth of ``segment_s``: a sliver joins the segment before it). ``segment_s <= 0``: the whole clip is one."""
    if segment_s <= 0 or duration_s <= segment_s:
        return (duration_s,)
    count = math.floor(duration_s / segment_s)
    rest = duration_s - count * segment_s
    lengths = [segment_s] * count
    if rest >= 0.1 * segment_s:
        lengths.append(rest)
    else:
        lengths[-1] += rest
    return tuple(lengths)


@lru_cache(maxsize=4096)
def segment_offsets(lengths: tuple[float, ...]) -> tuple[float, ...]:
    """Where each segment starts on its clip's timeline."""
    offsets, at = [], 0.0
    for length in lengths:
        offsets.append(at)
        at += length
    return tuple(offsets)


def work_s(length_s: float, overlap_s: float) -> float:
    """Seconds of video a segment's render goes through: its own and the conditioning frames it re-reads."""
    return length_s + overlap_s


def lead(costs: Sequence[float], offsets: Sequence[float], slack_s: float) -> int:
    """How many of a clip's segments must exist when its stream is started ``slack_s`` seconds before playback
    reaches the clip, for the rest (rendered one after another from then, ``costs`` seconds each) to be ready
    when playback reaches each: the smallest ``k`` such that for every ``j >= k`` the renders of segments
    ``k..j`` end by ``slack_s + offsets[j]``. 0 when none is needed; ``len(costs)`` when the whole clip is."""
    count = len(costs)
    best = count
    for k in range(count - 1, -1, -1):
        elapsed = 0.0
        fits = True
        for j in range(k, count):
            elapsed += costs[j]
            if elapsed > slack_s + offsets[j] + 1e-9:
                fits = False
                break
        if not fits:
            break  # a stream started earlier in the clip has more to render before each deadline
        best = k
    return best


def chain_deadlines(deadlines: Sequence[float], costs: Sequence[float]) -> list[float]:
    """When each segment of a stream must be stored for every later one to be ready in time too, each
    rendered after the one before it (``costs`` seconds each, in the best profile): segment ``k`` by
    ``min(deadlines[k], chain[k + 1] - costs[k + 1])``. A stream slower than playback must start early."""
    chain = list(deadlines)
    for k in range(len(chain) - 2, -1, -1):
        chain[k] = min(chain[k], chain[k + 1] - costs[k + 1])
    return chain
