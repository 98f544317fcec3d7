"""Publishing off the event loop: summarised findings, a warm-up budget, and /healthz answering meanwhile."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from reelfork.narrative.export import to_dot, to_mermaid
from reelfork.narrative.problems import Problem
from reelfork.narrative.story import Story
from reelfork.server.publishing import LISTED, earliest_scenes, prepare, summarise
from reelfork.server.queue import keys
from reelfork.server.runtime import seed_story_files
from reelfork.server.store import PACKED, is_packed, packed, unpacked
from reelfork.server.web.stories import StoryDocument, StoryGraph, StoryListing, story_graph_of, story_summary

from bench.publish import large_story, publish
from tests.helpers.processes import RedisProcess, ServerProcess


def test_findings_are_listed_up_to_a_bound_and_counted_by_message() -> None:
    problems = [Problem("warning", f"scenes[s{i}]", "unreachable" if i % 3 else "odd") for i in range(1000)]
    findings = summarise(problems)
    assert len(findings.listed) == LISTED and findings.total == 1000
    assert findings.counts == {"odd": 334, "unreachable": 666}


def test_prepare_sends_back_the_earliest_scenes_only() -> None:
    prepared = prepare(large_story(1000, every=10), "story", warm_budget=5)
    assert prepared.errors is None and prepared.excerpt is not None
    assert [s.id for s in prepared.excerpt.scenes] == ["s0", "s10", "s20", "s30", "s40"]
    assert prepared.warnings.counts == {"unreachable from the start scene": 900}
    assert len(prepared.warnings.listed) == LISTED
    assert json.loads(unpacked(prepared.document))["id"] == "large"
    assert [s.id for s in earliest_scenes(prepared.excerpt, 2)] == ["s0", "s10"]


def test_large_story_documents_are_stored_compressed() -> None:
    small, large = large_story(100).decode(), large_story(10_000).decode()
    assert packed(small) == small and unpacked(small) == small
    stored = packed(large)
    assert stored.startswith(PACKED) and len(stored) < len(large) / 10 and unpacked(stored) == large


def test_refusals_are_bounded_too() -> None:
    story = json.loads(large_story(500, every=10))
    for scene in story["scenes"][1::2]:
        scene.pop("ending")  # a dead end: an error each
    prepared = prepare(json.dumps(story).encode(), "story", warm_budget=5)
    assert prepared.errors is not None and prepared.errors.total >= 250 and len(prepared.errors.listed) == LISTED


@pytest.mark.slow
def test_a_hundred_thousand_scenes_publish_while_healthz_answers(tmp_path: Path) -> None:
    store = RedisProcess(tmp_path)
    server = ServerProcess(
        tmp_path / "data", REELFORK_REDIS_URL=store.url, REELFORK_WARM_BUDGET="50",
        REELFORK_RENDER_WORKERS="0", REELFORK_WRITE_WORKERS="0", REELFORK_PRODUCE_WORKERS="0",
    )
    client = redis.Redis.from_url(store.url)
    try:
        before = int(client.zcard(keys.queued("render")))
        body = large_story(100_000)
        assert len(body) < 10 * 1024 * 1024
        result = publish(server.url, server.creator_token, body)
        answer = json.loads(result.body)
        polls = result.latencies()
        print(f"publish {result.seconds:.2f} s; /healthz {len(polls)} polls meanwhile, "
              f"max {max(polls) * 1000:.1f} ms, answer {len(result.body):,} bytes")
        assert result.status == 201, answer
        assert len(polls) >= 5  # the loop kept answering while the story was parsed and validated
        assert answer["warnings_total"] == 90_000 and len(answer["warnings"]) == LISTED
        assert len(result.body) < 64 * 1024
        assert int(client.zcard(keys.queued("render"))) - before == 50
        stored = client.hget(keys.story("large"), "v1")
        assert isinstance(stored, bytes) and stored.startswith(PACKED.encode())
        story = httpx.get(f"{server.url}/v1/stories/large", timeout=120).json()  # read back from the packed form
        assert len(story["story"]["scenes"]) == 100_000
    finally:
        client.close()
        server.stop()
        store.stop()


def test_a_large_story_reads_back_as_published_from_its_stored_json(tmp_path: Path) -> None:
    """Above the packing size, the story, its graph and its catalogue entry come from the stored JSON (the story
    as is, the rest from the publishing process): the same documents as the models would give."""
    server = ServerProcess(
        tmp_path / "data", REELFORK_WARM_BUDGET="5", REELFORK_SEED_STORIES="false",
        REELFORK_RENDER_WORKERS="0", REELFORK_WRITE_WORKERS="0", REELFORK_PRODUCE_WORKERS="0",
    )
    body = large_story(5_000)
    story = Story.model_validate_json(body)
    assert is_packed(packed(story.model_dump_json()))
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            headers = {"authorization": f"Bearer {server.creator_token}", "content-type": "application/json"}
            assert client.post("/v1/stories", content=body, headers=headers).status_code == 201
            answer = client.get("/v1/stories/large")
            assert answer.headers["content-type"] == "application/json"
            document = StoryDocument.model_validate_json(answer.content)
            assert (document.id, document.version, document.story) == ("large", 1, story)
            assert answer.json() == {"id": "large", "version": 1, "story": story.model_dump(mode="json")}
            assert client.get("/v1/stories/large", params={"version": 2}).status_code == 404

            graph = client.get("/v1/stories/large/graph")
            assert StoryGraph.model_validate_json(graph.content) == story_graph_of(story, 1, None, [])
            creator = {"authorization": headers["authorization"]}  # with the token: the viewers per choice too
            graph = client.get("/v1/stories/large/graph", headers=creator)
            assert StoryGraph.model_validate_json(graph.content) == story_graph_of(story, 1, {}, [])
            dot = client.get("/v1/stories/large/graph", params={"format": "dot"})
            assert dot.headers["content-type"].startswith("text/vnd.graphviz") and dot.text == to_dot(story)
            assert client.get("/v1/stories/large/graph", params={"format": "mermaid"}).text == to_mermaid(story)

            listing = StoryListing.model_validate_json(client.get("/v1/stories").content)
            assert listing.stories == [story_summary(story, 1, paywall=False)]
    finally:
        server.stop()


def test_a_licensed_likeness_without_its_release_is_refused_and_nothing_is_stored(
    live_server_process: ServerProcess,
) -> None:
    headers = {"Authorization": f"Bearer {live_server_process.creator_token}"}
    url = f"{live_server_process.url}/v1/stories"
    data = yaml.safe_load(seed_story_files()[0].read_text())
    data["id"] = "unreleased"
    data["bible"]["characters"][2]["likeness"] = {"kind": "licensed"}
    response = httpx.post(url, content=json.dumps(data), headers=headers)
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert [(problem["where"], "'release'" in problem["message"]) for problem in problems] == [
        ("bible.characters[2].likeness", True)
    ], problems
    assert httpx.get(f"{url}/unreleased").status_code == 404
    data["bible"]["characters"][2]["likeness"] = {"kind": "licensed", "release": "REL-0042"}
    assert httpx.post(url, content=json.dumps(data), headers=headers).status_code in (200, 201)
