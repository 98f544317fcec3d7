"""Semantic checks on a parsed candidate scene: what a grammar cannot rule out.

Each check returns precise, human-readable problems; an empty list means the candidate
is acceptable. A content policy is one more source of problems.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import Protocol

from reelfork.generation.writer.schema import TEXT_MAX, TITLE_MAX, Draft
from reelfork.narrative.persona import PLACEHOLDER, uses_name
from reelfork.narrative.story import NARRATOR, Scene, Story
from spellchecker import SpellChecker


class ContentPolicy(Protocol):
    def check(self, texts: Sequence[str]) -> list[str]:
        """Reasons to reject ``texts``; empty when they are acceptable."""
        ...


DEFAULT_BLOCKED_WORDS: tuple[str, ...] = (
    # Explicit sexual content and sexual violence.
    "porn",
    "porno",
    "pornographic",
    "rape",
    "raped",
    "rapist",
    "molest",
    "molested",
    "pedophile",
    "incest",
    "blowjob",
    "cum",
    "dildo",
    # Slurs.
    "nigger",
    "nigga",
    "faggot",
    "fag",
    "kike",
    "spic",
    "chink",
    "wetback",
    "tranny",
    "retard",
)


def read_word_list(text: str) -> list[str]:
    """Words and phrases, one per line; blank lines and ``#`` comments ignored."""
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def policy_rejections(problems: Iterable[str]) -> int:
    """How many of a write's problems were content-policy rejections."""
    return sum(1 for problem in problems if "content policy:" in problem)


class WordListPolicy:
    """Rejects texts containing any listed word, matched as a whole word, case-insensitively."""

    def __init__(self, words: Iterable[str] = DEFAULT_BLOCKED_WORDS) -> None:
        self.words = tuple(sorted({w.strip().casefold() for w in words if w.strip()}))
        alternatives = "|".join(re.escape(w) for w in self.words)
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE) if self.words else None

    def check(self, texts: Sequence[str]) -> list[str]:
        if self._pattern is None:
            return []
        reasons: list[str] = []
        for index, text in enumerate(texts):
            found = sorted({m.group(0).casefold() for m in self._pattern.finditer(text)})
            if found:
                reasons.append(f"content policy: text {index} contains blocked word(s) {', '.join(found)}")
        return reasons


def normalize(text: str) -> str:
    """Case-, whitespace- and edge-punctuation-insensitive form used for comparisons."""
    return " ".join(text.casefold().split()).strip(" .!?,;:'\"-")


def texts(draft: Draft) -> list[str]:
    """Every viewer-visible string of the draft, in order: title, lines, labels."""
    return [draft.title, *(line.text for line in draft.lines), *(c.label for c in draft.choices)]


def fields(draft: Draft) -> list[tuple[str, str]]:
    """Every viewer-visible string of the draft with its place in the draft, like ``lines[2].text``."""
    return [
        ("title", draft.title),
        *((f"lines[{i}].text", line.text) for i, line in enumerate(draft.lines)),
        *((f"choices[{i}].label", choice.label) for i, choice in enumerate(draft.choices)),
    ]


VARIABLE_REFERENCE = re.compile(r"(?<![\w$])\$([A-Za-z_]\w*)|\{\s*[\"']?var[\"']?\s*:\s*[\"']?([A-Za-z0-9][\w.-]*)")
"""A variable written into text: ``$trust`` (Twine, Yarn; a Yarn ``{$trust}`` too) or ``{var: trust}``
(the story format's own expressions)."""


def variable_problems(draft: Draft, story: Story) -> list[str]:
    """Text that names a story variable, or one the story does not track.

    A written scene is shared by every viewer who takes the same open choice, whatever their
    variables hold, and its text is shown as written. So a line that names a declared variable
    shows its name instead of this viewer's value (imported stories keep ``$trust`` in their
    text, and the model copies it from the previous scene), and any other name asserts state
    the story does not track. Either way the scene would contradict what the story knows.
    """
    problems: list[str] = []
    for field, text in fields(draft):
        for match in VARIABLE_REFERENCE.finditer(text):
            name = match.group(1) or match.group(2)
            if name in story.variables:
                problems.append(
                    f"{field} prints the story variable {name!r} ({story.variables[name].type}): written text is "
                    f"not interpolated, and viewers who reach this scene may hold different values: {text!r}"
                )
            else:
                problems.append(f"{field} refers to a variable {name!r} the story does not declare: {text!r}")
    return problems


ECHO_WORDS = 5
"""A run of this many words from the prompt's own wording in a scene is the model reading its instructions out."""


def shingles(text: str, size: int) -> set[tuple[str, ...]]:
    words = re.findall(r"[\w']+", text.casefold())
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


