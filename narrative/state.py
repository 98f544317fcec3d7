"""Per-viewer state: which story version, where they are, how they got there, what they know.

State changes only through :func:`choose` (or the lower-level :func:`advance`); looking ahead never
touches it (ink #253). It is kept small because the server stores one per viewer: variables hold
every declared variable, visits count authored scenes only, ``taken`` lists only used-up ``once``
choices, and empty fields are left out of the JSON.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from reelfork.narrative.expressions import Value, apply_effect, evaluate
from reelfork.narrative.graph import GENERATED_PREFIX
from reelfork.narrative.story import Choice, Episode, Scene, Story, episode_of


class UnknownChoice(LookupError):
    """The viewer named a choice the current scene does not offer."""


class UnavailableChoice(UnknownChoice):
    """The choice exists but is hidden now: its condition is false, or it was ``once`` and is used up."""


def _empty(value: object) -> bool:
    return not value


class ViewerState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    story: str
    version: int = Field(ge=1)
    """The story version this session is pinned to: later edits never change it."""
    path: list[str] = Field(min_length=1)
    """Scene ids from the start scene to the current one."""
    variables: dict[str, StrictBool | StrictInt | StrictStr] = Field(default_factory=dict, exclude_if=_empty)
    """Every story variable's current value, from the story's defaults at :func:`begin`."""
    visits: dict[str, int] = Field(default_factory=dict, exclude_if=_empty)
    """How many times each authored scene was entered (written scenes are not counted)."""
    taken: list[str] = Field(default_factory=list, exclude_if=_empty)
    """``scene/choice`` for each ``once`` choice already taken."""

    @property
    def current(self) -> str:
        return self.path[-1]

    @property
    def generated_depth(self) -> int:
        """How many generated scenes end the path: the writer must end the story at ``open_depth``."""
        depth = 0
        for scene_id in reversed(self.path):
            if not is_generated(scene_id):
                break
            depth += 1
        return depth


def start(story: str, version: int, start_scene: str, variables: Mapping[str, Value] | None = None) -> ViewerState:
    """A new session at ``start_scene``; prefer :func:`begin`, which also sets the story's variables."""
    visits = {} if is_generated(start_scene) else {start_scene: 1}
    return ViewerState(story=story, version=version, path=[start_scene], variables=dict(variables or {}),
                       visits=visits)


def begin(story: Story, version: int) -> ViewerState:
    """A new session on ``version`` of ``story``: at its start scene, with every variable at its default."""
    return start(story.id, version, story.start, story.initial_variables())


def find_choice(scene: Scene, choice_id: str) -> Choice:
    for choice in scene.choices:
        if choice.id == choice_id:
            return choice
    offered = ", ".join(c.id for c in scene.choices) or "none (this scene is an ending)"
    raise UnknownChoice(f"scene {scene.id!r} has no choice {choice_id!r}; it offers: {offered}")


def is_available(scene: Scene, choice: Choice, state: ViewerState, defaults: Mapping[str, Value] | None = None) -> bool:
    """Whether ``choice`` is offered now: not a used-up ``once``, and its condition (if any) true.

    ``defaults`` fill variables the state lacks (a session started before :func:`begin` existed).
    """
    if choice.once and f"{scene.id}/{choice.id}" in state.taken:
        return False
    if choice.condition is None:
        return True
    variables: Mapping[str, Value] = {**defaults, **state.variables} if defaults else state.variables
    try:
        return evaluate(choice.condition, variables, state.visits) is True
    except KeyError as exc:
        raise UnavailableChoice(_missing(exc)) from None


def _missing(exc: KeyError) -> str:
    return f"variable {exc.args[0]!r} is not in this session; start sessions with begin(story, version)"


def available_choices(source: Story | Scene, state: ViewerState) -> list[Choice]:
    """The choices offered to this viewer now, in the scene's order.

    ``source`` is the story (its scene at ``state.current`` is used, and its variable defaults fill
    any gap in the state) or the scene itself (needed for written scenes, which the story lacks).
    """
    scene, defaults = _scene_of(source, state)
    return [choice for choice in scene.choices if is_available(scene, choice, state, defaults)]


