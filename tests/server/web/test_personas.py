"""Make it yours, end to end against a real server: names, looks and locales; one shared picture per look."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import websockets
import yaml
from reelfork.narrative.persona import fill
from reelfork.narrative.story import Story
from reelfork.server.embedded import socket_path
from reelfork.server.queue import keys

from tests.helpers.media import assert_labelled, assert_vertical_h264_aac, probe
from tests.helpers.processes import ServerProcess
from tests.helpers.render import assert_badge_shown, frames_at
from tests.helpers.viewer import STORY, Viewer, ws_url

pytestmark = pytest.mark.slow  # a real server renders a picture per look and assembles each viewer's clip

CJK = re.compile(r"[\u4e00-\u9fff]")
SEED = Path(__file__).parents[3] / "narrative" / "stories" / "last-ferry.yaml"


def seed() -> Story:
    return Story.model_validate(yaml.safe_load(SEED.read_text(encoding="utf-8")))


def assert_served_as_required(clip: Path) -> None:
    """What every served video carries: the visible AI mark, the AIGC label and a valid C2PA manifest."""
    assert_vertical_h264_aac(clip)
    for frame in frames_at(clip, [0.0, 1.0]):
        assert_badge_shown(frame)
    assert_labelled(clip)


def assert_named(scene: dict[str, Any], name: str) -> None:
    """The scene message reads as the seed's authored English with ``name`` wherever the text names the
    protagonist (title, every line, every choice label) and as the protagonist's speaker name."""
    authored = seed().scene(scene["scene"])
    assert any("{name}" in line.text for line in authored.lines)  # the check below is not vacuous
    assert scene["title"] == fill(authored.title, name)
    assert [item["text"] for item in scene["lines"]] == [fill(line.text, name) for line in authored.lines]
    speakers = {item["speaker"] for item, line in zip(scene["lines"], authored.lines, strict=True)
                if line.speaker == "mara"}
    assert speakers == {name}, scene["lines"]
    assert [c["label"] for c in scene["choices"]] == [fill(c.label, name) for c in authored.choices]


def stream_md5(path: Path, stream: str) -> str:
    """The MD5 of one stream's packets, copied untouched: what a client that did not write the clip compares."""
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", f"0:{stream}", "-c", "copy", "-f", "md5", "-"],
        capture_output=True, text=True, check=True,
    )
    return result.stdout.strip()


async def start(websocket: websockets.ClientConnection, **fields: Any) -> tuple[Viewer, dict[str, Any]]:
    viewer = Viewer(websocket)
    await viewer.send({"type": "start", "story": STORY, **fields})
    return viewer, await viewer.receive()


async def heiress_as(base: str, tmp_path: Path, label: str, **fields: Any) -> tuple[dict[str, Any], Path, str]:
    """Start with ``fields``, play on to the heiress scene (which names the protagonist), download its clip and
    subtitles."""
    async with websockets.connect(ws_url(base)) as websocket:
        viewer, session = await start(websocket, **fields)
        assert session["type"] == "session", session
        scene = await viewer.expect("scene")
        assert scene["scene"] == "boarding"
        scene = await viewer.choose("next")
        assert scene["scene"] == "heiress"
        url = await viewer.clip_for(scene)
        subtitles = scene["subtitles"] or url.removesuffix(".mp4") + ".vtt"
        async with httpx.AsyncClient() as http:
            clip = tmp_path / f"{label}.mp4"
            clip.write_bytes((await http.get(url)).raise_for_status().content)
            vtt = (await http.get(subtitles)).raise_for_status().text
    return scene, clip, vtt


def sessions(store: redis.Redis) -> set[bytes]:
    return set(store.scan_iter(match=f"{keys.SESSION_PREFIX}*", count=1000))


def line(scene: dict[str, Any], line_id: str) -> dict[str, Any]:
    return next(item for item in scene["lines"] if item["id"] == line_id)


async def test_the_story_list_offers_locales_and_looks(live_server: str) -> None:
    stories = httpx.get(f"{live_server}/v1/stories").json()["stories"]
    ferry = next(story for story in stories if story["id"] == STORY)
    assert ferry["locales"] == ["en", "es", "zh"]
    assert ferry["persona"]["name"] == "Mara"
    assert [look["id"] for look in ferry["persona"]["looks"]] == ["slicker", "storm", "leather"]


async def test_two_names_share_one_picture_and_another_look_gets_another(live_server: str, tmp_path: Path) -> None:
    (zoe, zoe_clip, zoe_vtt), (ada, ada_clip, ada_vtt), (red, red_clip, _) = await asyncio.gather(
        heiress_as(live_server, tmp_path, "zoe", locale="en", persona={"name": "Zoë", "look": "storm"}),
        heiress_as(live_server, tmp_path, "ada", locale="en", persona={"name": "Ada", "look": "storm"}),
        heiress_as(live_server, tmp_path, "red", locale="en", persona={"name": "Zoë", "look": "leather"}),
    )
    # Each scene names its own viewer wherever the authored text names the protagonist ("{name} Vance. ...").
    assert_named(zoe, "Zoë")
    assert_named(ada, "Ada")
    assert_named(red, "Zoë")  # another look, the same words
    assert line(zoe, "l1")["text"].startswith("Zoë Vance."), zoe["lines"]
    assert "Zoë" in zoe_vtt and "Ada" not in zoe_vtt and "Ada" in ada_vtt
    for clip in (zoe_clip, ada_clip, red_clip):
        assert_served_as_required(clip)
    assert stream_md5(zoe_clip, "v") == stream_md5(ada_clip, "v")
    assert stream_md5(zoe_clip, "a") != stream_md5(ada_clip, "a")
    assert stream_md5(red_clip, "v") != stream_md5(zoe_clip, "v")
    # Each their own clip (or, while it renders, their own stream: the shared picture with their voice).
    assert (zoe["clip"] or zoe["stream"]) != (ada["clip"] or ada["stream"])


