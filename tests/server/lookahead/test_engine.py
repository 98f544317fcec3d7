"""The lookahead scheduler wired into real servers on a real Redis: wishes per replica, cancels on choices."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
import websockets
from reelfork.generation.render.dub import clip_key as dub_clip_key
from reelfork.narrative.formats import load_story
from reelfork.narrative.state import begin, choose
from reelfork.server.director import Director
from reelfork.server.lookahead.engine import RENDER_RTF, TICK_S, Lookahead, node_of, shell_tuning, window_of
from reelfork.server.lookahead.scheduler import Clip, Tuning, Window, job_key
from reelfork.server.lookahead.segments import lead, segment_lengths, segment_offsets
from reelfork.server.lookahead.targets import CLIP_ESTIMATE_S
from reelfork.server.lookahead.tuning import METERED
from reelfork.server.pool import WorkerPool
from reelfork.server.queue import keys
from reelfork.server.queue.events import Events
from reelfork.server.queue.jobs import WHOLE, JobQueue
from reelfork.server.queue.notices import Chose, ClipReady, WorkerAlive
from reelfork.server.queue.payloads import RenderJob
from reelfork.server.runtime import connect as connect_async
from reelfork.server.runtime import seed_story_files
from reelfork.server.settings import Settings
from reelfork.server.store import Store, StoredClip, StoredScene, StoryVersion, clip_key
from reelfork.server.worker import Worker

from tests.helpers.media import probe
from tests.helpers.processes import ServerProcess, WorkerProcess
from tests.helpers.stories import FERRY_LINES, ferry_story
from tests.helpers.viewer import STORY, Viewer, ws_url


async def test_a_job_runs_at_the_lowest_wish_and_leaves_the_queue_with_the_last(redis_server: str) -> None:
    client = aioredis.Redis.from_url(redis_server, decode_responses=True)
    queue = JobQueue(client)

    def payload(clip: str) -> RenderJob:
        return RenderJob(story="s", version=1, scene="n", clip=clip, profile="animatic")

    try:
        assert await queue.want("render", "k", payload("k"), 100.0, "a")
        assert not await queue.want("render", "k", payload("k"), 50.0, "b")
        assert await client.zscore(keys.queued("render"), "k") == 50.0
        assert not await queue.unwant("render", "k", "b")
        assert await client.zscore(keys.queued("render"), "k") == 100.0  # b's demotion does not delay a
        assert not await queue.unwant("render", "k", "nobody")
        assert await queue.unwant("render", "k", "a")
        assert await client.zscore(keys.queued("render"), "k") is None
        assert not await client.exists(keys.job("k"), keys.wants("k"))

        # warm-up and other plain enqueues are never withdrawn
        await queue.enqueue("render", "pinned", payload("pinned"), 500.0)
        await queue.want("render", "pinned", payload("pinned"), 10.0, "a")
        assert not await queue.unwant("render", "pinned", "a")
        assert await client.zscore(keys.queued("render"), "pinned") == 500.0

        await queue.want("render", "running", payload("running"), 1.0, "a")
        job = await queue.claim("render", wait_s=0)
        assert job is not None and job.key == "running"
        assert job.payload == payload("running")
        assert not await queue.unwant("render", "running", "a")  # leased: it finishes
        assert await client.exists(keys.job("running"))
    finally:
        await client.aclose()


def queued(client: redis.Redis, kind: str) -> dict[str, float]:
    """Queued jobs of ``kind`` by the scene (or, for writes, the choice) they are for, with their scores."""
    found: dict[str, float] = {}
    entries: list[tuple[str, float]] = client.zrange(keys.queued(kind), 0, -1, withscores=True)  # type: ignore[assignment]
    for key, score in entries:
        raw: str | None = client.hget(keys.job(key), "payload")  # type: ignore[assignment]
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
    client = redis.Redis.from_url(redis_server, decode_responses=True)
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


def seed_clip_keys(profile: str, text: bytes | None = None) -> dict[str, str]:
    """The content address of each seed scene's clip in ``profile`` (both profiles here are animatic-tier)."""
    story, _ = load_story(text or seed_story_files()[0].read_bytes(), source="seed")
    return {scene.id: clip_key(scene, story, profile, "animatic") for scene in story.scenes}


def viewer_clip(picture: str) -> str:
    """The key of a default viewer's clip (the story's language, the persona's default name) from a picture."""
    return dub_clip_key(picture, "en", "Mara")


SEED_WINDOW = b"choice_window: {seconds: 10, after_end: 0}"


