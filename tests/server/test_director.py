"""The director's queueing on a real Redis: warm-up wishes that a later publish (or ``cool``) withdraws."""

from __future__ import annotations

import json
from pathlib import Path

from reelfork.narrative.formats import load_story
from reelfork.server.components import renderer_names
from reelfork.server.director import Director, warmer
from reelfork.server.queue import keys
from reelfork.server.queue.events import Events
from reelfork.server.queue.jobs import JobQueue
from reelfork.server.queue.payloads import RenderJob
from reelfork.server.runtime import connect
from reelfork.server.settings import Settings
from reelfork.server.store import Store, StoryVersion

from tests.helpers.stories import choice, scene, story


async def publish(director: Director, document: dict[str, object]) -> StoryVersion:
    loaded, _ = load_story(json.dumps(document).encode(), source="story.json")
    version, _ = await director.store.publish(loaded)
    found = await director.store.story(loaded.id, version)
    assert found is not None
    return found


async def test_a_later_publish_withdraws_the_warm_up_no_version_needs_and_cool_withdraws_the_rest(
    redis_server: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_server)
    client = connect(redis_server)
    events = Events(client)
    queue = JobQueue(client)
    director = Director(Store(client), queue, events, renderer_names(settings))
    try:
        start = scene("start", choice("left", "left"), choice("right", "right"))
        first = await publish(director, story(start, scene("left"), scene("right")))
        assert await director.warm(first, 10) == 3
        keys_of = {s.id: director.clip_key(first, s) for s in first.story.scenes}
        for key in keys_of.values():
            assert await client.hget(keys.wants(key), warmer("test")) is not None
        # A viewer's lookahead wants the right scene's clip too: it stays whatever the warm-up does.
        payload = RenderJob(story="test", version=first.version, scene="right", clip=keys_of["right"], profile="x")
        await queue.want("render", keys_of["right"], payload, 10.0, "replica/right")

        # Version 2 rewrites the left scene: its old clip is needed by no version now.
        rewritten = {**scene("left"), "lines": [{"speaker": "ann", "text": "Somewhere else entirely."}]}
        second = await publish(director, story(start, rewritten, scene("right")))
        assert await director.warm(second, 10) == 1  # the new left clip; start and right are queued already
        assert not await queue.is_queued(keys_of["left"])
        assert await queue.is_queued(keys_of["start"]) and await queue.is_queued(keys_of["right"])
        new_left = director.clip_key(second, second.story.scene("left"))
        assert await queue.is_queued(new_left)

        assert await director.cool("test") == 2  # start and the new left; right is still a viewer's
        assert not await queue.is_queued(keys_of["start"]) and not await queue.is_queued(new_left)
        assert await queue.is_queued(keys_of["right"])
        assert await client.hget(keys.wants(keys_of["right"]), warmer("test")) is None
        assert not await client.exists(keys.warming("test"))
    finally:
        await client.aclose()
