"""Security headers on the pages, the API and media; /docs and /metrics only where the settings serve them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from reelfork.server.settings import Settings
from reelfork.server.web.app import create_app


def client_of(data_dir: Path, **settings: object) -> Iterator[TestClient]:
    config = Settings.model_validate(
        {"data_dir": data_dir, "render_workers": 0, "write_workers": 0, "produce_workers": 0, **settings}
    )
    with TestClient(create_app(config)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from client_of(tmp_path_factory.mktemp("headers") / "data", public_url="https://cdn.example.com/x")


@pytest.mark.parametrize("path", ["/", "/index.html", "/creator.html", "/player.js"])
def test_pages_carry_a_csp_and_refuse_framing(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "media-src 'self' blob: https://cdn.example.com" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_media_and_the_api_are_never_sniffed(client: TestClient, tmp_path_factory: pytest.TempPathFactory) -> None:
    settings: Settings = client.app.state.runtime.settings  # type: ignore[attr-defined]
    (settings.media_dir / "clip.mp4").write_bytes(b"<html><script>alert(1)</script>")
    for path in ("/media/clip.mp4", "/v1/stories", "/healthz", "/no-such-page"):
        assert client.get(path).headers["x-content-type-options"] == "nosniff", path


def test_docs_and_metrics_are_served_by_default(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert "content-security-policy" not in client.get("/docs").headers  # its scripts come from a CDN
    assert client.get("/metrics").status_code == 200


def test_docs_and_metrics_can_be_turned_off(tmp_path: Path) -> None:
    for closed in client_of(tmp_path / "data", api_docs=False, expose_metrics=False):
        assert closed.get("/docs").status_code == 404
        assert closed.get("/redoc").status_code == 404
        assert closed.get("/metrics").status_code == 404
        assert closed.get("/openapi.json").status_code == 200