def default_choice(source: Story | Scene, state: ViewerState) -> Choice | None:
    """The choice taken when playback passes the window without a choice: the scene's ``default`` when it is
    offered, else the first choice offered; ``None`` when nothing is offered (an ending)."""
    scene, defaults = _scene_of(source, state)
    offered = [choice for choice in scene.choices if is_available(scene, choice, state, defaults)]
    if not offered:
        return None
    return next((choice for choice in offered if choice.id == scene.default), offered[0])


def current_episode(story: Story, state: ViewerState) -> Episode:
    """The episode the viewer is in: that of the last authored scene on the path (written scenes belong to
    their parent's episode)."""
    index = story.scene_index()
    for scene_id in reversed(state.path):
        if scene_id in index:
            return episode_of(story, scene_id)
    return episode_of(story, story.start)


def choose(
    state: ViewerState, scene: Scene, choice_id: str, target_id: str, *, story: Story | None = None
) -> ViewerState:
    """The state after taking ``choice_id`` in ``scene`` (the current scene) and arriving at ``target_id``.

    Applies the choice's effects in order, marks a ``once`` choice used, counts the visit, extends
    the path. ``target_id`` is where the server resolved the choice to: the authored target, or the
    written scene (or its fallback) of an open choice. Raises :class:`UnknownChoice` for a choice the
    scene lacks and :class:`UnavailableChoice` for one hidden now. ``state`` itself is unchanged.
    ``story``, when given, supplies defaults for variables a session started without (see :func:`begin`).
    """
    if scene.id != state.current:
        raise UnknownChoice(f"the viewer is in scene {state.current!r}, not {scene.id!r}")
    choice = find_choice(scene, choice_id)
    if choice.target is not None and choice.target != target_id:
        raise ValueError(f"choice {choice_id!r} leads to {choice.target!r}, not {target_id!r}")
    defaults = story.initial_variables() if story is not None and story.variables else None
    if not is_available(scene, choice, state, defaults):
        raise UnavailableChoice(f"choice {choice_id!r} is not offered in scene {scene.id!r} now")
    variables = {**defaults, **state.variables} if defaults else dict(state.variables)
    for effect in choice.effects:
        try:
            apply_effect(effect, variables, state.visits)
        except KeyError as exc:
            raise UnavailableChoice(_missing(exc)) from None
    taken = [*state.taken, f"{scene.id}/{choice.id}"] if choice.once else state.taken
    return _arrive(state, target_id, variables=variables, taken=taken)


def advance(state: ViewerState, scene_id: str) -> ViewerState:
    """Move to ``scene_id`` without a choice's effects (:func:`choose` is the usual way)."""
    return _arrive(state, scene_id, variables=state.variables, taken=state.taken)


def _arrive(state: ViewerState, scene_id: str, *, variables: dict[str, Value], taken: list[str]) -> ViewerState:
    visits = state.visits
    if not is_generated(scene_id):
        visits = {**visits, scene_id: visits.get(scene_id, 0) + 1}
    return ViewerState.model_construct(
        story=state.story, version=state.version, path=[*state.path, scene_id],
        variables=variables, visits=visits, taken=taken,
    )


def _scene_of(source: Story | Scene, state: ViewerState) -> tuple[Scene, Mapping[str, Value] | None]:
    if isinstance(source, Scene):
        return source, None
    scene = source.scene_index().get(state.current)
    if scene is None:
        raise LookupError(f"scene {state.current!r} is not authored in story {source.id!r}; pass the scene itself")
    return scene, source.initial_variables() if source.variables else None


def generated_scene_id(story_digest: str, parent_scene: str, choice: str, personalisation: str = "") -> str:
    """The content address of a written scene: same story version, place and choice, same scene."""
    key = "\x1f".join([story_digest, parent_scene, choice, personalisation])
    return GENERATED_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:24]


def is_generated(scene_id: str) -> bool:
    return scene_id.startswith(GENERATED_PREFIX)
