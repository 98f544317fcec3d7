"""A clip as a stream of segments: lengths, the lead a child needs before the choice, chained deadlines."""

from __future__ import annotations

import pytest
from reelfork.server.lookahead.segments import chain_deadlines, lead, segment_lengths, segment_offsets, work_s


def test_a_clip_is_cut_into_segments_and_a_sliver_joins_the_one_before() -> None:
    assert segment_lengths(10.0, 4.0) == (4.0, 4.0, 2.0)
    assert segment_lengths(8.2, 4.0) == pytest.approx((4.0, 4.2))
    assert segment_lengths(3.0, 4.0) == (3.0,)
    assert segment_lengths(10.0, 0.0) == (10.0,)  # no segments: the whole clip
    assert segment_offsets((4.0, 4.0, 2.0)) == (0.0, 4.0, 8.0)
    assert work_s(4.0, 0.5) == 4.5


def test_a_model_faster_than_real_time_needs_its_first_segment_or_two_before_the_choice() -> None:
    costs = [0.4 * work_s(2.0, 0.5)] * 4  # rtf 0.4: 1 s a 2 s segment, conditioning frames included
    offsets = segment_offsets((2.0,) * 4)
    assert lead(costs, offsets, 0.0) == 1  # chosen as it starts: the first must exist, the rest keep ahead
    assert lead(costs, offsets, -1.5) == 2  # a worker takes 1.5 s to pick the rest up: two
    assert lead(costs, offsets, 1.0) == 0  # a second between the choice and playback: none


def test_a_slower_model_needs_the_lead_its_real_time_factor_requires() -> None:
    # rtf 1.5, 2 s segments: each takes 3 s and playback gains 1 s on the stream per segment. Of a 10 s clip
    # chosen as it starts, the last of the n - k segments rendered after the choice ends at 3 (5 - k) and is
    # due at 8: k >= 5 - 8 / 3, so 3 segments.
    costs = [3.0] * 5
    offsets = segment_offsets((2.0,) * 5)
    assert lead(costs, offsets, 0.0) == 3
    assert lead(costs, offsets, 7.0) == 0  # 7 s between the choice and the clip: 15 s by 15 s
    assert lead(costs, offsets, -100.0) == 5  # the whole clip


def test_a_stream_slower_than_playback_must_start_early() -> None:
    assert chain_deadlines([0.0, 2.0, 4.0], [3.0, 3.0, 3.0]) == [-2.0, 1.0, 4.0]
    assert chain_deadlines([0.0, 2.0, 4.0], [1.0, 1.0, 1.0]) == [0.0, 2.0, 4.0]
