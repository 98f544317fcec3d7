"""Plot experiments against a real server: simulated viewers, who unlock episode 2 more often after one
cliffhanger than after the other, are split stably among the variants; the result names that winner."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import websockets

from tests.helpers.processes import ServerProcess
from tests.helpers.viewer import STORY, Viewer, ws_url

pytestmark = pytest.mark.slow

SECRET = "experiment-test-secret-0123456789abcdef"
VIEWERS = 48


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("experiments") / "data", REELFORK_ENTITLEMENT_SECRET=SECRET)
    yield process
    process.stop()


def variant(title: str, hook: str) -> dict[str, Any]:
    """The seed story's heiress scene with another title and last line (line ids kept: translations key on them)."""
    return {
        "id": "heiress", "title": title, "place": "Passenger lounge of the Gray Heron", "mood": "icy",
        "tags": ["cliffhanger"],
        "lines": [
            {"id": "l1", "speaker": "celeste", "text": "{name} Vance. I paid good money to keep you off my island."},
            {"id": "l2", "speaker": "mara", "text": "Still buying people, Celeste? You saw Lily last."},
            {"id": "l3", "speaker": "celeste", "text": "And you left her alone that night. Shall we tell everyone?"},
            {"id": "l4", "speaker": "narrator", "text": hook},
        ],
        "choices": [{"id": "next", "label": "Continue", "target": "blackout"}],
    }


async def viewer(url: str, viewer_id: str, unlocks: dict[str, bool]) -> str:
    """Plays episode 1; at the paywall unlocks if this title's viewers do. Returns the title seen at heiress."""
    async with websockets.connect(ws_url(url)) as websocket:
        player = Viewer(websocket)
        await player.send({"type": "start", "story": STORY, "viewer": viewer_id})
        await player.expect("session")
        await player.expect("scene")
        heiress = await player.choose("next")
        await player.send({"type": "choose", "choice": "next"})
        await player.expect("locked")
        if unlocks[heiress["title"]]:
            claims = {"sub": viewer_id, "story": STORY, "episodes": "all", "exp": int(time.time() + 600)}
            await player.send({"type": "unlock", "entitlement": jwt.encode(claims, SECRET, algorithm="HS256")})
            assert (await player.expect("scene"))["scene"] == "blackout"
        return str(heiress["title"])


async def run_experiment(server: ServerProcess, name: str, rates: dict[str, float]) -> dict[str, Any]:
    """Create the experiment, play :data:`VIEWERS` viewers; every ``1/rate``-th viewer of a title unlocks."""
    auth = {"Authorization": f"Bearer {server.creator_token}"}
    body = {"id": name, "scene": "heiress", "variants": [
        {"id": "calm", "scene": variant("Calm Waters", "The lounge is quiet. Mara sits down.")},
        {"id": "hook", "scene": variant("The Stranger Watches", "A hooded stranger watches, dripping seawater.")},
    ]}
    async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=60) as http:
        created = await http.post(f"/v1/stories/{STORY}/experiments", json=body)
        assert created.status_code == 201, created.text
        arms = {v["id"]: v["version"] for v in created.json()["variants"]}
        assert len(set(arms.values())) == 2
        seen: dict[str, int] = {"Calm Waters": 0, "The Stranger Watches": 0}
        pattern = {title: [n * rate % 1 + rate >= 1 for n in range(VIEWERS)] for title, rate in rates.items()}

        async def one(n: int) -> str:
            return await viewer(server.url, f"acct:{name}-{n}", {title: pattern[title][n] for title in pattern})

        for batch in range(0, VIEWERS, 8):
            for title in await asyncio.gather(*(one(n) for n in range(batch, batch + 8))):
                seen[title] += 1
        assert all(count > 8 for count in seen.values()), seen  # the split spreads viewers over both arms
        again = await viewer(server.url, f"acct:{name}-0", {t: False for t in seen})  # stable per viewer
        assert again in seen
        deadline = time.monotonic() + 30
        while True:
            result = (await http.get(f"/v1/stories/{STORY}/experiments/{name}")).json()
            if sum(v["sessions"] for v in result["variants"]) == VIEWERS + 1 or time.monotonic() > deadline:
                return dict(result)
            await asyncio.sleep(0.3)


async def test_a_known_difference_names_the_winner_and_no_difference_names_none(server: ServerProcess) -> None:
    result = await run_experiment(server, "cliffhanger", {"Calm Waters": 0.2, "The Stranger Watches": 0.8})
    assert "z-test" in result["test"]
    by_id = {v["id"]: v for v in result["variants"]}
    calm, hook = by_id["calm"]["continue_rate"], by_id["hook"]["continue_rate"]
    assert calm["rate"] < 0.35 and hook["rate"] > 0.65
    assert hook["low"] < hook["rate"] < hook["high"]
    assert result["winner"] == "hook"
    assert result["lead"]["p_value"] < 0.05 and 0 < result["lead"]["low"] < result["lead"]["difference"]
    assert by_id["hook"]["unlock_rate"]["rate"] == hook["rate"]

    auth = {"Authorization": f"Bearer {server.creator_token}"}
    promoted = httpx.post(f"{server.url}/v1/stories/{STORY}/experiments/cliffhanger/promote", headers=auth)
    assert promoted.status_code == 200, promoted.text
    latest = httpx.get(f"{server.url}/v1/stories/{STORY}").json()
    assert latest["version"] == promoted.json()["version"]
    assert next(s for s in latest["story"]["scenes"] if s["id"] == "heiress")["title"] == "The Stranger Watches"
    again = httpx.post(f"{server.url}/v1/stories/{STORY}/experiments/cliffhanger/promote", headers=auth)
    assert again.status_code == 409

    even = await run_experiment(server, "even", {"Calm Waters": 0.5, "The Stranger Watches": 0.5})
    assert even["winner"] is None
    refused = httpx.post(f"{server.url}/v1/stories/{STORY}/experiments/even/promote", headers=auth)
    assert refused.status_code == 409


