"""Variants of a scene for an experiment: authored ones checked against the story's translations, and ones the
writer writes on request ("three alternative cliffhangers for scene X").

Line and choice ids are the keys of the story's translation tables (``<scene>/line:<id>``, see
:mod:`reelfork.narrative.locales`). A variant keeps every id those tables name, so the tables keep their rows;
a text the variant changes loses its translation in the variant's story version (it translated the old text),
and is spoken and subtitled in the story's language there until a translator adds it, as for an AI-written scene.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, Field
from reelfork.generation.writer.request import WriteRequest
from reelfork.narrative.locales import scene_keys
from reelfork.narrative.story import Choice, OpenNode, Scene, Story

INSTRUCTION = "Write the next scene, a new version of it: {brief}. Give it a new title. {close}"
"""The authored scene's title is left out: the model copies what it is shown, and the checks refuse a copied title."""
ATTEMPTS = 6
"""At least this many attempts per variant: nobody waits for a variant as a viewer waits for an open choice."""
CLOSE = "End it with 2 or 3 choices for the viewer, and set ending to false."
CLOSE_ENDING = "It is the final scene: resolve the story, set ending to true and give no choices."


class WriteVariants(BaseModel):
    """Variants the writer writes, each one added to the experiment's authored variants."""

    count: int = Field(ge=1, le=3)
    brief: str = Field(min_length=1, max_length=400)
    """What the variants should do differently, e.g. "a sharper cliffhanger: someone is watching Mara"."""
    prefix: str = Field(default="written", pattern=r"^[a-z][a-z0-9-]{0,40}$")
    """Their variant ids: ``<prefix>-1``, ``<prefix>-2``, ..."""


class TranslationProblem(BaseModel):
    field: Literal["lines", "choices"]
    key: str
    """The text key the story's translations name, e.g. ``heiress/line:l4``."""
    locales: list[str]
    message: str


def translation_problems(story: Story, scene_id: str, variant: Scene) -> list[TranslationProblem]:
    """The line and choice ids of ``scene_id`` that the translations name and ``variant`` drops."""
    authored = story.scene(scene_id)
    kept = set(scene_keys(variant.model_copy(update={"id": scene_id})))
    problems = []
    for key in scene_keys(authored):
        if key in kept or key.endswith("/title"):
            continue
        locales = sorted(locale for locale, table in story.translations.items() if key in table)
        if not locales:
            continue
        kind, item = key.split("/", 1)[1].split(":", 1)
        problems.append(TranslationProblem(
            field="lines" if kind == "line" else "choices", key=key, locales=locales,
            message=(f"{kind} {item!r} of scene {scene_id!r} is gone, but the {', '.join(locales)} translations name "
                     f"it ({key}): keep the {kind} id (its text may change; the changed text is then untranslated in "
                     "this variant), or remove those translations from the story first"),
        ))
    return problems


def without_stale_translations(story: Story, scene_id: str, variant: Scene) -> tuple[Story, list[str]]:
    """``story`` less the translations of ``scene_id``'s texts that ``variant`` changes or drops, and their keys."""
    old = scene_keys(story.scene(scene_id))
    new = scene_keys(variant.model_copy(update={"id": scene_id}))
    stale = sorted(key for key, text in old.items() if new.get(key) != text)
    if not stale:
        return story, []
    tables = {
        locale: {k: v for k, v in table.items() if k not in stale} for locale, table in story.translations.items()
    }
    dropped = sorted({k for table in story.translations.values() for k in table if k in stale})
    return story.model_copy(update={"translations": {k: v for k, v in tables.items() if v}}), dropped


def lead_in(story: Story, scene_id: str) -> tuple[Scene, Choice] | None:
    """The first authored scene and choice that lead to ``scene_id``: the writer continues from there."""
    for scene in story.scenes:
        for choice in scene.choices:
            if choice.target == scene_id:
                return scene, choice
    return None


def variant_request(story: Story, scene_id: str, brief: str, experiment: str, index: int) -> WriteRequest | None:
    """The write request for variant ``index`` of ``scene_id``; ``None`` when no scene leads to it."""
    found = lead_in(story, scene_id)
    if found is None:
        return None
    parent, choice = found
    authored = story.scene(scene_id)
    close = CLOSE_ENDING if authored.ending else CLOSE
    digest = hashlib.sha256(f"{experiment}\x1f{index}".encode()).digest()
    return WriteRequest(
        story=story,
        path=[parent],
        choice=Choice(id=choice.id, label=choice.label, open=OpenNode(hint=brief)),
        scene_id=scene_id,
        must_end=authored.ending,
        seed=int.from_bytes(digest[:3], "big") * 16,  # attempts take the next seeds: variants never share one
        instruction=INSTRUCTION.format(brief=brief.strip().rstrip("."), close=close),
    )


def as_variant(written: Scene, authored: Scene) -> Scene:
    """The authored scene with the written title and lines: the lines take the authored line ids in order (extra
    lines get fresh ones); place, mood, tags and choices (ids, labels, targets) stay the authored ones, so the
    graph and the choice labels' translations are unchanged."""
    ids = [line.id for line in authored.lines]
    taken = set(ids)
    lines = []
    for index, line in enumerate(written.lines):
        if index < len(ids):
            line_id = ids[index]
        else:
            line_id = next(f"w{n}" for n in range(index + 1, index + 100) if f"w{n}" not in taken)
            taken.add(line_id)
        lines.append(line.model_copy(update={"id": line_id}))
    return authored.model_copy(update={"title": written.title, "lines": lines})