async def test_a_zh_viewer_reads_and_hears_chinese(live_server: str, tmp_path: Path) -> None:
    scene, clip, vtt = await heiress_as(live_server, tmp_path, "zh", locale="zh", persona={"name": "Zoë"})
    assert CJK.search(scene["title"]), scene["title"]
    assert all(CJK.search(item["text"]) for item in scene["lines"]), scene["lines"]
    assert all(not item["machine_translated"] for item in scene["lines"])
    assert "Zoë" in line(scene, "l1")["text"]
    authored = seed().translations["zh"]
    assert scene["title"] == authored["heiress/title"]
    assert vtt.startswith("WEBVTT"), vtt
    for item in scene["lines"]:  # every authored line, in Chinese, in the subtitle track too
        assert item["text"] == fill(authored[f"heiress/line:{item['id']}"], "Zoë")
        assert item["text"] in vtt, (item, vtt)
    audio = next(stream for stream in probe(clip)["streams"] if stream["codec_type"] == "audio")
    assert audio["tags"]["language"] in ("chi", "zho"), audio
    assert_served_as_required(clip)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"persona": {"name": "a" * 500}}, "invalid_name"),
        ({"persona": {"name": "<script>alert(1)</script>"}}, "invalid_name"),
        ({"persona": {"name": "Zo\u202eë"}}, "invalid_name"),
        ({"persona": {"look": "tuxedo"}}, "unknown_look"),
        ({"locale": "xx"}, "unsupported_locale"),
        ({"locale": "fr"}, "unsupported_locale"),
    ],
)
async def test_a_bad_persona_or_locale_creates_no_session(
    live_server_process: ServerProcess, fields: dict[str, Any], code: str
) -> None:
    store = redis.Redis(unix_socket_path=str(socket_path(live_server_process.data_dir)))
    try:
        before = sessions(store)
        async with websockets.connect(ws_url(live_server_process.url)) as websocket:
            viewer, refused = await start(websocket, **fields)
            assert refused["type"] == "error" and refused["code"] == code, refused
            # Nothing was created: the connection still has no session to choose in, and the store none more.
            await viewer.send({"type": "choose", "choice": "next"})
            assert (await viewer.expect("error"))["code"] == "no_session"
        assert sessions(store) == before
        async with websockets.connect(ws_url(live_server_process.url)) as websocket:  # what a start does store
            _, session = await start(websocket)
            assert session["type"] == "session", session
        assert len(sessions(store) - before) == 1
    finally:
        store.close()


async def test_the_session_echoes_the_persona_and_resume_restores_it(live_server: str) -> None:
    async with websockets.connect(ws_url(live_server)) as websocket:
        viewer, session = await start(websocket, locale="es", persona={"name": "  Zoë  ", "look": "leather"})
        assert session["type"] == "session", session
        assert session["locale"] == "es" and session["persona"] == {"name": "Zoë", "look": "leather"}
        await viewer.expect("scene")
    async with websockets.connect(ws_url(live_server)) as websocket:
        viewer = Viewer(websocket)
        await viewer.send({"type": "resume", "session": session["session"]})
        resumed = await viewer.expect("session")
        assert resumed["locale"] == "es" and resumed["persona"] == {"name": "Zoë", "look": "leather"}
        scene = await viewer.expect("scene")
        assert scene["title"] == "El último ferry", scene["title"]
    async with websockets.connect(ws_url(live_server)) as websocket:
        _, defaults = await start(websocket)
        assert defaults["locale"] == "en" and defaults["persona"] == {"name": "Mara", "look": "slicker"}


async def test_two_names_at_one_open_node_share_the_written_scene(live_server: str) -> None:
    async def reach_open_node(name: str) -> dict[str, Any]:
        async with websockets.connect(ws_url(live_server)) as websocket:
            viewer, _ = await start(websocket, persona={"name": name})
            scene = await viewer.expect("scene")
            while scene["scene"] != "blackout":
                scene = await viewer.choose(scene["choices"][0]["id"])
            return await viewer.choose("cabin")

    def words(scene: dict[str, Any]) -> list[str]:
        return [scene["title"], *(f"{item['speaker']}: {item['text']}" for item in scene["lines"]),
                *(c["label"] for c in scene["choices"])]

    zoe, ada = await asyncio.gather(reach_open_node("Zoë"), reach_open_node("Ada"))
    # One written scene for both, content-addressed by the path and not the name: one write job. Its opening
    # line names the protagonist (the writer's grammar asks for it), so each viewer finds their name in it.
    assert zoe["scene"] == ada["scene"]
    assert zoe["scene"].startswith("g-"), zoe["scene"]
    texts, others = words(zoe), words(ada)
    assert not any("{name}" in text for text in texts + others)
    # Each viewer sees their own name in it (as the protagonist's lines' speaker, and wherever the text names her).
    assert any("Zoë" in text for text in texts) and not any("Ada" in text for text in texts), texts
    assert [text.replace("Zoë", "Ada") for text in texts] == others