def test_experiments_need_the_token_and_valid_variants(server: ServerProcess) -> None:
    url = f"{server.url}/v1/stories/{STORY}/experiments"
    assert httpx.post(url, json={}).status_code == 401
    auth = {"Authorization": f"Bearer {server.creator_token}"}
    broken = variant("Broken", "x") | {"choices": [{"id": "next", "label": "Continue", "target": "nowhere"}]}
    body = {"scene": "heiress", "variants": [{"id": "a"}, {"id": "b", "scene": broken}]}
    response = httpx.post(url, json=body, headers=auth)
    assert response.status_code == 422 and response.json()["detail"][0]["where"].startswith("body.variants[1]")
    unknown = httpx.post(url, json={"scene": "nope", "variants": [{"id": "a"}, {"id": "b"}]}, headers=auth)
    assert unknown.status_code == 422
    # A variant keeps the line ids the translations name: dropping one is refused, naming the line and the tables.
    shorter = variant("Shorter", "x")
    shorter["lines"] = shorter["lines"][:3]
    # Version 1: the seed as authored (a promoted variant's version no longer translates the texts it changed).
    versioned: dict[str, Any] = {"scene": "heiress", "version": 1,
                                 "variants": [{"id": "a"}, {"id": "b", "scene": shorter}]}
    response = httpx.post(url, json=versioned, headers=auth)
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["where"] == "body.variants[1].scene.lines"
    assert "line 'l4' of scene 'heiress' is gone" in problem["message"] and "es, zh" in problem["message"]
    assert "heiress/line:l4" in problem["message"]
    too_many = {"scene": "heiress", "variants": [{"id": "a"}, {"id": "b"}], "write": {"count": 3, "brief": "x"}}
    assert httpx.post(url, json=too_many, headers=auth).status_code == 422  # 5 arms: at most 4
    start = {"scene": "boarding", "variants": [{"id": "a"}], "write": {"count": 1, "brief": "a colder night"}}
    refused = httpx.post(url, json=start, headers=auth)
    assert refused.status_code == 422 and refused.json()["detail"][0]["where"] == "body.write"
    lone = httpx.post(url, json={"scene": "heiress", "variants": [{"id": "a"}]}, headers=auth)
    assert lone.status_code == 422


def test_the_writer_writes_variants_that_keep_the_scene_s_ids_and_choices(server: ServerProcess) -> None:
    """Real inference: the embedded SmolLM2 writes two alternative cliffhangers for heiress."""
    url = f"{server.url}/v1/stories/{STORY}/experiments"
    auth = {"Authorization": f"Bearer {server.creator_token}"}
    base = httpx.get(f"{server.url}/v1/stories/{STORY}").json()
    authored = next(s for s in base["story"]["scenes"] if s["id"] == "heiress")
    # The experiment's id seeds the writer: with this one SmolLM2's first try of each variant passes the checks
    # (with "written", the first variant took three tries, 44 s in all against 20 s).
    body = {"id": "sharper", "scene": "heiress", "variants": [{"id": "control"}],
            "write": {"count": 2, "brief": "a sharper cliffhanger: someone on the ferry is watching Mara"}}
    accepted = httpx.post(url, json=body, headers=auth, timeout=60)
    assert accepted.status_code == 202, accepted.text
    pending = accepted.json()
    assert pending["status"] == "writing"
    assert [(v["id"], v["version"], v["written"]) for v in pending["variants"]] == [
        ("control", None, False), ("written-1", None, True), ("written-2", None, True)]
    deadline = time.monotonic() + 840
    while True:
        result = httpx.get(f"{url}/sharper", headers=auth, timeout=30).json()
        if result["experiment"]["status"] != "writing":
            break
        assert time.monotonic() < deadline, "the variants were never written"
        time.sleep(2)
    experiment = result["experiment"]
    assert experiment["status"] == "running", experiment.get("failure")
    versions = {v["id"]: v["version"] for v in experiment["variants"]}
    assert len(set(versions.values())) == 3
    latest = httpx.get(f"{server.url}/v1/stories/{STORY}").json()
    assert latest["version"] == versions["control"]  # the control is published last: it stays the latest
    written = []
    for variant_id in ("written-1", "written-2"):
        story = httpx.get(f"{server.url}/v1/stories/{STORY}", params={"version": versions[variant_id]}).json()
        scene = next(s for s in story["story"]["scenes"] if s["id"] == "heiress")
        written.append(scene)
        ids = [line["id"] for line in scene["lines"]]
        authored_ids = [line["id"] for line in authored["lines"]]
        assert ids[: len(authored_ids)] == authored_ids[: len(ids)]  # the authored ids, in order
        assert scene["choices"] == authored["choices"] and scene["place"] == authored["place"]
        assert [line["text"] for line in scene["lines"]] != [line["text"] for line in authored["lines"]]
        untranslated = next(v["untranslated"] for v in experiment["variants"] if v["id"] == variant_id)
        es = story["story"]["translations"]["es"]
        assert "heiress/choice:next" in es  # the choices are the authored ones: their translations apply
        assert all(key not in es for key in untranslated) and untranslated
    assert written[0]["lines"] != written[1]["lines"]  # two variants, not one twice
    assert httpx.get(f"{url}/none", headers=auth).status_code == 404
