"""The creator's analytics page (client-demo/analytics.html) and the graph's drop-off heat, in headless Chromium.

Uses the session-scoped ``live_server`` (a real ``reelfork serve``); other tests may have played the seed story
before, so the page is compared with the analytics API once a few viewers here have played, never with fixed
numbers. Screenshot: ``test-artifacts/creator-analytics.png``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from websockets.sync.client import ClientConnection, connect

from tests.helpers.processes import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
STORY_ID = "last-ferry"
SCENE_TIMEOUT_S = 45


def next_scene(ws: ClientConnection) -> dict[str, Any]:
    deadline = time.monotonic() + SCENE_TIMEOUT_S
    while True:
        message: dict[str, Any] = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        assert message["type"] != "error", message
        if message["type"] == "scene":
            return message


def play(live_server: str, *, viewer: str, go_on: bool) -> None:
    """Start the seed story; take boarding's choice (``go_on``) or watch 2 s of boarding and leave."""
    with connect(live_server.replace("http://", "ws://", 1) + "/v1/play", open_timeout=20) as ws:
        ws.send(json.dumps({"type": "start", "story": STORY_ID, "viewer": viewer}))
        assert next_scene(ws)["scene"] == "boarding"
        if go_on:
            ws.send(json.dumps({"type": "choose", "choice": "next"}))
            assert next_scene(ws)["scene"] == "heiress"
        else:
            for position in (0.0, 1.0, 2.0):
                ws.send(json.dumps({"type": "progress", "scene": "boarding", "position": position, "playing": True}))


def report(url: str, token: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/v1/stories/{STORY_ID}/analytics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def left_at(result: dict[str, Any], scene: str) -> int:
    return int(next(s["left"] for s in result["scenes"] if s["scene"] == scene))


def settled(url: str, token: str, sessions: int, left_boarding: int) -> dict[str, Any]:
    """The report once these viewers' last events are counted (they reach Redis within a moment)."""
    deadline = time.monotonic() + 30
    while True:
        result = report(url, token)
        if result["sessions_started"] >= sessions and left_at(result, "boarding") >= left_boarding:
            return result
        assert time.monotonic() < deadline, result
        time.sleep(0.2)


def test_the_analytics_page_charts_the_funnel_and_retention_and_the_graph_shows_drop_off(
    page: Page, live_server: str, live_server_process: ServerProcess, artifacts: Path
) -> None:
    assert (ROOT / "client-demo/vendor/chart.umd.min.js").is_file(), "run scripts/dev test: it copies Chart.js there"
    token = live_server_process.creator_token
    before = report(live_server, token)
    play(live_server, viewer="acct:page-stays", go_on=True)
    play(live_server, viewer="acct:page-leaves", go_on=False)
    api = settled(live_server, token, before["sessions_started"] + 2, left_at(before, "boarding") + 1)

    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.set_viewport_size({"width": 1100, "height": 1400})

    # Without the token the page says whose the report is, and draws nothing.
    page.goto(f"{live_server}/analytics.html?story={STORY_ID}")
    expect(page.get_by_test_id("report")).to_have_attribute("data-state", "error")
    expect(page.get_by_test_id("empty")).to_contain_text("creator token")

    # From the creator view's link, with the token kept for the tab.
    page.goto(f"{live_server}/creator.html?story={STORY_ID}#token={token}")
    graph = page.get_by_test_id("graph")
    expect(graph).to_have_attribute("data-state", "ready")
    boarding = page.locator("[data-testid='graph'] .node[data-id='boarding']")
    assert int(boarding.get_attribute("data-left") or "-1") == left_at(api, "boarding")
    assert "has-dropoff" in (boarding.get_attribute("class") or "").split()
    fill = boarding.locator(".node-shape").evaluate("el => getComputedStyle(el).fill")
    assert fill != "rgb(23, 26, 38)", fill  # heat, not a scene's own fill
    share = page.locator("[data-testid='graph'] .edge[data-source='boarding'][data-choice='next']")
    assert share.get_attribute("data-share") == "100"  # boarding's only choice takes every viewer who chose
    page.get_by_test_id("analytics-link").click()
    page.wait_for_url(f"**/analytics.html?story={STORY_ID}")

    expect(page.get_by_test_id("report")).to_have_attribute("data-state", "ready")
    api = report(live_server, token)  # what the page fetched; nothing plays meanwhile
    expect(page.get_by_test_id("sessions-started")).to_have_text(str(api["sessions_started"]))
    walls = {wall["episode"]: wall for wall in api["paywall"]["episodes"]}
    for episode in api["episodes"]:
        n = episode["number"]
        wall = walls.get(n, {"shown": 0, "unlocked": 0})
        for field, value in (("started", episode["started"]), ("finished", episode["finished"]),
                             ("continued", episode["continued"]), ("paywall", wall["shown"]),
                             ("unlocked", wall["unlocked"])):
            expect(page.get_by_test_id(f"funnel-{n}-{field}")).to_have_text(str(value))

    # The charts are Chart.js charts on their canvases, holding the API's numbers, and drew something.
    charts = page.evaluate("""() => ['funnel-chart', 'retention-chart'].map((id) => {
        const canvas = document.getElementById(id);
        const chart = window.Chart.getChart(canvas);
        return {width: canvas.width, height: canvas.height, type: chart?.config.type,
                labels: chart?.data.labels,
                datasets: chart?.data.datasets.map((d) => ({label: d.label, data: d.data}))};
    })""")
    funnel, retention = charts
    assert funnel["type"] == "bar" and funnel["width"] > 0 and funnel["height"] > 0
    assert funnel["labels"] == [f"Ep {e['number']}" for e in api["episodes"]]
    started = next(d for d in funnel["datasets"] if d["label"] == "Started")
    assert started["data"] == [e["started"] for e in api["episodes"]]
    assert retention["type"] == "line" and retention["width"] > 0
    curves = {d["label"].split(" ")[0]: d["data"] for d in retention["datasets"]}
    assert set(curves) == {r["scene"] for r in api["retention"]} and "boarding" in curves
    expected = next(r["watching"] for r in api["retention"] if r["scene"] == "boarding")
    assert curves["boarding"] == [round(share * 1000) / 10 for share in expected]
    painted = page.evaluate("""() => {
        const canvas = document.getElementById('funnel-chart');
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let inked = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) inked += 1;
        return inked;
    }""")
    assert painted > 1000, painted
    page.screenshot(path=str(artifacts / "creator-analytics.png"), full_page=True)
    assert page_errors == []
