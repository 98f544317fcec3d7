"""Drafting a linear series from a premise: the writer writes scene after scene, episode by episode.

The writer is the same :class:`~reelfork.generation.writer.request.SceneWriter` as the interactive mode's, with
its schema, checks, retries and content policy; only the brief differs. Episodes are cut by length:
each scene is measured (spoken in the source language) as it is written, an episode's closing
scene is briefed to end on a cliffhanger once the episode is long enough, and a scene that would
make the episode too long is cut back a line at a time, or rewritten with another seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from reelfork.generation.writer.request import SceneWriter, WriteError, WriteRequest
from reelfork.narrative.series import CLIFFHANGER
from reelfork.narrative.story import NARRATOR, Bible, Choice, Line, OpenNode, Scene, Story

Place = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=60)]
DUB_HEADROOM = 1.18
"""Other locales speak longer than English (Spanish ~15%): draft an episode this much shorter than its maximum."""
MAX_SCENES = 12
"""Scenes per episode at most, whatever their length."""
REWRITES = 3
"""New seeds tried for a scene the writer failed, or that cannot be cut to fit."""


class Premise(BaseModel):
    """What a series is drafted from: a title, a bible (with its logline) and the places it may use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = "en"
    episodes: int = Field(default=5, ge=1, le=100)
    episode_seconds: tuple[float, float] = (60.0, 90.0)
    """Shortest and longest episode, in seconds."""
    bible: Bible
    places: list[Place] = Field(min_length=1, max_length=24)
    """The sets the series is shot in; every scene happens in one of them."""

    @model_validator(mode="after")
    def _lengths(self) -> Premise:
        low, high = self.episode_seconds
        if not 10 <= low < high <= 600:
            raise ValueError("episode_seconds is [shortest, longest] with 10 <= shortest < longest <= 600")
        if high / DUB_HEADROOM - 8 < low:
            raise ValueError(f"episode_seconds {list(self.episode_seconds)} leaves too little room; widen it")
        return self


Measure = Callable[[Scene], float]
"""Seconds a scene lasts when spoken in the source language."""


def premise_scene(premise: Premise) -> Scene:
    return Scene(
        id="premise",
        title=premise.title,
        place=premise.places[0],
        lines=[Line(id="logline", speaker=NARRATOR, text=premise.bible.logline)],
        ending=True,
    )


def drafting_story(premise: Premise, written: Sequence[Scene]) -> Story:
    """The story the writer sees: the bible, the scenes so far, and one set scene per place (the writer
    takes its place enum from the story's scenes)."""
    sets = [
        Scene(id=f"set-{i}", title=place, place=place, lines=[Line(id="set", speaker=NARRATOR, text=place)],
              ending=True)
        for i, place in enumerate(premise.places)
    ]
    return Story(
        id="draft",
        title=premise.title,
        language=premise.language,
        bible=premise.bible,
        start="premise",
        scenes=[premise_scene(premise), *sets, *written],
    )


def scene_id(episode: int, index: int) -> str:
    return f"e{episode:02d}s{index:02d}"


def brief(premise: Premise, episode: int, index: int, closing: bool) -> tuple[str, str | None]:
    """What happens next and the closing instruction (None: the writer's own, which resolves the story)."""
    names = ", ".join(character.name for character in premise.bible.characters)
    if episode == 1 and index == 1:
        beat = f"Open the series: introduce {names} and the conflict: {premise.bible.logline}"
    elif index == 1:
        beat = f"Episode {episode} begins right where the last cliffhanger left off."
    else:
        beat = f"Episode {episode} goes on: raise the stakes."
    final = closing and episode == premise.episodes
    if final:
        return beat + " This is the last scene of the series: resolve the conflict.", None
    if closing:
        beat += " End the episode on a cliffhanger: a shock or a threat, left unresolved."
    return beat, "Write the next scene. Give no choices and set ending to true: the series goes on without choices."


