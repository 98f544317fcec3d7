"""Linear production, end to end on the embedded defaults: `reelfork produce` as a user runs it.

The long test produces the 5-episode example series in en, es and zh, kills the run with SIGKILL
half-way through rendering, runs the same command again, and checks every output as a client that
did not write them would (ffprobe, the labels, the subtitles), and the runs' own counters.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from reelfork.server.cli import app
from typer.testing import CliRunner, Result

from tests.helpers.media import assert_labelled, assert_vertical_h264_aac, probe
from tests.helpers.processes import ServerProcess

ROOT = Path(__file__).resolve().parents[3]
SERIES = ROOT / "docs" / "examples" / "night-courier.yaml"
PREMISE = ROOT / "generation" / "premises" / "midnight-heir.yaml"
LOCALES = ("en", "es", "zh")
MP4_LANGUAGES = {"en": "eng", "es": "spa", "zh": "chi"}


def produce(source: Path, data_dir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reelfork.server", "produce", str(source), *args],
        env={**os.environ, "REELFORK_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def produce_in_process(source: Path, data_dir: Path, *args: str) -> Result:
    """``reelfork produce`` through its typer app, as :func:`produce` runs it in a process."""
    runner = CliRunner()
    return runner.invoke(
        app, ["produce", str(source), *args], env={"REELFORK_DATA_DIR": str(data_dir)}, catch_exceptions=False
    )


def counters(folder: Path) -> list[dict[str, Any]]:
    try:
        runs = json.loads((folder / "runs.json").read_text())
    except (OSError, ValueError):
        return []
    return [run.get("counters", {}) for run in runs]


@pytest.mark.slow
def test_five_episodes_in_three_locales_survive_a_kill(tmp_path: Path) -> None:
    out = tmp_path / "night-courier"
    command = [
        sys.executable,
        "-m",
        "reelfork.server",
        "produce",
        str(SERIES),
        "--locales",
        ",".join(LOCALES),
        "-o",
        str(out),
    ]
    environment = {**os.environ, "REELFORK_DATA_DIR": str(tmp_path / "data")}
    first = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 900
    try:
        while time.monotonic() < deadline and first.poll() is None:
            runs = counters(out)
            if runs and runs[-1].get("rendered", 0) >= 8:
                first.send_signal(signal.SIGKILL)
                break
            time.sleep(0.1)
    finally:
        first.kill()
        _, stderr = first.communicate()
    assert first.returncode == -signal.SIGKILL, f"the first run ended before the kill:\n{stderr[-3000:]}"
    killed = counters(out)[0]
    assert 8 <= killed["rendered"] < 20, killed

    second = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]

    resumed = counters(out)[1]
    # No scene rendered twice: the second run renders exactly what the first did not.
    assert killed["rendered"] + resumed["rendered"] == 20, (killed, resumed)
    assert resumed["renders_reused"] == killed["rendered"]
    # The authored es and zh tables lack only two texts of e5-4, which the model translated before the kill.
    assert resumed["translations_reused"] == 2 and resumed["translated"] == 0, resumed

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["locales"] == list(LOCALES)
    assert [episode["number"] for episode in manifest["episodes"]] == [1, 2, 3, 4, 5]
    for episode in manifest["episodes"]:
        assert 60 <= episode["duration_s"] <= 90, episode
        assert set(episode["files"]) == set(LOCALES)
        for locale, files in episode["files"].items():
            mp4 = out / files["mp4"]
            duration = assert_vertical_h264_aac(mp4)
            assert 60 <= duration <= 90 and abs(duration - episode["duration_s"]) < 0.5, (mp4.name, duration)
            assert_labelled(mp4)
            streams = probe(mp4)["streams"]
            audio = [s for s in streams if s["codec_type"] == "audio"]
            subtitles = [s for s in streams if s["codec_type"] == "subtitle"]
            assert audio[0]["tags"]["language"] == MP4_LANGUAGES[locale]
            assert sorted(s["tags"]["language"] for s in subtitles) == sorted(MP4_LANGUAGES.values())
            assert subtitles[0]["tags"]["language"] == MP4_LANGUAGES[locale], "the locale's own track comes first"
            assert files["sha256"] and files["labels"] == {"aigc": True, "c2pa": True}
            assert (out / files["hls"]).read_text().startswith("#EXTM3U")
            for subtitle_locale, vtt in files["subtitles"].items():
                text = (out / vtt).read_text(encoding="utf-8")
                assert text.startswith("WEBVTT") and text.count(" --> ") >= 10, (vtt, subtitle_locale)
    # Each locale is voiced on the same picture: the episode's MP4s differ only in sound and subtitles.
    first_episode = manifest["episodes"][0]["files"]
    video_sizes = {
        locale: next(s for s in probe(out / files["mp4"])["streams"] if s["codec_type"] == "video")["nb_frames"]
        for locale, files in first_episode.items()
    }
    assert len(set(video_sizes.values())) == 1, video_sizes
    # Whatever the model could not translate is listed, never passed off as translated.
    for locale, missing in manifest["untranslated"].items():
        assert locale in {"es", "zh"} and missing["count"] == len(missing["texts"])
    # Authored text is never machine-translated: only the scene the tables leave out went to the model.
    for listing in (manifest["machine_translated"], manifest["untranslated"]):
        for locale, slots in listing.items():
            assert all(text.startswith("e5-4/") for text in slots["texts"]), (locale, slots)
    assert manifest["machine_translated"] or manifest["untranslated"]


@pytest.mark.slow
def test_a_premise_is_drafted_into_an_episode_and_reused(tmp_path: Path) -> None:
    premise = yaml.safe_load(PREMISE.read_text())
    premise["episodes"] = 1
    premise["episode_seconds"] = [25, 45]  # two or three scenes: drafting is the slow part on 2 cores
    source = tmp_path / "one-episode.yaml"
    source.write_text(yaml.safe_dump(premise))
    out = tmp_path / "out"
    result = produce(source, tmp_path / "data", "--locales", "en", "-o", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    (episode,) = manifest["episodes"]
    assert 25 <= episode["duration_s"] <= 45, episode
    assert_vertical_h264_aac(out / episode["files"]["en"]["mp4"])
    story = json.loads((out / "story.json").read_text())
    assert [scene["id"] for scene in story["scenes"]] == episode["scenes"]
    assert story["scenes"][-1]["ending"] is True
    first = counters(out)[0]
    assert first["drafted"] == len(episode["scenes"]) and first["rendered"] == len(episode["scenes"])

    # Everything is reused: the same command again, in-process (no model to load, no process to start).
    again = produce_in_process(source, tmp_path / "data", "--locales", "en", "-o", str(out))
    assert again.exit_code == 0, again.stderr[-3000:]
    second = counters(out)[1]
    assert second["drafted"] == 0 and second["drafts_reused"] == len(episode["scenes"])
    assert second["rendered"] == 0 and second["renders_reused"] == len(episode["scenes"])
    assert second["assembled"] == 0 and second["assembled_reused"] == 1


# --- bad input ------------------------------------------------------------------------------------
# Refused before any work: the same command, run in-process (no interpreter to start, no model to load).


def test_an_empty_premise_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "empty.yaml"
    source.write_text("\n")
    result = produce_in_process(source, tmp_path / "data")
    assert result.exit_code == 1
    assert "the premise is empty" in result.stderr


def test_a_premise_without_a_logline_names_the_field(tmp_path: Path) -> None:
    premise = yaml.safe_load(PREMISE.read_text())
    premise["bible"]["logline"] = "   "
    source = tmp_path / "premise.yaml"
    source.write_text(yaml.safe_dump(premise))
    result = produce_in_process(source, tmp_path / "data")
    assert result.exit_code == 1
    assert "bible.logline" in result.stderr


def test_an_unknown_locale_is_refused_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = produce_in_process(SERIES, tmp_path / "data", "--locales", "en,xx-klingon", "-o", str(out))
    assert result.exit_code == 1
    assert "unknown locale 'xx-klingon'" in result.stderr and "available:" in result.stderr
    assert not out.exists()


def test_a_story_with_no_ending_is_refused(tmp_path: Path) -> None:
    story = yaml.safe_load(SERIES.read_text())
    last = story["scenes"][-1]
    last["ending"] = False
    last["choices"] = [{"id": "again", "label": "Again", "target": story["start"]}]
    source = tmp_path / "endless.yaml"
    source.write_text(yaml.safe_dump(story))
    result = produce_in_process(source, tmp_path / "data", "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "has no ending scene" in result.stderr


def test_a_branching_story_is_refused_with_the_scene_that_branches(tmp_path: Path) -> None:
    seed = ROOT / "narrative" / "stories" / "last-ferry.yaml"
    result = produce_in_process(seed, tmp_path / "data", "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "a linear series needs at most one per scene" in result.stderr


def mount_small_disk(folder: Path, size: str) -> list[str] | None:
    """A tmpfs of ``size`` at ``folder``: as root directly, else in a user namespace; None if neither works."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
        return [] if done.returncode == 0 else None
    if shutil.which("unshare") is None:
        return None
    probe_run = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return (
        ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size={size} tmpfs "{folder}" && exec "$@"', "sh"]
        if probe_run.returncode == 0
        else None
    )


