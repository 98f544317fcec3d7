"""The production routes refuse what a client can send with a 4xx: paths with NUL bytes, hostile bodies, odd tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from reelfork.server.settings import Settings
from reelfork.server.web.app import create_app

TOKEN = "creator-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("productions") / "data",
        creator_token=SecretStr(TOKEN),
        render_workers=0,
        write_workers=0,
        produce_workers=0,
        warm_authored=False,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize("path", ["a%00b", "%00", "x/%00/y", "a" * 5000, "../../etc/passwd"])
def test_a_hostile_file_path_is_404(client: TestClient, path: str) -> None:
    response = client.get(f"/v1/productions/abc/files/{path}", headers=AUTH)
    assert response.status_code == 404


def test_a_nul_in_the_production_id_is_422(client: TestClient) -> None:
    response = client.get("/v1/productions/a%00b/files/manifest.json", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["where"] == "path.production"


@pytest.mark.parametrize("token", ["ünïcode", "creator-secret\x7f", "x" * 10_000])
def test_an_odd_token_is_401(client: TestClient, token: str) -> None:
    response = client.get("/v1/productions/abc", headers={b"Authorization": f"Bearer {token}".encode("latin-1")})
    assert response.status_code == 401
