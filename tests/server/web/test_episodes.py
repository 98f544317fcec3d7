"""Choice windows, the progress-driven default, episodes and the paywall, against a real server process."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import websockets

from tests.helpers.processes import ServerProcess
from tests.helpers.viewer import STORY, ws_url

pytestmark = pytest.mark.slow  # a real server renders the clips these viewers play

SECRET = "test-entitlement-secret-0123456789abcdef"
BACKSTOP_S = 2
REPORTS = 10
"""Progress reports a test sends for one clip's playback (a player sends about one a second)."""


class Player:
    """A client of the play protocol that keeps every frame, ``clip`` frames included."""

    def __init__(self, websocket: websockets.ClientConnection) -> None:
        self.websocket = websocket

    async def send(self, message: dict[str, Any]) -> None:
        await self.websocket.send(json.dumps(message))

    async def receive(self, timeout: float = 120) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.websocket.recv(), timeout))
        return message

    async def expect(self, kind: str) -> dict[str, Any]:
        while True:
            message = await self.receive()
            if message["type"] == "clip" and kind != "clip":
                continue
            assert message["type"] == kind, message
            return message

    async def silent(self, seconds: float) -> None:
        """Nothing but ``clip`` frames arrives for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await self.receive(timeout=left)
            except TimeoutError:
                return
            assert message["type"] == "clip", message

    async def ready(self, scene: dict[str, Any]) -> tuple[float, dict[str, float]]:
        """The scene's clip duration and choice window, from the scene or the ``clip`` frame that follows it."""
        if scene["clip"] is not None:
            return scene["duration"], scene["choice_window"]
        while True:
            message = await self.receive(timeout=300)
            if message["type"] == "clip" and message["scene"] == scene["scene"]:
                return message["duration"], message["choice_window"]

    async def start(self, viewer: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        await self.send({"type": "start", "story": STORY, **({"viewer": viewer} if viewer else {})})
        session = await self.expect("session")
        return session, await self.expect("scene")


def check_scene(scene: dict[str, Any], duration: float | None, window: dict[str, float] | None) -> None:
    assert set(scene["episode"]) == {"number", "title", "free"}
    if scene["ending"]:
        assert scene["choices"] == [] and window is None
        return
    assert sum(1 for choice in scene["choices"] if choice["default"] is True) == 1
    assert duration is not None and window is not None
    assert 0 <= window["opens_at"] < window["closes_at"]


@pytest.fixture(scope="module")
def paywalled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("paywall") / "data", REELFORK_ENTITLEMENT_SECRET=SECRET, REELFORK_DEMO_UNLOCK="true",
        REELFORK_CHOICE_BACKSTOP_S=str(BACKSTOP_S),
    )
    yield server
    server.stop()


