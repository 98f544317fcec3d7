"""The multi-machine topology on one machine: a real redis-server, two servers, two worker hosts.

A viewer on server A plays to an ending while jobs run on both workers; one worker is killed with
SIGKILL in the middle of a job; its job is taken over and every job completes exactly once.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path

import httpx
import pytest
import redis
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.processes import LEASE_S, ServerProcess, WorkerProcess, free_port
from tests.helpers.viewer import STORY, Viewer, ws_url


def running_job_of(client: redis.Redis, pid: int) -> str | None:
    for kind in ("render", "write"):
        keys: list[bytes] = client.zrange(f"rf:lease:{kind}", 0, -1)  # type: ignore[assignment]
        for key in keys:
            owner: bytes | None = client.hget(f"rf:job:{key.decode()}", "worker")  # type: ignore[assignment]
            if owner is not None and f"-{pid}-" in owner.decode():
                return key.decode()
    return None


async def job_timings(http: httpx.AsyncClient, port: int) -> dict[str, int]:
    """Jobs done, by kind, as a worker host's ``reelfork_job_seconds`` histogram counts them."""
    exposition = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    return {
        sample.labels["kind"]: int(sample.value)
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "reelfork_job_seconds_count" and sample.labels["outcome"] == "done" and sample.value
    }


def jobs_logged(log: Path) -> dict[str, int]:
    """Jobs done, by kind, as a worker host's log tells them."""
    kinds = re.findall(r"INFO reelfork\.server\.worker: (\w+) \S+ done in", log.read_text())
    return {kind: kinds.count(kind) for kind in set(kinds)}


@pytest.mark.slow
async def test_a_worker_killed_mid_job_loses_nothing_and_every_job_completes_once(
    redis_server: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "shared-data"  # one folder for all: a shared volume in a real fleet
    client = redis.Redis.from_url(redis_server)
    common = {
        "REELFORK_REDIS_URL": redis_server,
        "REELFORK_RENDER_WORKERS": "0",
        "REELFORK_WRITE_WORKERS": "0",
        "REELFORK_CREATOR_TOKEN": "fleet-token",
        "REELFORK_JOB_LEASE_S": LEASE_S,
    }
    server_a = ServerProcess(data_dir, **common)
    server_b = ServerProcess(data_dir, **{**common, "REELFORK_WARM_AUTHORED": "false"})
    metrics_port = free_port()
    workers = [
        WorkerProcess(data_dir, redis_server, tmp_path / "worker-0.log"),
        WorkerProcess(data_dir, redis_server, tmp_path / "worker-1.log", REELFORK_METRICS_PORT=str(metrics_port)),
    ]
    try:

        async def watch_and_kill() -> str:
            while True:
                job = running_job_of(client, workers[0].process.pid)
                if job is not None:
                    workers[0].kill()
                    return job
                await asyncio.sleep(0.05)

        killer = asyncio.create_task(watch_and_kill())
        async with websockets.connect(ws_url(server_a.url)) as websocket:
            viewer = Viewer(websocket)
            await viewer.send({"type": "start", "story": STORY})
            await viewer.expect("session")
            scene = await viewer.expect("scene")
            seen = [scene["scene"]]
            while not scene["ending"]:
                await viewer.clip_for(scene)
                scene = await viewer.choose(scene["choices"][0]["id"])
                seen.append(scene["scene"])
            await viewer.clip_for(scene)
        killed_job = await asyncio.wait_for(killer, 60)

        # The other server sees the same story and the same finished work.
        async with websockets.connect(ws_url(server_b.url)) as websocket:
            other = Viewer(websocket)
            await other.send({"type": "start", "story": STORY})
            await other.expect("session")
            assert (await other.expect("scene"))["clip"] is not None

        # Wait for the warm-up of the remaining scenes, then check nothing ran twice or was lost.
        deadline = time.monotonic() + 900
        while any(client.zcard(f"rf:{s}:{k}") for s in ("q", "lease", "delayed") for k in ("render", "write")):
            assert time.monotonic() < deadline, "jobs left in the queue"
            await asyncio.sleep(0.5)
        raw: dict[bytes, bytes] = client.hgetall("rf:stats:completed")  # type: ignore[assignment]
        completed = {k.decode(): int(v) for k, v in raw.items()}
        assert killed_job in completed, (killed_job, completed)
        assert set(completed.values()) == {1}, completed
        assert client.hlen("rf:failed") == 0
        survivor_log = Path(workers[1].log.name).read_text()  # noqa: ASYNC240
        assert f"{killed_job} done in" in survivor_log or f"{killed_job.split(':')[-1]} done in" in survivor_log
        assert seen[-1].startswith("end-")

        # The surviving worker host serves its own metrics: one timing per job it logged as done (the
        # last job's log line follows its timing by a moment).
        async with httpx.AsyncClient() as http:
            for _ in range(20):
                timed, logged = await job_timings(http, metrics_port), jobs_logged(Path(workers[1].log.name))
                if timed == logged:
                    break
                await asyncio.sleep(0.5)
        assert timed == logged
        assert timed.get("render", 0) > 0
    finally:
        for worker in workers:
            worker.stop()
        server_a.stop()
        server_b.stop()


def test_a_worker_host_whose_metrics_port_is_taken_says_so_and_exits(redis_server: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = tmp_path / "worker.log"
        worker = WorkerProcess(tmp_path, redis_server, log, kinds="render", REELFORK_METRICS_PORT=str(port))
        try:
            assert worker.process.wait(timeout=120) == 2
        finally:
            worker.stop()
    assert f"cannot serve metrics on 127.0.0.1:{port} (REELFORK_METRICS_PORT)" in log.read_text()
