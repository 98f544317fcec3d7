"""Redis restarted mid-run: the server reconnects, sessions and acknowledged choices survive."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import websockets

from tests.conftest import ServerProcess, free_port, wait_for_redis
from tests.server.web.test_play import STORY, Viewer, authored_target, ws_url


class RedisProcess:
    """A real redis-server persisting to an append-only file, that can be stopped and started again."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is missing: scripts/dev test installs Debian's redis-server"
        self.command = [
            binary,
            "--port",
            str(free_port()),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ]
        self.port = int(self.command[2])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        wait_for_redis(self.port)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


async def test_sessions_and_acknowledged_choices_survive_a_redis_restart(tmp_path: Path) -> None:
    store = RedisProcess(tmp_path)
    server = ServerProcess(tmp_path / "data", REELFORK_REDIS_URL=store.url, REELFORK_CREATOR_TOKEN="t")
    try:
        async with websockets.connect(ws_url(server.url)) as websocket:
            viewer = Viewer(websocket)
            await viewer.send({"type": "start", "story": STORY})
            token = (await viewer.expect("session"))["session"]
            first = await viewer.expect("scene")
            acknowledged = await viewer.choose(first["choices"][0]["id"])

            store.stop()
            await viewer.send({"type": "choose", "choice": acknowledged["choices"][0]["id"]})
            assert (await viewer.expect("error"))["code"] in {"unavailable", "internal"}
            store.start()

            # Same connection: the session is where the viewer left it and plays on.
            chosen = acknowledged["choices"][0]["id"]
            after = await viewer.choose(chosen)
            assert after["scene"] == authored_target(server.url, acknowledged["scene"], chosen)

        async with websockets.connect(ws_url(server.url)) as websocket:
            again = Viewer(websocket)
            await again.send({"type": "resume", "session": token})
            await again.expect("session")
            assert (await again.expect("scene"))["scene"] == after["scene"]
    finally:
        server.stop()
        store.stop()
