"""Lossless repairs of a candidate scene, applied before the checks.

A tiny model often writes ``"text": "Adrian: I lied."`` for Adrian's own line, or runs a
line into the length limit mid-sentence. Dropping the redundant tag, or the unfinished
sentence after a complete one, keeps everything the line meant to say.
"""

from __future__ import annotations

import re

from generation.schema import TEXT_MAX, Draft, DraftLine
from narrative.story import Story

SENTENCE_END = re.compile(r"[.!?…][\"')\]]*(?=\s|$)")


def own_tags(speaker: str, story: Story) -> set[str]:
    """How a line by ``speaker`` may be tagged: its ID, the name, and each word of the name."""
    tags = {speaker.casefold()}
    for character in story.bible.characters:
        if character.id == speaker:
            tags.add(character.name.casefold())
            tags.update(part.casefold().strip(".") for part in character.name.split())
    return tags


def untagged(line: DraftLine, story: Story) -> str:
    head, colon, rest = line.text.partition(":")
    if colon and rest.strip() and head.strip().casefold() in own_tags(line.speaker, story):
        return rest.strip()
    return line.text


def finished(text: str) -> str:
    """``text`` without an unfinished last sentence, when it was cut at the length limit."""
    if len(text) < TEXT_MAX:
        return text
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    return text[: ends[-1]] if ends and ends[-1] >= 10 else text


def tidy(draft: Draft, story: Story) -> Draft:
    lines = [DraftLine(speaker=line.speaker, text=finished(untagged(line, story)).strip()) for line in draft.lines]
    return draft.model_copy(update={"title": draft.title.strip(), "lines": lines})
