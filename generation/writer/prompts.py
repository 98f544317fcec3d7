"""The chat prompt for one write request, laid out so that sibling requests share a long prefix.

Order, from most to least shared: the rules and the story bible (same for the whole
story), the story so far and the parent scene in full (same for every choice of that
scene), and last the viewer's choice with its hint and the instruction. The KV cache
then reuses everything up to the choice (see NOTES: ~40x faster prompt evaluation).
Everything here is deterministic: same request, same text.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal, TypedDict

from reelfork.generation.writer import schema
from reelfork.generation.writer.request import WriteRequest
from reelfork.narrative.persona import PLACEHOLDER
from reelfork.narrative.story import Scene, Story

SUMMARY_SCENES = 6
"""At most this many earlier scenes appear in the story-so-far summary (the newest ones)."""
SUMMARY_LINES = 2
SUMMARY_CHARS = 1200
PARENT_LINES = 24
"""The parent scene's last lines shown in full; longer scenes are cut from the front."""
CLIP = 160
LONG_CLIP = 400


class Message(TypedDict):
    role: Literal["system", "user"]
    content: str


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def rules(story: Story) -> str:
    speaker_ids = ", ".join(schema.speakers(story))
    return "\n".join(
        [
            "You write the next scene of a short interactive drama, as JSON.",
            "Rules:",
            "- Continue directly from what the viewer chose.",
            f"- Write {schema.LINES_MIN} to {schema.LINES_MAX} lines. "
            "Each line is one short sentence that moves the story on.",
            f"- Every speaker is one of: {speaker_ids}.",
            "- Never repeat a line that was already said. Every line is new.",
            "- A choice label is a short action, like 'Open the door' or 'Call the police'.",
            "- The choice labels differ from each other and from the lines.",
            "- The title is 2 to 5 words that name what happens in this scene.",
            *persona_rules(story),
        ]
    )


def persona_rules(story: Story) -> list[str]:
    """The viewer names the protagonist: the writer writes the placeholder, so one scene serves every name."""
    if story.persona is None:
        return []
    return [
        f"- The viewer plays {story.persona.character}. Write {PLACEHOLDER} wherever a line names "
        f"{story.persona.character}; never write the name itself.",
        f"- The opening line says what {PLACEHOLDER} does next, starting with {PLACEHOLDER}.",
    ]


def bible(story: Story) -> str:
    b = story.bible
    parts = [
        f"Story: {clip(story.title, CLIP)}",
        f"Logline: {clip(b.logline, LONG_CLIP)}",
        f"Setting: {clip(b.setting, LONG_CLIP)}",
        f"Tone: {clip(b.tone, CLIP)}",
    ]
    if b.style_rules:
        parts.append("Style:")
        parts.extend(f"- {clip(rule, CLIP)}" for rule in b.style_rules)
    parts.append("Characters:")
    played = story.persona.character if story.persona is not None else None
    parts.extend(
        f"- {c.id}: {PLACEHOLDER if c.id == played else clip(c.name, CLIP)}. {clip(c.look, CLIP)}"
        for c in b.characters
    )
    known = schema.places(story)
    if known:
        parts.append("Places: " + "; ".join(known))
    return "\n".join(parts)


def summary(earlier: list[Scene]) -> str:
    """The viewer's path before the parent scene: first lines, newest kept. Titles are left out: the model
    copies them as the new scene's title."""
    entries: list[str] = []
    used = 0
    for scene in reversed(earlier[-SUMMARY_SCENES:]):
        said = " ".join(f"{line.speaker}: {clip(line.text, 80)}" for line in scene.lines[:SUMMARY_LINES])
        entry = f"- {said}"
        if used + len(entry) > SUMMARY_CHARS:
            break
        entries.append(entry)
        used += len(entry)
    entries.reverse()
    return "\n".join(entries)


PARENT_FORMAT = "plain"


def scene_text(scene: Scene) -> str:
    """The scene's place and lines; its title is left out, or the model copies it as the new title."""
    if PARENT_FORMAT == "json":
        lines = [
            json.dumps({"speaker": line.speaker, "text": clip(line.text, schema.TEXT_MAX)}, ensure_ascii=False)
            for line in scene.lines[-PARENT_LINES:]
        ]
    else:
        lines = [f"{line.speaker}: {clip(line.text, schema.TEXT_MAX)}" for line in scene.lines[-PARENT_LINES:]]
    return "\n".join([f"Place: {clip(scene.place, 60)}", *lines])


def instruction(must_end: bool) -> str:
    if must_end:
        return "Write the next scene. It is the final scene: resolve the story, set ending to true and give no choices."
    return "Write the next scene. End it with 2 or 3 new choices for the viewer, and set ending to false."


def audience(holding: list[str]) -> str:
    """The audience signal, after the bible: it changes with the story's viewers, not with the choice, so
    sibling requests still share the prefix. Characters by id, as the bible and the speakers name them."""
    if not holding:
        return ""
    return f"\n\nViewers watch scenes with {', '.join(holding)} longest: give them a part when the story allows."


def build_messages(request: WriteRequest) -> list[Message]:
    """The chat messages for ``request``; everything choice-specific comes last."""
    story = request.story
    system = rules(story) + "\n\n" + bible(story) + audience(request.holding)
    earlier = summary(request.path[:-1])
    shared = [
        "Story so far:\n" + earlier if earlier else "Story so far: this is the first scene.",
        "Previous scene (already shown to the viewer; do not repeat its lines):\n" + scene_text(request.path[-1]),
    ]
    hint = request.choice.open.hint if request.choice.open else request.choice.label
    specific = [
        f"The viewer chose: {clip(request.choice.label, CLIP)}",
        f"What happens next: {clip(hint, LONG_CLIP)}",
        request.instruction or instruction(request.must_end),
    ]
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": "\n\n".join(shared) + "\n\n" + "\n".join(specific)},
    ]


def boilerplate(request: WriteRequest) -> str:
    """The prompt's own wording (rules, headings, instruction), which a scene must not read out."""
    return "\n".join(
        [rules(request.story), "Story so far: this is the first scene.", "Previous scene (already shown to the viewer; "
         "do not repeat its lines)", "The viewer chose", "What happens next",
         request.instruction or instruction(request.must_end)]
    )


def chatml(messages: list[Message]) -> str:
    """The prompt text as SmolLM2's ChatML template renders it, generation prompt included.

    Used to count and compare prompt tokens outside a chat completion; the writer itself
    lets llama-cpp apply the model's own template.
    """
    body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return body + "<|im_start|>assistant\n"


def prompt_digest(messages: list[Message]) -> str:
    """sha256 of the messages in canonical JSON: the prompt's identity for provenance."""
    payload = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()
