"""A linear series: one path through a story, cut into episodes that end on cliffhangers.

Linear production (``reelfork produce``) takes a story in the project's format whose every
scene offers at most one choice: the path from ``start`` to the ending is the series. A story that
declares ``episodes`` is cut where they open (the same declaration interactive play uses); otherwise an
episode ends after each scene tagged :data:`CLIFFHANGER` and at the ending, and a story without that tag
is one episode. Pure data: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from reelfork.narrative.story import Scene, Story, episode_of

CLIFFHANGER = "cliffhanger"
"""The scene tag that closes an episode."""
MAX_EPISODES = 200


class SeriesError(ValueError):
    """A story that cannot be produced as a linear series; the message says what to change."""


@dataclass(frozen=True)
class Episode:
    number: int
    """1-based."""
    scenes: tuple[Scene, ...]


@dataclass(frozen=True)
class Series:
    story: Story
    episodes: tuple[Episode, ...]

    @property
    def scenes(self) -> list[Scene]:
        return [scene for episode in self.episodes for scene in episode.scenes]


def linear_path(story: Story) -> list[Scene]:
    """The scenes from ``start`` to the ending, following each scene's only choice."""
    index = story.scene_index()
    if story.start not in index:
        raise SeriesError(f"start scene {story.start!r} does not exist")
    path: list[Scene] = []
    seen: set[str] = set()
    scene = index[story.start]
    while True:
        if scene.id in seen:
            raise SeriesError(
                f"the story loops back to scene {scene.id!r} after {len(path)} scenes; a series needs a path "
                f"that reaches an ending"
            )
        seen.add(scene.id)
        path.append(scene)
        if scene.ending:
            return path
        if len(scene.choices) > 1:
            offered = ", ".join(repr(choice.id) for choice in scene.choices)
            raise SeriesError(
                f"scene {scene.id!r} offers {len(scene.choices)} choices ({offered}); a linear series needs at most "
                f"one per scene: keep the path you want to produce, or play this story interactively"
            )
        choice = scene.choices[0]
        if choice.target is None:
            raise SeriesError(
                f"scene {scene.id!r} continues through open choice {choice.id!r}; linear production needs authored "
                f"targets (draft the series from a premise to have the writer write scenes)"
            )
        if choice.target not in index:
            raise SeriesError(f"scene {scene.id!r} continues to {choice.target!r}, which does not exist")
        if choice.condition is not None:
            raise SeriesError(
                f"choice {choice.id!r} of scene {scene.id!r} has a condition; a linear series has no branches"
            )
        scene = index[choice.target]


def series_of(story: Story) -> Series:
    """The story as a series; raises :class:`SeriesError` when it is not linear or never ends."""
    if not any(scene.ending for scene in story.scenes):
        raise SeriesError(f"story {story.id!r} has no ending scene; mark the last scene with 'ending: true'")
    path = linear_path(story)
    episodes = _declared(story, path) if story.episodes else _cut_at_cliffhangers(path)
    if len(episodes) > MAX_EPISODES:
        raise SeriesError(f"the series has {len(episodes)} episodes; at most {MAX_EPISODES} are produced in one run")
    return Series(story=story, episodes=tuple(episodes))


def _cut_at_cliffhangers(path: list[Scene]) -> list[Episode]:
    episodes: list[Episode] = []
    current: list[Scene] = []
    for scene in path:
        current.append(scene)
        if CLIFFHANGER in scene.tags or scene.ending:
            episodes.append(Episode(number=len(episodes) + 1, scenes=tuple(current)))
            current = []
    return episodes


def _declared(story: Story, path: list[Scene]) -> list[Episode]:
    """The path grouped by the declared episodes; every declared one must be on it, in order."""
    groups: list[tuple[int, list[Scene]]] = []
    for scene in path:
        number = episode_of(story, scene.id).number
        if groups and groups[-1][0] == number:
            groups[-1][1].append(scene)
        else:
            groups.append((number, [scene]))
    numbers = [number for number, _ in groups]
    if numbers != list(range(1, len(story.episodes) + 1)):
        raise SeriesError(
            f"the path from {story.start!r} to the ending passes episodes {numbers}; a series plays every declared "
            f"episode once, in order (1 to {len(story.episodes)})"
        )
    return [Episode(number=number, scenes=tuple(scenes)) for number, scenes in groups]
