"""A websocket fuzzer: thousands of malformed messages interleaved with valid ones on one connection get protocol
error codes, never ``internal``, while another viewer on another connection plays on undisturbed.

The server has a paywall (an entitlement secret): ``unlock`` is checked for real, with signed entitlements both
valid and wrong (another viewer or story, expired, odd episodes) beside unsigned garbage."""

from __future__ import annotations

import asyncio
import collections
import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import websockets
from reelfork.server.entitlements import Unlocked, mint

from tests.helpers.processes import ServerProcess
from tests.helpers.viewer import STORY, ws_url

pytestmark = pytest.mark.slow

MALFORMED = 5000
SETTINGS = {
    "REELFORK_RENDER_WORKERS": "0",  # nothing renders: scenes come with clip null at once
    "REELFORK_WRITE_WORKERS": "0",
    "REELFORK_PRODUCE_WORKERS": "0",
    "REELFORK_CHOICE_WAIT_S": "0",
    "REELFORK_MESSAGE_RATE": "100000",  # every fuzzed message reaches the parser
    "REELFORK_MESSAGE_BURST": "1000000",
    "REELFORK_ENTITLEMENT_SECRET": "fuzz-entitlement-secret-of-32-bytes!",  # episode 2 on is paid: unlock is real
}
SECRET = SETTINGS["REELFORK_ENTITLEMENT_SECRET"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("play-fuzz") / "data", **SETTINGS)
    yield process
    process.stop()


def scalar(rng: random.Random) -> Any:
    return rng.choice([
        None, True, False, 0, -1, 2**63, 1e308, -1e-308, "", "x", "last-ferry", "\x00", "\u202e", "é" * 50,
        "../../etc/passwd", "a" * rng.randint(100, 10_000), rng.random(), rng.randint(-(10**30), 10**30), [], {},
    ])


def malformed(rng: random.Random) -> str | bytes:
    """One hostile frame under the message limit (a larger one closes the socket with 1009, by design)."""
    frame = hostile(rng)
    return frame if len(frame) < 60_000 else frame[:60_000]


def hostile(rng: random.Random) -> str | bytes:
    """Broken JSON, deep nesting, huge numbers, wrong types, unknown fields and values."""
    kind = rng.randrange(14)
    types = ["start", "resume", "choose", "progress", "unlock", "dance", "", "START", 7, None]
    fields = ["story", "viewer", "session", "choice", "scene", "position", "playing", "entitlement", "type", "x"]
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))  # a binary frame
    if kind == 1:
        text = json.dumps({"type": rng.choice(types[:5]), rng.choice(fields): scalar(rng)})
        return text[: rng.randint(0, len(text) - 1)]  # truncated
    if kind == 2:
        depth = rng.choice([100, 900, 1000, 5000, 10_000])
        opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
        inner = opener * depth + "1" + closer * depth
        return rng.choice([inner, '{"type":"choose","choice":' + inner + "}", '{"type":' + inner + "}"])
    if kind == 3:
        digits = "9" * rng.choice([4301, 5000, 30_000])
        return rng.choice(['{"type":"progress","scene":"a","position":' + digits + "}", "[" + digits + "]", digits])
    if kind == 4:
        return rng.choice(["NaN", "Infinity", '{"type":"progress","scene":"s","position":NaN}', "null", "true", '""'])
    if kind == 5:
        return "".join(chr(rng.randint(1, 0xD7FF)) for _ in range(rng.randint(1, 300)))  # random text
    message: dict[str, Any] = {"type": rng.choice(types)}
    for _ in range(rng.randint(0, 4)):
        message[rng.choice(fields)] = scalar(rng)
    if kind == 6:
        message = {"type": "choose", "choice": rng.choice(["nope", "", 1, None]), "scene": scalar(rng)}
    if kind == 7:
        message = {"type": "resume", "session": rng.choice(["x" * 22, "", 5, "a" * 5000])}
    if kind == 8:
        message = {"type": "unlock", "entitlement": rng.choice(["a.b.c", "e30.e30.", "x" * 9000, "ey" * 100])}
    if kind == 9:
        message = {"type": "progress", "scene": scalar(rng), "position": scalar(rng), "playing": scalar(rng)}
    if kind == 10:
        message = {"type": "start", "story": rng.choice([STORY, scalar(rng)]), "viewer": scalar(rng)}
    if kind == 11:
        message = {"type": "unlock", "entitlement": wrong_entitlement(rng)}
    if kind == 12:
        message = {"type": "choose", "choice": rng.choice(["c1", "next", scalar(rng)]), "scene": scalar(rng),
                   rng.choice(fields): scalar(rng)}
    return json.dumps(message)


