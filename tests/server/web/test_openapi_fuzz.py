"""schemathesis over ``/openapi.json``, with and without the creator token, on a server with no workers (fuzzed
publishes and productions queue but never run): no 5xx, and every response as the document describes it."""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.helpers.processes import ServerProcess

pytestmark = pytest.mark.slow

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
NO_WORKERS = {"REELFORK_RENDER_WORKERS": "0", "REELFORK_WRITE_WORKERS": "0", "REELFORK_PRODUCE_WORKERS": "0"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("fuzz") / "data", **NO_WORKERS)
    yield process
    process.stop()


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    """As documented: ``/v1/stories/{story_id}``."""

    def tried(self, method: str, path: str) -> bool:
        pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(self.path))
        return method == self.method and re.fullmatch(pattern, path) is not None


def operations(server: ServerProcess) -> list[Operation]:
    document = httpx.get(f"{server.url}/openapi.json").json()
    return [Operation(method.upper(), path) for path, item in document["paths"].items() for method in item]


def schemathesis(server: ServerProcess, har: Path, headers: list[str], phases: str) -> subprocess.CompletedProcess[str]:
    """One worker: with two, hypothesis's ``ast.parse`` of filter lambdas races in another thread and CPython 3.11
    fails it ("AST constructor recursion depth mismatch"), which crashed the coverage phase at random."""
    command = [
        str(Path(sys.executable).with_name("st")), "run", f"{server.url}/openapi.json",
        "--checks", CHECKS, "--phases", phases, "--max-examples", "25", "--seed", "24", "--workers", "1",
        "--generation-database", "none", "--no-color", "--report", "har", "--report-har-path", str(har), *headers,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("authorized", [False, True], ids=["no-token", "creator-token"])
def test_no_5xx_and_every_response_as_documented(server: ServerProcess, tmp_path: Path, authorized: bool) -> None:
    headers = ["--header", f"Authorization: Bearer {server.creator_token}"] if authorized else []
    run = schemathesis(server, tmp_path / "run.har", headers, "examples,coverage,fuzzing,stateful")
    entries = json.loads((tmp_path / "run.har").read_text())["log"]["entries"]
    statuses = collections.Counter(entry["response"]["status"] for entry in entries)
    asked = {(entry["request"]["method"], urlsplit(entry["request"]["url"]).path) for entry in entries}
    untried = [operation for operation in operations(server) if not any(operation.tried(*a) for a in asked)]
    server_errors = sum(count for status, count in statuses.items() if status >= 500)
    print(f"schemathesis ({'creator token' if authorized else 'no token'}): {sum(statuses.values())} requests, "
          f"{server_errors} 5xx, statuses {dict(sorted(statuses.items()))}")
    assert run.returncode == 0, run.stdout[-6000:]
    assert untried == []  # every documented route (new ones too) was fuzzed
    assert server_errors == 0
    assert sum(statuses.values()) > 300
    assert "Traceback" not in server.log_tail(200_000)
