"""The story format: a bible, typed variables, scenes with stable line IDs, and choices.

A story is pure data. It is validated structurally here (pydantic) and as a
graph in :mod:`reelfork.narrative.graph`. Scene and choice IDs are the creator's; line
IDs are stable so dubbing and subtitles survive edits: a line without an ``id``
gets one derived from its scene, text and occurrence (:func:`reelfork.narrative.ids.line_id`).

Fields added after the first format (variables, conditions, effects, once, sticky,
default, choice_window, tags, episodes, free_episodes) are left out of dumps while they hold
their defaults, so a story that does not use them keeps its digest, and its clips keep their keys.

Episodes: a story may declare them (each opens at an authored scene; a scene belongs to the
episode whose opening reaches it without passing through another opening), ``free_episodes``
and each locked episode's ``price``. Choice windows: a scene's choices are offered from
``opens_at`` to ``closes_at`` on its clip's timeline (:func:`choice_window`).

A small example in YAML::

    variables:
      trust: {type: int, default: 0}
    scenes:
      - id: dock
        title: The Dock
        place: A foggy pier
        default: wait          # taken when playback passes the choice window without a choice
        choice_window: {seconds: 6, after_end: 4}
        lines:
          - {speaker: mara, text: "Who's there?"}      # id derived, stable across edits
        choices:
          - {id: wait, label: Wait, target: dock, once: true, effects: [{add: trust, by: 1}]}
          - id: trust
            label: Trust her
            target: boat
            condition: {op: ">=", args: [{var: trust}, 2]}
"""

from __future__ import annotations

import gc
import hashlib
import json
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from reelfork.narrative.appearance import Appearance, Likeness, default_appearance
from reelfork.narrative.expressions import Effect, Expr, Variable
from reelfork.narrative.ids import Identifier, line_id
from reelfork.narrative.persona import Persona, fill

__all__ = [
    "NARRATOR", "Bible", "Character", "Choice", "ChoiceWindow", "Effect", "Episode", "Expr", "Identifier", "Line",
    "OpenNode", "Price", "Scene", "Story", "Variable", "Voice", "Window", "build_story", "choice_window",
    "collection_paused", "episode_of", "episodes_of", "fill_scene", "is_free", "membership", "story_from_json",
]


def _empty(value: Any) -> bool:
    return value is None or value is False or value == [] or value == {}

BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Embeddings, overrides and isolates: they reorder how text around them is shown (a title read backwards)."""


def _printable(allowed: str) -> Callable[[str], str]:
    """A check refusing control characters (but ``allowed``) and bidi controls in a text."""

    def check(text: str) -> str:
        for character in text:
            if character in BIDI_CONTROLS or (unicodedata.category(character) == "Cc" and character not in allowed):
                raise ValueError(f"contains the control character U+{ord(character):04X}")
        return text

    return check


ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_printable(""))
]
"""A title, a name, a label: one line of printable text."""
LongText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), AfterValidator(_printable("\t\n\r"))
]


class Strict(BaseModel):
    """Base for every story model: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Voice(Strict):
    """How a character sounds: an espeak-ng voice name, pitch (0-99) and rate (words/min)."""

    voice: ShortText = "en-us"
    pitch: int = Field(default=50, ge=0, le=99)
    rate: int = Field(default=165, ge=80, le=400)


class Character(Strict):
    id: Identifier
    name: ShortText
    look: LongText
    """What the character looks like; used by every renderer for visual consistency."""
    voice: Voice = Voice()
    color: Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")] | None = None
    appearance: Appearance | None = Field(default=None, exclude_if=_empty)
    """The look in fields, for renderers that draw rather than prompt; None: derived from the ID."""
    likeness: Likeness = Field(default_factory=Likeness, exclude_if=lambda v: v == Likeness())
    """Invented (the default) or a licensed likeness with its release reference."""

    def drawn(self) -> Appearance:
        """The structured appearance every renderer draws: the authored one, or a stable default."""
        return self.appearance or default_appearance(self.id, self.color)


class Bible(Strict):
    """What stays true across the whole story: who, where, and how it feels."""

    logline: LongText
    setting: LongText
    tone: ShortText
    characters: list[Character] = Field(min_length=1, max_length=64)
    style_rules: list[ShortText] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _unique_characters(self) -> Bible:
        seen: set[str] = set()
        for character in self.characters:
            if character.id in seen:
                raise ValueError(f"character id {character.id!r} is declared twice")
            seen.add(character.id)
        return self

    def character(self, character_id: str) -> Character:
        for character in self.characters:
            if character.id == character_id:
                return character
        raise KeyError(character_id)


