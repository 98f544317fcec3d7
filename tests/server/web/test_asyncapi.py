"""GET /asyncapi.json: valid AsyncAPI 3.0.0 by the official JSON Schema, and it describes every protocol message."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode
from reelfork.server.settings import Settings
from reelfork.server.web.app import create_app
from reelfork.server.web.protocol import (
    CLIENT_MESSAGES,
    SERVER_MESSAGES,
    Clip,
    EpisodeInfo,
    ErrorCode,
    LineText,
    Locked,
    Offer,
    PersonaInfo,
    PriceInfo,
    SceneMessage,
    Session,
    WindowTimes,
    error,
    message_type,
)

ROOT = Path(__file__).parents[3]
SPEC = ROOT / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0.json"
"""The bundled 3.0.0 schema (every definition inline, keyed by its ``$id``) of npm @asyncapi/specs; see package.json."""

REF_TEMPLATE = "#/components/schemas/{model}"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("asyncapi"), render_workers=0, write_workers=0, produce_workers=0
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/asyncapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    data: dict[str, Any] = response.json()
    return data


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    assert SPEC.is_file(), "the AsyncAPI schemas are missing: run `npm ci` (scripts/dev test does)"
    schema = json.loads(SPEC.read_text())
    assert schema["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def resolve(document: dict[str, Any], node: dict[str, Any]) -> Any:
    """Follow a local ``$ref`` (``#/a/b``) to what it points at."""
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_the_document_is_valid_asyncapi_3(document: dict[str, Any], validator: jsonschema.Draft7Validator) -> None:
    assert document["asyncapi"] == "3.0.0"
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(document)]
    assert errors == []


@pytest.mark.parametrize(
    "breakage",
    [
        lambda doc: doc.pop("info"),
        lambda doc: doc.__setitem__("asyncapi", "3.0"),
        lambda doc: doc["channels"]["play"].__setitem__("address", 7),
        lambda doc: doc["operations"]["send"].__setitem__("action", "publish"),
        lambda doc: doc["operations"]["receive"].pop("channel"),
        lambda doc: doc["servers"]["reelfork"].pop("protocol"),
        lambda doc: doc["components"]["messages"]["start"].__setitem__("payload", {"type": 7}),
        lambda doc: doc["channels"]["play"]["messages"].__setitem__("start", "start"),
    ],
)
def test_the_validator_rejects_a_broken_document(
    document: dict[str, Any], validator: jsonschema.Draft7Validator, breakage: Any
) -> None:
    broken = copy.deepcopy(document)
    breakage(broken)
    assert not validator.is_valid(broken)


def expected_payload(model: type[BaseModel], mode: JsonSchemaMode, document: dict[str, Any]) -> dict[str, Any]:
    """The model's own JSON Schema; its ``$defs`` must be the document's component schemas."""
    schema = model.model_json_schema(mode=mode, ref_template=REF_TEMPLATE)
    for name, definition in schema.pop("$defs", {}).items():
        assert document["components"]["schemas"][name] == definition
    return schema


def test_the_channel_lists_every_message_with_its_payload(document: dict[str, Any]) -> None:
    (channel,) = document["channels"].values()
    assert channel["address"] == "/v1/play"
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(model, "validation") for model in CLIENT_MESSAGES]
    models += [(model, "serialization") for model in SERVER_MESSAGES]
    assert set(channel["messages"]) == {message_type(model) for model, _ in models}
    for model, mode in models:
        message = resolve(document, channel["messages"][message_type(model)])
        payload = resolve(document, message["payload"])
        assert payload == expected_payload(model, mode, document)
        assert payload["properties"]["type"]["const"] == message_type(model)
        assert "type" in payload["required"]


def test_the_operations_are_the_servers(document: dict[str, Any]) -> None:
    operations = document["operations"]
    assert operations["receive"]["action"] == "receive" and operations["send"]["action"] == "send"
    for operation in operations.values():
        assert resolve(document, operation["channel"]) is resolve(document, {"$ref": "#/channels/play"})
    received = [resolve(document, ref)["name"] for ref in operations["receive"]["messages"]]
    sent = [resolve(document, ref)["name"] for ref in operations["send"]["messages"]]
    assert received == [message_type(model) for model in CLIENT_MESSAGES]
    assert sent == [message_type(model) for model in SERVER_MESSAGES]


def test_the_error_code_schema_lists_every_code(document: dict[str, Any]) -> None:
    assert document["components"]["schemas"]["ErrorCode"]["enum"] == [code.value for code in ErrorCode]


def test_real_frames_match_their_payload_schemas(document: dict[str, Any]) -> None:
    frames = {
        "scene": SceneMessage(
            scene="a", title="A", lines=[LineText(id="l1", speaker="Zoë", text="Zoë?", machine_translated=False)],
            clip="http://x/a.mp4", subtitles="http://x/a.vtt", duration=30.0,
            choices=[Offer(id="go", label="Go", default=True)], choice_window=WindowTimes(opens_at=20, closes_at=30),
            episode=EpisodeInfo(number=1, title="One", free=True), ending=False, position=0,
        ),
        "locked": Locked(episode=EpisodeInfo(number=2, title="Two", free=False), price=PriceInfo(coins=60)),
        "error": error(ErrorCode.RENDER_FAILED, "no clip"),
        "session": Session(session="T", viewer="v", story="s", version=1, locale="zh",
                           persona=PersonaInfo(name="Zoë", look="storm")),
        "clip": Clip(scene="a", url="http://x/a.mp4", subtitles="http://x/a.vtt", duration=30.0, choice_window=None),
    }
    for name, frame in frames.items():
        payload = {"$ref": f"#/components/messages/{name}/payload", "components": document["components"]}
        jsonschema.Draft202012Validator(payload).validate(json.loads(frame.model_dump_json()))
    stray = {"type": "error", "code": "teapot", "message": "no"}
    with pytest.raises(jsonschema.ValidationError):
        payload = {"$ref": "#/components/messages/error/payload", "components": document["components"]}
        jsonschema.Draft202012Validator(payload).validate(stray)


def test_the_servers_host_is_the_one_asked(client: TestClient, document: dict[str, Any]) -> None:
    assert document["servers"]["reelfork"] == {
        "host": "testserver",
        "protocol": "ws",
        "description": "this reelfork server",
    }
    assert "/asyncapi.json" not in client.get("/openapi.json").json()["paths"]