def echo_problems(draft: Draft, boilerplate: str) -> list[str]:
    """Titles, lines and labels that copy the prompt's instructions ("the first scene of a short drama")."""
    known = shingles(boilerplate, ECHO_WORDS)
    return [
        f"{field} reads out the prompt's instructions: {text!r}"
        for field, text in fields(draft)
        if shingles(text, ECHO_WORDS) & known
    ]


def speaker_problems(draft: Draft, story: Story) -> list[str]:
    allowed = {*story.speakers(), NARRATOR}
    return [
        f"lines[{i}].speaker {line.speaker!r} is not a bible character or {NARRATOR!r}"
        for i, line in enumerate(draft.lines)
        if line.speaker not in allowed
    ]


def title_problems(draft: Draft, story: Story, parent: Scene) -> list[str]:
    title = normalize(draft.title)
    if not title:
        return ["title is empty"]
    if title == normalize(parent.title):
        return [f"title repeats the previous scene's title: {draft.title!r}"]
    if title in {normalize(story.title), *(normalize(scene.title) for scene in story.scenes)}:
        return [f"title copies the title of the story or one of its scenes: {draft.title!r}"]
    if len(draft.title) >= TITLE_MAX:
        return [f"title is cut off at {TITLE_MAX} characters: {draft.title!r}"]
    return []


def speaker_tag(text: str, story: Story) -> str | None:
    """The speaker name a text starts with, like ``Adrian:``, if any: the model wrote a script line."""
    head, colon, _ = text.partition(":")
    if not colon:
        return None
    head = normalize(head)
    names = {NARRATOR, *story.speakers()}
    for character in story.bible.characters:
        names.add(normalize(character.name))
        names.update(normalize(part) for part in character.name.split())
    return head if head in names else None


def line_problems(draft: Draft, story: Story, parent: Scene) -> list[str]:
    problems: list[str] = []
    if not draft.lines:
        problems.append("the scene has no lines")
    said = {normalize(line.text) for line in parent.lines}
    distinct = {normalize(line.text) for line in draft.lines}
    if len(draft.lines) > 1 and len(distinct) == 1:
        return [*problems, "all lines are identical"]
    first: dict[str, int] = {}
    for i, line in enumerate(draft.lines):
        text = normalize(line.text)
        if not text:
            problems.append(f"lines[{i}].text is empty")
            continue
        if text in said:
            problems.append(f"lines[{i}].text repeats a line of the previous scene: {line.text!r}")
        if text in first:
            problems.append(f"lines[{i}].text repeats lines[{first[text]}].text: {line.text!r}")
        else:
            first[text] = i
        tag = speaker_tag(line.text, story)
        if tag is not None:
            problems.append(f"lines[{i}].text starts with a speaker tag {tag!r}: {line.text!r}")
        if len(line.text) >= TEXT_MAX:
            problems.append(f"lines[{i}].text is cut off at {TEXT_MAX} characters")
    return problems


def choice_problems(draft: Draft) -> list[str]:
    problems: list[str] = []
    seen: dict[str, int] = {}
    line_texts = {normalize(line.text) for line in draft.lines}
    for i, choice in enumerate(draft.choices):
        label = normalize(choice.label)
        if not label:
            problems.append(f"choices[{i}].label is empty")
            continue
        if label in seen:
            problems.append(f"choices[{i}].label duplicates choices[{seen[label]}].label: {choice.label!r}")
        else:
            seen[label] = i
        if label in line_texts:
            problems.append(f"choices[{i}].label is identical to a line: {choice.label!r}")
    return problems


def ending_problems(draft: Draft, must_end: bool) -> list[str]:
    problems: list[str] = []
    if draft.ending and draft.choices:
        problems.append(f"ending is true but the scene has {len(draft.choices)} choice(s)")
    if not draft.ending and len(draft.choices) < 2:
        problems.append(f"ending is false but the scene has {len(draft.choices)} choice(s); it needs at least 2")
    if must_end and not draft.ending:
        problems.append("the scene must be an ending but ending is false")
    if not must_end and draft.ending:
        problems.append("the scene must not be an ending yet but ending is true")
    return problems


def persona_problems(draft: Draft, story: Story) -> list[str]:
    """The protagonist's default name spelled out where ``{name}`` belongs, and ``{name}`` in a story without a
    persona. Other placeholders are :func:`template_problems`'; a text that is only a name, :func:`label_problems`'."""
    persona = story.persona
    found: list[str] = []
    name = re.compile(rf"(?<!\w){re.escape(persona.name)}(?!\w)") if persona is not None else None
    bare = bare_names(story)
    for where, text in fields(draft):
        if persona is None and uses_name(text):
            found.append(f"{where}: {PLACEHOLDER} needs a 'persona' in the story (which character the viewer plays)")
        if name is not None and name.search(text) and normalize(text) not in bare:
            found.append(f"{where} spells out the protagonist's name; write {PLACEHOLDER} so every viewer sees theirs")
    return found