def after_the_end() -> bytes:
    """The seed story with its choices offered once a scene ends (a 0 s window, closing 10 s later): the next
    scene is then due a whole clip away, not as soon as the last 10 s of a clip begin."""
    text = seed_story_files()[0].read_bytes()
    assert SEED_WINDOW in text
    return text.replace(SEED_WINDOW, b"choice_window: {seconds: 0, after_end: 10}")


def serving(folder: Path, text: bytes) -> dict[str, str]:
    """Settings that serve ``text`` (written to ``folder``) instead of the seed story."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "story.yaml").write_bytes(text)
    return {"REELFORK_STORIES_DIR": str(folder), "REELFORK_SEED_STORIES": "false"}


def payload_of(client: redis.Redis, key: str) -> dict[str, str] | None:
    raw: str | None = client.hget(keys.job(key), "payload")  # type: ignore[assignment]
    return json.loads(raw) if raw is not None else None


async def stored(client: redis.Redis, key: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not client.exists(keys.clip(key)):
        assert time.monotonic() < deadline, f"clip {key} never rendered"
        await asyncio.sleep(0.2)


NO_WORKERS = {
    "REELFORK_RENDER_WORKERS": "0",
    "REELFORK_WRITE_WORKERS": "0",
    "REELFORK_PRODUCE_WORKERS": "0",
    "REELFORK_WARM_AUTHORED": "false",
    "REELFORK_CHOICE_WAIT_S": "0.2",
}
LADDER = {"REELFORK_RENDER_PROFILE": "animatic", "REELFORK_RENDER_FALLBACKS": "preview"}


async def start(server: ServerProcess) -> tuple[Viewer, dict[str, Any]]:
    viewer = Viewer(await websockets.connect(ws_url(server.url)))
    await viewer.send({"type": "start", "story": STORY})
    await viewer.expect("session")
    return viewer, await viewer.expect("scene")


@pytest.mark.slow
async def test_the_server_degrades_a_clip_that_would_be_late(redis_server: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, REELFORK_REDIS_URL=redis_server, **NO_WORKERS, **LADDER)
    best, cheap = seed_clip_keys("animatic"), seed_clip_keys("preview")
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    worker = None
    try:
        ann, first = await start(server)
        assert first["scene"] == "boarding" and first["clip"] is None
        # Ann waits for the first clip, and the next scene's is due ~9 s later (an unrendered clip counts
        # as 8 s). Until workers report, the best profile is assumed to render at real time and the
        # fallback at twice that: one slot cannot render both in the best profile in time, so both are
        # queued in the cheaper one.
        for scene in ("boarding", "heiress"):
            deadline = time.monotonic() + 10
            while payload_of(client, cheap[scene]) is None:
                assert time.monotonic() < deadline, f"{scene} was not queued in the cheaper profile"
                await asyncio.sleep(0.1)
            assert payload_of(client, cheap[scene]) == {
                "story": STORY, "version": 1, "scene": scene, "clip": cheap[scene], "profile": "preview",
                "look": None, "locale": None, "through": None,
            }
            assert payload_of(client, best[scene]) is None

        worker = WorkerProcess(data_dir, redis_server, tmp_path / "worker.log")
        url = await ann.clip_for(first)  # the most urgent job, so the first one the worker takes
        assert url.endswith(f"/{viewer_clip(cheap['boarding'])}.mp4")
        async with httpx.AsyncClient() as http:
            (tmp_path / "boarding.mp4").write_bytes((await http.get(url)).content)
        video = next(s for s in probe(tmp_path / "boarding.mp4")["streams"] if s["codec_type"] == "video")
        assert (video["width"], video["height"]) == (270, 480)
        await ann.websocket.close()
    finally:
        server.stop()
        if worker is not None:
            worker.stop()
        client.close()


@pytest.mark.slow
async def test_a_degraded_clip_is_shown_rather_than_wait_and_upgraded_when_there_is_time(
    redis_server: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    text = after_the_end()
    stories = serving(tmp_path / "stories", text)
    best, cheap = seed_clip_keys("animatic", text), seed_clip_keys("preview", text)
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    # Yesterday's fleet rendered every scene in the cheap profile only.
    cheap_only = ServerProcess(data_dir, REELFORK_REDIS_URL=redis_server, REELFORK_RENDER_PROFILE="preview", **stories)
    try:
        for key in cheap.values():
            await stored(client, key)
    finally:
        cheap_only.stop()
    server = ServerProcess(data_dir, REELFORK_REDIS_URL=redis_server, **NO_WORKERS, **LADDER, **stories)
    worker = WorkerProcess(data_dir, redis_server, tmp_path / "worker.log")
    try:
        bob, shown = await start(server)
        assert shown["clip"].endswith(f"/{viewer_clip(cheap['boarding'])}.mp4")  # degraded beats waiting
        # Choosing after the end, the next scene is a whole clip (~30 s) away for Bob: time to render it in the
        # best profile, for him and after, once the worker's first timing shows how fast that profile is (at
        # the guessed real-time speed, the heiress picture, longer than boarding's, would not fit).
        await stored(client, best["heiress"])
        then = await bob.choose("next")
        assert then["scene"] == "heiress" and then["clip"].endswith(f"/{viewer_clip(best['heiress'])}.mp4")
        assert not client.exists(keys.clip(best["boarding"]))  # due at once for Bob: no time to upgrade

        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'reelfork_scenes_total{clip="degraded"} 1.0' in metrics
        assert 'reelfork_scenes_total{clip="ready"} 1.0' in metrics
        await bob.websocket.close()
    finally:
        server.stop()
        worker.stop()
        client.close()


KEYED = """
id: the-keyed-door
title: The Keyed Door
bible:
  logline: A night porter finds a key and a door it may open.
  setting: An old hotel at night.
  tone: Hushed
  characters:
    - {id: ines, name: Ines, look: "Fifty, grey uniform, a ring of brass keys."}