@pytest.mark.slow
def test_a_full_disk_stops_with_a_clear_error_and_keeps_partial_work(tmp_path: Path) -> None:
    disk = tmp_path / "small-disk"
    prefix = mount_small_disk(disk, "3m")
    if prefix is None:
        pytest.skip("cannot mount a small tmpfs here (needs root or user namespaces)")
    story = yaml.safe_load(SERIES.read_text())
    source = tmp_path / "series.yaml"
    source.write_text(yaml.safe_dump(story))
    command = [
        sys.executable,
        "-m",
        "reelfork.server",
        "produce",
        str(source),
        "--locales",
        "en",
        "-o",
        str(disk / "out"),
    ]
    environment = {**os.environ, "REELFORK_DATA_DIR": str(disk / "data"), "REELFORK_C2PA_DIR": str(tmp_path / "c2pa")}
    try:
        result = subprocess.run([*prefix, *command], env=environment, capture_output=True, text=True, timeout=600)
        assert result.returncode == 1, result.stderr[-2000:]
        assert "disk full" in result.stderr and "run the same command again" in result.stderr, result.stderr[-2000:]
        kept = list((disk / "data").rglob("*.mp4"))
        assert kept, "the scenes finished before the disk filled up are kept"
        assert not [p for p in (disk / "data").rglob("*") if p.name.endswith(".partial.mp4")], "no half-written clip"
    finally:
        if not prefix:
            subprocess.run(["umount", str(disk)], check=False)


