"""An AsyncAPI 3.0.0 description of the play protocol, built from the models in ``protocol.py``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from reelfork.server.web.protocol import CLIENT_MESSAGES, PATH, SERVER_MESSAGES, VERSION, message_type

ASYNCAPI_VERSION = "3.0.0"
CHANNEL = "play"
SERVER = "reelfork"

router = APIRouter()


def document(host: str = "localhost:8000", protocol: str = "ws") -> dict[str, Any]:
    """The AsyncAPI document: one channel with every message, ``receive`` for the client's, ``send`` for ours.

    Operations are the server's: it receives the client messages and sends the server messages.
    """
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(model, "validation") for model in CLIENT_MESSAGES]
    models += [(model, "serialization") for model in SERVER_MESSAGES]
    refs, definitions = models_json_schema(models, ref_template="#/components/schemas/{model}")
    messages: dict[str, Any] = {}
    for model, mode in models:
        name = message_type(model)
        messages[name] = {
            "name": name,
            "title": name,
            "summary": (model.__doc__ or "").strip(),
            "contentType": "application/json",
            "payload": refs[(model, mode)],
        }
    client = [message_type(model) for model in CLIENT_MESSAGES]
    server = [message_type(model) for model in SERVER_MESSAGES]
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "reelfork play protocol",
            "version": VERSION,
            "description": "JSON text frames, each with a `type`. A frame over the server's size limit closes the "
            "socket with code 1009; `resume` on a new connection continues at the same scene.",
        },
        "defaultContentType": "application/json",
        "servers": {
            SERVER: {"host": host, "protocol": protocol, "description": "this reelfork server"},
        },
        "channels": {
            CHANNEL: {
                "address": PATH,
                "title": "play",
                "description": "One websocket per viewer; sessions live in the store, so any replica serves them.",
                "servers": [{"$ref": f"#/servers/{SERVER}"}],
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
            }
        },
        "operations": {
            "receive": {
                "action": "receive",
                "title": "what a client sends",
                "channel": {"$ref": f"#/channels/{CHANNEL}"},
                "messages": [{"$ref": f"#/channels/{CHANNEL}/messages/{name}"} for name in client],
            },
            "send": {
                "action": "send",
                "title": "what the server sends",
                "channel": {"$ref": f"#/channels/{CHANNEL}"},
                "messages": [{"$ref": f"#/channels/{CHANNEL}/messages/{name}"} for name in server],
            },
        },
        "components": {"schemas": definitions["$defs"], "messages": messages},
    }


@router.get("/asyncapi.json", include_in_schema=False)
async def asyncapi(request: Request) -> dict[str, Any]:
    """This server's play protocol as AsyncAPI 3.0.0; the host and scheme are the ones the client used."""
    protocol = "wss" if request.url.scheme == "https" else "ws"
    return document(request.headers.get("host") or request.url.netloc, protocol)
