"""The lookahead scheduler wired into real servers on a real Redis: wishes per replica, cancels on choices."""

from __future__ import annotations

import json
from pathlib import Path

import redis
import redis.asyncio as aioredis
import websockets

from server.jobs import JobQueue
from tests.conftest import ServerProcess
from tests.test_play import STORY, Viewer, ws_url


async def test_a_job_runs_at_the_lowest_wish_and_leaves_the_queue_with_the_last(redis_server: str) -> None:
    client = aioredis.Redis.from_url(redis_server)
    queue = JobQueue(client)
    try:
        assert await queue.want("render", "k", {"n": 1}, 100.0, "a")
        assert not await queue.want("render", "k", {"n": 1}, 50.0, "b")
        assert await client.zscore("rf:q:render", "k") == 50.0
        assert not await queue.unwant("render", "k", "b")
        assert await client.zscore("rf:q:render", "k") == 100.0  # b's demotion does not delay a
        assert not await queue.unwant("render", "k", "nobody")
        assert await queue.unwant("render", "k", "a")
        assert await client.zscore("rf:q:render", "k") is None
        assert not await client.exists("rf:job:k", "rf:want:k")

        await queue.enqueue("render", "pinned", {}, 500.0)  # warm-up and other plain enqueues are never withdrawn
        await queue.want("render", "pinned", {}, 10.0, "a")
        assert not await queue.unwant("render", "pinned", "a")
        assert await client.zscore("rf:q:render", "pinned") == 500.0

        await queue.want("render", "running", {}, 1.0, "a")
        job = await queue.claim("render", wait_s=0)
        assert job is not None and job.key == "running"
        assert not await queue.unwant("render", "running", "a")  # leased: it finishes
        assert await client.exists("rf:job:running")
    finally:
        await client.aclose()


def queued(client: redis.Redis, kind: str) -> dict[str, float]:
    """Queued jobs of ``kind`` by the scene (or, for writes, the choice) they are for, with their scores."""
    found: dict[str, float] = {}
    entries: list[tuple[bytes, float]] = client.zrange(f"rf:q:{kind}", 0, -1, withscores=True)  # type: ignore[assignment]
    for key, score in entries:
        raw: bytes | None = client.hget(f"rf:job:{key.decode()}", "payload")  # type: ignore[assignment]
        assert raw is not None
        payload = json.loads(raw)
        found[payload["choice"] if kind == "write" else payload["scene"]] = score
    return found


async def walk_to_the_branch(base: str) -> Viewer:
    websocket = await websockets.connect(ws_url(base))
    viewer = Viewer(websocket)
    await viewer.send({"type": "start", "story": STORY})
    await viewer.expect("session")
    scene = await viewer.expect("scene")
    while len(scene["choices"]) == 1:
        scene = await viewer.choose(scene["choices"][0]["id"])
    assert scene["scene"] == "blackout", scene
    await viewer.send({"type": "progress", "scene": "blackout", "position": 1.5})
    return viewer


async def test_a_choice_cancels_what_became_unreachable_unless_another_replica_still_needs_it(
    redis_server: str, tmp_path: Path
) -> None:
    # No workers: every job stays queued, so the queue shows exactly what the schedulers want.
    common = {
        "REELFORK_REDIS_URL": redis_server,
        "REELFORK_RENDER_WORKERS": "0",
        "REELFORK_WRITE_WORKERS": "0",
        "REELFORK_PRODUCE_WORKERS": "0",
        "REELFORK_WARM_AUTHORED": "false",
        "REELFORK_CHOICE_WAIT_S": "0.2",
        "REELFORK_CREATOR_TOKEN": "lookahead-token",
    }
    data_dir = tmp_path / "data"
    server_a = ServerProcess(data_dir, **common)
    server_b = ServerProcess(data_dir, **common)
    client = redis.Redis.from_url(redis_server)
    try:
        ann = await walk_to_the_branch(server_a.url)
        bob = await walk_to_the_branch(server_b.url)
        # blackout: captain → wheelhouse, hold → cargo-hold, cabin → a scene still to write.
        before = queued(client, "render")
        assert {"wheelhouse", "cargo-hold", "flare-gun"} <= set(before)
        assert "cabin" in queued(client, "write")

        await ann.choose("captain")
        after_ann = queued(client, "render")
        assert after_ann["wheelhouse"] < before["wheelhouse"]  # certain now, and due now
        assert "cargo-hold" in after_ann and "cabin" in queued(client, "write")  # bob on B may still go there

        await bob.choose("captain")
        after_bob = queued(client, "render")
        assert "cargo-hold" not in after_bob
        assert "cabin" not in queued(client, "write")
        assert {"wheelhouse", "flare-gun"} <= set(after_bob)

        await ann.websocket.close()
        await bob.websocket.close()
    finally:
        server_a.stop()
        server_b.stop()
        client.close()
