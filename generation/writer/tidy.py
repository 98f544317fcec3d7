"""Deterministic repairs of a candidate scene, applied before the checks.

A tiny model often writes ``"text": "Adrian: I lied."`` for Adrian's own line, runs a line
or the title into the length limit mid-sentence, says the same line twice, or copies a line of
the previous scene from its prompt, and spells out the protagonist's default name that every
viewer replaces with their own. Dropping the redundant tag, the unfinished sentence after a
complete one, a cut title's broken tail, or a line that tells the viewer nothing new, and writing
the name's placeholder where the default name stands, keeps everything the scene meant to say.
The checks run on the result, so a repair can only turn a rejected candidate into one that passes
them all.
"""

from __future__ import annotations

import re

from reelfork.generation.writer.checks import bare_names, normalize, only_a_name
from reelfork.generation.writer.schema import (
    CHOICES_MIN,
    LINES_MIN,
    TEXT_MAX,
    TITLE_MAX,
    TITLE_MIN,
    TITLE_WORDS,
    Draft,
    DraftChoice,
    DraftLine,
    is_english,
)
from reelfork.narrative.persona import PLACEHOLDER
from reelfork.narrative.story import Scene, Story

SENTENCE_END = re.compile(r"[.!?…][\"')\]]*(?=\s|$)")
CLAUSE_BREAK = re.compile(r"\s*(?:[,;:]|\s[-\u2013\u2014])(?=\s)")
CLAUSE_MIN = 40
"""A clause cut from a long line must keep at least this many characters to stand as the line."""
TRAILING_WORDS = frozenset(
    {
        *("a", "an", "the", "and", "or", "but", "nor", "so", "of", "to", "in", "on", "at", "by", "for", "with"),
        *("from", "into", "onto", "as", "than", "that", "this", "these", "those", "is", "was", "are", "were"),
        *("be", "his", "its", "their", "my", "your", "our"),
    }
)
"""English words a title does not end on: a cut title that ends on one lost its tail."""


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
    """``text`` without an unfinished last sentence, when it was cut at the length limit; a cut line that
    is one long sentence ends at its last clause break instead ("..., and he" -> "...")."""
    if len(text) < TEXT_MAX:
        return text
    # The sentence that reached the limit may have been cut even if it ends on a full stop ("Mr.").
    ends = [m.end() for m in SENTENCE_END.finditer(text) if m.end() < len(text)]
    if ends and ends[-1] >= 10:
        return text[: ends[-1]]
    breaks = [m.start() for m in CLAUSE_BREAK.finditer(text)]
    if breaks and breaks[-1] >= CLAUSE_MIN:
        return text[: breaks[-1]].rstrip() + "."
    return text


def is_cut_title(title: str, english: bool) -> bool:
    """Whether the grammar stopped the title: at ``maxLength``, or at the word limit of the English pattern."""
    return len(title) >= TITLE_MAX or (english and len(title.split()) >= TITLE_WORDS)


def whole_title(title: str, english: bool) -> str:
    """A cut title back to its first sentence, else to its last whole word; other titles unchanged.

    A title too short after the repair is left as it was, for the checks to reject.
    """
    title = title.strip()
    if not is_cut_title(title, english):
        return title
    first = SENTENCE_END.search(title)
    if first is not None and first.end() < len(title):
        repaired = title[: first.end()]
    else:
        repaired = title[: title.rfind(" ")] if len(title) >= TITLE_MAX and " " in title else title
    words = repaired.rstrip(" .,;:-").split()
    while english and len(words) > 1 and words[-1].casefold().strip(",;:'") in TRAILING_WORDS:
        words.pop()
    repaired = " ".join(words).rstrip(" .,;:-")
    return repaired if len(repaired) >= TITLE_MIN else title


def useful_lines(lines: list[DraftLine], story: Story, parent: Scene) -> list[DraftLine]:
    """``lines`` without empty lines, lines still cut at the limit, lines that are only a name (the model
    writes a speaker's ID as the text), and exact repeats of an earlier line or of a line of the previous
    scene (the model copies the prompt's lines).

    Only when at least :data:`LINES_MIN` remain: otherwise ``lines`` unchanged, for the checks to reject.
    """
    kept: list[DraftLine] = []
    seen = {normalize(line.text) for line in parent.lines}
    names = bare_names(story)
    for line in lines:
        text = normalize(line.text)
        if text and text not in seen and len(line.text) < TEXT_MAX and not only_a_name(line.text, story, names):
            kept.append(line)
        seen.add(text)
    return kept if len(kept) >= LINES_MIN else lines


def useful_choices(choices: list[DraftChoice], story: Story) -> list[DraftChoice]:
    """``choices`` without labels that are only a name ("Lily Vance"), when at least :data:`CHOICES_MIN` remain."""
    names = bare_names(story)
    kept = [choice for choice in choices if not only_a_name(choice.label, story, names)]
    return kept if len(kept) >= CHOICES_MIN else choices


def placeheld(draft: Draft, story: Story) -> Draft:
    """The protagonist's default name, as a whole word, replaced by the placeholder: the scene serves every
    viewer's name (the model is asked for the placeholder, and small models write the name they were shown)."""
    if story.persona is None:
        return draft
    name = re.compile(rf"(?<!\w){re.escape(story.persona.name)}(?!\w)")
    lines = [line.model_copy(update={"text": name.sub(PLACEHOLDER, line.text)}) for line in draft.lines]
    choices = [choice.model_copy(update={"label": name.sub(PLACEHOLDER, choice.label)}) for choice in draft.choices]
    return draft.model_copy(update={"title": name.sub(PLACEHOLDER, draft.title), "lines": lines, "choices": choices})


def tidy(draft: Draft, story: Story, parent: Scene) -> Draft:
    lines = [DraftLine(speaker=line.speaker, text=finished(untagged(line, story)).strip()) for line in draft.lines]
    title = whole_title(draft.title, is_english(story))
    choices = useful_choices(list(draft.choices), story)
    update = {"title": title, "lines": useful_lines(lines, story, parent), "choices": choices}
    return placeheld(draft.model_copy(update=update), story)