async def test_windows_episodes_and_the_default_taken_by_progress(live_server: str) -> None:
    async with websockets.connect(ws_url(live_server)) as websocket:
        player = Player(websocket)
        session, boarding = await player.start()
        assert session["protocol"] == 2 and session["viewer"] and session["viewer"] != session["session"]
        duration, window = await player.ready(boarding)
        check_scene(boarding, duration, window)
        assert abs(window["closes_at"] - duration) < 0.1  # the story's window ends with the clip
        assert boarding["episode"] == {"number": 1, "title": "The Last Ferry", "free": True}
        assert boarding["position"] == 0
        (only,) = boarding["choices"]
        assert only["default"] is True

        # Playback reports up to the end of the window, and no choose. Sent at once, so a fixed number of them
        # (REPORTS, whatever the clip's length) stays within the connection's message burst with the 21 below.
        for step in range(REPORTS + 1):
            position = window["closes_at"] * step / REPORTS
            await player.send({"type": "progress", "scene": "boarding", "position": position, "playing": True})
        heiress = await player.expect("scene")
        assert heiress["scene"] == "heiress" and heiress["episode"]["number"] == 1

        duration, window = await player.ready(heiress)
        check_scene(heiress, duration, window)
        inside = (window["opens_at"] + window["closes_at"]) / 2
        for _ in range(21):  # 20 s of a paused viewer's reports, sent at once: the position never advances
            await player.send({"type": "progress", "scene": "heiress", "position": inside, "playing": False})
        await player.silent(2)

        await player.send({"type": "choose", "choice": "next", "scene": "heiress"})
        blackout = await player.expect("scene")
        assert blackout["scene"] == "blackout"
        assert blackout["episode"] == {"number": 2, "title": "Dead in the Water", "free": True}  # no paywall here
        assert [c["id"] for c in blackout["choices"] if c["default"]] == ["hold"]  # the authored default
        check_scene(blackout, *await player.ready(blackout))

        await player.send({"type": "choose", "choice": "next", "scene": "heiress"})  # late: heiress is over
        refusal = await player.expect("error")
        assert refusal["code"] == "stale_choice"
        await player.send({"type": "progress", "scene": "heiress", "position": 999, "playing": True})
        await player.silent(1)  # a late report past the old scene's window moves nothing
        token = session["session"]

    async with websockets.connect(ws_url(live_server)) as websocket:
        player = Player(websocket)
        await player.send({"type": "resume", "session": token})
        resumed = await player.expect("session")
        assert resumed["viewer"] == session["viewer"]
        assert (await player.expect("scene"))["scene"] == "blackout"


async def test_a_choose_before_the_window_is_honoured_once_and_resume_keeps_the_position(live_server: str) -> None:
    async with websockets.connect(ws_url(live_server)) as websocket:
        player = Player(websocket)
        session, boarding = await player.start(viewer="acct:early.bird")
        assert session["viewer"] == "acct:early.bird" and boarding["scene"] == "boarding"
        await player.send({"type": "choose", "choice": "next", "scene": "boarding"})  # at position 0
        heiress = await player.expect("scene")
        assert heiress["scene"] == "heiress"
        await player.send({"type": "choose", "choice": "next", "scene": "boarding"})  # the same choice again
        assert (await player.expect("error"))["code"] == "stale_choice"
        await player.ready(heiress)
        await player.send({"type": "progress", "scene": "heiress", "position": 1.5, "playing": False})
        await player.silent(1)

    async with websockets.connect(ws_url(live_server)) as websocket:
        player = Player(websocket)
        await player.send({"type": "resume", "session": session["session"]})
        await player.expect("session")
        resumed = await player.expect("scene")
        assert resumed["scene"] == "heiress" and resumed["position"] == 1.5


async def test_the_demo_unlock_is_off_by_default(live_server: str) -> None:
    response = httpx.post(f"{live_server}/v1/demo/entitlements", json={"session": "whatever"})
    assert response.status_code == 404 and "REELFORK_DEMO_UNLOCK" in response.json()["detail"]


def entitlement(viewer: str, *, story: str = STORY, secret: str = SECRET, ttl: float = 600,
                episodes: list[int] | str = "all") -> str:
    claims = {"sub": viewer, "story": story, "episodes": episodes, "exp": int(time.time() + ttl)}
    return jwt.encode(claims, secret, algorithm="HS256")


