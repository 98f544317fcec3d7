"""The web player (client-demo/) in headless Chromium: choices while the clip plays, a countdown that follows
playback, the default taken when the window closes, episode cards, the paywall with the demo unlock, and
resume after a reload.

A real ``reelfork serve`` on the seed story with the paywall on (``REELFORK_ENTITLEMENT_SECRET``) and the demo
unlock enabled (``REELFORK_DEMO_UNLOCK``); the system Chromium. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Page, WebSocket, expect
from reelfork.narrative.story import Story

from tests.helpers.processes import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts"
STORY_ID = "last-ferry"
RATE = 2
SCENE_TIMEOUT_MS = 90_000  # a clip still rendering when its scene arrives
PAUSE_S = 2.0

# Records, in the page, the video's state at the moment the choices appear (a MutationObserver runs in the
# same task as the change), how far the clip played on while they were shown, and each choice shown as picked.
RECORDER = """
window.__shown = [];
window.__playedWithChoices = {};
window.__picked = [];
document.addEventListener("DOMContentLoaded", () => {
  const choices = document.getElementById("choices");
  const video = document.getElementById("video");
  new MutationObserver(() => {
    if (choices.hidden || choices.dataset.recorded === video.dataset.scene) return;
    choices.dataset.recorded = video.dataset.scene;
    window.__shown.push({scene: video.dataset.scene, paused: video.paused, ended: video.ended,
                         time: video.currentTime, duration: video.duration});
  }).observe(choices, {attributes: true, attributeFilter: ["hidden"]});
  new MutationObserver((records) => {
    for (const record of records) {
      const button = record.target;
      if (button.getAttribute("aria-pressed") !== "true") continue;
      window.__picked.push({scene: video.dataset.scene, choice: button.dataset.choice,
                            state: choices.dataset.state});
    }
  }).observe(choices, {attributes: true, subtree: true, attributeFilter: ["aria-pressed"]});
  video.addEventListener("timeupdate", () => {
    if (choices.hidden || video.paused) return;
    const scene = video.dataset.scene;
    window.__playedWithChoices[scene] = Math.max(window.__playedWithChoices[scene] || 0, video.currentTime);
  });
});
"""


@pytest.fixture(scope="module")
def paid_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = ServerProcess(
        tmp_path_factory.mktemp("paid-server") / "data",
        REELFORK_ENTITLEMENT_SECRET="player-test-secret-0123456789abcdef",
        REELFORK_DEMO_UNLOCK="true",
    )
    yield server.url
    server.stop()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"player-episodes-{name}.png"), animations="disabled")


def scene_messages(received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in received if m.get("type") == "scene"]


def wait_for_scene(page: Page, received: list[dict[str, Any]], count: int) -> dict[str, Any]:
    """The ``count``-th scene message (1-based), once it has arrived."""
    deadline = time.monotonic() + SCENE_TIMEOUT_MS / 1000
    while len(scene_messages(received)) < count:
        assert time.monotonic() < deadline, f"no scene #{count}; received {received}"
        page.wait_for_timeout(100)
    return scene_messages(received)[count - 1]


def target(story: Story, scene_id: str, choice_id: str) -> str | None:
    return next(c.target for c in story.scene(scene_id).choices if c.id == choice_id)


def countdown(page: Page) -> tuple[str, str]:
    """The countdown as shown (whole seconds) and as kept (tenths)."""
    element = page.get_by_test_id("countdown")
    return element.inner_text(), element.get_attribute("data-remaining") or ""


def test_player_windows_episodes_paywall_and_resume(page: Page, paid_server: str) -> None:
    story = Story.model_validate(yaml.safe_load((ROOT / "narrative/stories/last-ferry.yaml").read_text()))
    received: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []
    page_errors: list[str] = []

    def on_websocket(ws: WebSocket) -> None:
        ws.on("framereceived", lambda payload: received.append(json.loads(payload)))
        ws.on("framesent", lambda payload: sent.append(json.loads(payload)))

    page.on("websocket", on_websocket)
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.add_init_script(RECORDER)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{paid_server}/?rate={RATE}")
    page.get_by_test_id(f"story-{STORY_ID}").click()
    page.get_by_test_id("persona-play").click()  # make it yours: the story's defaults
    video = page.get_by_test_id("video")
    choices = page.get_by_test_id("choices")

    # 1. The first scene: an episode card, then the choices slide in while the clip still plays.
    first = wait_for_scene(page, received, 1)
    assert first["scene"] == story.start and first["episode"]["number"] == 1
    expect(page.get_by_test_id("episode-card")).to_contain_text("Episode 1")
    expect(page.get_by_test_id("episode-card")).to_contain_text(first["episode"]["title"])
    expect(choices).to_be_visible(timeout=SCENE_TIMEOUT_MS)
    shot(page, "1-choices")
    (shown,) = page.evaluate("() => window.__shown")
    assert shown["scene"] == story.start
    assert not shown["paused"] and not shown["ended"], shown
    assert shown["time"] < shown["duration"], shown

    # 2. Pause: the countdown stops, and the player goes on reporting progress with playing: false.
    page.get_by_test_id("play-pause").click()
    expect(page.get_by_test_id("play-pause")).to_have_attribute("aria-label", "Play")
    assert page.evaluate("() => document.querySelector('video').paused")
    before = countdown(page)
    reports_before = len([m for m in sent if m["type"] == "progress"])
    page.wait_for_timeout(PAUSE_S * 1000)
    assert countdown(page) == before, "the countdown moved while the video was paused"
    paused_reports = [m for m in sent if m["type"] == "progress"][reports_before:]
    assert paused_reports and all(m["playing"] is False for m in paused_reports), paused_reports
    assert len(scene_messages(received)) == 1, "a paused viewer was moved on"
    shot(page, "2-paused")
    page.get_by_test_id("play-pause").click()
    expect(page.get_by_test_id("play-pause")).to_have_attribute("aria-label", "Pause")

    # 3. No tap: when the window closes the default is shown as picked and the server sends its target.
    second = wait_for_scene(page, received, 2)
    played: dict[str, float] = page.evaluate("() => window.__playedWithChoices")
    assert played.get(story.start, 0) > shown["time"], "the clip did not play on under the choices"
    window = first["choice_window"]
    (default,) = [c for c in first["choices"] if c["default"]]
    assert second["scene"] == target(story, story.start, default["id"])
    assert {"scene": story.start, "choice": default["id"], "state": "defaulted"} in page.evaluate(
        "() => window.__picked"
    )
    assert not [m for m in sent if m["type"] == "choose"], "the player sent a choose for the default"
    crossing = [m for m in sent if m["type"] == "progress" and m["scene"] == story.start]
    assert crossing[-1]["position"] >= window["closes_at"], crossing[-3:]

    # 4. The second scene: tap a choice; the next episode is locked: the paywall sheet.
    expect(video).to_have_attribute("data-scene", second["scene"], timeout=SCENE_TIMEOUT_MS)
    choice = page.locator("[data-testid^='choice-']").first
    expect(choice).to_be_visible(timeout=SCENE_TIMEOUT_MS)
    choice.click()
    chosen = [m for m in sent if m["type"] == "choose"]
    assert chosen == [{"type": "choose", "choice": second["choices"][0]["id"], "scene": second["scene"]}]
    paywall = page.get_by_test_id("paywall")
    expect(paywall).to_be_visible(timeout=SCENE_TIMEOUT_MS)
    locked = next(m for m in received if m.get("type") == "locked")
    assert locked["episode"]["number"] == 2 and locked["episode"]["free"] is False
    expect(paywall).to_contain_text(locked["episode"]["title"])
    expect(page.get_by_test_id("paywall-coins")).to_have_text(str(locked["price"]["coins"]))
    unlock = page.get_by_test_id("demo-unlock")
    expect(unlock).to_be_visible()
    shot(page, "3-paywall")

    # A reload at the paywall resumes at the paywall.
    received.clear()
    sent.clear()
    page.reload()
    expect(paywall).to_be_visible(timeout=SCENE_TIMEOUT_MS)
    assert sent[0]["type"] == "resume"
    assert [m["type"] for m in received] == ["session", "locked"], received
    expect(unlock).to_be_visible()

    # 5. The demo unlock: the scene of episode 2 follows, with its card.
    unlock.click()
    expect(paywall).to_be_hidden(timeout=SCENE_TIMEOUT_MS)
    third = wait_for_scene(page, received, 1)
    assert third["episode"]["number"] == 2, third
    assert [m["type"] for m in sent].count("unlock") == 1
    expect(page.get_by_test_id("episode-card")).to_contain_text("Episode 2")
    expect(video).to_have_attribute("data-scene", third["scene"], timeout=SCENE_TIMEOUT_MS)
    shot(page, "4-episode-2")

    # 6. Reload mid-clip: the player resumes the session at the same scene and about the same position.
    page.wait_for_function("() => document.querySelector('video').currentTime > 2", timeout=SCENE_TIMEOUT_MS)
    page.get_by_test_id("play-pause").click()
    page.wait_for_timeout(1500)  # a progress report (once a second) carries the paused position
    at = page.evaluate("() => document.querySelector('video').currentTime")
    received.clear()
    sent.clear()
    page.reload()
    resumed = wait_for_scene(page, received, 1)
    assert sent[0]["type"] == "resume"
    assert not [m for m in received if m.get("type") == "locked"], "an unlocked episode locked again"
    assert resumed["scene"] == third["scene"]
    assert resumed["position"] == pytest.approx(at, abs=0.5)
    page.wait_for_function(
        f"() => document.querySelector('video').currentTime >= {at - 0.5}", timeout=SCENE_TIMEOUT_MS
    )
    expect(video).to_have_attribute("data-scene", third["scene"])

    errors = [m for m in received if m.get("type") == "error"]
    assert not errors, errors
    assert page_errors == []
