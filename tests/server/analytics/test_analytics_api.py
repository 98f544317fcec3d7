"""The creators' analytics, end to end: real viewers play the seed story along known paths against a real server,
and the report counts exactly what they did."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pyarrow.parquet as pq
import pytest
import websockets

from tests.helpers.processes import ServerProcess
from tests.helpers.viewer import STORY, Viewer, ws_url

pytestmark = pytest.mark.slow  # a real server renders the clips these viewers play

SECRET = "analytics-test-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("analytics") / "data", REELFORK_ENTITLEMENT_SECRET=SECRET)
    yield process
    process.stop()


def entitlement(viewer: str) -> str:
    claims = {"sub": viewer, "story": STORY, "episodes": "all", "exp": int(time.time() + 600)}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def window_of(viewer: Viewer, scene: dict[str, Any]) -> dict[str, float]:
    """The scene's choice window, from the scene or the ``clip`` frame that follows it."""
    if scene["choice_window"] is not None:
        return dict(scene["choice_window"])
    while True:
        message = json.loads(await asyncio.wait_for(viewer.websocket.recv(), 300))
        if message["type"] == "clip" and message["scene"] == scene["scene"]:
            return dict(message["choice_window"])


async def start(url: str, viewer_id: str) -> tuple[websockets.ClientConnection, Viewer, dict[str, Any]]:
    websocket = await websockets.connect(ws_url(url))
    viewer = Viewer(websocket)
    await viewer.send({"type": "start", "story": STORY, "viewer": viewer_id})
    session = await viewer.expect("session")
    assert (await viewer.expect("scene"))["scene"] == "boarding"
    return websocket, viewer, session


async def to_paywall(viewer: Viewer) -> None:
    assert (await viewer.choose("next"))["scene"] == "heiress"
    await viewer.send({"type": "choose", "choice": "next"})
    assert (await viewer.expect("locked"))["episode"]["number"] == 2


async def unlocking(url: str, viewer_id: str, choice: str | None) -> float:
    """Episode 1, the paywall, an unlock, and at blackout ``choice`` (``None``: the default, by progress).
    Returns the position reported at blackout."""
    websocket, viewer, _ = await start(url, viewer_id)
    async with websocket:
        await to_paywall(viewer)
        await viewer.send({"type": "unlock", "entitlement": entitlement(viewer_id)})
        blackout = await viewer.expect("scene")
        assert blackout["scene"] == "blackout"
        if choice is not None:
            target = {"captain": "wheelhouse", "hold": "cargo-hold"}[choice]
            assert (await viewer.choose(choice))["scene"] == target
            return 0.0
        closes = (await window_of(viewer, blackout))["closes_at"]
        await viewer.send({"type": "progress", "scene": "blackout", "position": closes, "playing": True})
        assert (await viewer.expect("scene"))["scene"] == "cargo-hold"
        return float(closes)


async def stays_at_paywall(url: str, viewer_id: str) -> None:
    websocket, viewer, _ = await start(url, viewer_id)
    async with websocket:
        await to_paywall(viewer)


async def leaves_mid_scene(url: str, viewer_id: str) -> None:
    websocket, viewer, _ = await start(url, viewer_id)
    async with websocket:
        for position in (0.0, 1.0, 2.0):  # sent at once: one sample a second, the last one kept for later
            await viewer.send({"type": "progress", "scene": "boarding", "position": position, "playing": True})


async def leaves_and_resumes(url: str, viewer_id: str) -> None:
    websocket, viewer, session = await start(url, viewer_id)
    async with websocket:
        assert (await viewer.choose("next"))["scene"] == "heiress"
    await asyncio.sleep(0.5)  # the disconnect is recorded before the resume
    async with websockets.connect(ws_url(url)) as again:
        viewer = Viewer(again)
        await viewer.send({"type": "resume", "session": session["session"]})
        await viewer.expect("session")
        assert (await viewer.expect("scene"))["scene"] == "heiress"
        await viewer.send({"type": "choose", "choice": "next"})
        assert (await viewer.expect("locked"))["episode"]["number"] == 2


