"""The cast route and the drawn cast in served clips, against a real server: portraits made once, lips that
follow the voice in English and in the zh dub."""

from __future__ import annotations

import statistics
from pathlib import Path

import httpx
import pytest
import websockets
import yaml
from reelfork.generation.render.c2pa import read_provenance
from reelfork.narrative.story import Story

from tests.helpers.media import lips_follow_voice
from tests.helpers.viewer import STORY, Viewer, ws_url

pytestmark = pytest.mark.slow  # a real server renders each scene's picture per locale

SEED = Path(__file__).parents[3] / "narrative" / "stories" / "last-ferry.yaml"
PLAYTHROUGH = [("boarding", "next"), ("heiress", "next"), ("blackout", "captain"), ("wheelhouse", None)]
"""The first scenes of a playthrough, and the choice taken in each: characters speak in all of them."""
PNG = b"\x89PNG\r\n\x1a\n"


def seed() -> Story:
    return Story.model_validate(yaml.safe_load(SEED.read_text(encoding="utf-8")))


def test_the_cast_lists_every_character_with_a_portrait_made_once(live_server: str, tmp_path: Path) -> None:
    response = httpx.get(f"{live_server}/v1/stories/{STORY}/cast", timeout=60)
    assert response.status_code == 200, response.text
    cast = response.json()
    story = seed()
    assert cast["id"] == STORY and cast["version"] >= 1
    members = cast["members"]
    characters = [m["character"] for m in members if m["look"] is None]
    assert characters == [c.id for c in story.bible.characters]
    assert story.persona is not None
    assert [m["look"] for m in members if m["look"] is not None] == [look.id for look in story.persona.looks]
    assert all(m["likeness"]["kind"] == "invented" for m in members)
    assert members[0]["appearance"] == story.bible.characters[0].drawn().model_dump(mode="json")
    by_appearance = {yaml.safe_dump(m["appearance"]): m["portrait"] for m in members}
    assert len(set(by_appearance.values())) == len(by_appearance)  # drawn differently, a portrait of its own
    assert len(by_appearance) >= len(story.bible.characters)
    for member in members:
        first = httpx.get(member["portrait"])
        assert first.status_code == 200 and first.headers["content-type"] == "image/png"
        assert first.content.startswith(PNG)
        assert httpx.get(member["portrait"]).content == first.content
    again = httpx.get(f"{live_server}/v1/stories/{STORY}/cast", timeout=60).json()
    assert again == cast  # made once: the same URLs, so the same bytes
    signed = tmp_path / "portrait.png"
    signed.write_bytes(httpx.get(members[0]["portrait"]).content)
    provenance = read_provenance(signed)
    assert provenance is not None and provenance.valid and provenance.created_by_ai


def test_the_cast_of_an_unknown_story_or_version_is_404(live_server: str) -> None:
    for url in (f"{live_server}/v1/stories/nope/cast", f"{live_server}/v1/stories/{STORY}/cast?version=999"):
        response = httpx.get(url)
        assert response.status_code == 404
        assert isinstance(response.json()["detail"], str)
    assert httpx.get(f"{live_server}/v1/stories/{STORY}/cast?version=x").status_code == 422


async def served_clips(base: str, tmp_path: Path, locale: str) -> list[Path]:
    """Play the first scenes in ``locale`` and download each scene's clip, as a viewer's player would."""
    clips: list[Path] = []
    async with websockets.connect(ws_url(base)) as websocket, httpx.AsyncClient(timeout=60) as http:
        viewer = Viewer(websocket)
        await viewer.send({"type": "start", "story": STORY, "locale": locale})
        assert (await viewer.receive())["type"] == "session"
        scene = await viewer.expect("scene")
        for expected, choice in PLAYTHROUGH:
            assert scene["scene"] == expected
            clip = tmp_path / f"{locale}-{expected}.mp4"
            clip.write_bytes((await http.get(await viewer.clip_for(scene))).raise_for_status().content)
            clips.append(clip)
            if choice is not None:
                scene = await viewer.choose(choice)
    return clips


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_lips_move_with_the_voice(live_server: str, tmp_path: Path, locale: str) -> None:
    """Over each served clip's frames, the change of the whole picture follows the voice's loudness."""
    correlations = [lips_follow_voice(clip) for clip in await served_clips(live_server, tmp_path, locale)]
    assert statistics.median(correlations) >= 0.3, correlations
    assert min(correlations) > 0.1, correlations
