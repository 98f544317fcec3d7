"""Redis restarted mid-run: the server reconnects, sessions and acknowledged choices survive."""

from __future__ import annotations

from pathlib import Path

import pytest
import websockets

from tests.helpers.processes import RedisProcess, ServerProcess
from tests.helpers.viewer import STORY, Viewer, authored_target, ws_url


@pytest.mark.slow
async def test_sessions_and_acknowledged_choices_survive_a_redis_restart(tmp_path: Path) -> None:
    store = RedisProcess(tmp_path, persistent=True)
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