# --- REST -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def producing_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = tmp_path_factory.mktemp("producing") / "data"
    server = ServerProcess(data, REELFORK_WARM_AUTHORED="false", REELFORK_SEED_STORIES="false")
    yield server
    server.stop()


def two_scene_story() -> dict[str, Any]:
    story: dict[str, Any] = yaml.safe_load(SERIES.read_text())
    first, second = story["scenes"][0], story["scenes"][1]
    first["choices"][0]["target"] = second["id"]
    first.pop("tags", None)
    second.pop("choices", None)
    second.pop("tags", None)
    second["ending"] = True
    story["scenes"] = [first, second]
    story["id"] = "two-scenes"
    kept = {f"{first['id']}/", f"{second['id']}/title", f"{second['id']}/line:"}  # the tables of what is left
    story["translations"] = {
        locale: {key: text for key, text in table.items() if key.startswith(tuple(kept))}
        for locale, table in story["translations"].items()
    }
    return story


@pytest.mark.slow
def test_rest_production_runs_on_the_workers(producing_server: ServerProcess) -> None:
    headers = {"Authorization": f"Bearer {producing_server.creator_token}"}
    body = {"story": two_scene_story(), "locales": ["en", "es"], "profile": "preview"}
    with httpx.Client(base_url=producing_server.url, headers=headers, timeout=30) as client:
        posted = client.post("/v1/productions", json=body)
        assert posted.status_code == 202, posted.text
        production = posted.json()["id"]
        again = client.post("/v1/productions", json=body)
        assert again.json() == {**posted.json(), "created": False}, "the same request is the same production"
        deadline = time.monotonic() + 600
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = client.get(f"/v1/productions/{production}").json()
            if status["status"] in {"done", "failed"}:
                break
            time.sleep(1)
        assert status["status"] == "done", status
        assert status["progress"]["render"]["done"] == 2
        (episode,) = status["manifest"]["episodes"]
        download = client.get(f"/v1/productions/{production}/files/{episode['files']['es']['mp4']}")
        assert download.status_code == 200 and download.headers["content-type"] == "video/mp4"
        assert download.content[4:8] == b"ftyp"
        assert client.get(f"/v1/productions/{production}/files/../creator-token").status_code == 404
        assert client.get("/v1/productions/nope").status_code == 404
    assert httpx.get(f"{producing_server.url}/v1/productions/{production}").status_code == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"locales": ["en"]}, "give exactly one of premise, story or story_id"),
        ({"story": two_scene_story(), "locales": ["tlh"]}, "unknown locale 'tlh'"),
        ({"story_id": "no-such-story"}, "no story 'no-such-story'"),
        ({"story": {"id": "x"}}, "story."),
        ({"premise": {"title": "", "bible": {}, "places": []}}, "premise"),
        ({"story": two_scene_story(), "profile": "cinema"}, "unknown render profile 'cinema'"),
    ],
)
def test_rest_production_bad_input(producing_server: ServerProcess, body: dict[str, Any], message: str) -> None:
    headers = {"Authorization": f"Bearer {producing_server.creator_token}"}
    response = httpx.post(f"{producing_server.url}/v1/productions", json=body, headers=headers, timeout=30)
    assert response.status_code in {404, 422}, response.text
    assert message in response.text