def cut_to_fit(scene: Scene, seconds: float, room: float, measure: Measure) -> tuple[Scene, float] | None:
    """``scene`` with lines dropped from its end until it lasts at most ``room`` seconds; None if it cannot."""
    while seconds > room and len(scene.lines) > 2:
        scene = scene.model_copy(update={"lines": scene.lines[:-1]})
        seconds = measure(scene)
    return (scene, seconds) if seconds <= room else None


class DraftError(Exception):
    """The series could not be drafted; scenes written so far are kept for the next run."""


def draft_series(
    premise: Premise,
    writer: SceneWriter,
    measure: Measure,
    written: Sequence[Scene] = (),
    on_scene: Callable[[Scene, float], None] | None = None,
) -> Story:
    """The series as a linear story. ``written`` are scenes of an earlier, interrupted run (reused as they
    are); ``on_scene`` hears of each new scene as soon as it is accepted, to keep it for a resume."""
    low, high = premise.episode_seconds
    target_low, target_high = low + 2.0, high / DUB_HEADROOM
    done: dict[str, Scene] = {scene.id: scene for scene in written}
    scenes: list[Scene] = []
    for episode in range(1, premise.episodes + 1):
        total = 0.0
        for index in range(1, MAX_SCENES + 1):
            closing = total >= target_low - 15.0 or index == MAX_SCENES
            key = scene_id(episode, index)
            if key in done:
                scene = done[key]
                seconds = measure(scene)
            else:
                room = target_high - total
                scene, seconds = draft_scene(premise, writer, measure, scenes, episode, index, closing, room)
                if on_scene is not None:
                    on_scene(scene, seconds)
            scenes.append(scene)
            total += seconds
            if closing and total >= target_low:
                break
    return linear_story(premise, scenes)


def draft_scene(
    premise: Premise,
    writer: SceneWriter,
    measure: Measure,
    before: list[Scene],
    episode: int,
    index: int,
    closing: bool,
    room: float,
) -> tuple[Scene, float]:
    hint, instruction = brief(premise, episode, index, closing)
    parent = before[-1] if before else premise_scene(premise)
    story = drafting_story(premise, before)
    choice = Choice(id="next", label="Continue", open=OpenNode(hint=hint))
    problems: list[str] = []
    for rewrite in range(REWRITES):
        request = WriteRequest(
            story=story,
            path=before[-7:] if before else [parent],
            choice=choice,
            scene_id=scene_id(episode, index),
            must_end=True,
            seed=(episode * 100 + index) * 10 + rewrite * 3,
            instruction=instruction,
        )
        try:
            scene = writer.write(request)
        except WriteError as error:
            problems.append(str(error))
            continue
        fitted = cut_to_fit(scene, measure(scene), room, measure)
        if fitted is None:
            problems.append(f"scene is longer than the {room:.0f} s left in episode {episode}, even cut to 2 lines")
            continue
        return fitted
    raise DraftError(
        f"episode {episode}, scene {index}: the writer gave no usable scene in {REWRITES} tries: " + "; ".join(problems)
    )


def linear_story(premise: Premise, scenes: list[Scene]) -> Story:
    """Chain the drafted scenes: each continues to the next, the last of each episode is a cliffhanger, the
    very last the ending."""
    linked: list[Scene] = []
    for position, scene in enumerate(scenes):
        last = position == len(scenes) - 1
        episode_end = last or scenes[position + 1].id[:3] != scene.id[:3]
        data = scene.model_dump(mode="json")
        data["ending"] = last
        data["choices"] = [] if last else [{"id": "next", "label": "Next", "target": scenes[position + 1].id}]
        data["tags"] = [CLIFFHANGER] if episode_end and not last else []
        linked.append(Scene.model_validate(data))
    return Story(
        id="series",
        title=premise.title,
        language=premise.language,
        bible=premise.bible,
        start=linked[0].id,
        scenes=linked,
    )
