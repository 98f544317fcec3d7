"""Translating a scene into another locale with the writer's model, keeping every line ID.

The model answers one JSON object whose keys are the scene's text slots (``title``,
``line:<id>``, ``choice:<id>``), so an ID cannot be lost or renamed: the schema has exactly
those keys. Each translated text is checked before it is used; a slot that fails every attempt
keeps its source text and is reported as untranslated, never silently passed off as translated.
Later attempts only ask for the slots still missing.
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from reelfork.generation.writer.attempts import AttemptFailed, Completion
from reelfork.generation.writer.checks import ContentPolicy, normalize
from reelfork.generation.writer.prompts import Message
from reelfork.generation.writer.request import WriteError
from reelfork.narrative.persona import PLACEHOLDER
from reelfork.narrative.story import Bible, Scene

LANGUAGE_NAMES: dict[str, str] = {
    "en": "English", "es": "Spanish", "zh": "Chinese (Simplified)", "fr": "French", "de": "German",
    "pt": "Portuguese", "it": "Italian", "ja": "Japanese", "ko": "Korean", "ru": "Russian", "ar": "Arabic",
    "hi": "Hindi", "id": "Indonesian", "vi": "Vietnamese", "th": "Thai", "tr": "Turkish", "pl": "Polish",
    "nl": "Dutch", "uk": "Ukrainian", "el": "Greek", "he": "Hebrew",
}
SCRIPTS: dict[str, tuple[str, ...]] = {
    "zh": ("CJK UNIFIED IDEOGRAPH",), "ja": ("HIRAGANA", "KATAKANA", "CJK UNIFIED IDEOGRAPH"), "ko": ("HANGUL",),
    "ru": ("CYRILLIC",), "uk": ("CYRILLIC",), "ar": ("ARABIC",), "hi": ("DEVANAGARI",), "th": ("THAI",),
    "el": ("GREEK",), "he": ("HEBREW",),
}
"""Languages whose text must contain letters of their own script: a Chinese line in Latin letters is not Chinese."""
MAX_TEXT = 2000
"""The story format's longest text."""
LENGTH_RATIOS: dict[str, tuple[float, float]] = {"zh": (0.12, 1.2), "ja": (0.15, 1.4), "ko": (0.15, 1.4)}
"""Translated length over source length that a faithful translation stays within; others: DEFAULT_RATIO."""
DEFAULT_RATIO = (0.5, 1.9)
SENTENCE_ENDS = ".!?…\u3002\uff01\uff1f\"'»”)"
"""Closing punctuation, with the ideographic full stop and full-width ! and ?."""
SAME_TEXT_MAX = 12
"""A translation may equal its source only when the source is this short ("No.", "OK!", a name)."""


class JsonCompleter(Protocol):
    """One model answer that follows a JSON schema: both writer backends provide ``complete_json``."""

    def complete_json(self, messages: list[Message], json_schema: dict[str, Any], seed: int) -> Completion: ...


class TranslateRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    scene: Scene
    bible: Bible
    source: str
    """The scene's language, e.g. ``en``."""
    target: str
    seed: int = 0
    attempts: int = Field(default=3, ge=1, le=10)


@dataclass(frozen=True)
class Translated:
    scene: Scene
    """The scene in the target language: same IDs, same speakers, translated texts."""
    untranslated: tuple[str, ...]
    """Slots (``title``, ``line:<id>``, ``choice:<id>``) that kept their source text after every attempt."""
    problems: tuple[str, ...]
    """Why attempts were rejected, slot by slot: for the report and the logs."""
    attempts: int


def primary(locale: str) -> str:
    return locale.lower().replace("_", "-").split("-")[0]


def language_name(locale: str) -> str:
    return LANGUAGE_NAMES.get(primary(locale), locale)


def slots(scene: Scene) -> dict[str, str]:
    """Every text of the scene that a viewer reads or hears, keyed by a name that carries its ID."""
    texts = {"title": scene.title}
    texts.update({f"line:{line.id}": line.text for line in scene.lines})
    texts.update({f"choice:{choice.id}": choice.label for choice in scene.choices})
    return texts


def translation_schema(sources: dict[str, str], target: str) -> dict[str, Any]:
    """Exactly the keys of ``sources``, each a string no longer than a faithful translation can be (a model
    that loses its way stops there, instead of writing until the token limit)."""
    high = LENGTH_RATIOS.get(primary(target), DEFAULT_RATIO)[1]
    return {
        "type": "object",
        "properties": {
            key: {"type": "string", "minLength": 1, "maxLength": min(MAX_TEXT, math.ceil(high * len(text)) + 10)}
            for key, text in sources.items()
        },
        "required": list(sources),
        "additionalProperties": False,
    }


