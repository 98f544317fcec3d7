"""The story format's JSON Schema, generated from the pydantic models, for editors to autocomplete.

The committed copy is ``narrative/story.schema.json``; ``reelfork story schema -o narrative/story.schema.json``
rewrites it, and a test fails when it is out of date.
"""

from __future__ import annotations

import json
from typing import Any

from reelfork.narrative.story import Story

SCHEMA_ID = "https://reelfork.dev/schemas/story.schema.json"


def story_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a story file, YAML or JSON."""
    schema = Story.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    """:func:`story_schema` as stable, diff-friendly JSON text."""
    return json.dumps(story_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