def test_rest_production_refuses_a_branching_story(producing_server: ServerProcess) -> None:
    headers = {"Authorization": f"Bearer {producing_server.creator_token}"}
    seed = yaml.safe_load((ROOT / "narrative" / "stories" / "last-ferry.yaml").read_text())
    response = httpx.post(f"{producing_server.url}/v1/productions", json={"story": seed}, headers=headers, timeout=30)
    assert response.status_code == 422 and "at most one per scene" in response.text


def test_a_dub_plan_holds_each_line_for_its_slot(tmp_path: Path) -> None:
    from reelfork.generation.render.animatic import AnimaticRenderer
    from reelfork.generation.render.profiles import PROFILES
    from reelfork.generation.render.request import RenderRequest
    from reelfork.generation.render.soundtrack import LEAD_IN, PAUSE, TAIL
    from reelfork.narrative.formats import load_story

    story = load_story(SERIES.read_bytes(), source=SERIES.name)[0]
    scene = story.scenes[0]
    slots = {line.id: 6.0 for line in scene.lines}
    request = RenderRequest(
        scene=scene,
        bible=story.bible,
        profile=PROFILES["preview"],
        output=tmp_path / "planned.mp4",
        line_seconds=slots,
        captions=False,
    )
    clip = AnimaticRenderer().render(request)
    expected = LEAD_IN + len(slots) * (6.0 + PAUSE) + TAIL
    assert abs(clip.duration - expected) < 0.15, (clip.duration, expected)
    starts = [timing.start for timing in clip.timings]
    assert starts == pytest.approx([LEAD_IN + i * (6.0 + PAUSE) for i in range(len(slots))], abs=0.01)
    assert all(timing.end - timing.start < 6.0 for timing in clip.timings), "each line's speech fits its slot"