async def locked_player(player: Player, viewer: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start (as ``viewer``) and play episode 1 to its end: the session, and the ``locked`` frame for episode 2."""
    session, scene = await player.start(viewer=viewer)
    assert scene["episode"]["free"] is True
    await player.send({"type": "choose", "choice": "next"})
    assert (await player.expect("scene"))["scene"] == "heiress"
    await player.send({"type": "choose", "choice": "next"})
    return session, await player.expect("locked")


async def test_the_paywall_locks_episode_two_until_a_valid_entitlement(paywalled: ServerProcess) -> None:
    viewer = "acct:1234"
    async with websockets.connect(ws_url(paywalled.url)) as websocket:
        player = Player(websocket)
        session, locked = await locked_player(player, viewer)
        assert locked == {"type": "locked", "episode": {"number": 2, "title": "Dead in the Water", "free": False},
                          "price": {"coins": 60}}
        await player.send({"type": "choose", "choice": "hold"})
        assert (await player.expect("error"))["code"] == "locked"
        bad = {
            "another secret": entitlement(viewer, secret="another-secret-0123456789abcdefghijkl"),
            "expired": entitlement(viewer, ttl=-60),
            "another viewer": entitlement("acct:9999"),
            "another story": entitlement(viewer, story="other-story"),
            "another episode": entitlement(viewer, episodes=[3]),
            "not a token": "not-a-jwt",
        }
        for reason, token in bad.items():
            await player.send({"type": "unlock", "entitlement": token})
            refusal = await player.expect("error")
            assert refusal["code"] == "invalid_entitlement", (reason, refusal)
        await player.send({"type": "choose", "choice": "hold"})
        assert (await player.expect("error"))["code"] == "locked"
        await player.send({"type": "resume", "session": "x" * 22})
        assert (await player.expect("error"))["code"] == "session_in_use"

        session_token = session["session"]
        async with websockets.connect(ws_url(paywalled.url)) as other:  # resume: still locked
            again = Player(other)
            await again.send({"type": "resume", "session": session_token})
            await again.expect("session")
            assert (await again.expect("locked"))["episode"]["number"] == 2

        await player.send({"type": "unlock", "entitlement": entitlement(viewer, episodes=[2])})
        blackout = await player.expect("scene")
        assert blackout["scene"] == "blackout"
        assert blackout["episode"] == {"number": 2, "title": "Dead in the Water", "free": False}

    async with websockets.connect(ws_url(paywalled.url)) as websocket:
        player = Player(websocket)
        await player.send({"type": "resume", "session": session_token})
        await player.expect("session")
        assert (await player.expect("scene"))["scene"] == "blackout"


async def test_the_demo_unlock_mints_for_the_locked_episode(paywalled: ServerProcess) -> None:
    async with websockets.connect(ws_url(paywalled.url)) as websocket:
        player = Player(websocket)
        demo = f"{paywalled.url}/v1/demo/entitlements"
        async with httpx.AsyncClient() as http:
            assert (await http.post(demo, json={"session": "nope"})).status_code == 404
            session, _ = await locked_player(player)
            minted = await http.post(demo, json={"session": session["session"]})
            assert minted.status_code == 200
            await player.send({"type": "unlock", "entitlement": minted.json()["entitlement"]})
            assert (await player.expect("scene"))["scene"] == "blackout"
            again = await http.post(demo, json={"session": session["session"]})
            assert again.status_code == 409  # no longer locked
        claims = jwt.decode(minted.json()["entitlement"], SECRET, algorithms=["HS256"])
        assert (claims["sub"], claims["story"], claims["episodes"]) == (session["viewer"], STORY, [2])


def test_the_catalogue_lists_episodes_free_count_and_prices(paywalled: ServerProcess, live_server: str) -> None:
    (story,) = [s for s in httpx.get(f"{paywalled.url}/v1/stories").json()["stories"] if s["id"] == STORY]
    assert story["free_episodes"] == 1
    assert [(e["number"], e["free"], e["price"]) for e in story["episodes"]] == [
        (1, True, None), (2, False, {"coins": 60}), (3, False, {"coins": 80}),
    ]
    (free,) = [s for s in httpx.get(f"{live_server}/v1/stories").json()["stories"] if s["id"] == STORY]
    assert free["free_episodes"] == 3 and all(e["free"] for e in free["episodes"])



async def test_a_viewer_who_never_reports_gets_the_default_after_the_backstop(paywalled: ServerProcess) -> None:
    async with websockets.connect(ws_url(paywalled.url)) as websocket:
        player = Player(websocket)
        _, boarding = await player.start()
        duration, window = await player.ready(boarding)
        assert window["closes_at"] == pytest.approx(duration, abs=0.1)
        heiress = await player.expect("scene")  # no progress, no choose: the backstop takes the default
        assert heiress["scene"] == "heiress"
