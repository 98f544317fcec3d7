"""A play-protocol client for tests, written from the protocol description, not from the server's code."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets

STORY = "last-ferry"


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/v1/play"


def authored_target(base: str, scene_id: str, choice_id: str) -> str:
    story = httpx.get(f"{base}/v1/stories/{STORY}").json()["story"]
    scene = next(scene for scene in story["scenes"] if scene["id"] == scene_id)
    return str(next(choice["target"] for choice in scene["choices"] if choice["id"] == choice_id))


class Viewer:
    """A protocol client written from the protocol description, not from the server's code."""

    def __init__(self, websocket: websockets.ClientConnection) -> None:
        self.websocket = websocket
        self.clips: dict[str, str] = {}

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.websocket.send(message if isinstance(message, str) else json.dumps(message))

    async def receive(self, timeout: float = 120) -> dict[str, Any]:
        while True:
            message: dict[str, Any] = json.loads(await asyncio.wait_for(self.websocket.recv(), timeout))
            if message["type"] == "clip":
                if message["url"] is not None:  # null: a frame that brings only the stream
                    self.clips[message["scene"]] = message["url"]
                continue
            return message

    async def expect(self, kind: str) -> dict[str, Any]:
        message = await self.receive()
        assert message["type"] == kind, message
        return message

    async def choose(self, choice: str, patience: int = 90) -> dict[str, Any]:
        """Send ``choose`` and return the next scene, choosing again while the server says ``not_ready``."""
        for _ in range(patience):
            await self.send({"type": "choose", "choice": choice})
            message = await self.receive()
            if message["type"] == "error" and message["code"] == "not_ready":
                await asyncio.sleep(2)
                continue
            assert message["type"] == "scene", message
            return message
        raise AssertionError(f"choice {choice!r} was never ready")

    async def clip_for(self, scene: dict[str, Any]) -> str:
        if scene["clip"] is not None:
            return str(scene["clip"])
        while scene["scene"] not in self.clips:
            message = json.loads(await asyncio.wait_for(self.websocket.recv(), 300))
            if message["type"] == "clip" and message["url"] is not None:
                self.clips[message["scene"]] = message["url"]
        return self.clips[scene["scene"]]