def wrong_entitlement(rng: random.Random) -> str:
    """Signed with the server's secret, but not for this viewer and story, expired, or with odd claims."""
    claims: dict[str, Any] = {"sub": "v-someone", "story": STORY, "episodes": "all", "exp": 4_000_000_000}
    change = rng.randrange(6)
    if change == 0:
        claims["sub"] = scalar(rng)
    elif change == 1:
        claims["story"] = scalar(rng)
    elif change == 2:
        claims["episodes"] = rng.choice([[0], [-1], [10**6], [2**70], "some", {"a": 1}, [None], [2] * 1000, None])
    elif change == 3:
        claims["exp"] = rng.choice([0, -1, "soon", 10**30, None, 1.5])
    elif change == 4:
        claims.pop(rng.choice(list(claims)))
    else:
        return jwt.encode(claims, "another-secret-" + "x" * 64, algorithm=rng.choice(["HS256", "HS512"]))
    try:
        return jwt.encode(claims, SECRET, algorithm="HS256")
    except (TypeError, ValueError, OverflowError):  # a claim PyJWT cannot encode
        return jwt.encode({"sub": claims.get("sub")}, SECRET, algorithm="HS256") if change == 0 else "a.b.c"


class Reader:
    """Every frame a connection receives, in the background, with the latest scene."""

    def __init__(self, socket: websockets.ClientConnection) -> None:
        self.socket = socket
        self.frames: list[dict[str, Any]] = []
        self.scene: dict[str, Any] | None = None
        self.viewer: str | None = None
        """The viewer id of the latest session."""
        self.locked = False
        """Whether the latest answer held the viewer at a paid episode."""
        self.arrived = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.socket:
            frame = json.loads(raw)
            self.frames.append(frame)
            if frame["type"] == "scene":
                self.scene, self.locked = frame, False
            elif frame["type"] == "session":
                self.viewer = frame["viewer"]
            elif frame["type"] == "locked":
                self.locked = True
            self.arrived.set()

    async def wait_for(self, found: Any, timeout: float = 120) -> dict[str, Any]:
        async def search() -> dict[str, Any]:
            while True:
                for frame in self.frames:
                    if found(frame):
                        return frame
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(search(), timeout)


def authored_choices(story: dict[str, Any]) -> dict[str, list[str]]:
    """Each authored scene's choices that lead to another authored scene (nothing needs the writer)."""
    return {s["id"]: [c["id"] for c in s["choices"] if c.get("target")] for s in story["scenes"]}


async def fuzz(url: str, authored: dict[str, list[str]], rng: random.Random) -> tuple[int, int, list[dict[str, Any]]]:
    async with websockets.connect(url, max_size=None) as socket:
        reader = Reader(socket)
        sent = valid = 0
        for number in range(MALFORMED):
            await socket.send(malformed(rng))
            sent += 1
            if number % 5 == 0:  # a valid message between the hostile ones
                await socket.send(json.dumps(well_formed(reader, authored, rng)))
                valid += 1
            if number % 200 == 0:
                await asyncio.sleep(0)
        await socket.send('{"type":"the-end"}')
        await reader.wait_for(lambda f: f["type"] == "error" and "the-end" in f["message"])
        reader.task.cancel()
        return sent, valid, reader.frames