def settled(url: str, token: str, sessions: int, left: int) -> dict[str, Any]:
    """The report once every session's last event is counted (events reach Redis within a moment)."""
    deadline = time.monotonic() + 30
    while True:
        response = httpx.get(f"{url}/v1/stories/{STORY}/analytics", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        report: dict[str, Any] = response.json()
        done = report["sessions_started"] == sessions and sum(s["left"] for s in report["scenes"]) == left
        if done or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


async def test_the_report_counts_exactly_what_known_viewers_did(server: ServerProcess) -> None:
    url, token = server.url, server.creator_token
    await leaves_mid_scene(url, "acct:leaver")
    await leaves_and_resumes(url, "acct:returner")
    closes = await unlocking(url, "acct:waiter", None)
    await asyncio.gather(
        unlocking(url, "acct:captain", "captain"),
        unlocking(url, "acct:hold", "hold"),
        stays_at_paywall(url, "acct:payless-1"),
        stays_at_paywall(url, "acct:payless-2"),
    )
    report = settled(url, token, sessions=7, left=7)

    assert report["story"] == STORY and report["version"] == 1
    assert report["sessions_started"] == 7
    scenes = {s["scene"]: s for s in report["scenes"]}
    entries = {scene: s["entries"] for scene, s in scenes.items() if s["entries"]}
    assert entries == {"boarding": 7, "heiress": 6, "blackout": 3, "wheelhouse": 1, "cargo-hold": 2}
    left = {scene: s["left"] for scene, s in scenes.items() if s["left"]}
    # The returner left at heiress and came back: the resume takes it back; they then stopped at the paywall.
    assert left == {"boarding": 1, "blackout": 3, "wheelhouse": 1, "cargo-hold": 2}
    choices = {(c["scene"], c["choice"]): (c["chosen"], c["defaulted"]) for c in report["choices"]}
    assert choices[("boarding", "next")] == (6, 0)
    assert choices[("heiress", "next")] == (6, 0)
    assert choices[("blackout", "captain")] == (1, 0)
    assert choices[("blackout", "hold")] == (1, 1)
    assert choices[("blackout", "cabin")] == (0, 0)
    assert report["paywall"]["shown"] == 6 and report["paywall"]["unlocked"] == 3
    assert report["paywall"]["unlock_rate"] == 0.5
    assert report["paywall"]["episodes"] == [{"episode": 2, "shown": 6, "unlocked": 3, "unlock_rate": 0.5}]
    episodes = {e["number"]: (e["started"], e["finished"], e["continued"]) for e in report["episodes"]}
    assert episodes == {1: (7, 6, 3), 2: (3, 0, 0), 3: (0, 0, 0)}
    assert all(e["reached"] == 0 for e in report["endings"])
    # Watch time and retention from progress: the leaver reached 2 s of boarding, the waiter closes_at of blackout.
    assert scenes["boarding"]["mean_watch_s"] == pytest.approx(2 / 7, abs=1e-3)
    assert scenes["blackout"]["mean_watch_s"] == pytest.approx(int(closes * 1000) / 1000 / 3, abs=1e-3)
    retention = {r["scene"]: r["watching"] for r in report["retention"]}
    assert retention["boarding"] == [1.0, round(1 / 7, 4), round(1 / 7, 4)]
    assert len(retention["blackout"]) == int(closes) + 1 and retention["blackout"][-1] == round(1 / 3, 4)

    # Filters: another locale, or a time range before any of this, count nothing.
    auth = {"Authorization": f"Bearer {token}"}
    other = httpx.get(f"{url}/v1/stories/{STORY}/analytics", params={"locale": "fr"}, headers=auth).json()
    assert other["sessions_started"] == 0 and other["locale"] == "fr"
    early = httpx.get(f"{url}/v1/stories/{STORY}/analytics", params={"until": "2020-01-01T00:00:00Z"}, headers=auth)
    assert early.json()["sessions_started"] == 0
    same = httpx.get(f"{url}/v1/stories/{STORY}/analytics", params={"version": 1, "locale": "en"}, headers=auth)
    assert same.json()["sessions_started"] == 7

    # Raw events: CSV and Parquet; then one viewer's are erased, and only theirs.
    exported = httpx.get(f"{url}/v1/stories/{STORY}/analytics/events", headers=auth)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert sum(1 for row in rows if row["kind"] == "started") == 7
    assert {row["viewer"] for row in rows} >= {"acct:leaver", "acct:captain"}
    assert all(len(row["session"]) == 24 for row in rows)  # a digest, never the session token
    parquet = httpx.get(f"{url}/v1/stories/{STORY}/analytics/events", params={"format": "parquet"}, headers=auth)
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == len(rows) and table.schema.field("at").type == "double"
    erased = httpx.delete(f"{url}/v1/viewers/acct:leaver/events", headers=auth)
    assert erased.status_code == 200
    mine = sum(1 for row in rows if row["viewer"] == "acct:leaver")
    assert erased.json() == {"viewer": "acct:leaver", "deleted": mine} and mine >= 2
    after = list(csv.DictReader(io.StringIO(httpx.get(f"{url}/v1/stories/{STORY}/analytics/events",
                                                      headers=auth).text)))
    assert len(after) == len(rows) - mine and all(row["viewer"] != "acct:leaver" for row in after)
    assert httpx.get(f"{url}/v1/stories/{STORY}/analytics", headers=auth).json()["sessions_started"] == 7


def test_analytics_need_the_creator_token_and_the_public_graph_has_no_statistics(server: ServerProcess) -> None:
    url, token = server.url, server.creator_token
    for method, path in (
        ("GET", f"/v1/stories/{STORY}/analytics"),
        ("GET", f"/v1/stories/{STORY}/analytics/events"),
        ("DELETE", "/v1/viewers/acct:someone/events"),
    ):
        assert httpx.request(method, url + path).status_code == 401
        wrong = httpx.request(method, url + path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    public = httpx.get(f"{url}/v1/stories/{STORY}/graph").json()
    assert public["edges"] and all(edge["viewers"] is None for edge in public["edges"])
    dot = httpx.get(f"{url}/v1/stories/{STORY}/graph", params={"format": "dot"}).text
    assert "viewer" not in dot
    private = httpx.get(f"{url}/v1/stories/{STORY}/graph", headers={"Authorization": f"Bearer {token}"}).json()
    assert all(isinstance(edge["viewers"], int) for edge in private["edges"])
    assert httpx.get(f"{url}/v1/stories/{STORY}/graph", headers={"Authorization": "Bearer nope"}).status_code == 401
    missing = httpx.get(f"{url}/v1/stories/nope/analytics", headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 404
    bad = httpx.delete(f"{url}/v1/viewers/bad%20id/events", headers={"Authorization": f"Bearer {token}"})
    assert bad.status_code == 422
