"""The play protocol end to end, against a real server process with real Redis, writer and renderer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.helpers.media import assert_labelled, assert_vertical_h264_aac
from tests.helpers.viewer import STORY, Viewer, authored_target, ws_url

pytestmark = pytest.mark.slow  # a real server renders every clip these viewers play


async def play_to_end(base: str, pick: int | dict[str, str], tmp_path: Path) -> list[dict[str, Any]]:
    scenes: list[dict[str, Any]] = []
    async with websockets.connect(ws_url(base)) as websocket:
        viewer = Viewer(websocket)
        await viewer.send({"type": "start", "story": STORY})
        session = await viewer.expect("session")
        assert len(session["session"]) >= 22
        scene = await viewer.expect("scene")
        async with httpx.AsyncClient() as http:
            while True:
                scenes.append(scene)
                url = await viewer.clip_for(scene)
                response = await http.get(url)
                assert response.status_code == 200
                file = tmp_path / f"{len(scenes):02d}-{scene['scene']}.mp4"
                file.write_bytes(response.content)
                assert_vertical_h264_aac(file)
                assert_labelled(file)
                if scene["ending"]:
                    assert scene["choices"] == []
                    return scenes
                assert len(scenes) < 30, "no ending after 30 scenes"
                if isinstance(pick, dict) and scene["scene"] in pick:
                    choice = pick[scene["scene"]]
                else:
                    choice = scene["choices"][0 if isinstance(pick, dict) else pick]["id"]
                scene = await viewer.choose(choice)


async def test_first_choice_viewer_reaches_an_ending_with_a_playable_scene_for_every_authored_scene(
    live_server: str, tmp_path: Path
) -> None:
    scenes = await play_to_end(live_server, 0, tmp_path)
    assert scenes[-1]["ending"]
    chosen = scenes[1:]  # the start scene was not chosen; every later one was
    # Playable at once: the complete clip, or its stream (the first segment stored) with the planned duration.
    playable = [scene for scene in chosen if scene["clip"] is not None or scene["stream"] is not None]
    assert all(scene["duration"] is not None for scene in playable)
    assert len(playable) == len([scene for scene in chosen if not scene["scene"].startswith("g-")]), [
        (scene["scene"], scene["clip"], scene["stream"]) for scene in chosen
    ]
    # A second viewer on the same path: each first choice's scene is rendered now (the first viewer played it), so
    # the choice comes with its stream, for a player to pre-buffer.
    (tmp_path / "again").mkdir()
    again = await play_to_end(live_server, 0, tmp_path / "again")
    authored = [scene for scene in again[:-1] if authored_target(live_server, scene["scene"], scene["choices"][0]["id"])
                not in ("None", "")]
    offered = [scene["choices"][0]["stream"] for scene in authored]
    assert offered and all(offered), [(scene["scene"], scene["choices"]) for scene in again]
    async with httpx.AsyncClient() as http:
        for url in offered[:3]:
            playlist = await http.get(url)
            assert playlist.status_code == 200 and playlist.text.startswith("#EXTM3U"), playlist.text


async def test_open_node_is_written_by_the_llm_and_played_to_an_ending(live_server: str, tmp_path: Path) -> None:
    scenes = await play_to_end(live_server, {"blackout": "cabin"}, tmp_path)
    ids = [scene["scene"] for scene in scenes]
    after_blackout = ids[ids.index("blackout") + 1]
    # Either a written scene (content-addressed id) or the creator's declared fallback, never an error.
    assert after_blackout.startswith("g-") or after_blackout == "cargo-hold", ids
    assert scenes[-1]["ending"]


async def test_two_viewers_at_the_same_open_node_get_the_same_written_scene(live_server: str) -> None:
    async def reach_open_node() -> str:
        async with websockets.connect(ws_url(live_server)) as websocket:
            viewer = Viewer(websocket)
            await viewer.send({"type": "start", "story": STORY})
            await viewer.expect("session")
            scene = await viewer.expect("scene")
            while scene["scene"] != "blackout":
                await viewer.send({"type": "choose", "choice": scene["choices"][0]["id"]})
                scene = await viewer.expect("scene")
            return str((await viewer.choose("cabin"))["scene"])

    first, second = await asyncio.gather(reach_open_node(), reach_open_node())
    assert first == second


async def test_bad_input_gets_stable_error_codes_and_the_session_stays_usable(live_server: str) -> None:
    async with websockets.connect(ws_url(live_server)) as websocket:
        viewer = Viewer(websocket)
        await viewer.send({"type": "choose", "choice": "next"})
        assert (await viewer.expect("error"))["code"] == "no_session"
        await viewer.send({"type": "start", "story": STORY})
        token = (await viewer.expect("session"))["session"]
        first = await viewer.expect("scene")

        cases: list[tuple[dict[str, Any] | str, str]] = [
            ("{not json", "bad_json"),
            ("[1, 2, 3]", "invalid_message"),
            ({"type": "dance"}, "unknown_type"),
            ({"choice": "next"}, "unknown_type"),
            ({"type": "start", "story": "no-such-story"}, "unknown_story"),
            ({"type": "start", "story": "../../etc/passwd"}, "invalid_message"),
            ({"type": "choose", "choice": "no-such-choice"}, "unknown_choice"),
            ({"type": "choose"}, "invalid_message"),
            ({"type": "progress", "scene": first["scene"], "position": -3}, "invalid_message"),
            ({"type": "resume", "session": "made-up-token-000000000"}, "session_in_use"),
        ]
        for message, code in cases:
            await viewer.send(message)
            reply = await viewer.expect("error")
            assert reply["code"] == code, (message, reply)
            assert reply["message"]

        await viewer.send({"type": "choose", "choice": first["choices"][0]["id"]})
        second = await viewer.expect("scene")
        assert second["scene"] == authored_target(live_server, first["scene"], first["choices"][0]["id"])

    async with websockets.connect(ws_url(live_server)) as websocket:
        other = Viewer(websocket)
        await other.send({"type": "resume", "session": "AAAAAAAAAAAAAAAAAAAAAA"})
        assert (await other.expect("error"))["code"] == "unknown_session"
        await other.send({"type": "start", "story": STORY})
        await other.expect("session")
        await other.expect("scene")
        # Someone else's token on a connection that plays its own session is refused.
        await other.send({"type": "resume", "session": token})
        assert (await other.expect("error"))["code"] == "session_in_use"

    async with websockets.connect(ws_url(live_server)) as websocket:
        again = Viewer(websocket)
        await again.send({"type": "resume", "session": token})
        assert (await again.expect("session"))["session"] == token
        assert (await again.expect("scene"))["scene"] == second["scene"]


async def test_a_one_megabyte_message_closes_the_socket_and_resume_continues(live_server: str) -> None:
    async with websockets.connect(ws_url(live_server), max_size=None) as bystander_socket:
        bystander = Viewer(bystander_socket)
        await bystander.send({"type": "start", "story": STORY})
        await bystander.expect("session")
        bystander_scene = await bystander.expect("scene")

        async with websockets.connect(ws_url(live_server)) as websocket:
            viewer = Viewer(websocket)
            await viewer.send({"type": "start", "story": STORY})
            token = (await viewer.expect("session"))["session"]
            scene = await viewer.expect("scene")
            await viewer.send({"type": "choose", "choice": scene["choices"][0]["id"]})
            scene = await viewer.expect("scene")
            await viewer.send(json.dumps({"type": "progress", "scene": "x" * 1_000_000, "position": 1}))
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    reply = await viewer.receive(timeout=30)
                    if reply["type"] == "error":
                        break
            if closed.value.rcvd is not None:
                assert closed.value.rcvd.code == 1009

        async with websockets.connect(ws_url(live_server)) as websocket:
            viewer = Viewer(websocket)
            await viewer.send({"type": "resume", "session": token})
            await viewer.expect("session")
            assert (await viewer.expect("scene"))["scene"] == scene["scene"]

        choice = bystander_scene["choices"][0]["id"]
        await bystander.send({"type": "choose", "choice": choice})
        expected = authored_target(live_server, bystander_scene["scene"], choice)
        assert (await bystander.expect("scene"))["scene"] == expected


async def test_media_supports_range_requests(live_server: str, tmp_path: Path) -> None:
    async with websockets.connect(ws_url(live_server)) as websocket:
        viewer = Viewer(websocket)
        await viewer.send({"type": "start", "story": STORY})
        await viewer.expect("session")
        url = await viewer.clip_for(await viewer.expect("scene"))
    async with httpx.AsyncClient() as http:
        whole = await http.get(url)
        part = await http.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
