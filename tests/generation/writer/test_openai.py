"""The HTTP scene writer: the vLLM request shape against the documented schema, a real llama.cpp server, faults.

Real peers only: ``python -m llama_cpp.server`` with SmolLM2-135M on a free loopback port (the
``llama_server`` fixture in this package's conftest.py), a closed port, and ``FaultyChatServer`` (a real
``http.server`` on loopback) for the faults that llama.cpp cannot be made to produce.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
from openai.types.shared_params import ResponseFormatJSONSchema
from pydantic import TypeAdapter
from reelfork.generation.writer import prompts, schema
from reelfork.generation.writer.openai import OpenAIWriter, request_body
from reelfork.generation.writer.report import WriteFailed
from reelfork.generation.writer.request import WriteError

from tests.helpers.processes import free_port
from tests.helpers.writer import PARENT, STORY, assert_valid, request

# The request shape, without a server


def test_vllm_body_follows_the_documented_openai_schema() -> None:
    body = request_body(request("c1"), model="m", dialect="vllm", seed=7, temperature=0.7, max_tokens=450)
    # vLLM's documented structured output for its OpenAI-compatible server ("Structured Outputs",
    # vLLM >= 0.12): response_format={"type": "json_schema", "json_schema": {"name", "schema"}}, the
    # OpenAI form, checked here with the `openai` package's own request types.
    TypeAdapter(ResponseFormatJSONSchema).validate_python(body["response_format"], strict=True)
    TypeAdapter(CompletionCreateParamsNonStreaming).validate_python(body)
    # Every key is a documented chat-completion parameter; in particular no `guided_json`,
    # which current vLLM ignores silently (HTTP 200, unconstrained output).
    assert set(body) <= set(CompletionCreateParamsNonStreaming.__annotations__)
    assert "guided_json" not in json.dumps(body) and "structured_outputs" not in body
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"] == schema.scene_schema(STORY, False)
    assert body["seed"] == 7 and body["messages"] == prompts.build_messages(request("c1"))


def test_llama_cpp_body_uses_json_object_with_schema() -> None:
    body = request_body(
        request("c2", must_end=True), model="m", dialect="llama-cpp", seed=1, temperature=0.5, max_tokens=9
    )
    assert body["response_format"] == {"type": "json_object", "schema": schema.scene_schema(STORY, True)}


def test_unknown_dialect_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown dialect 'tgi'"):
        OpenAIWriter("http://127.0.0.1:1/v1", "m", dialect="tgi")  # type: ignore[arg-type]


# A real OpenAI-compatible peer: llama-cpp-python's server with SmolLM2-135M (conftest.py)


@pytest.mark.slow
def test_llama_cpp_server_writes_a_valid_ending(llama_server: str) -> None:
    writer = OpenAIWriter(llama_server, "smollm2", dialect="llama-cpp", timeout_s=30, max_attempts=5)
    written = writer.write_reported(request("c2", must_end=True, seed=3))
    assert_valid(written.scene, must_end=True)
    report = written.report
    assert report.accepted and report is writer.last_report
    assert report.prompt_tokens > 100 and report.completion_tokens > 10
    assert report.provenance.backend == "openai-http" and report.provenance.model == "smollm2"
    messages = prompts.build_messages(request("c2", must_end=True))
    assert report.provenance.prompt_sha256 == prompts.prompt_digest(messages)
    assert report.provenance.seed == 3 + len(report.attempts) - 1
    print(f"llama.cpp server: {len(report.attempts)} attempt(s), {report.seconds:.1f} s; problems: {report.problems}")
    writer.close()


# Faults, from real sockets


def test_connection_refused_is_a_failed_write() -> None:
    port = free_port()  # bound then released: nothing listens there
    writer = OpenAIWriter(f"http://127.0.0.1:{port}/v1", "m", max_attempts=2, timeout_s=2)
    with pytest.raises(WriteFailed) as caught:
        writer.write(request(seed=4))
    report = caught.value.report
    assert [a.seed for a in report.attempts] == [4, 5]
    assert all(
        a.problems[0].startswith(f"cannot connect to http://127.0.0.1:{port}/v1/chat/completions")
        for a in report.attempts
    )


def completion(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 300, "completion_tokens": 40, "total_tokens": 340},
    }


REPEATS_THE_PARENT = json.dumps(
    {
        "title": "Same Again",
        "place": "hospital corridor",
        "lines": [{"speaker": "mia", "text": PARENT.lines[2].text}, {"speaker": "adrian", "text": "Run."}],
        "choices": [{"label": "Hide"}, {"label": "Scream"}],
        "ending": False,
    }
)
SLOW_SECONDS = 3.0
FAULTS: dict[str, tuple[int, bytes]] = {
    "/http500/v1/chat/completions": (500, b'{"error": "model crashed"}'),
    "/html/v1/chat/completions": (200, b"<html>gateway says hello</html>"),
    "/wrong-shape/v1/chat/completions": (200, b'{"result": "ok"}'),
    "/no-choices/v1/chat/completions": (200, b'{"choices": []}'),
    "/not-a-scene/v1/chat/completions": (200, json.dumps(completion('{"title": "x"}')).encode()),
    "/fails-checks/v1/chat/completions": (200, json.dumps(completion(REPEATS_THE_PARENT)).encode()),
    "/slow/v1/chat/completions": (200, json.dumps(completion(REPEATS_THE_PARENT)).encode()),
}


class FaultyChatHandler(BaseHTTPRequestHandler):
    """Answers ``POST /<fault>/v1/chat/completions`` with the canned fault in :data:`FAULTS`."""

    def do_POST(self) -> None:
        json.loads(self.rfile.read(int(self.headers["Content-Length"])))  # the writer sends JSON
        status, body = FAULTS[self.path]
        if self.path.startswith("/slow/"):
            time.sleep(SLOW_SECONDS)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the writer gave up waiting
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def faulty_chat_server() -> Iterator[str]:
    """FaultyChatServer: a real HTTP peer on loopback, in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FaultyChatHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ("http500", 'HTTP 500 from {url}: \'{{"error": "model crashed"}}\''),
        ("html", "response from {url} is not JSON: '<html>gateway"),
        ("wrong-shape", "response from {url} is not a chat completion (choices: Field required)"),
        ("no-choices", "response from {url} has an empty choices list"),
        ("not-a-scene", "output is not a valid scene: ('place',): Field required"),
        ("fails-checks", f"lines[0].text repeats a line of the previous scene: {PARENT.lines[2].text!r}"),
        ("slow", "no answer from {url} within timeout_s=0.5"),
    ],
    ids=lambda value: value if value in {path.split("/")[1] for path in FAULTS} else "",
)
def test_server_fault_is_a_failed_write(faulty_chat_server: str, fault: str, problem: str) -> None:
    writer = OpenAIWriter(f"{faulty_chat_server}/{fault}/v1", "m", dialect="vllm", timeout_s=0.5, max_attempts=2)
    with pytest.raises(WriteError) as caught:
        writer.write(request(seed=9))
    assert isinstance(caught.value, WriteFailed)
    report = caught.value.report
    assert report is writer.last_report and not report.accepted
    assert [a.seed for a in report.attempts] == [9, 10]
    expected = problem.format(url=f"{faulty_chat_server}/{fault}/v1/chat/completions")
    for attempt in report.attempts:
        assert any(p.startswith(expected) for p in attempt.problems), attempt.problems
    writer.close()