variables:
  has_key: {type: bool}
start: lobby
scenes:
  - id: lobby
    title: The Lobby
    place: A marble lobby at midnight
    lines: [{speaker: ines, text: "Someone left a key on the desk."}]
    choices:
      - {id: take, label: Take the key, target: hall, effects: [{set: has_key, to: true}]}
      - {id: leave, label: Leave it, target: hall}
  - id: hall
    title: The Hall
    place: A long hotel corridor
    lines: [{speaker: ines, text: "Room thirteen. The door is locked."}]
    choices:
      - {id: open, label: Unlock the door, target: room, condition: {var: has_key}}
      - {id: knock, label: Knock, target: stairs, condition: {op: not, args: [{var: has_key}]}}
  - id: room
    title: Room Thirteen
    place: A dusty hotel room
    ending: true
    lines: [{speaker: ines, text: "The bed is made for two."}]
  - id: stairs
    title: The Stairs
    place: A narrow service stair
    ending: true
    lines: [{speaker: ines, text: "Nobody answers."}]
"""


@contextlib.asynccontextmanager
async def director_on(redis_server: str, renderers: dict[str, str]) -> AsyncIterator[Director]:
    """A director (store, queue, notices) on the real Redis, as a server replica has one."""
    client = connect_async(redis_server)
    events = Events(client)
    await events.start()
    try:
        yield Director(Store(client), JobQueue(client), events, renderers)
    finally:
        await events.stop()
        await client.aclose()


async def published(director: Director, text: bytes) -> StoryVersion:
    story, _ = load_story(text, source="story.yaml")
    version, _ = await director.store.publish(story)
    loaded = await director.store.story(story.id, version)
    assert loaded is not None
    return loaded


async def test_lookahead_follows_conditions_below_the_first_level_and_hears_other_replicas_choices(
    redis_server: str,
) -> None:
    sync = redis.Redis.from_url(redis_server, decode_responses=True)
    async with director_on(redis_server, {"preview": "animatic"}) as director:
        replica_a, replica_b = Lookahead(director, director.queue, "a", 1), Lookahead(director, director.queue, "b", 1)
        director.events.listen(replica_a.on_event)
        director.events.listen(replica_b.on_event)
        story = await published(director, KEYED.encode())
        state = begin(story.story, story.version)
        lobby = story.story.scene("lobby")

        await replica_a.viewer_at("ann", story, state, lobby, 0.0)
        wanted = set(queued(sync, "render"))
        # Taking the key (possible) leads to the room; leaving it (possible) to the stairs: both wanted.
        assert wanted == {"lobby", "hall", "room", "stairs"}

        taken = begin(story.story, story.version).model_copy(update={"variables": {"has_key": True}})
        await replica_b.viewer_at("bob", story, taken, story.story.scene("lobby"), 0.0)
        await replica_a.viewer_left("ann")
        wanted = set(queued(sync, "render"))
        # Bob's every path has the key set (his state says so), yet "leave" does not unset it: no stairs.
        assert wanted == {"lobby", "hall", "room"}

        node = node_of(story, "lobby")
        before = replica_b.scheduler.probability(node, "take", ["take", "leave"])
        for n in range(6):
            await replica_a.viewer_chose(f"viewer-{n}", story, "lobby", "take")
        deadline = time.monotonic() + 5
        while replica_b.scheduler.probability(node, "take", ["take", "leave"]) == before:
            assert time.monotonic() < deadline, "replica b never heard of replica a's choices"
            await asyncio.sleep(0.05)
        assert replica_b.scheduler.probability(node, "take", ["take", "leave"]) == pytest.approx(7 / 8)
        assert replica_a.scheduler.probability(node, "take", ["take", "leave"]) == pytest.approx(7 / 8)
    sync.close()


async def test_a_replica_catches_up_on_choices_it_never_heard_of_when_its_notices_resume(redis_server: str) -> None:
    sync = redis.Redis.from_url(redis_server, decode_responses=True)
    async with director_on(redis_server, {"preview": "animatic"}) as director:
        replica = Lookahead(director, director.queue, "b", 1)
        director.events.listen(replica.on_event)
        story = await published(director, KEYED.encode())
        await director.store.count_choice(story, "lobby", "leave")
        await replica.viewer_at("bob", story, begin(story.story, story.version), story.story.scene("lobby"), 0.0)
        node = node_of(story, "lobby")
        assert replica.scheduler.probability(node, "take", ["take", "leave"]) == pytest.approx(1 / 3)

        # Another replica stores six choices and dies before announcing them: no notice ever comes.
        for _ in range(6):
            await director.store.count_choice(story, "lobby", "take")
        await asyncio.sleep(0.2)
        assert replica.scheduler.probability(node, "take", ["take", "leave"]) == pytest.approx(1 / 3)

        # Its subscription drops (as when Redis restarts); once notices flow again it reads the tallies.
        assert sync.client_kill_filter(_type="pubsub") >= 1
        deadline = time.monotonic() + 10
        while replica.scheduler.probability(node, "take", ["take", "leave"]) == pytest.approx(1 / 3):
            assert time.monotonic() < deadline, "the replica never read the stored tallies again"
            await asyncio.sleep(0.05)
        assert replica.scheduler.probability(node, "take", ["take", "leave"]) == pytest.approx(7 / 9)
        # A choice both heard of and read from the tallies counts once.
        await director.store.count_choice(story, "lobby", "take")
        replica.on_event(Chose(key=node, choice="take", replica="a"))
        await replica.recount()
        assert replica.scheduler.probability(node, "take", ["take", "leave"]) == pytest.approx(8 / 10)
    sync.close()


async def test_a_viewer_waiting_for_a_clip_gets_it_though_the_notice_was_lost(redis_server: str) -> None:
    sync = redis.Redis.from_url(redis_server, decode_responses=True)
    async with director_on(redis_server, {"preview": "animatic"}) as director:
        clip = asyncio.create_task(director.wait_clip(["lost-clip"], 3600))
        scene = asyncio.create_task(director.wait_written("lost-scene", 3600))
        await asyncio.sleep(0.2)
        # A worker saves both and announces them while this replica's subscription is down (Redis
        # restarting, or dropping a subscriber that fell behind): the notices never arrive.
        await director.store.save_clip(StoredClip(key="lost-clip", file="lost.mp4", duration=5.0))
        await director.store.redis.set(keys.written("lost-scene"), StoredScene(redirect="lobby").model_dump_json())
        await asyncio.sleep(0.2)
        assert not clip.done() and not scene.done()

        assert sync.client_kill_filter(_type="pubsub") >= 1
        found = await asyncio.wait_for(clip, 10)
        assert found is not None and found.key == "lost-clip"
        assert await asyncio.wait_for(scene, 10)
    sync.close()


async def test_diffusion_clips_go_to_the_gpu_queue_and_their_animatic_fallbacks_to_the_cpu_queue(
    redis_server: str,
) -> None:
    sync = redis.Redis.from_url(redis_server, decode_responses=True)
    ladder = {"full": "full:ltx", "fast": "fast:ltx", "animatic": "animatic"}
    async with director_on(redis_server, ladder) as director:
        lookahead = Lookahead(director, director.queue, "a", 1)
        story = await published(director, after_the_end())
        state = begin(story.story, story.version)
        await lookahead.viewer_at("ann", story, state, story.story.scene(state.current), 0.0)
        # The first clip is due now: only the cheapest profile has a chance, on a CPU. With choices after
        # the end, the next scene's is due in ~9 s: time for a diffusion render on the one GPU once the
        # first is done.
        on_cpu, on_gpu = queued_payloads(sync, "render"), queued_payloads(sync, "diffuse")
        assert on_cpu["boarding"]["profile"] == "animatic"
        assert on_gpu["heiress"]["profile"] == "full"
        assert on_gpu["heiress"]["clip"] == director.clip_key(story, story.story.scene("heiress"), "full")
        assert "boarding" not in on_gpu and "heiress" not in on_cpu

        # One GPU worker and three CPU workers say they are alive. Each queue's slots are counted apart.
        lookahead.on_event(WorkerAlive(key="gpu-0", kinds=["diffuse"]))
        for n in range(3):
            lookahead.on_event(WorkerAlive(key=f"cpu-{n}", kinds=["render", "write"]))
        ticking = asyncio.create_task(lookahead.run())
        try:
            deadline = time.monotonic() + 10
            while lookahead.scheduler.budget.slots("render") != 3:
                assert time.monotonic() < deadline, "the CPU workers were never counted"
                await asyncio.sleep(0.1)
            assert lookahead.scheduler.budget.slots("diffuse") == 1
        finally:
            ticking.cancel()
    sync.close()


async def test_idle_workers_count_as_render_slots_once_they_announce_themselves(
    redis_server: str, tmp_path: Path
) -> None:
    async with director_on(redis_server, {"preview": "animatic"}) as director:
        lookahead = Lookahead(director, director.queue, "a", 1)
        director.events.listen(lookahead.on_event)
        ticking = asyncio.create_task(lookahead.run())
        worker = WorkerProcess(tmp_path / "data", redis_server, tmp_path / "worker.log", kinds="render", processes=3)
        try:
            deadline = time.monotonic() + 90
            while lookahead.scheduler.budget.slots("render") != 3:
                assert time.monotonic() < deadline, "the idle worker's three render loops were never counted"
                await asyncio.sleep(0.2)
        finally:
            worker.stop()
            ticking.cancel()


async def test_the_paywall_and_the_choice_windows_reach_the_scheduler(redis_server: str) -> None:
    sync = redis.Redis.from_url(redis_server, decode_responses=True)
    async with director_on(redis_server, {"preview": "animatic"}) as director:
        story = await published(director, seed_story_files()[0].read_bytes())
        seed = story.story
        # The seed story's default window is the last 10 s; flare-gun's is 8 s, open 2 s after the end.
        assert window_of(story, seed.scene("heiress"), Clip(12.0)) == Window(2.0, 12.0)
        assert window_of(story, seed.scene("flare-gun"), Clip(12.0)) == Window(4.0, 14.0)
        assert window_of(story, seed.scene("end-fog"), Clip(12.0)) is None

        at_heiress = choose(begin(seed, story.version), seed.scene("boarding"), "next", "heiress", story=seed)
        free_only = Lookahead(director, director.queue, "a", 1)
        await free_only.viewer_at("ann", story, at_heiress, seed.scene("heiress"), 0.0, may_enter=lambda n: n == 1)
        wanted = queued_payloads(sync, "render")
        # Episode 2 opens at blackout: its first clip is wanted (weighed by the unlock rate), nothing below it.
        assert "blackout" in wanted and not {"wheelhouse", "cargo-hold"} & set(wanted)
        assert free_only.scheduler.unlock_rate(seed.id) == free_only.scheduler.tuning.unlock_rate
        # Playing on as expected tells the scheduler nothing new; a jump (a seek, a pause) does.
        seen = free_only._observed["ann"]
        await free_only.viewer_at("ann", story, at_heiress, seed.scene("heiress"), 0.5, may_enter=lambda n: n == 1)
        assert free_only._observed["ann"] is seen
        await free_only.viewer_at("ann", story, at_heiress, seed.scene("heiress"), 30.0, may_enter=lambda n: n == 1)
        assert free_only._observed["ann"] is not seen

        paid = Lookahead(director, director.queue, "b", 1)
        await paid.viewer_at("bob", story, at_heiress, seed.scene("heiress"), 0.0, may_enter=lambda n: True)
        assert {"blackout", "wheelhouse", "cargo-hold"} <= set(queued_payloads(sync, "render"))

        # Held at the paywall (the play server sends ``locked``): not observed in the locked scene.
        at_blackout = choose(at_heiress, seed.scene("heiress"), "next", "blackout", story=seed)
        held = Lookahead(director, director.queue, "c", 1)
        await held.viewer_at("cid", story, at_blackout, seed.scene("blackout"), 0.0, may_enter=lambda n: n == 1)
        assert held.scheduler.queued() == 0
    sync.close()


def queued_payloads(client: redis.Redis, kind: str) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    queued_keys: list[str] = client.zrange(keys.queued(kind), 0, -1)  # type: ignore[assignment]
    for key in queued_keys:
        payload = payload_of(client, key)
        assert payload is not None
        found[payload["scene"]] = payload
    return found


def test_the_render_ladder_is_checked_when_the_server_starts(tmp_path: Path) -> None:
    from pydantic import ValidationError
    from reelfork.server.settings import Settings

    assert [p.name for p in Settings(data_dir=tmp_path).ladder] == ["animatic", "preview"]
    assert [p.name for p in Settings(data_dir=tmp_path, render_fallbacks=()).ladder] == ["animatic"]
    models = tmp_path / "ltx"
    full = Settings(data_dir=tmp_path, render_profile="full", render_model_dir=models)
    assert [p.name for p in full.ladder] == ["full", "fast", "animatic"]
    for fallbacks, problem in [
        ("preview,cinema", "unknown render profile 'cinema'"),
        ("preview,preview", "name a profile twice"),
        ("animatic", "repeats the render profile 'animatic'"),
        ("fast", "'fast' renders with a diffusion model: set REELFORK_RENDER_MODEL_DIR"),
    ]:
        with pytest.raises(ValidationError, match=problem):
            Settings(data_dir=tmp_path, render_fallbacks=fallbacks)  # a string, as from the environment


def wish_scores(client: redis.Redis, pid: int, scenes: list[str]) -> dict[str, float]:
    """The render wishes the server process ``pid`` holds for the first clip of each of ``scenes``."""
    scores: dict[str, float] = {}
    for name in client.scan_iter(match=keys.wants("*")):
        wishes: dict[str, str] = client.hgetall(name)  # type: ignore[assignment]
        for wanter, score in wishes.items():
            for scene in scenes:
                if f"-{pid}-" in wanter and wanter.endswith(f":{scene}#0"):
                    scores[scene] = float(score)
    return scores


@pytest.mark.slow
async def test_two_server_processes_on_one_redis_share_their_choice_tallies(redis_server: str, tmp_path: Path) -> None:
    common = {
        "REELFORK_REDIS_URL": redis_server,
        "REELFORK_RENDER_WORKERS": "0",  # nothing renders: every wish stays in the queue to be read
        "REELFORK_WRITE_WORKERS": "0",
        "REELFORK_WARM_AUTHORED": "false",
        "REELFORK_CHOICE_WAIT_S": "0.1",
    }
    server_a = ServerProcess(tmp_path / "data", **common)
    server_b = ServerProcess(tmp_path / "data", **common)
    client = redis.Redis.from_url(redis_server, decode_responses=True)

    async def to_blackout(url: str) -> Viewer:
        viewer = Viewer(await websockets.connect(ws_url(url)))
        await viewer.send({"type": "start", "story": STORY})
        await viewer.expect("session")
        scene = await viewer.expect("scene")
        while scene["scene"] != "blackout":
            scene = await viewer.choose(scene["choices"][0]["id"])
        return viewer

    try:
        early = await to_blackout(server_b.url)  # replica B has read the story's (empty) tallies by now
        for _ in range(6):
            viewer = await to_blackout(server_a.url)
            await viewer.choose("hold")  # into the cargo hold, on replica A
            await viewer.websocket.close()
        await early.websocket.close()  # B withdraws its wishes for the early viewer
        late = await to_blackout(server_b.url)
        children = ["wheelhouse", "cargo-hold"]
        deadline = time.monotonic() + 20
        while True:
            scores = wish_scores(client, server_b.process.pid, children)
            # A child's wish is due when the choices are offered, later the less likely it is: on B, the cargo
            # hold is as likely as A's viewers made it (7 of 9 with the prior), the wheelhouse 1 of 9. Clips stream
            # in segments (the servers' default), whose scores weigh that by ``segment_weight_s``: 6/9 of it apart.
            if len(scores) == 2 and scores["wheelhouse"] - scores["cargo-hold"] > 0.5 * Tuning().segment_weight_s:
                break
            assert time.monotonic() < deadline, f"replica B never weighed replica A's choices: {scores}"
            await asyncio.sleep(0.2)
        await late.websocket.close()
    finally:
        client.close()
        server_a.stop()
        server_b.stop()


async def test_each_profiles_real_time_factor_is_learned_from_the_workers_timings(redis_server: str) -> None:
    async with director_on(redis_server, {"animatic": "animatic", "preview": "animatic"}) as director:
        replica = Lookahead(director, director.queue, "a", 1)
        director.events.listen(replica.on_event)
        story = await published(director, seed_story_files()[0].read_bytes())
        boarding = story.story.scene("boarding")
        await replica.viewer_at("ann", story, begin(story.story, story.version), boarding, 0.0)
        rtf = replica.scheduler.rtf
        assert (rtf("animatic"), rtf("preview")) == (RENDER_RTF, RENDER_RTF / 2)  # guesses, until workers tell

        async def told(scene: str, seconds: float, expected: float) -> None:
            key = director.clip_key(story, story.story.scene(scene))
            notice = ClipReady(key=key, file=f"{scene}.mp4", duration=8.0, seconds=seconds, profile="animatic")
            await director.events.publish(notice)  # as a worker on another host announces it
            deadline = time.monotonic() + 10
            while rtf("animatic") != pytest.approx(expected):
                assert time.monotonic() < deadline, f"the real-time factor stayed {rtf('animatic')}"
                await asyncio.sleep(0.05)

        await told("boarding", 2.0, 0.25)  # the first timing replaces the guess at once
        await told("heiress", 4.0, 0.25 + 0.2 * (0.5 - 0.25))  # then a running average
        assert rtf("preview") == RENDER_RTF / 2  # a profile nobody timed keeps its guess


FORK = """
id: the-fork
title: The Fork
bible:
  logline: A walker at a fork in the road.
  setting: A country road at dusk.
  tone: Quiet
  characters:
    - {id: ines, name: Ines, look: "Fifty, a long coat, a walking stick."}
