"""Choice→scene latency for many concurrent websocket viewers with pre-rendered clips.

Run against a running server (``scripts/dev serve`` or ``reelfork serve``):

    .venv/bin/python -m bench.play --url http://127.0.0.1:8000 --viewers 200

It waits until the server's job queue is empty (every authored clip rendered), then runs
``--viewers`` viewers at once; each starts the story and plays to an ending ``--rounds`` times,
picking random authored choices after a random think time, and timing each ``choose`` until its
``scene`` arrives. Prints p50/p99/max and writes ``bench/results/play.json``.

With ``--redis URL`` it also prints the Redis memory of a viewer session (``MEMORY USAGE`` over a
sample of session keys). The embedded Redis listens on ``unix://DATA_DIR/redis.sock`` (or, where that
path is too long for a socket, on the ``unixsocket`` named in ``DATA_DIR/redis.conf``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
import websockets
from reelfork.server.queue import keys

RESULTS = Path(__file__).resolve().parent / "results"


def authored_choices(story: dict[str, Any]) -> dict[str, list[str]]:
    return {
        scene["id"]: [c["id"] for c in scene["choices"] if c.get("target")] for scene in story["scenes"]
    }


async def wait_until_rendered(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            depth = (await http.get(f"{url}/healthz")).json()["queue"]
            if sum(count for name, count in depth.items() if name.startswith("render:")) == 0:
                return
            await asyncio.sleep(1)
    raise TimeoutError("the server still has queued render jobs; is a render worker running?")


async def viewer(
    url: str, story_id: str, choices: dict[str, list[str]], rounds: int, think: float, rng: random.Random
) -> tuple[list[float], int]:
    latencies: list[float] = []
    missing_clips = 0
    async with websockets.connect(url.replace("http", "ws", 1) + "/v1/play", max_size=None) as ws:
        for _ in range(rounds):
            await ws.send(json.dumps({"type": "start", "story": story_id}))
            scene = await _next(ws, "scene")
            while not scene["ending"]:
                await asyncio.sleep(rng.uniform(0, 2 * think))
                choice = rng.choice(choices[scene["scene"]])
                sent = time.perf_counter()
                await ws.send(json.dumps({"type": "choose", "choice": choice}))
                scene = await _next(ws, "scene")
                latencies.append(time.perf_counter() - sent)
                missing_clips += scene["clip"] is None
    return latencies, missing_clips


async def _next(ws: websockets.ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await ws.recv())
        if message["type"] == "error":
            raise RuntimeError(message)
        if message["type"] == kind:
            return message


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        story = (await http.get(f"{args.url}/v1/stories/{args.story}")).json()["story"]
    await wait_until_rendered(args.url, args.wait)
    choices = authored_choices(story)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            viewer(args.url, args.story, choices, args.rounds, args.think, random.Random(rng.random()))
            for _ in range(args.viewers)
        )
    )
    elapsed = time.perf_counter() - started
    session_bytes = await session_memory(args.redis) if args.redis else None
    latencies = sorted(ms * 1000 for lat, _ in results for ms in lat)
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "viewers": args.viewers,
        "rounds": args.rounds,
        "think_s": args.think,
        "choices": len(latencies),
        "choices_without_clip": sum(missing for _, missing in results),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(quantiles[98], 2),
        "max_ms": round(latencies[-1], 2),
        "choices_per_s": round(len(latencies) / elapsed, 1),
        "elapsed_s": round(elapsed, 1),
        "redis_bytes_per_session": session_bytes,
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
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--think", type=float, default=0.5, help="mean seconds between a scene and the next choice")
    parser.add_argument("--wait", type=float, default=900, help="seconds to wait for pre-rendering")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--redis", help="the server's Redis URL, to measure memory per session")
    report = asyncio.run(run(parser.parse_args()))
    for key, value in report.items():
        print(f"{key:>22}: {value}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "play.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
