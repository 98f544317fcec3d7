"""Many concurrent websocket viewers playing as the player does, against a running server.

Run against a running server (``scripts/dev serve`` or ``reelfork serve``):

    .venv/bin/python -m bench.play --url http://127.0.0.1:8000 --viewers 200 --pid SERVER_PID

It waits until the server's job queue is empty (every authored clip rendered), then runs ``--viewers``
viewers at once (their starts spread over ``--ramp`` seconds); each starts the story and plays it to an
ending ``--rounds`` times as the web player does: a ``progress {scene, position, playing: true}`` once a
second of playback, position counting on past the clip's end while the window stays open. Most viewers
choose at a random moment inside each scene's choice window (between ``opens_at`` and ``closes_at`` of
the ``scene`` message's ``choice_window``), naming the scene, among its authored choices (an open
choice would time the writer, not the server); ``--defaulters`` of them never choose and
send one more ``progress`` at the moment playback crosses ``closes_at``, for the server to take the
default. It prints:

* choice→scene latency p50/p99 (from sending ``choose`` to the next ``scene``),
* default latency p50/p99 (from the ``progress`` crossing ``closes_at`` to the next ``scene``),
* the server's CPU seconds per 1,000 viewer-seconds of playback (user + system time of ``--pid``, and
  with its child processes: the embedded Redis, and the in-process worker's, which should be idle with
  every clip rendered; read from ``/proc`` before and after),

and writes ``bench/results/play.json``. ``--speed S`` compresses time: positions still advance 1 s per
``progress`` message, but messages go S times as often, so the server sees S times the message rate of
as many real-time viewers (the latencies are measured under that heavier load; CPU is per viewer-second
of playback, i.e. per progress message, either way). The output says which speed was used.

With ``--cold N`` (and the creator ``--token``) it then times the cold path, as many times: it publishes a copy
of the story whose pictures nobody rendered (each scene's place salted, so every picture key is new; run the
server with ``REELFORK_WARM_AUTHORED=false`` so that publishing renders nothing ahead), starts it, and takes
the time from ``start`` to the first ``scene`` a player can play, i.e. with a ``stream`` whose first segment is
stored (or a ``clip``), beside the time to the complete MP4 (the ``clip`` frame that follows). Entering a story
and a choice take one path on the server (the scene is presented once its picture is playable), so this is
the cold choice's latency on an idle render worker; it prints p50/p99 of both.

With ``--redis URL`` it also prints the Redis memory of a viewer session (``MEMORY USAGE`` over a
sample of session keys). The embedded Redis listens on ``unix://DATA_DIR/redis.sock`` (or, where that
path is too long for a socket, on the ``unixsocket`` named in ``DATA_DIR/redis.conf``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
import websockets
from reelfork.server.queue import keys

RESULTS = Path(__file__).resolve().parent / "results"
TICK_S = 1.0
"""Seconds of playback between two ``progress`` messages."""


@dataclass
class Tally:
    """One viewer's measurements."""

    chose_ms: list[float] = field(default_factory=list)
    defaulted_ms: list[float] = field(default_factory=list)
    progress: int = 0
    played_s: float = 0.0
    clip_waits: int = 0
    locked: int = 0
    errors: list[str] = field(default_factory=list)


