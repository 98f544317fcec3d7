"""Real child processes for tests: one way to spawn a process, wait until it answers, and stop it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness check: ``url`` answers 200."""

    def ready() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return ready


def redis_pong(port: int) -> Callable[[], bool]:
    """A readiness check: a redis-server on ``port`` answers PING."""

    def ready() -> bool:
        with redis.Redis(port=port) as client:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

    return ready


class Process:
    """A child process with its output in a log file (a full pipe would stall it). With ``own_group`` it runs
    in its own process group, so that stopping it stops whatever it started (a worker host's pool)."""

    def __init__(
        self, command: list[str], log: Path, env: Mapping[str, str] | None = None, own_group: bool = False
    ) -> None:
        self.command = command
        self.env = {**os.environ, **(env or {})}
        self.log_path = log
        self.own_group = own_group
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.log = self.log_path.open("ab")
        return subprocess.Popen(
            self.command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=self.own_group
        )

    def log_tail(self, size: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-size:]

    def wait_ready(self, ready: Callable[[], bool], timeout: float, interval: float = 0.2) -> None:
        """Poll ``ready`` until it holds; fail with the log's tail if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.command[:4]} exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.command[:4]} was not ready within {timeout} s:\n{self.log_tail()}")
            time.sleep(interval)

    def _signal(self, signum: signal.Signals) -> None:
        if self.own_group:
            with contextlib.suppress(ProcessLookupError):  # the group may be gone already
                os.killpg(self.process.pid, signum)
        elif self.process.poll() is None:
            self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL (to the whole group with ``own_group``), as a machine that dies."""
        self._signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM; SIGKILL if it has not exited within ``timeout``."""
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


class ServerProcess(Process):
    """``reelfork serve`` on a free loopback port, healthy (``/healthz``) once constructed."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        environment = {
            "REELFORK_PORT": str(self.port),
            "REELFORK_DATA_DIR": str(data_dir),
            "REELFORK_RENDER_PROFILE": "preview",
            **env,
        }
        command = [sys.executable, "-m", "reelfork.server", "serve"]
        super().__init__(command, data_dir.parent / f"server-{self.port}.log", environment)
        self.wait_ready(http_ok(f"{self.url}/healthz"), timeout=60)

    @property
    def creator_token(self) -> str:
        return (self.data_dir / "creator-token").read_text().strip()


LEASE_S = "6"


class WorkerProcess(Process):
    """``reelfork worker``: a worker host taking jobs from the shared Redis (it serves no health check)."""

    def __init__(
        self,
        data_dir: Path,
        redis_url: str,
        log: Path,
        kinds: str = "render,write",
        processes: int = 1,
        **settings: str,
    ) -> None:
        environment = {
            "REELFORK_DATA_DIR": str(data_dir),
            "REELFORK_REDIS_URL": redis_url,
            "REELFORK_RENDER_PROFILE": "preview",
            "REELFORK_JOB_LEASE_S": LEASE_S,
            **settings,
        }
        command = [sys.executable, "-m", "reelfork.server", "worker", "--kinds", kinds, "--processes", str(processes)]
        super().__init__(command, log, environment, own_group=True)  # the group holds its pool processes too


class RedisProcess(Process):
    """A real redis-server on a free port; with ``persistent``, an append-only file that survives a restart."""

    def __init__(self, folder: Path, persistent: bool = False) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is missing: scripts/dev test installs Debian's redis-server"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if persistent else ["--appendonly", "no"]
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", ""]
        super().__init__([*command, *durability], folder / f"redis-{self.port}.log")
        self.wait_ready(redis_pong(self.port), timeout=10, interval=0.05)

    def start(self) -> None:
        """Start it again after :meth:`stop`, on the same port and files."""
        self.process = self._spawn()
        self.wait_ready(redis_pong(self.port), timeout=10, interval=0.05)


class LlamaServerProcess(Process):
    """``python -m llama_cpp.server`` (an OpenAI-compatible peer) with ``model`` on a free loopback port."""

    def __init__(self, model: Path, log: Path) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}/v1"
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1"]
        command += ["--port", str(port), "--n_ctx", "2048", "--n_threads", "1"]
        super().__init__(command, log)
        self.wait_ready(http_ok(f"{self.base_url}/models"), timeout=30)
