"""One connection's limits: a message rate answered with ``rate_limited`` (the connection stays usable), and a new
``start`` releasing the session it replaces from the lookahead."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from reelfork.server.runtime import Runtime
from reelfork.server.settings import Settings
from reelfork.server.web.app import create_app

START = {"type": "start", "story": "last-ferry"}


@pytest.fixture
def client(tmp_path: Any) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path / "data",
        render_workers=0,
        write_workers=0,
        produce_workers=0,
        warm_authored=False,
        choice_wait_s=0,
        message_rate=20,
        message_burst=10,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def runtime_of(client: TestClient) -> Runtime:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return runtime


def test_a_burst_past_the_limit_is_rate_limited_and_the_connection_stays_usable(client: TestClient) -> None:
    with client.websocket_connect("/v1/play") as socket:
        for _ in range(30):
            socket.send_text('{"type":"dance"}')
        codes = [socket.receive_json()["code"] for _ in range(30)]
        assert "rate_limited" in codes and "unknown_type" in codes
        assert codes.count("unknown_type") <= 12  # the burst, and what the rate refilled meanwhile
        time.sleep(0.5)
        socket.send_json(START)
        assert socket.receive_json()["type"] == "session"
        assert socket.receive_json()["type"] == "scene"


def test_a_new_start_releases_the_earlier_session(client: TestClient) -> None:
    lookahead = runtime_of(client).lookahead
    with client.websocket_connect("/v1/play") as socket:
        tokens = []
        for _ in range(3):
            socket.send_json(START)
            tokens.append(socket.receive_json()["session"])
            assert socket.receive_json()["type"] == "scene"
        assert set(lookahead._observed) == {tokens[-1]}
    assert set(lookahead._observed) == set()