class Connection:
    """A websocket whose messages are read as they arrive and stamped with their arrival time."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.inbox: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            self.inbox.put_nowait((time.perf_counter(), json.loads(raw)))

    async def send(self, message: dict[str, Any]) -> float:
        await self.ws.send(json.dumps(message))
        return time.perf_counter()

    async def next(self, *kinds: str) -> tuple[float, dict[str, Any]]:
        """The next message of one of ``kinds`` (an ``error`` is raised), with when it arrived."""
        while True:
            arrived, message = await self.inbox.get()
            if message["type"] == "error":
                raise RuntimeError(f"{message['code']}: {message['message']}")
            if message["type"] in kinds:
                return arrived, message

    def pending(self, kind: str) -> dict[str, Any] | None:
        """A message of ``kind`` that already arrived, if any (others that arrived are dropped)."""
        while not self.inbox.empty():
            _, message = self.inbox.get_nowait()
            if message["type"] == "error":
                raise RuntimeError(f"{message['code']}: {message['message']}")
            if message["type"] == kind:
                return message
        return None

    def close(self) -> None:
        self.reader.cancel()


async def play_scene(
    conn: Connection, scene: dict[str, Any], choose_at: float | None, choice: str | None, speed: float, tally: Tally
) -> tuple[float, dict[str, Any]]:
    """Play ``scene`` from its position: progress every second of playback; choose ``choice`` at
    ``choose_at`` (a position), or else report crossing ``closes_at``. Returns when the next scene (or
    ``locked``) arrived, and it."""
    window = scene["choice_window"]
    position = float(scene.get("position") or 0.0)
    closes = float(window["closes_at"])
    while True:
        step = position + TICK_S
        if choose_at is not None and choose_at < step:
            await asyncio.sleep(max(0.0, choose_at - position) / speed)
            tally.played_s += max(0.0, choose_at - position)
            sent = await conn.send({"type": "choose", "choice": choice, "scene": scene["scene"]})
            arrived, message = await conn.next("scene", "locked")
            tally.chose_ms.append((arrived - sent) * 1000)
            return arrived, message
        crossing = choose_at is None and closes <= step
        target = closes if crossing else step
        await asyncio.sleep((target - position) / speed)
        tally.played_s += target - position
        position = target
        sent = await conn.send({"type": "progress", "scene": scene["scene"], "position": position, "playing": True})
        tally.progress += 1
        if crossing:
            arrived, message = await conn.next("scene", "locked")
            tally.defaulted_ms.append((arrived - sent) * 1000)
            return arrived, message
        early = conn.pending("scene")
        if early is not None:  # moved on by the server (its backstop): nothing to time
            return time.perf_counter(), early


async def with_clip(conn: Connection, scene: dict[str, Any], tally: Tally) -> dict[str, Any]:
    """The scene once it can play (its clip, or its stream): as sent, or updated by the ``clip`` message that
    follows."""
    if scene["clip"] is not None or scene.get("stream") is not None or scene["ending"]:
        return scene
    tally.clip_waits += 1
    while True:
        _, clip = await conn.next("clip")
        if clip["scene"] == scene["scene"]:
            return {**scene, "clip": clip["url"], "stream": clip.get("stream"), "duration": clip["duration"],
                    "choice_window": clip["choice_window"]}


def authored_choices(story: dict[str, Any]) -> dict[str, set[str]]:
    return {scene["id"]: {c["id"] for c in scene["choices"] if c.get("target")} for scene in story["scenes"]}


async def viewer(
    url: str,
    story_id: str,
    authored: dict[str, set[str]],
    rounds: int,
    defaulter: bool,
    speed: float,
    ramp_s: float,
    rng: random.Random,
) -> Tally:
    tally = Tally()
    await asyncio.sleep(rng.uniform(0, ramp_s))
    async with websockets.connect(url.replace("http", "ws", 1) + "/v1/play", max_size=None) as ws:
        conn = Connection(ws)
        try:
            for _ in range(rounds):
                await conn.send({"type": "start", "story": story_id})
                _, scene = await conn.next("scene", "locked")
                while scene["type"] == "scene" and not scene["ending"]:
                    scene = await with_clip(conn, scene, tally)
                    window = scene["choice_window"]
                    offers = [o["id"] for o in scene["choices"] if o["id"] in authored.get(scene["scene"], ())]
                    if defaulter or not offers:
                        choose_at, choice = None, None
                    else:
                        choose_at = rng.uniform(float(window["opens_at"]), float(window["closes_at"]))
                        choice = rng.choice(offers)
                    _, scene = await play_scene(conn, scene, choose_at, choice, speed, tally)
                if scene["type"] == "locked":
                    tally.locked += 1
        except (RuntimeError, websockets.ConnectionClosed) as exc:
            tally.errors.append(str(exc))
        finally:
            conn.close()
    return tally


def salted(story: dict[str, Any], salt: str) -> dict[str, Any]:
    """A copy of ``story`` under a new id whose every picture is new (each scene's place salted)."""
    scenes = [{**scene, "place": f"{scene['place']} ({salt})"} for scene in story["scenes"]]
    return {**story, "id": f"{story['id']}-{salt}", "title": f"{story['title']} {salt}", "scenes": scenes}


async def cold_trial(url: str, token: str, story: dict[str, Any], salt: str) -> tuple[float, float]:
    """Publish a never-rendered copy of ``story``, start it: ms to the first playable scene and to its MP4."""
    copy = salted(story, salt)
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(f"{url}/v1/stories", json=copy, headers={"authorization": f"Bearer {token}"})
        response.raise_for_status()
    async with websockets.connect(url.replace("http", "ws", 1) + "/v1/play", max_size=None) as ws:
        conn = Connection(ws)
        try:
            sent = await conn.send({"type": "start", "story": copy["id"]})
            arrived, scene = await conn.next("scene")
            playable = scene if scene["clip"] or scene.get("stream") else None
            while playable is None:
                arrived, clip = await conn.next("clip")
                playable = clip if clip["scene"] == scene["scene"] and (clip["url"] or clip.get("stream")) else None
            whole = arrived if playable.get("clip") or playable.get("url") else None
            while whole is None:
                at, clip = await conn.next("clip")
                whole = at if clip["scene"] == scene["scene"] and clip["url"] else None
        finally:
            conn.close()
    return (arrived - sent) * 1000, (whole - sent) * 1000


async def cold_path(url: str, token: str, story: dict[str, Any], trials: int) -> dict[str, Any]:
    """``trials`` cold starts, one after the other (each on an idle render worker)."""
    first: list[float] = []
    whole: list[float] = []
    run = int(time.time())
    for trial in range(trials):
        playable_ms, complete_ms = await cold_trial(url, token, story, f"cold-{run}-{trial}")
        first.append(playable_ms)
        whole.append(complete_ms)
        await wait_until_rendered(url, 600)  # its lookahead's renders done: the next trial starts idle
    return {"first_playable": quantiles(first), "complete_clip": quantiles(whole)}


async def wait_until_rendered(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            depth = (await http.get(f"{url}/healthz")).json()["queue"]
            if sum(count for name, count in depth.items() if name.startswith("render:")) == 0:
                return
            await asyncio.sleep(1)
    raise TimeoutError("the server still has queued render jobs; is a render worker running?")


def cpu_seconds(pid: int, descendants: bool = True) -> float:
    """User + system CPU seconds of ``pid`` (and its live descendants) from ``/proc``."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            for task in Path(f"/proc/{current}/task").iterdir() if descendants else ():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile
    return total


def quantiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)
    p99 = statistics.quantiles(ordered, n=100, method="inclusive")[98] if len(ordered) > 1 else ordered[0]
    return {
        "count": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(ordered[-1], 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        story = (await http.get(f"{args.url}/v1/stories/{args.story}")).json()["story"]
    authored = authored_choices(story)
    await wait_until_rendered(args.url, args.wait)
    rng = random.Random(args.seed)
    defaulters = round(args.viewers * args.defaulters)
    cpu_before = (cpu_seconds(args.pid, False), cpu_seconds(args.pid)) if args.pid else None
    started = time.perf_counter()
    tallies = await asyncio.gather(
        *(
            viewer(
                args.url,
                args.story,
                authored,
                args.rounds,
                n < defaulters,
                args.speed,
                args.ramp,
                random.Random(rng.random()),
            )
            for n in range(args.viewers)
        )
    )
    elapsed = time.perf_counter() - started
    cpu = cpu_all = None
    if args.pid and cpu_before is not None:
        cpu, cpu_all = cpu_seconds(args.pid, False) - cpu_before[0], cpu_seconds(args.pid) - cpu_before[1]
    viewer_seconds = sum(t.played_s for t in tallies)
    session_bytes = await session_memory(args.redis) if args.redis else None
    errors = [e for t in tallies for e in t.errors]
    cold = await cold_path(args.url, args.token, story, args.cold) if args.cold else None
    return {
        "viewers": args.viewers,
        "defaulters": defaulters,
        "rounds": args.rounds,
        "speed": args.speed,
        "choose_to_scene": quantiles([ms for t in tallies for ms in t.chose_ms]),
        "closes_at_to_scene": quantiles([ms for t in tallies for ms in t.defaulted_ms]),
        "progress_messages": sum(t.progress for t in tallies),
        "progress_per_s": round(sum(t.progress for t in tallies) / elapsed, 1),
        "viewer_seconds": round(viewer_seconds, 1),
        "server_cpu_s": round(cpu, 2) if cpu is not None else None,
        "server_cpu_s_per_1000_viewer_s": round(1000 * cpu / viewer_seconds, 3) if cpu and viewer_seconds else None,
        "with_children_cpu_s": round(cpu_all, 2) if cpu_all is not None else None,
        "with_children_cpu_s_per_1000_viewer_s": (
            round(1000 * cpu_all / viewer_seconds, 3) if cpu_all and viewer_seconds else None
        ),
        "scenes_waiting_for_clip": sum(t.clip_waits for t in tallies),
        "locked": sum(t.locked for t in tallies),
        "errors": len(errors),
        "first_errors": errors[:5],
        "elapsed_s": round(elapsed, 1),
        "redis_bytes_per_session": session_bytes,
        "cold": cold,
    }


async def session_memory(url: str, sample: int = 200) -> float:
    """Mean ``MEMORY USAGE`` of viewer session keys: what each viewer costs in Redis."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    sizes: list[int] = []
    async for key in client.scan_iter(match=keys.SESSIONS, count=500):
        sizes.append(int(await client.memory_usage(key) or 0))
        if len(sizes) >= sample:
            break
    await client.aclose()
    return round(statistics.mean(sizes), 1) if sizes else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--story", default="last-ferry")
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--defaulters", type=float, default=0.2, help="share of viewers who never choose")
    parser.add_argument("--speed", type=float, default=1.0, help="playback seconds per real second (time compression)")
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds over which the viewers start")
    parser.add_argument("--pid", type=int, help="the server's process id, to measure its CPU time")
    parser.add_argument("--wait", type=float, default=900, help="seconds to wait for pre-rendering")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--redis", help="the server's Redis URL, to measure memory per session")
    parser.add_argument("--cold", type=int, default=0, help="cold starts to time after the viewers (needs --token)")
    parser.add_argument("--token", help="the creator token (DATA_DIR/creator-token), to publish the cold copies")
    args = parser.parse_args()
    if args.speed <= 0:
        parser.error("--speed must be above 0")
    if args.cold and not args.token:
        parser.error("--cold needs --token: the cold path publishes never-rendered copies of the story")
    report = asyncio.run(run(args))
    compressed = f", time compressed x{args.speed:g}" if args.speed != 1 else ""
    print(
        f"{report['viewers']} viewers ({report['defaulters']} never choose), {report['rounds']} round(s){compressed}:"
    )
    for label, key in (("choice→scene", "choose_to_scene"), ("closes_at→scene", "closes_at_to_scene")):
        q = report[key]
        print(f"  {label:<16} p50 {q['p50_ms']} ms, p99 {q['p99_ms']} ms, max {q['max_ms']} ms ({q['count']})")
    if args.speed != 1:
        print(f"  (the server saw {args.speed:g}x the message rate of {report['viewers']} real-time viewers)")
    if report["cold"] is not None:
        for label, key in (("cold→first segment", "first_playable"), ("cold→whole clip", "complete_clip")):
            q = report["cold"][key]
            print(f"  {label:<16} p50 {q['p50_ms']} ms, p99 {q['p99_ms']} ms, max {q['max_ms']} ms ({q['count']})")
    per_1000 = report["server_cpu_s_per_1000_viewer_s"]
    cpu = "not measured (give --pid)"
    if per_1000 is not None:
        cpu = (
            f"{per_1000} CPU s per 1,000 viewer-seconds"
            f" ({report['with_children_cpu_s_per_1000_viewer_s']} with its child processes)"
        )
    print(f"  server: {cpu}; {report['progress_per_s']} progress messages/s, {report['viewer_seconds']} viewer-s")
    for key, value in report.items():
        if key not in ("choose_to_scene", "closes_at_to_scene", "cold"):
            print(f"{key:>32}: {value}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "play.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
