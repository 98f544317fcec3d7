"""The OpenAPI document describes what the API really sends: a model for every 2xx, one problem list for 422."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import SecretStr
from reelfork.server.runtime import seed_story_files
from reelfork.server.settings import Settings
from reelfork.server.web.app import create_app
from reelfork.server.web.problems import ProblemList

TOKEN = "creator-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("openapi") / "data",
        creator_token=SecretStr(TOKEN),
        render_workers=0,
        write_workers=0,
        produce_workers=0,
        warm_authored=False,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def problem_list_of(body: Any) -> ProblemList:
    """The body read as the documented model, which must keep every field that was sent."""
    problems = ProblemList.model_validate(body)
    assert problems.model_dump(mode="json") == body
    return problems


def test_every_success_under_v1_has_a_schema(document: dict[str, Any]) -> None:
    checked = 0
    for path, method, operation in operations(document):
        if not path.startswith("/v1/"):
            continue
        successes = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
        assert successes, f"{method} {path} documents no success"
        for code, response in successes.items():
            assert response.get("content"), f"{method} {path} {code} has no content"
            for media_type, content in response["content"].items():
                schema = content.get("schema", {})
                assert schema, f"{method} {path} {code} {media_type} has no schema"
                assert schema != {"type": "object", "additionalProperties": True}, f"{method} {path} is free-form"
            checked += 1
    assert checked >= 9


def test_422_is_the_problem_list_everywhere(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    for path, method, operation in operations(document):
        if "422" in operation["responses"]:
            ref = operation["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/ProblemList", f"{method} {path}"
    assert document["paths"]["/v1/stories"]["post"]["responses"]["422"]
    assert document["paths"]["/v1/productions"]["post"]["responses"]["422"]
    located = schemas["Located"]
    assert set(located["required"]) == {"severity", "where", "message"}


def test_a_bad_story_gets_the_documented_422(client: TestClient) -> None:
    data = yaml.safe_load(seed_story_files()[0].read_text())
    data["id"] = "broken"
    data["scenes"][0]["choices"][0]["target"] = "nowhere"
    response = client.post("/v1/stories", content=json.dumps(data), headers=AUTH)
    assert response.status_code == 422
    wheres = {problem.where for problem in problem_list_of(response.json()).detail}
    assert "scenes[boarding].choices[next].target" in wheres
    malformed = client.post("/v1/stories", content="id: [oops", headers=AUTH)
    assert malformed.status_code == 422
    assert problem_list_of(malformed.json()).detail[0].where.startswith("body:")


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("{not json", "body"),
        (json.dumps({"story_id": "x", "locales": "en"}), "body.locales"),
        (json.dumps({"locales": ["en"]}), "body"),
        (json.dumps({"story": {"id": "x"}}), "story"),
        (json.dumps({"story_id": "last-ferry", "profile": "cinema"}), "body"),
    ],
)
def test_bad_production_bodies_get_the_documented_422(client: TestClient, body: str, where: str) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    response = client.post("/v1/productions", content=body, headers=headers)
    assert response.status_code == 422, response.text
    problems = problem_list_of(response.json()).detail
    assert problems and problems[0].where.startswith(where) and problems[0].severity == "error"


def test_a_bad_query_parameter_gets_the_documented_422(client: TestClient) -> None:
    response = client.get("/v1/stories/last-ferry/graph", params={"format": "svg"})
    assert response.status_code == 422
    assert problem_list_of(response.json()).detail[0].where == "query.format"
    response = client.get("/v1/stories/last-ferry", params={"version": "latest"})
    assert response.status_code == 422
    assert problem_list_of(response.json()).detail[0].where == "query.version"


def test_the_graph_answers_json_dot_and_mermaid(client: TestClient) -> None:
    graph = client.get("/v1/stories/last-ferry/graph").json()
    assert graph["start"] == "boarding" and {"id", "title", "kind"} == set(graph["nodes"][0])
    dot = client.get("/v1/stories/last-ferry/graph", params={"format": "dot"})
    assert dot.headers["content-type"].startswith("text/vnd.graphviz") and "digraph" in dot.text
    mermaid = client.get("/v1/stories/last-ferry/graph", params={"format": "mermaid"})
    assert mermaid.headers["content-type"].startswith("text/plain")


NON_ASCII = "Bearer t\u00f6k\u00e9n"


@pytest.mark.parametrize("token", [NON_ASCII.encode(), NON_ASCII.encode("latin-1"), b"Bearer "])
def test_a_non_ascii_or_empty_bearer_token_gets_401(client: TestClient, token: bytes) -> None:
    response = client.get("/v1/productions/abc", headers={b"Authorization": token})
    assert response.status_code == 401
    assert response.json() == {"detail": "creator routes need 'Authorization: Bearer <creator token>'"}


def test_health_reports_the_queue(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["queue"]["render:queued"] == 0


def test_the_creator_token_opens_creator_routes(client: TestClient) -> None:
    assert client.get("/v1/productions/abc", headers=AUTH).status_code == 404
    assert client.get("/v1/productions/abc").status_code == 401
