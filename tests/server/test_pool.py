"""A pool whose process is killed (SIGKILL, as the out-of-memory killer does) heals; a job that kills its
process every time is given up; a server whose render process was killed still serves, and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import websockets
from reelfork.server.components import renderer_names
from reelfork.server.director import Director
from reelfork.server.pool import WorkerDied, WorkerPool
from reelfork.server.queue import keys
from reelfork.server.queue.events import Events
from reelfork.server.queue.jobs import ClaimedJob, JobQueue
from reelfork.server.queue.payloads import RenderJob
from reelfork.server.runtime import connect
from reelfork.server.settings import Settings
from reelfork.server.store import Store
from reelfork.server.worker import Outcome, Worker

from tests.helpers.processes import ServerProcess

# -- what runs inside the pool's processes ---------------------------------------------------------


def pid() -> int:
    return os.getpid()


def niceness() -> int:
    return os.nice(0)


def wait_to_be_killed(started: str) -> int:
    """Say it started, then run far longer than any test waits."""
    Path(started).write_text(str(os.getpid()))
    time.sleep(120)
    return os.getpid()


def kill_own_process(tally: str) -> None:
    """A poison pill: the job kills the process running it (what running out of memory looks like)."""
    with open(tally, "a") as file:
        file.write(f"{os.getpid()}\n")
    os.kill(os.getpid(), signal.SIGKILL)


# -- the pool --------------------------------------------------------------------------------------


def wait_started(marker: Path) -> int:
    deadline = time.monotonic() + 60
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline, "the pool never started the call"
        time.sleep(0.05)
    return int(marker.read_text())


async def started(marker: Path) -> int:
    """The pid of the pool process that began the call which writes ``marker``."""
    return await asyncio.to_thread(wait_started, marker)


def test_pool_processes_run_below_the_server() -> None:
    pool = WorkerPool(1, name="nice")
    try:
        assert pool.submit(niceness).result(timeout=60) == min(os.nice(0) + pool.niceness, 19)
    finally:
        pool.shutdown()


async def test_a_pool_whose_process_is_killed_mid_call_recovers_and_runs_the_next_call(tmp_path: Path) -> None:
    pool = WorkerPool(1)
    try:
        call = asyncio.ensure_future(pool.run(wait_to_be_killed, str(tmp_path / "started")))
        victim = await started(tmp_path / "started")
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(WorkerDied):
            await call
        assert pool.replaced == 1
        fresh = await pool.run(pid)
        assert fresh != victim
        assert await pool.run(pid) == fresh
        assert pool.replaced == 1
    finally:
        pool.close()


async def test_callers_sharing_a_pool_all_hear_of_the_death_and_the_pool_is_replaced_once(tmp_path: Path) -> None:
    pool = WorkerPool(2)
    try:
        markers = [tmp_path / "first", tmp_path / "second"]
        calls = [asyncio.ensure_future(pool.run(wait_to_be_killed, str(marker))) for marker in markers]
        victims = [await started(marker) for marker in markers]
        os.kill(victims[0], signal.SIGKILL)
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(result, WorkerDied) for result in results), results
        assert pool.replaced == 1
        fresh = await asyncio.gather(pool.run(pid), pool.run(pid))
        assert not set(fresh) & set(victims)
        assert pool.replaced == 1
    finally:
        pool.close()


async def test_a_closed_pool_stops_its_running_call_at_once(tmp_path: Path) -> None:
    pool = WorkerPool(1)
    call = asyncio.ensure_future(pool.run(wait_to_be_killed, str(tmp_path / "started")))
    victim = await started(tmp_path / "started")
    pool.close()
    with pytest.raises(Exception):  # noqa: B017 - cut short: whatever the broken call says, it is not a result
        await asyncio.wait_for(call, 30)
    assert pool.replaced == 0
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)


# -- a poison pill ----------------------------------------------------------------------------------


class PoisonedWorker(Worker):
    """A worker whose render jobs run :func:`kill_own_process` in its pool: a real death every time."""

    tally = ""

    async def _render(self, job: ClaimedJob) -> Outcome:
        await asyncio.get_running_loop().run_in_executor(self.executor, kill_own_process, self.tally)
        return "done"


async def test_a_job_that_kills_its_process_every_time_is_given_up_as_a_poison_pill(
    redis_server: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_server, job_attempts=3)
    client = connect(redis_server)
    events = Events(client)
    await events.start()
    queue = JobQueue(client, lease_s=3)
    director = Director(Store(client), queue, events, renderer_names(settings))
    pool = WorkerPool(1)
    worker = PoisonedWorker(settings, Store(client), queue, director, pool, ("render",))
    worker.tally = str(tmp_path / "tally")
    failed = events.subscribe("failed:poison")
    running = asyncio.create_task(worker.run())
    try:
        job = RenderJob(story="none", version=1, scene="none", clip="poison", profile="animatic")
        await queue.enqueue("render", "poison", job, time.time())
        await asyncio.wait_for(failed, 120)
        deaths = (await asyncio.to_thread(Path(worker.tally).read_text)).split()
        assert len(deaths) == settings.job_attempts, deaths
        assert len(set(deaths)) == settings.job_attempts  # a fresh process each time
        assert pool.replaced == settings.job_attempts
        assert not await queue.is_queued("poison")
        reason = await client.hget(keys.FAILED, "poison")
        assert isinstance(reason, str) and reason.startswith("WorkerDied"), reason
        assert await pool.run(pid) > 0  # the pool still works for the next job
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        pool.close()
        await events.stop()
        await client.aclose()


# -- a real server ---------------------------------------------------------------------------------


def children(parent: int) -> dict[int, str]:
    """The child processes of ``parent``: pid → command line."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found[int(entry.name)] = cmdline
    return found


