"""Notices keep their wire form (a topic beside the data fields) and come back as the same model."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from reelfork.server.queue.notices import (
    RESUMED,
    ClipReady,
    Failed,
    Resumed,
    Started,
    WorkerAlive,
    Written,
    parse_notice,
    topic,
)


def test_a_notice_is_its_topic_and_its_fields_on_the_wire_and_parses_back() -> None:
    clip = ClipReady(key="abc", file="clips/abc.mp4", duration=8.0, seconds=2.5, profile="animatic")
    assert json.loads(clip.wire()) == {
        "topic": "clip:abc",
        "file": "clips/abc.mp4",
        "duration": 8.0,
        "seconds": 2.5,
        "profile": "animatic",
    }
    assert clip.topic == topic("clip", "abc")
    notices = [
        clip,
        Written(key="g-1", seconds=1.0),
        Started(key="abc", profile="animatic", worker="host-1"),
        Failed(key="produce:p1"),  # a job key may itself hold a colon
        WorkerAlive(key="host-1", kinds=["render", "write"]),
        Resumed(),
    ]
    assert [parse_notice(notice.wire()) for notice in notices] == notices
    assert Resumed().topic == RESUMED


def test_a_notice_this_version_cannot_read_is_an_error() -> None:
    with pytest.raises(ValidationError):
        parse_notice(json.dumps({"topic": "clip:abc", "file": "x"}))
    with pytest.raises(ValidationError):
        parse_notice(json.dumps({"topic": "unknown:abc"}))
    with pytest.raises(ValueError, match="without a topic"):
        parse_notice(json.dumps({"file": "x"}))
