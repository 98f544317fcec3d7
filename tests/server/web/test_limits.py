"""The body limit and auth before parsing: a large or hostile body is refused before it costs memory or a parse."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from reelfork.server.settings import Settings
from reelfork.server.web.app import create_app

from tests.helpers.processes import ServerProcess

TOKEN = "creator-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("limits") / "data",
        creator_token=SecretStr(TOKEN),
        max_body_bytes=LIMIT,
        render_workers=0,
        write_workers=0,
        produce_workers=0,
        warm_authored=False,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def chunks(total: int, size: int = 16 * 1024) -> Iterator[bytes]:
    for start in range(0, total, size):
        yield b" " * min(size, total - start)


def test_a_declared_length_over_the_limit_is_refused_before_reading(client: TestClient) -> None:
    response = client.post("/v1/stories", content=b"x" * (LIMIT + 1), headers=AUTH)
    assert response.status_code == 413
    assert "REELFORK_MAX_BODY_BYTES" in response.json()["detail"]


def test_a_streamed_body_over_the_limit_is_refused_while_reading(client: TestClient) -> None:
    response = client.post("/v1/stories", content=chunks(LIMIT * 4), headers={**AUTH, "content-type": "text/x-twee"})
    assert response.status_code == 413


def test_a_body_within_the_limit_still_reaches_the_parser(client: TestClient) -> None:
    response = client.post("/v1/stories", content=b"{", headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 422


@pytest.mark.parametrize("path", ["/v1/stories", "/v1/productions"])
def test_no_token_is_refused_before_the_body_is_read(client: TestClient, path: str) -> None:
    response = client.post(path, content=b"{" * 1000, headers={"content-type": "application/json"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"locales": [' + b"[" * 1000 + b"]" * 1000 + b"]}", "recursion"),
        (b'{"version": ' + b"9" * 5000 + b"}", "number"),
        (b"not json", "JSON"),
    ],
)
def test_a_hostile_production_body_is_a_located_422(client: TestClient, body: bytes, message: str) -> None:
    response = client.post("/v1/productions", content=body, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 422
    problems = response.json()["detail"]
    assert problems[0]["where"].startswith("body")
    assert message in problems[0]["message"]


def test_the_production_body_is_documented(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/productions"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert {"premise", "story", "story_id", "locales"} <= set(schema["properties"])
    assert "$ref" not in str(schema)
    for path in ("/v1/productions", "/v1/stories", "/v1/demo/entitlements"):
        assert "413" in client.get("/openapi.json").json()["paths"][path]["post"]["responses"], path


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def post_streamed(port: int, path: str, total: int, token: str | None) -> str:
    """POST ``total`` bytes chunked (no length declared); the status line the server answers."""
    connection = socket.create_connection(("127.0.0.1", port))
    answer = bytearray()

    def read() -> None:
        with contextlib.suppress(OSError):
            while b"\r\n" not in answer:
                data = connection.recv(4096)
                if not data:
                    return
                answer.extend(data)

    reader = threading.Thread(target=read)
    reader.start()
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    head += f"Authorization: Bearer {token}\r\n\r\n" if token else "\r\n"
    try:
        connection.sendall(head.encode())
        chunk = b"[" * (1024 * 1024)
        for _ in range(total // len(chunk)):
            if answer:
                break
            connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except OSError:
        pass  # the server answered and closed: what the reader got is the answer
    reader.join(timeout=30)
    connection.close()
    return bytes(answer).split(b"\r\n")[0].decode()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "authorized"), [("/v1/productions", False), ("/v1/stories", False), ("/v1/stories", True)]
)
def test_300_mb_costs_the_server_no_memory(tmp_path: Path, path: str, authorized: bool) -> None:
    server = ServerProcess(
        tmp_path / "data", REELFORK_RENDER_WORKERS="0", REELFORK_WRITE_WORKERS="0", REELFORK_PRODUCE_WORKERS="0"
    )
    try:
        before = rss_bytes(server.process.pid)
        status = post_streamed(server.port, path, 300 * 1024 * 1024, server.creator_token if authorized else None)
        after = rss_bytes(server.process.pid)
        print(f"{path} (token: {authorized}): {status}; server RSS {before / 2**20:.0f} MB -> {after / 2**20:.0f} MB")
        assert status.split()[1] == ("413" if authorized else "401")
        assert after - before < 20 * 1024 * 1024
    finally:
        server.stop()
