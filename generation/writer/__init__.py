"""The scene writer: prompts, the JSON schema and its grammar, checks, the attempt loop, the LLM backends and
translation."""