def well_formed(reader: Reader, authored: dict[str, list[str]], rng: random.Random) -> dict[str, Any]:
    """A well-formed message of every kind a player sends, for where the connection is."""
    scene = reader.scene
    options = authored.get(scene["scene"], []) if scene is not None and not scene["ending"] else []
    if reader.locked and reader.viewer is not None:
        return {"type": "unlock", "entitlement": mint(SECRET, viewer=reader.viewer, story=STORY, episodes="all")}
    if scene is None or not options or rng.random() < 0.05:
        start: dict[str, Any] = {"type": "start", "story": STORY}
        return start | ({"viewer": f"v-fuzz-{rng.randrange(1000)}"} if rng.random() < 0.5 else {})
    draw = rng.random()
    if draw < 0.4:
        playing = {"playing": rng.random() < 0.5} if rng.random() < 0.5 else {}
        return {"type": "progress", "scene": scene["scene"], "position": rng.random() * 3} | playing
    if draw < 0.5 and reader.viewer is not None:
        episodes: Unlocked = rng.choice([[2], [2, 3], "all"])
        return {"type": "unlock", "entitlement": mint(SECRET, viewer=reader.viewer, story=STORY, episodes=episodes)}
    choose = {"type": "choose", "choice": rng.choice(options)}
    return choose | ({"scene": scene["scene"]} if rng.random() < 0.5 else {})


async def play(url: str, authored: dict[str, list[str]], stop: asyncio.Event) -> tuple[int, list[dict[str, Any]]]:
    """An ordinary viewer: start, choose authored choices to an ending, start again, until ``stop``."""
    scenes = 0
    problems: list[dict[str, Any]] = []
    async with websockets.connect(url) as socket:
        while not stop.is_set():
            await socket.send(json.dumps({"type": "start", "story": STORY}))
            frames = [json.loads(await socket.recv()), json.loads(await socket.recv())]
            problems += [f for f in frames if f["type"] not in {"session", "scene"}]
            viewer, scene = frames[0].get("viewer", ""), frames[-1]
            while scene.get("type") == "scene" and not scene["ending"] and authored.get(scene["scene"]):
                scenes += 1
                await socket.send(json.dumps({"type": "choose", "choice": authored[scene["scene"]][0]}))
                await socket.send(json.dumps({"type": "progress", "scene": scene["scene"], "position": 1.0}))
                scene = json.loads(await asyncio.wait_for(socket.recv(), 60))
                if scene["type"] == "locked":  # a paid episode: this viewer has bought the story
                    entitlement = mint(SECRET, viewer=viewer, story=STORY, episodes="all")
                    await socket.send(json.dumps({"type": "unlock", "entitlement": entitlement}))
                    scene = json.loads(await asyncio.wait_for(socket.recv(), 60))
                if scene["type"] != "scene":
                    problems.append(scene)
    return scenes, problems


async def leave_mid_answer(url: str) -> None:
    """A client that sends and leaves without reading: the server's answers meet a closed socket."""
    socket = await websockets.connect(url)
    for _ in range(50):
        await socket.send(json.dumps({"type": "start", "story": STORY}))
    socket.transport.abort()


def test_malformed_messages_get_protocol_errors_and_another_viewer_plays_on(server: ServerProcess) -> None:
    story = httpx.get(f"{server.url}/v1/stories/{STORY}").json()["story"]
    authored = authored_choices(story)
    url = ws_url(server.url)

    async def run() -> tuple[tuple[int, int, list[dict[str, Any]]], tuple[int, list[dict[str, Any]]]]:
        stop = asyncio.Event()
        viewer = asyncio.create_task(play(url, authored, stop))
        fuzzed = await fuzz(url, authored, random.Random(24))
        stop.set()
        await leave_mid_answer(url)
        await asyncio.sleep(1)
        return fuzzed, await viewer

    (sent, valid, frames), (scenes, problems) = asyncio.run(run())
    codes = collections.Counter(f["code"] for f in frames if f["type"] == "error")
    kinds = collections.Counter(f["type"] for f in frames)
    print(f"websocket fuzz: {sent} malformed + {valid} valid messages on one connection; frames {dict(kinds)}; "
          f"error codes {dict(sorted(codes.items()))}; the other viewer played {scenes} scenes, {len(problems)} errors")
    assert sent >= 5000
    assert codes["internal"] == 0
    assert kinds["scene"] > 100 and kinds["locked"] > 0 and codes["invalid_entitlement"] > 0
    assert problems == [] and scenes > 10
    log = server.log_tail(10_000_000)
    assert "Traceback" not in log, log[-4000:]
