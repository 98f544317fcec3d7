"""The creators' REST API and the player page, against a real server process."""

from __future__ import annotations

import json
from typing import Any

import httpx
import websockets
import yaml
from reelfork.server.runtime import seed_story_files

from tests.helpers.processes import ServerProcess
from tests.helpers.viewer import Viewer, ws_url


def fork_of_seed(story_id: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(seed_story_files()[0].read_text())
    data["id"] = story_id
    return data


def test_health_and_story_list(live_server: str) -> None:
    assert httpx.get(f"{live_server}/healthz").json()["status"] == "ok"
    stories = httpx.get(f"{live_server}/v1/stories").json()["stories"]
    assert {"id": "last-ferry", "version": 1}.items() <= stories[0].items()
    assert httpx.get(f"{live_server}/v1/stories/last-ferry").json()["story"]["start"] == "boarding"
    assert httpx.get(f"{live_server}/v1/stories/nope").status_code == 404


def test_player_page_is_served(live_server: str) -> None:
    page = httpx.get(f"{live_server}/")
    assert page.status_code == 200 and "<video" in page.text


def test_publishing_needs_the_creator_token(live_server_process: ServerProcess) -> None:
    url = f"{live_server_process.url}/v1/stories"
    body = json.dumps(fork_of_seed("needs-token"))
    assert httpx.post(url, content=body).status_code == 401
    assert httpx.post(url, content=body, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_invalid_story_gets_422_with_every_located_problem(live_server_process: ServerProcess) -> None:
    headers = {"Authorization": f"Bearer {live_server_process.creator_token}"}
    url = f"{live_server_process.url}/v1/stories"
    data = fork_of_seed("broken")
    data["scenes"][0]["choices"][0]["target"] = "nowhere"
    data["scenes"][1]["lines"][0]["speaker"] = "ghost"
    response = httpx.post(url, content=json.dumps(data), headers=headers)
    assert response.status_code == 422
    wheres = {problem["where"] for problem in response.json()["detail"]}
    assert {"scenes[boarding].choices[next].target", "scenes[heiress].lines[l1].speaker"} <= wheres
    malformed = httpx.post(url, content="id: [oops", headers=headers)
    assert malformed.status_code == 422 and malformed.json()["detail"][0]["where"].startswith("body:")
    assert httpx.get(f"{live_server_process.url}/v1/stories/broken").status_code == 404


async def test_a_session_keeps_its_version_after_a_new_one_is_published(live_server_process: ServerProcess) -> None:
    base = live_server_process.url
    headers = {"Authorization": f"Bearer {live_server_process.creator_token}"}
    data = fork_of_seed("pinned")
    first = httpx.post(f"{base}/v1/stories", content=yaml.safe_dump(data), headers=headers)
    assert first.status_code == 201 and first.json()["version"] == 1
    assert httpx.post(f"{base}/v1/stories", content=yaml.safe_dump(data), headers=headers).status_code == 200

    async with websockets.connect(ws_url(base)) as websocket:
        old = Viewer(websocket)
        await old.send({"type": "start", "story": "pinned"})
        assert (await old.expect("session"))["version"] == 1
        await old.expect("scene")

        edited = fork_of_seed("pinned")
        edited["scenes"][0]["choices"][0]["label"] = "Onward"
        second = httpx.post(f"{base}/v1/stories", content=json.dumps(edited), headers=headers)
        assert second.status_code == 201 and second.json()["version"] == 2
        assert httpx.get(f"{base}/v1/stories/pinned/versions").json()["versions"] == [1, 2]

        await old.send({"type": "choose", "choice": "next"})
        assert (await old.expect("scene"))["scene"] == "heiress"

    async with websockets.connect(ws_url(base)) as websocket:
        new = Viewer(websocket)
        await new.send({"type": "start", "story": "pinned"})
        assert (await new.expect("session"))["version"] == 2
        assert (await new.expect("scene"))["choices"][0]["label"] == "Onward"
