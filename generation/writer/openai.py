"""The HTTP scene writer: any OpenAI-compatible chat server (``vllm serve`` in production, llama.cpp's server).

The servers disagree on how to ask for JSON that follows a schema (see NOTES, "LLM: vLLM and
OpenAI-compatible servers"), so the request shape is chosen by ``dialect``:

- ``vllm``: ``response_format={"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``,
  vLLM's documented OpenAI-compatible structured-output form. The old ``guided_json`` key is
  silently ignored by current vLLM (HTTP 200, unconstrained output), so it is never sent.
- ``llama-cpp``: ``response_format={"type": "json_object", "schema": S}``; llama-cpp-python's
  server answers the ``json_schema`` form with HTTP 500.

Whatever the server promised, every answer is parsed and checked exactly like the embedded
backend's (:func:`reelfork.generation.writer.llama.write_with_attempts`). Every server fault is one failed
attempt with its problem in the report; after ``max_attempts`` the writer raises
:class:`~reelfork.generation.writer.report.WriteFailed`, so the caller uses its authored fallback.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ValidationError
from reelfork.generation.writer import checks, prompts, schema
from reelfork.generation.writer.attempts import AttemptFailed, Completion, Source, Written, write_with_attempts
from reelfork.generation.writer.report import WriteReport
from reelfork.generation.writer.request import WriteRequest
from reelfork.narrative.story import Scene

BACKEND = "openai-http"
Dialect = Literal["vllm", "llama-cpp"]
SCHEMA_NAME = "scene"
BODY_EXCERPT = 200
"""Characters of a bad response body quoted in a problem."""


def response_format(dialect: Dialect, json_schema: dict[str, Any]) -> dict[str, Any]:
    """The ``response_format`` that makes a ``dialect`` server follow ``json_schema``."""
    if dialect == "vllm":
        return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": json_schema, "strict": True}}
    if dialect == "llama-cpp":
        return {"type": "json_object", "schema": json_schema}
    raise ValueError(f"unknown dialect {dialect!r}: use 'vllm' or 'llama-cpp'")


def request_body(
    request: WriteRequest,
    *,
    model: str,
    dialect: Dialect,
    seed: int,
    temperature: float,
    max_tokens: int,
) -> dict[str, Any]:
    """The ``POST /v1/chat/completions`` JSON body for one attempt at ``request``. Pure: no I/O."""
    return {
        "model": model,
        "messages": prompts.build_messages(request),
        "response_format": response_format(dialect, schema.scene_schema(request.story, request.must_end)),
        "temperature": temperature,
        "top_p": 0.95,
        "max_tokens": max_tokens,
        "seed": seed,
        "stream": False,
    }


class _Message(BaseModel):
    content: str | None = None


class _Choice(BaseModel):
    message: _Message
    finish_reason: str | None = None


class _Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _ChatCompletion(BaseModel):
    """The part of an OpenAI chat completion we read; other fields are ignored."""

    choices: list[_Choice]
    usage: _Usage | None = None


def excerpt(text: str) -> str:
    return repr(text[:BODY_EXCERPT] + ("..." if len(text) > BODY_EXCERPT else ""))


def read_completion(response: httpx.Response) -> Completion:
    """The completion in a server's answer; raises :class:`AttemptFailed` saying what is wrong with it."""
    url = str(response.request.url)
    if response.status_code >= 400:
        raise AttemptFailed(f"HTTP {response.status_code} from {url}: {excerpt(response.text)}")
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AttemptFailed(f"response from {url} is not JSON: {excerpt(response.text)}") from None
    try:
        parsed = _ChatCompletion.model_validate(data)
    except ValidationError as error:
        where = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())
        raise AttemptFailed(f"response from {url} is not a chat completion ({where})") from None
    if not parsed.choices:
        raise AttemptFailed(f"response from {url} has an empty choices list")
    choice = parsed.choices[0]
    if choice.message.content is None:
        raise AttemptFailed(f"response from {url} has no message content (finish_reason={choice.finish_reason!r})")
    usage = parsed.usage or _Usage()
    return Completion(
        text=choice.message.content,
        finish_reason=str(choice.finish_reason),
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        prompt_evaluated=-1,
        generation_seconds=-1.0,
    )


class OpenAIWriter:
    """A :class:`~reelfork.generation.writer.request.SceneWriter` that asks an OpenAI-compatible server over HTTP.

    ``base_url`` is the server's API root, e.g. ``http://vllm:8000/v1``; requests go to
    ``{base_url}/chat/completions``. ``timeout_s`` bounds each attempt's connect, write, read
    and pool waits. The HTTP client is made on first use and reused (one connection pool per
    process), so create the writer in the process that calls it.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        dialect: Dialect = "vllm",
        timeout_s: float = 30.0,
        max_attempts: int = 3,
        temperature: float = 0.7,
        max_tokens: int = schema.MAX_TOKENS,
        policy: checks.ContentPolicy | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        response_format(dialect, {})  # fail now, not on the first write, for an unknown dialect
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.dialect: Dialect = dialect
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.policy: checks.ContentPolicy = policy if policy is not None else checks.WordListPolicy()
        self.last_report: WriteReport | None = None
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
                self._client = httpx.Client(timeout=httpx.Timeout(self.timeout_s), headers=headers)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def write(self, request: WriteRequest) -> Scene:
        return self.write_reported(request).scene

    def write_reported(self, request: WriteRequest) -> Written:
        """Like :meth:`write`, with the report; on failure raises :class:`WriteFailed` (a WriteError)."""
        outcome = write_with_attempts(
            request,
            prompts.build_messages(request),
            lambda seed: self._complete(request, seed),
            max_attempts=self.max_attempts,
            max_tokens=self.max_tokens,
            policy=self.policy,
            source=Source(backend=BACKEND, model=self.model, temperature=self.temperature),
        )
        self.last_report = outcome.report
        return outcome.written()

    def complete_json(self, messages: list[prompts.Message], json_schema: dict[str, Any], seed: int) -> Completion:
        """One answer to ``messages`` that the server constrains to ``json_schema``; no checks, no retries."""
        body = {
            "model": self.model,
            "messages": messages,
            "response_format": response_format(self.dialect, json_schema),
            "temperature": self.temperature,
            "top_p": 0.95,
            "max_tokens": self.max_tokens,
            "seed": seed,
            "stream": False,
        }
        return self._post(body)

    def _complete(self, request: WriteRequest, seed: int) -> Completion:
        body = request_body(
            request,
            model=self.model,
            dialect=self.dialect,
            seed=seed,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )
        return self._post(body)

    def _post(self, body: dict[str, Any]) -> Completion:
        try:
            response = self.client().post(self.url, json=body)
        except httpx.ConnectError as error:
            raise AttemptFailed(f"cannot connect to {self.url}: {error}") from None
        except httpx.TimeoutException:
            raise AttemptFailed(f"no answer from {self.url} within timeout_s={self.timeout_s}") from None
        except httpx.HTTPError as error:
            raise AttemptFailed(f"HTTP exchange with {self.url} failed: {type(error).__name__}: {error}") from None
        return read_completion(response)