def translation_messages(request: TranslateRequest, sources: dict[str, str]) -> list[Message]:
    """Stable part first (the bible's names and tone, the language pair), then the texts."""
    source, target = language_name(request.source), language_name(request.target)
    names = ", ".join(character.name for character in request.bible.characters)
    system = "\n".join(
        [
            f"You translate the dialogue of a short drama from {source} into {target}.",
            "Rules:",
            f"- Answer with one JSON object with the same keys; every value is the {target} translation.",
            "- Keep the meaning, the tone and the length. Keep names as they are: " + names + ".",
            f"- Tone of the drama: {request.bible.tone}.",
            f"- Keep the placeholder {PLACEHOLDER} exactly as it is: it stands for the protagonist's name.",
        ]
    )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": json.dumps(sources, ensure_ascii=False, indent=0)},
    ]


def in_script(text: str, scripts: tuple[str, ...]) -> bool:
    return any(unicodedata.name(char, "").startswith(scripts) for char in text if not char.isascii())


def slot_problems(key: str, source: str, text: str, request: TranslateRequest) -> list[str]:
    """What is wrong with ``text`` as the translation of ``source``; empty when it may be used."""
    text = text.strip()
    if not text:
        return [f"{key}: empty translation"]
    target = primary(request.target)
    found: list[str] = []
    if target != primary(request.source):
        if normalize(text) == normalize(source) and len(source) > SAME_TEXT_MAX:
            found.append(f"{key}: not translated (same text as the source)")
        scripts = SCRIPTS.get(target)
        if scripts and not in_script(text, scripts):
            found.append(f"{key}: no {language_name(target)} script in {text[:40]!r}")
    if len(text) > MAX_TEXT:
        found.append(f"{key}: {len(text)} characters; at most {MAX_TEXT}")
    if source.count(PLACEHOLDER) != text.count(PLACEHOLDER):
        found.append(f"{key}: the placeholder {PLACEHOLDER} must appear {source.count(PLACEHOLDER)} time(s)")
    if len(source) > SAME_TEXT_MAX:
        low, high = LENGTH_RATIOS.get(target, DEFAULT_RATIO)
        if not low <= len(text) / len(source) <= high:
            found.append(f"{key}: {len(text)} characters for a {len(source)}-character source")
    if source.rstrip()[-1:] in SENTENCE_ENDS and text.rstrip()[-1:] not in SENTENCE_ENDS:
        found.append(f"{key}: cut off (no closing punctuation) in {text[-30:]!r}")
    return found


def judge_translation(
    completion: Completion, sources: dict[str, str], request: TranslateRequest, policy: ContentPolicy | None
) -> tuple[dict[str, str], list[str]]:
    """The usable translations in ``completion`` and the problems with the rest."""
    if completion.finish_reason == "length":
        return {}, ["output cut at max_tokens before the JSON was complete"]
    try:
        answer = json.loads(completion.text)
    except json.JSONDecodeError as error:
        return {}, [f"output is not JSON: {error.msg}"]
    if not isinstance(answer, dict):
        return {}, ["output is not a JSON object"]
    accepted: dict[str, str] = {}
    problems: list[str] = []
    for key, source in sources.items():
        text = answer.get(key)
        if not isinstance(text, str):
            problems.append(f"{key}: missing")
            continue
        found = slot_problems(key, source, text, request)
        if not found and policy is not None:
            found = [f"{key}: {problem}" for problem in policy.check([text])]
        if found:
            problems.extend(found)
        else:
            accepted[key] = text.strip()
    return accepted, problems


def translate(completer: JsonCompleter, request: TranslateRequest, policy: ContentPolicy | None = None) -> Translated:
    """The scene in ``request.target``; slots no attempt translated acceptably keep their source text."""
    sources = slots(request.scene)
    if request.target.lower() == request.source.lower():
        return Translated(scene=request.scene, untranslated=(), problems=(), attempts=0)
    done: dict[str, str] = {}
    problems: list[str] = []
    attempts = 0
    for attempt in range(request.attempts):
        missing = {key: text for key, text in sources.items() if key not in done}
        if not missing:
            break
        attempts += 1
        messages = translation_messages(request, missing)
        try:
            rules = translation_schema(missing, request.target)
            completion = completer.complete_json(messages, rules, request.seed + attempt)
        except (AttemptFailed, WriteError) as failure:
            problems.append(str(failure))
            continue
        accepted, rejected = judge_translation(completion, missing, request, policy)
        done.update(accepted)
        problems.extend(rejected)
    untranslated = tuple(key for key in sources if key not in done)
    return Translated(
        scene=translated_scene(request.scene, done),
        untranslated=untranslated,
        problems=tuple(problems),
        attempts=attempts,
    )


def translated_scene(scene: Scene, texts: dict[str, str]) -> Scene:
    """``scene`` with the given slots replaced; IDs, speakers and structure unchanged."""
    lines = [line.model_copy(update={"text": texts.get(f"line:{line.id}", line.text)}) for line in scene.lines]
    choices = [
        choice.model_copy(update={"label": texts.get(f"choice:{choice.id}", choice.label)}) for choice in scene.choices
    ]
    return scene.model_copy(update={"title": texts.get("title", scene.title), "lines": lines, "choices": choices})