TEMPLATE = re.compile(r"\{\{|\}\}|\{\s*([^{}]*?)\s*\}")
"""A template placeholder left in written text: ``{{story}}``, ``{story}``, a stray ``{{`` or ``}}`` (authored
text may escape braces as ``{{``; the writer has no reason to)."""
ALLOWED_PLACEHOLDERS = frozenset({"name"})


def template_problems(draft: Draft) -> list[str]:
    """Template placeholders other than ``{name}`` (a variable in braces is :func:`variable_problems`')."""
    problems: list[str] = []
    for field, text in fields(draft):
        for match in TEMPLATE.finditer(text):
            inner = match.group(1)
            if inner is None or (inner not in ALLOWED_PLACEHOLDERS and not VARIABLE_REFERENCE.search(match.group(0))):
                problems.append(f"{field}: a template placeholder {match.group(0)!r} is left in the text: {text!r}")
                break
    return problems


def label_problems(draft: Draft, story: Story) -> list[str]:
    """Lines and choice labels that are only a character's name or a title from the story ("Mara Vance")."""
    names = bare_names(story)
    return [f"{field} is only a name or a title from the story: {text!r}" for field, text in fields(draft)[1:]
            if only_a_name(text, story, names)]


def only_a_name(text: str, story: Story, names: set[str]) -> bool:
    """Whether ``text`` is one of ``names`` (:func:`bare_names`), the placeholder standing for the default name."""
    default = story.persona.name if story.persona is not None else ""
    return normalize(text) in names or bool(default and normalize(text.replace(PLACEHOLDER, default)) in names)


def bare_names(story: Story) -> set[str]:
    """The story's title, its scenes' titles and its characters' names and ids, normalised."""
    names = {normalize(story.title), *(normalize(scene.title) for scene in story.scenes)}
    for character in story.bible.characters:
        names.update({normalize(character.name), normalize(character.id), *map(normalize, character.name.split())})
    return names


@functools.cache
def vocabulary() -> SpellChecker:
    """An English word list (pyspellchecker's, about 160,000 words), loaded once."""
    return SpellChecker(language="en")


WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
FUSED_HEADS = frozenset({"a", "i"})
"""One-letter words a fused word may start with ("Alifeboat"); other parts need three letters."""


COMMON = 1000
"""Both parts of a fused word are at least this frequent in the word list: rare parts ("tex" + "ted") are more
likely an inflection the list lacks than two words run together."""
SUFFIXES = ("ed", "d", "s", "es", "ing", "er", "ers", "ly")


def fused(word: str, known: set[str]) -> tuple[str, str] | None:
    """The two common words ``word`` runs together (``alifeboat`` -> ``a``, ``lifeboat``), if it is not one."""
    word = word.casefold()
    counts = vocabulary().word_frequency.dictionary
    if len(word) < 5 or "'" in word or word in known or word in counts:
        return None
    if any(word.endswith(suffix) and word[: -len(suffix)] in counts for suffix in SUFFIXES):
        return None  # an inflection the list lacks ("texted")
    for cut in range(1, len(word) - 2):
        head, tail = word[:cut], word[cut:]
        if (len(head) >= 3 or head in FUSED_HEADS) and counts.get(head, 0) >= COMMON and counts.get(tail, 0) >= COMMON:
            return head, tail
    return None


def fused_word_problems(draft: Draft, story: Story, parent: Scene) -> list[str]:
    """Words run together ("Alifeboat lowering into black water"): unknown, but two known words side by side."""
    said = [story.title, story.bible.logline, story.bible.setting, parent.title, *(line.text for line in parent.lines)]
    said += [f"{character.name} {character.look}" for character in story.bible.characters]
    known = {word.casefold() for text in said for word in WORD.findall(text)}
    problems: list[str] = []
    for field, text in fields(draft):
        for word in WORD.findall(text):
            parts = fused(word, known)
            if parts is not None:
                problems.append(f"{field} runs two words together: {word!r} ({' '.join(parts)}?): {text!r}")
                break
    return problems


def problems(
    draft: Draft,
    story: Story,
    parent: Scene,
    must_end: bool,
    policy: ContentPolicy | None = None,
) -> list[str]:
    """Every problem found in ``draft``; empty when it may become a scene."""
    found = [
        *title_problems(draft, story, parent),
        *persona_problems(draft, story),
        *template_problems(draft),
        *label_problems(draft, story),
        *fused_word_problems(draft, story, parent),
        *speaker_problems(draft, story),
        *line_problems(draft, story, parent),
        *choice_problems(draft),
        *ending_problems(draft, must_end),
        *variable_problems(draft, story),
    ]
    if policy is not None:
        found.extend(policy.check(texts(draft)))
    return found
