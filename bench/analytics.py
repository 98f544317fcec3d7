"""The cost of analytics on the play path: the same viewers against a server with analytics on, then off,
alternating (on, off, on, off, ...), on one data dir (the clips render once, in a warm-up run).

    .venv/bin/python -m bench.analytics --viewers 1000 --pairs 2 --speed 1

Drives the viewers with :mod:`bench.play`. Prints and writes ``bench/results/analytics.json``:

* choice→scene median (p50) per run and the mean per setting, and their ratio (target: within 10%),
* the server's CPU seconds per 1,000 analytics events: (CPU with analytics - CPU without) / events recorded,
  summed over the pairs (CPU of the server process and its children, the embedded Redis included),
* Redis memory per 1,000 sessions' events after one playthrough (``MEMORY USAGE`` of the event stream,
  the counters and the sessions' analytics hashes, after the first run with analytics on).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from reelfork.server.queue import keys

from bench import play

RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(data_dir: Path, analytics: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "REELFORK_PORT": str(port), "REELFORK_DATA_DIR": str(data_dir),
           "REELFORK_RENDER_PROFILE": "preview", "REELFORK_ANALYTICS": "true" if analytics else "false",
           "REELFORK_MESSAGE_RATE": "1000", "REELFORK_MESSAGE_BURST": "1000"}
    log = (data_dir.parent / f"server-{port}.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "reelfork.server", "serve"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise TimeoutError("the server did not become healthy")


def redis_url(data_dir: Path) -> str:
    return f"unix://{data_dir / 'redis.sock'}"


async def analytics_state(url: str) -> tuple[int, int, int]:
    """Events kept, sessions with analytics state, and the bytes of all analytics keys."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    events = sessions = size = 0
    async for key in client.scan_iter(match=keys.PREFIX + "an:*", count=1000):
        size += int(await client.memory_usage(key, samples=0) or 0)
        if key.startswith(keys.PREFIX + "an:events:"):
            events += int(await client.xlen(key))
        elif key.startswith(keys.PREFIX + "an:session:"):
            sessions += 1
    await client.aclose()
    return events, sessions, size


def one_run(data_dir: Path, analytics: bool, args: argparse.Namespace) -> dict[str, Any]:
    process, url = serve(data_dir, analytics)
    try:
        before = asyncio.run(analytics_state(redis_url(data_dir)))
        options = argparse.Namespace(
            url=url, story="last-ferry", viewers=args.viewers, rounds=1, defaulters=0.2, speed=args.speed,
            ramp=args.ramp, pid=process.pid, wait=args.wait, seed=args.seed, redis=None,
        )
        report = asyncio.run(play.run(options))
        time.sleep(1)  # the recorder's last batch
        after = asyncio.run(analytics_state(redis_url(data_dir)))
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {
        "analytics": analytics,
        "choose_p50_ms": report["choose_to_scene"]["p50_ms"],
        "cpu_s": report["with_children_cpu_s"],
        "events": after[0] - before[0],
        "sessions": after[1] - before[1],
        "analytics_bytes": after[2] - before[2],
        "errors": report["errors"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--ramp", type=float, default=10.0)
    parser.add_argument("--wait", type=float, default=900)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    data_dir = folder / "data"
    try:
        warm = argparse.Namespace(**{**vars(args), "viewers": min(args.viewers, 20)})
        one_run(data_dir, True, warm)  # renders every authored clip; not measured
        runs = [one_run(data_dir, on, args) for _ in range(args.pairs) for on in (True, False)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    on = [r for r in runs if r["analytics"]]
    off = [r for r in runs if not r["analytics"]]
    median_on = statistics.mean(r["choose_p50_ms"] for r in on if r["choose_p50_ms"] is not None)
    median_off = statistics.mean(r["choose_p50_ms"] for r in off if r["choose_p50_ms"] is not None)
    events = sum(r["events"] for r in on)
    extra_cpu = sum(r["cpu_s"] or 0 for r in on) - sum(r["cpu_s"] or 0 for r in off)
    first = on[0]
    report = {
        "viewers": args.viewers,
        "pairs": args.pairs,
        "speed": args.speed,
        "runs": runs,
        "choose_p50_ms_on": round(median_on, 2),
        "choose_p50_ms_off": round(median_off, 2),
        "choose_p50_ratio_on_off": round(median_on / median_off, 3) if median_off else None,
        "events_recorded": events,
        "cpu_s_per_1000_events": round(1000 * extra_cpu / events, 3) if events else None,
        "redis_bytes_per_1000_sessions": (
            round(1000 * first["analytics_bytes"] / first["sessions"]) if first["sessions"] else None
        ),
        "events_per_session": round(first["events"] / first["sessions"], 1) if first["sessions"] else None,
    }
    print(f"{args.viewers} viewers, {args.pairs} pair(s) of runs (analytics on, off), speed x{args.speed:g}:")
    print(f"  choice→scene p50: on {report['choose_p50_ms_on']} ms, off {report['choose_p50_ms_off']} ms "
          f"(ratio {report['choose_p50_ratio_on_off']})")
    print(f"  server CPU per 1,000 events: {report['cpu_s_per_1000_events']} s ({events} events)")
    print(f"  Redis per 1,000 sessions' events (one playthrough): {report['redis_bytes_per_1000_sessions']} bytes "
          f"({report['events_per_session']} events a session)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "analytics.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
