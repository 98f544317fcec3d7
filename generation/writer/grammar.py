"""A JSON schema as a llama.cpp grammar, with the control-character fix for llama-cpp-python 0.3.36.

0.3.36's converter lets raw control characters into JSON strings (its ``char`` rule is
``[^"\\]``), so about 1 output in 10 is invalid JSON. Upstream llama.cpp excludes
``\\x00-\\x1F`` and ``\\x7F``. We convert with the library, then swap that one rule in
the produced grammar text; the library's own tables stay untouched.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

SAFE_CHAR_RULE = (
    r'char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
)


def gbnf(json_schema: dict[str, Any]) -> str:
    """The GBNF grammar text for ``json_schema``, strings free of raw control characters."""
    text: str = json_schema_to_gbnf(json.dumps(json_schema))
    lines = text.split("\n")
    fixed = [SAFE_CHAR_RULE if line.startswith("char ::= ") else line for line in lines]
    return "\n".join(fixed)


@lru_cache(maxsize=64)
def _compiled(text: str) -> LlamaGrammar:
    return LlamaGrammar.from_string(text, verbose=False)


def grammar(json_schema: dict[str, Any]) -> LlamaGrammar:
    """A parsed grammar for ``json_schema``; parsed once per distinct schema."""
    return _compiled(gbnf(json_schema))
