"""The creator view (client-demo/creator.html) in headless Chromium: the seed story's graph, drawn as SVG.

Uses the session-scoped ``live_server`` fixture (a real ``reelfork serve``) and the system Chromium. Other
tests in the session may already have played the story, so viewer counts are compared before and after
this test plays one choice through the websocket, never against fixed numbers.
Screenshots: ``test-artifacts/creator-graph.png`` (desktop) and ``creator-phone.png`` (a phone).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Page, expect
from reelfork.narrative.story import Story
from websockets.sync.client import ClientConnection, connect

from tests.helpers.processes import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
STORY_ID = "last-ferry"
SCENE_TIMEOUT_S = 45  # a scene message waits for its clip up to the server's wait budget; slower under load
GRAPH = "[data-testid='graph']"


def seed_story() -> Story:
    return Story.model_validate(yaml.safe_load((ROOT / "narrative/stories/last-ferry.yaml").read_text()))


def open_graph(page: Page, live_server: str) -> None:
    page.goto(f"{live_server}/creator.html?story={STORY_ID}")
    expect(page.locator(GRAPH)).to_have_attribute("data-state", "ready")


def edge_viewers(page: Page, source: str, choice: str) -> tuple[int, str]:
    """The edge's ``data-viewers`` and the text its label shows."""
    edge = page.locator(f"{GRAPH} .edge[data-source='{source}'][data-choice='{choice}']")
    label = page.locator(f"{GRAPH} .edge-label[data-source='{source}'][data-choice='{choice}']")
    return int(edge.get_attribute("data-viewers") or "-1"), label.text_content() or ""


def next_scene(ws: ClientConnection, deadline: float) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        assert message["type"] != "error", message
        if message["type"] == "scene":
            return message


def play_first_choice(live_server: str) -> None:
    """Start the seed story and take the boarding scene's only choice, as a viewer would."""
    with connect(live_server.replace("http://", "ws://", 1) + "/v1/play", open_timeout=20) as ws:
        ws.send(json.dumps({"type": "start", "story": STORY_ID}))
        first = next_scene(ws, time.monotonic() + SCENE_TIMEOUT_S)
        assert first["scene"] == "boarding"
        ws.send(json.dumps({"type": "choose", "choice": "next"}))
        second = next_scene(ws, time.monotonic() + SCENE_TIMEOUT_S)
        assert second["scene"] == "heiress"