class Line(Strict):
    id: Identifier = ""
    """Stable; when absent in the input, :class:`Scene` derives it from scene, text and occurrence."""
    speaker: Identifier
    """A character ID from the bible, or ``narrator``."""
    text: LongText


class OpenNode(Strict):
    """A choice whose scene the LLM writes when a viewer may need it."""

    hint: LongText
    """What the creator wants to happen; the writer's brief."""
    fallback: Identifier | None = None
    """An authored scene to use when generation fails; else a bridge to the nearest ending."""


class Choice(Strict):
    id: Identifier
    label: ShortText
    target: Identifier | None = None
    open: OpenNode | None = None
    condition: Expr | None = Field(default=None, exclude_if=_empty)
    """Offered only while this bool expression is true."""
    effects: list[Effect] = Field(default_factory=list, max_length=16, exclude_if=_empty)
    """Applied in order when the viewer takes the choice."""
    once: bool = Field(default=False, exclude_if=_empty)
    """Offered until the viewer has taken it once in this session."""
    sticky: bool = Field(default=False, exclude_if=_empty)
    """Never used up. Choices are sticky unless ``once``; this states it explicitly, as ink's ``+``."""

    @model_validator(mode="after")
    def _target_or_open(self) -> Choice:
        if (self.target is None) == (self.open is None):
            raise ValueError("a choice needs exactly one of 'target' (a scene id) or 'open' (an LLM brief)")
        if self.once and self.sticky:
            raise ValueError("a choice is either 'once' (used up when taken) or 'sticky' (never used up), not both")
        return self


class ChoiceWindow(Strict):
    """When choices are offered on the clip's timeline: the last ``seconds`` of it, and ``after_end`` more
    while the last frame holds. ``{seconds: 0, after_end: N}`` is "choose after the end"."""

    seconds: float = Field(default=10.0, ge=0, le=60)
    """How long before the clip's end the choices appear."""
    after_end: float = Field(default=0.0, ge=0, le=600)
    """How long after the clip's end the choices stay, the last frame held, before the default is taken."""

    @model_validator(mode="after")
    def _some_time(self) -> ChoiceWindow:
        if self.seconds <= 0 and self.after_end <= 0:
            raise ValueError("a choice window needs time: 'seconds' or 'after_end' (or both) above 0")
        return self


DEFAULT_WINDOW = ChoiceWindow()


class Price(Strict):
    coins: int = Field(ge=1, le=1_000_000)


class Episode(Strict):
    """One episode: a number (1-based, consecutive), a title and the authored scene that opens it."""

    number: int = Field(ge=1, le=10_000)
    title: ShortText
    opens: Identifier
    """The scene the episode starts at; the first episode's is the story's ``start``."""
    price: Price | None = Field(default=None, exclude_if=_empty)
    """Coins to unlock it; required beyond ``free_episodes``, forbidden within them."""


class Scene(Strict):
    id: Identifier
    title: ShortText
    place: ShortText
    """Where the scene happens; the renderer derives the backdrop from it."""
    mood: ShortText = "tense"
    lines: list[Line] = Field(min_length=1, max_length=500)
    choices: list[Choice] = Field(default_factory=list, max_length=4)
    ending: bool = False
    default: Identifier | None = Field(default=None, exclude_if=_empty)
    """The choice taken when playback passes the choice window without a choice; else the first one offered."""
    choice_window: ChoiceWindow | None = Field(default=None, exclude_if=_empty)
    """This scene's window; the story's when absent."""
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=32, exclude_if=_empty
    )
    """Free labels (Twine passage tags survive import here); ``cliffhanger`` ends an episode."""

    @model_validator(mode="before")
    @classmethod
    def _no_timeout(cls, data: Any) -> Any:
        if isinstance(data, dict) and "timeout_s" in data:
            raise ValueError(
                "'timeout_s' is no longer part of the format: the default is taken when playback passes the "
                "choice window; use 'choice_window: {seconds: 0, after_end: N}' for N seconds after the clip ends"
            )
        return data

    @model_validator(mode="after")
    def _stable_line_ids(self) -> Scene:
        if all(line.id for line in self.lines):
            return self
        seen: dict[str, int] = {}
        lines: list[Line] = []
        for line in self.lines:
            occurrence = seen.get(line.text, 0)
            seen[line.text] = occurrence + 1
            lines.append(line if line.id else line.model_copy(update={"id": line_id(self.id, line.text, occurrence)}))
        self.__dict__["lines"] = lines  # frozen model: replace before anyone sees it
        return self

    @model_validator(mode="after")
    def _choices_or_ending(self) -> Scene:
        if self.ending and self.choices:
            raise ValueError("an ending scene has no choices")
        if not self.ending and not self.choices:
            raise ValueError("a scene that is not an ending needs at least one choice")
        ids = [choice.id for choice in self.choices]
        if len(ids) != len(set(ids)):
            raise ValueError("choice ids must be unique within a scene")
        line_ids: set[str] = set()
        for line in self.lines:
            if line.id in line_ids:
                raise ValueError(f"line id {line.id!r} is used twice; line ids must be unique within a scene")
            line_ids.add(line.id)
        return self

    def choice(self, choice_id: str) -> Choice:
        for choice in self.choices:
            if choice.id == choice_id:
                return choice
        raise KeyError(choice_id)