def pool_process(server: ServerProcess, not_pid: int = 0, timeout: float = 60) -> int:
    """The server's pool process (a spawned multiprocessing child, not its resource tracker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child, cmdline in children(server.process.pid).items():
            if "spawn_main" in cmdline and child != not_pid:
                return child
        time.sleep(0.05)
    raise AssertionError(f"no pool process under the server:\n{server.log_path.read_text()[-3000:]}")


async def next_message(websocket: websockets.ClientConnection, kind: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(websocket.recv(), deadline - time.monotonic()))
        if message["type"] == kind:
            return message


async def test_a_killed_render_process_heals_and_the_server_still_stops_on_sigterm(
    redis_server: str, tmp_path: Path
) -> None:
    server = ServerProcess(
        tmp_path / "data",
        REELFORK_REDIS_URL=redis_server,
        REELFORK_WARM_AUTHORED="false",  # nothing rendered yet: the first scene's clip is rendered for the viewer
        REELFORK_RENDER_WORKERS="1",
        REELFORK_WRITE_WORKERS="0",
        REELFORK_PRODUCE_WORKERS="0",
        REELFORK_JOB_LEASE_S="6",
        REELFORK_CHOICE_WAIT_S="0.2",  # the first scene comes before its clip, which the viewer then waits for
    )
    client = redis.Redis.from_url(redis_server)
    try:
        async with websockets.connect(server.url.replace("http://", "ws://") + "/v1/play") as websocket:
            await websocket.send(json.dumps({"type": "start", "story": "last-ferry"}))
            # The first clip's render spawns the pool's process: kill it while it is at work on that clip.
            victim = await asyncio.to_thread(pool_process, server)
            await asyncio.sleep(0.5)
            os.kill(victim, signal.SIGKILL)
            await next_message(websocket, "session", 30)
            scene = await next_message(websocket, "scene", 30)
            assert scene["clip"] is None, "the first clip was rendered before the kill"

            clip = await next_message(websocket, "clip", 300)
            assert clip["scene"] == scene["scene"]
            log = server.log_path.read_text()
            assert "died while running this call" in log, log[-3000:]
            assert "BrokenProcessPool" not in log
            assert "Traceback" not in log, log[-3000:]
            problems = [line for line in log.splitlines() if " WARNING " in line or " ERROR " in line]
            assert 1 <= len(problems) <= 3, problems
            fresh = await asyncio.to_thread(pool_process, server, victim)
            assert fresh != victim

            # Stop while a render is running: the server exits in bounded time and the job is not lost.
            await websocket.send(json.dumps({"type": "choose", "choice": scene["choices"][0]["id"]}))
            deadline = time.monotonic() + 120
            while not client.zcard(keys.leases("render")):
                assert time.monotonic() < deadline, "no render job ran after the first clip"
                await asyncio.sleep(0.05)
            leased: list[bytes] = client.zrange(keys.leases("render"), 0, -1)  # type: ignore[assignment]
            running = [key.decode() for key in leased]
            server.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(server.process.wait, 15)
        for key in running:
            assert client.exists(keys.clip(key)) or client.exists(keys.job(key)), key
    finally:
        if server.process.poll() is None:
            server.process.kill()
        server.stop()
        client.close()