def test_creator_view_draws_the_graph_and_counts_viewers(
    page: Page, live_server: str, live_server_process: ServerProcess, artifacts: Path
) -> None:
    story = seed_story()
    scene_ids = {scene.id for scene in story.scenes}
    open_ids = {f"open:{s.id}/{c.id}" for s in story.scenes for c in s.choices if c.open is not None}
    endings = {scene.id for scene in story.scenes if scene.ending}
    choices = {(s.id, c.id) for s in story.scenes for c in s.choices}
    assert len(scene_ids) == 15 and open_ids and endings

    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.set_viewport_size({"width": 1100, "height": 1900})

    # The player's story picker links here, and the creator view links back.
    page.goto(f"{live_server}/")
    page.get_by_test_id("creator-link").click()
    page.wait_for_url(re.compile(r"/creator\.html"))
    expect(page.locator(GRAPH)).to_have_attribute("data-state", "ready")
    expect(page.get_by_test_id("back-to-player")).to_have_attribute("href", "./")
    expect(page.get_by_test_id("play-link")).to_have_attribute("href", re.compile(rf"\?story={STORY_ID}$"))

    open_graph(page, live_server)
    expect(page.get_by_test_id("story-select")).to_have_value(STORY_ID)

    # One node per scene, plus the open node(s); written scenes (if a writer ran earlier) come on top.
    nodes: list[dict[str, str]] = page.locator(f"{GRAPH} .node").evaluate_all(
        "els => els.map(e => ({id: e.dataset.id, kind: e.dataset.kind, cls: e.getAttribute('class')}))"
    )
    # What the writer added (written scenes, and open choices of written scenes) depends on earlier tests.
    drawn = {n["id"] for n in nodes if n["kind"] != "written" and not n["id"].startswith("open:g-")}
    assert drawn == scene_ids | open_ids, drawn ^ (scene_ids | open_ids)
    assert len(nodes) == len({n["id"] for n in nodes}), "a node drawn twice"
    by_id = {n["id"]: n for n in nodes}
    assert {n["id"] for n in nodes if "node-ending" in n["cls"].split()} == endings
    assert {n["id"] for n in nodes if "node-open" in n["cls"].split() and not n["id"].startswith("open:g-")} == open_ids
    assert "node-start" in by_id[story.start]["cls"].split()
    assert all("node-scene" in by_id[s]["cls"].split() for s in scene_ids - endings - {story.start})

    # One edge (with a label) for each choice of each scene.
    edges: list[dict[str, str]] = page.locator(f"{GRAPH} .edge").evaluate_all(
        "els => els.map(e => ({source: e.dataset.source, target: e.dataset.target, choice: e.dataset.choice}))"
    )
    authored = {(e["source"], e["choice"]) for e in edges if not e["source"].startswith(("open:", "g-"))}
    assert authored == choices
    for scene in story.scenes:
        for choice in scene.choices:
            target = choice.target or f"open:{scene.id}/{choice.id}"
            assert {"source": scene.id, "target": target, "choice": choice.id} in edges
    assert page.locator(f"{GRAPH} .edge-label").count() == len(edges)
    expect(page.locator(f"{GRAPH} .edge-label[data-source='blackout'][data-choice='hold']")).to_contain_text(
        "Follow the note"
    )

    # Hover shows a node's title; so does keyboard focus.
    tip = page.get_by_test_id("tip")
    page.locator(f"{GRAPH} .node[data-id='heiress']").hover()
    expect(tip).to_be_visible()
    expect(tip).to_contain_text(story.scene("heiress").title)
    page.locator(f"{GRAPH} .node[data-id='{story.start}']").focus()
    expect(tip).to_contain_text(story.scene(story.start).title)
    page.keyboard.press("Escape")
    expect(tip).to_be_hidden()

    # DOT and Mermaid downloads.
    for testid, marker in (("download-dot", "digraph"), ("download-mermaid", "flowchart")):
        href = page.get_by_test_id(testid).get_attribute("href") or ""
        assert page.get_by_test_id(testid).get_attribute("download")
        response = page.request.get(href)
        assert response.ok, (href, response.status)
        assert marker in response.text()

    # Viewer counts are the creator's: none without the token; with it (kept for the tab), a viewer who takes
    # boarding -> heiress is counted after a reload.
    assert edge_viewers(page, "boarding", "next")[0] == 0
    page.get_by_test_id("token-input").fill(live_server_process.creator_token)
    page.get_by_test_id("token-input").dispatch_event("change")
    expect(page.locator(GRAPH)).to_have_attribute("data-state", "ready")
    before, _ = edge_viewers(page, "boarding", "next")
    play_first_choice(live_server)
    open_graph(page, live_server)
    after, label = edge_viewers(page, "boarding", "next")
    assert after >= max(1, before + 1), (before, after)
    shown = re.search(r"(\d+) viewers?", label)
    assert shown and int(shown.group(1)) == after, label
    assert page.locator(f"{GRAPH} .edge.has-viewers[data-source='boarding'][data-choice='next']").count() == 1

    page.screenshot(path=str(artifacts / "creator-graph.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.locator(GRAPH)).to_have_attribute("data-zoom", re.compile(r"^0\.[3-9]"))  # fit to the phone width
    page.screenshot(path=str(artifacts / "creator-phone.png"))
    assert page_errors == []


def test_creator_view_shows_the_cast(page: Page, live_server: str, artifacts: Path) -> None:
    """Each character and each of the protagonist's looks: its portrait (loaded), its name and its likeness."""
    story = seed_story()
    assert story.persona is not None
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.set_viewport_size({"width": 1100, "height": 1400})
    open_graph(page, live_server)
    cast = page.get_by_test_id("cast")
    expect(cast).to_have_attribute("data-state", "ready", timeout=30_000)
    for character in story.bible.characters:
        member = page.get_by_test_id(f"cast-{character.id}")
        expect(member).to_contain_text(character.name)
        expect(member).to_contain_text("Invented likeness")
        portrait = member.locator("img")
        expect(portrait).to_have_attribute("src", re.compile(r"/media/portraits/[0-9a-f]{32}\.png$"))
        expect(portrait).to_have_js_property("complete", True)
        assert portrait.evaluate("img => img.naturalWidth") > 0
    for look in story.persona.looks:
        expect(page.get_by_test_id(f"cast-{story.persona.character}-{look.id}")).to_contain_text(look.label)
    cast.screenshot(path=str(artifacts / "creator-cast.png"))
    assert not page_errors, page_errors