start: fork
scenes:
  - id: fork
    title: The Fork
    place: A fork in a country road
    lines: [{speaker: ines, text: "Left to the river, right to the hill."}]
    choices:
      - {id: left, label: Go left, target: river}
      - {id: right, label: Go right, target: hill}
  - id: river
    title: The River
    place: A slow river under willows
    ending: true
    lines: [{speaker: ines, text: "The water is higher than last year."}]
  - id: hill
    title: The Hill
    place: A bare hilltop
    ending: true
    lines: [{speaker: ines, text: "From up here the village looks small."}]
"""


def job_through(client: redis.Redis, key: str) -> int | str | None:
    """The ``through`` of the queued render job of clip ``key`` (``"gone"`` when it is not queued), checked against
    the job hash's own field."""
    payload = payload_of(client, key)
    if payload is None:
        return "gone"
    field: str | None = client.hget(keys.job(key), "through")  # type: ignore[assignment]
    through = payload["through"]
    assert field == str(WHOLE if through is None else through)
    assert through is None or isinstance(through, int)
    return through


async def test_an_unchosen_child_is_queued_for_its_lead_and_the_chosen_one_extended_to_the_whole_clip(
    redis_server: str,
) -> None:
    sync = redis.Redis.from_url(redis_server, decode_responses=True)
    async with director_on(redis_server, {"preview": "animatic"}) as director:
        lookahead = Lookahead(director, director.queue, "a", 1, segment_s=2.0)
        director.events.listen(lookahead.on_event)
        story = await published(director, FORK.encode())
        state = begin(story.story, story.version)
        fork, river, hill = (story.story.scene(scene) for scene in ("fork", "river", "hill"))
        key = {scene.id: director.clip_key(story, scene) for scene in (fork, river, hill)}

        await lookahead.viewer_at("ann", story, state, fork, 0.0)
        # Each clip counts as 8 s (4 segments) until rendered. The one she watches is wanted whole; each child
        # only as far as its lead: at the guessed real-time speed, the segments that keep its stream ahead of
        # playback if it is chosen when it is due (a segment's render takes as long as it plays).
        count = len(segment_lengths(CLIP_ESTIMATE_S, 2.0))
        costs = [RENDER_RTF * length for length in segment_lengths(CLIP_ESTIMATE_S, 2.0)]
        ahead = lead(costs, segment_offsets(segment_lengths(CLIP_ESTIMATE_S, 2.0)), -Tuning().segment_margin_s)
        assert 0 < ahead < count
        assert job_through(sync, key["fork"]) is None
        assert job_through(sync, key["river"]) == ahead - 1
        assert job_through(sync, key["hill"]) == ahead - 1

        await lookahead.viewer_chose("ann", story, "fork", "left")
        # The river is certain now: the same job, extended to the whole clip. The hill is nobody's wish.
        assert job_through(sync, key["river"]) is None
        assert job_through(sync, key["hill"]) == "gone"
        assert job_through(sync, key["fork"]) is None
        await lookahead.viewer_left("ann")
        assert all(job_through(sync, clip) == "gone" for clip in key.values())
    sync.close()


