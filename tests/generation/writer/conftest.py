"""The writer tests' real OpenAI-compatible peer: llama-cpp-python's server with SmolLM2-135M."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from reelfork.generation.writer.llama import default_model_path

from tests.helpers.processes import LlamaServerProcess


@pytest.fixture(scope="package")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the package's tests (it takes seconds to load the model)."""
    # The server logs ~200 kB while loading: to a file, since a full pipe would stall it.
    server = LlamaServerProcess(default_model_path(), tmp_path_factory.mktemp("llama-server") / "server.log")
    yield server.base_url
    server.stop(timeout=10)