Locale = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]
_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
TextKey = Annotated[str, StringConstraints(pattern=rf"^{_ID}/(title|(line|choice):{_ID})$")]
"""``<scene>/title``, ``<scene>/line:<line>`` or ``<scene>/choice:<choice>``."""


class Story(Strict):
    id: Identifier
    title: ShortText
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = "en"
    bible: Bible
    start: Identifier
    open_depth: int = Field(default=2, ge=1, le=8)
    """How many generated scenes may follow each other before the writer must end the story."""
    persona: Persona | None = Field(default=None, exclude_if=_empty)
    """The character the viewer plays: its default name and the looks they may pick."""
    locales: list[Locale] = Field(default_factory=list, max_length=64, exclude_if=_empty)
    """The locales the story offers, its own ``language`` among them; empty: only ``language``."""
    translations: dict[Locale, dict[TextKey, LongText]] = Field(default_factory=dict, exclude_if=_empty)
    """Authored translation tables per locale, keyed by text key (see :mod:`reelfork.narrative.locales`)."""
    variables: dict[Identifier, Variable] = Field(default_factory=dict, max_length=256, exclude_if=_empty)
    """Typed story variables (bool, int, string) with the value every viewer starts with."""
    choice_window: ChoiceWindow | None = Field(default=None, exclude_if=_empty)
    """Every scene's choice window unless the scene sets its own; default: the last 10 s of the clip."""
    episodes: list[Episode] = Field(default_factory=list, max_length=10_000, exclude_if=_empty)
    """Absent: one episode, the whole story."""
    free_episodes: int | None = Field(default=None, ge=0, le=10_000, exclude_if=_empty)
    """How many episodes (from the first) are free; absent: every episode."""
    scenes: list[Scene] = Field(min_length=1, max_length=100_000)

    def scene(self, scene_id: str) -> Scene:
        return self.scene_index()[scene_id]

    def scene_index(self) -> dict[str, Scene]:
        index = self.__dict__.get("_scene_index")
        if index is None:
            index = {scene.id: scene for scene in self.scenes}
            self.__dict__["_scene_index"] = index
        return index

    def excerpt(self, scenes: list[Scene]) -> Story:
        """This story with only ``scenes`` and their translations: what a process that works on a few scenes is
        handed instead of the whole story (a 100,000-scene story's JSON is 15 MB and takes seconds to parse).
        Not validated again: ``start`` and choice targets may name scenes that are left out."""
        kept = {scene.id for scene in scenes}
        translations = {
            locale: {key: text for key, text in table.items() if key.partition("/")[0] in kept}
            for locale, table in self.translations.items()
        }
        excerpt = self.model_copy(update={"scenes": scenes, "translations": translations})
        excerpt.__dict__.pop("_scene_index", None)  # the whole story's index
        return excerpt

    def initial_variables(self) -> dict[str, bool | int | str]:
        return {name: variable.initial for name, variable in self.variables.items()}

    def speakers(self) -> list[str]:
        return [character.id for character in self.bible.characters]

    def offered_locales(self) -> list[str]:
        """The locales a viewer may pick: ``locales``, or the story's own language when it declares none."""
        return list(self.locales) or [self.language]

    def bible_for(self, look_id: str | None) -> Bible:
        """The bible with the persona's character drawn in that look (None: the default look)."""
        if self.persona is None:
            return self.bible
        look = self.persona.look(look_id)
        if look is None:
            return self.bible
        characters = [
            c.model_copy(update={
                "look": look.look, "color": look.color or c.color, "appearance": look.appearance or c.appearance,
            })
            if c.id == self.persona.character else c
            for c in self.bible.characters
        ]
        return self.bible.model_copy(update={"characters": characters})

    def digest(self) -> str:
        """A hash of the story's content: the identity of one immutable version."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()


NARRATOR = "narrator"


@dataclass(frozen=True)
class Window:
    """When a scene's choices are offered, in seconds on its clip's timeline: ``0 <= opens_at < closes_at``."""

    opens_at: float
    closes_at: float


def choice_window(story: Story, scene: Scene, duration: float) -> Window:
    """The window of ``scene`` for a clip of ``duration`` seconds: the scene's, else the story's, else the last 10 s."""
    window = scene.choice_window or story.choice_window or DEFAULT_WINDOW
    opens_at = max(0.0, duration - window.seconds)
    closes_at = max(0.0, duration) + window.after_end
    if closes_at <= opens_at:  # a clip of no length with no time after it: keep the window non-empty
        closes_at = opens_at + 0.1
    return Window(round(opens_at, 3), round(closes_at, 3))


def episodes_of(story: Story) -> list[Episode]:
    """The declared episodes, or the implicit one: the whole story, opening at ``start``."""
    if story.episodes:
        return story.episodes
    return [Episode(number=1, title=story.title, opens=story.start)]


def membership(story: Story) -> dict[str, list[int]]:
    """For each authored scene, the numbers of the episodes whose opening reaches it (exactly one when valid).

    A walk from each opening follows choice targets and open choices' fallbacks and stops at other openings.
    """
    cached: dict[str, list[int]] | None = story.__dict__.get("_membership")
    if cached is not None:
        return cached
    index = story.scene_index()
    declared = episodes_of(story)
    openings = {episode.opens for episode in declared}
    found: dict[str, list[int]] = {scene.id: [] for scene in story.scenes}
    for episode in declared:
        if episode.opens not in index:
            continue
        seen = {episode.opens}
        queue = deque([episode.opens])
        while queue:
            scene_id = queue.popleft()
            found[scene_id].append(episode.number)
            for choice in index[scene_id].choices:
                target = choice.target if choice.target is not None else choice.open.fallback if choice.open else None
                if target is None or target in seen or target in openings or target not in index:
                    continue
                seen.add(target)
                queue.append(target)
    story.__dict__["_membership"] = found
    return found


def episode_of(story: Story, scene_id: str) -> Episode:
    """The episode an authored scene belongs to; a scene in none (only in an invalid story) is in the first.

    Written scenes belong to their parent's episode: pass the last authored scene on the viewer's path.
    """
    numbers = membership(story).get(scene_id)
    if numbers is None:
        raise KeyError(f"scene {scene_id!r} is not authored in story {story.id!r}")
    declared = episodes_of(story)
    number = numbers[0] if numbers else declared[0].number
    return next((episode for episode in declared if episode.number == number), declared[0])


def is_free(story: Story, episode_number: int) -> bool:
    """Whether episode ``episode_number`` plays without an entitlement: within ``free_episodes``, or none set."""
    return story.free_episodes is None or episode_number <= story.free_episodes


@contextmanager
def collection_paused(lasting: bool = False) -> Iterator[None]:
    """Cyclic garbage collection paused meanwhile (process-wide), as it was again after.

    A large story allocates millions of objects and no cycles; the collections those allocations
    trigger otherwise take most of the time (100,000 scenes: 13 s instead of 4 s on a busy box), and a
    full collection holds the GIL for ~0.1 s, stalling a server's event loop whichever thread parses.

    ``lasting``: what was made is kept for the process's life (a cached story), so every tracked object is
    frozen at the end (:func:`gc.freeze`): the first collection after would otherwise walk those millions of
    young objects at once, holding the GIL for 0.2 s. Frozen objects are still freed when no longer referenced;
    only cyclic garbage of that moment stays.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if lasting:
            gc.freeze()
    finally:
        if was_enabled:
            gc.enable()


def build_story(data: Any) -> Story:
    """``Story.model_validate(data)`` with :func:`collection_paused`."""
    with collection_paused():
        return Story.model_validate(data)


def story_from_json(text: str | bytes) -> Story:
    """``Story.model_validate_json(text)`` with :func:`collection_paused`."""
    with collection_paused():
        return Story.model_validate_json(text)


def fill_scene(scene: Scene, name: str) -> Scene:
    """The scene as one viewer reads it: ``{name}`` filled in its title, lines and choice labels."""
    lines = [line.model_copy(update={"text": fill(line.text, name)}) for line in scene.lines]
    choices = [choice.model_copy(update={"label": fill(choice.label, name)}) for choice in scene.choices]
    return scene.model_copy(update={"title": fill(scene.title, name), "lines": lines, "choices": choices})