async def test_the_segments_a_worker_stores_move_the_lookaheads_streams_on(redis_server: str, tmp_path: Path) -> None:
    sync = redis.Redis.from_url(redis_server, decode_responses=True)
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_server)
    pool = WorkerPool(1)
    async with director_on(redis_server, {"animatic": "animatic"}) as director:
        lookahead = Lookahead(director, director.queue, "a", 1, segment_s=settings.segment_seconds)
        director.events.listen(lookahead.on_event)
        worker = Worker(settings, director.store, director.queue, director, pool, ("render",))
        choices = [
            {"id": "left", "label": "Left", "target": "river"},
            {"id": "right", "label": "Right", "target": "hill"},
        ]
        text = ferry_story("forked", "Forked", ("fork", FERRY_LINES[:1], choices), ("river", FERRY_LINES, []),
                           ("hill", FERRY_LINES, []))
        story = await published(director, json.dumps(text).encode())
        fork, river = story.story.scene("fork"), story.story.scene("river")
        river_key = director.clip_key(story, river)
        await lookahead.viewer_at("ann", story, begin(story.story, story.version), fork, 0.0)
        ahead = job_through(sync, river_key)
        assert isinstance(ahead, int)

        # A worker takes the jobs in turn: the clip she watches, then each child's lead.
        for _ in range(3):
            job = await director.queue.claim("render", wait_s=0, worker=worker.name)
            assert job is not None
            await worker.handle(job)
        stream = await director.store.stream(river_key)
        assert stream is not None and len(stream.segments) == ahead + 1 < stream.plan.count
        # Told of each segment stored, the scheduler's chain went on past the lead: the rest of the river waits
        # for the choice (deferred far behind any due work, for a slot that would idle), the same job for all of it.
        node = node_of(story, "river")
        deadline = time.monotonic() + 10
        while job_through(sync, river_key) is not None:
            assert time.monotonic() < deadline, "the river's stream never went on past its lead"
            await asyncio.sleep(0.05)
        assert all(lookahead.scheduler.job(job_key("render", node, 0, segment=n)) is None for n in range(ahead + 1))
        score = sync.zscore(keys.queued("render"), river_key)
        assert score is not None and score > time.time() + Tuning().defer_s / 2
    pool.close()
    sync.close()


async def test_metered_the_segments_a_viewer_may_skip_are_queued_as_playback_nears_them(redis_server: str) -> None:
    sync = redis.Redis.from_url(redis_server, decode_responses=True)
    async with director_on(redis_server, {"preview": "animatic"}) as director:
        lookahead = Lookahead(director, director.queue, "a", 1, segment_s=2.0, tuning=METERED)
        director.events.listen(lookahead.on_event)
        ticks = asyncio.create_task(lookahead.run())
        try:
            story = await published(director, FORK.encode())
            fork = story.story.scene("fork")
            key = director.clip_key(story, fork)
            await lookahead.viewer_at("ann", story, begin(story.story, story.version), fork, 0.0)
            # The choices are offered from the start of the 8 s fork (its window is the story default, 10 s): each
            # segment after the first is watched only if she has not chosen by then, so it is queued (the job's
            # ``through`` raised) on the first tick after it must start, less the hold, not all at once.
            seen = [job_through(sync, key)]
            assert isinstance(seen[0], int) and seen[0] < len(segment_lengths(CLIP_ESTIMATE_S, 2.0)) - 1
            deadline = time.monotonic() + 15
            while seen[-1] is not None:
                assert time.monotonic() < deadline, f"the fork's stream was never extended past {seen}"
                await asyncio.sleep(0.05)
                through = job_through(sync, key)
                assert through != "gone"
                if through != seen[-1]:
                    seen.append(through)
            steps = [n for n in seen if isinstance(n, int)]
            assert len(steps) == len(seen) - 1 >= 1 and steps == sorted(steps)
        finally:
            ticks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticks
    sync.close()


def test_the_shell_holds_a_tick_longer_and_leaves_retries_to_the_workers() -> None:
    assert shell_tuning(METERED).hold_s == METERED.hold_s + TICK_S  # type: ignore[operator]
    assert shell_tuning(Tuning()).hold_s is None
    assert shell_tuning(METERED).max_attempts == shell_tuning(Tuning()).max_attempts == 1
    assert shell_tuning(METERED).idle_probability == METERED.idle_probability
