"""The creator's report: a story version's counters, summed over the hours, locales and looks asked for."""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import cast

import redis.asyncio as aioredis
from pydantic import BaseModel
from reelfork.narrative.story import episodes_of
from reelfork.server.analytics.recorder import HOUR_S
from reelfork.server.queue import keys
from reelfork.server.store import StoryVersion


class SceneStats(BaseModel):
    scene: str
    title: str
    entries: int
    """Arrivals at the scene (by the start or a choice; a resume is not one)."""
    mean_watch_s: float
    """Mean furthest playback position per entry, from ``progress`` (sampled once a second)."""
    left: int
    """Sessions whose last event is a disconnect at this scene, not resumed since."""


class ChoiceStats(BaseModel):
    scene: str
    choice: str
    label: str
    chosen: int
    """Taken by the viewer."""
    defaulted: int
    """Taken by default when the choice window closed."""
    taken: int
    """Both."""


class EpisodeStats(BaseModel):
    number: int
    title: str
    started: int
    """Sessions that entered a scene of the episode."""
    finished: int
    """Sessions that reached an ending in it, or its end: the next episode's paywall or first scene."""
    continued: int
    """Sessions that went on to play the next episode."""


class PaywallStats(BaseModel):
    episode: int
    shown: int
    """Sessions that met this episode's paywall (each counted once)."""
    unlocked: int
    unlock_rate: float | None
    """``unlocked / shown``; null when never shown."""


class Paywall(BaseModel):
    shown: int
    unlocked: int
    unlock_rate: float | None
    episodes: list[PaywallStats]


class EndingStats(BaseModel):
    scene: str
    title: str
    reached: int


class Retention(BaseModel):
    scene: str
    entries: int
    watching: list[float]
    """Share of the scene's entries still watching at each whole second of its clip (index 0 is 1.0)."""


class AnalyticsReport(BaseModel):
    story: str
    version: int
    since: datetime | None
    until: datetime | None
    """Counted by the hour events arrived: ``since`` rounds down, ``until`` up to the hour."""
    locale: str | None
    look: str | None
    sessions_started: int
    scenes: list[SceneStats]
    choices: list[ChoiceStats]
    episodes: list[EpisodeStats]
    paywall: Paywall
    endings: list[EndingStats]
    retention: list[Retention]


async def counters(
    redis: aioredis.Redis, story: StoryVersion, since: datetime | None, until: datetime | None,
    locale: str | None, look: str | None,
) -> Counter[str]:
    """Every counter of the story version, summed over the matching hourly buckets."""
    return await version_counters(redis, story.story.id, story.version, since, until, locale, look)


async def version_counters(
    redis: aioredis.Redis, story_id: str, version: int, since: datetime | None = None, until: datetime | None = None,
    locale: str | None = None, look: str | None = None,
) -> Counter[str]:
    """Every counter of ``story_id`` version ``version``, summed over the matching hourly buckets."""
    low = "-inf" if since is None else str(math.floor(since.timestamp() / HOUR_S))
    high = "+inf" if until is None else f"({math.ceil(until.timestamp() / HOUR_S)}"
    index = keys.analytics_buckets(story_id, version)
    buckets = cast(list[str], await redis.zrangebyscore(index, low, high))
    wanted = []
    for bucket in buckets:
        bucket_locale, bucket_look = bucket.rsplit(":", 3)[1:3]
        if (locale is None or locale == bucket_locale) and (look is None or look == bucket_look):
            wanted.append(bucket)
    total: Counter[str] = Counter()
    if not wanted:
        return total
    async with redis.pipeline(transaction=False) as pipe:
        for bucket in wanted:
            pipe.hgetall(bucket)
        for values in cast(list[dict[str, str]], await pipe.execute()):
            total.update({field: int(value) for field, value in values.items()})
    return total


def build(
    story: StoryVersion, counts: Counter[str], since: datetime | None, until: datetime | None,
    locale: str | None, look: str | None,
) -> AnalyticsReport:
    authored = story.story
    titles = {scene.id: scene.title for scene in authored.scenes}
    seen = {field.split(":", 1)[1] for field in counts if field.startswith(("enter:", "left:"))}
    scene_ids = [scene.id for scene in authored.scenes] + sorted(seen - set(titles))
    scenes = []
    retention = []
    for scene_id in scene_ids:
        entries = counts[f"enter:{scene_id}"]
        watch = counts[f"watch:{scene_id}"] / 1000
        scenes.append(SceneStats(
            scene=scene_id, title=titles.get(scene_id, scene_id), entries=entries,
            mean_watch_s=round(watch / entries, 3) if entries else 0.0, left=counts[f"left:{scene_id}"],
        ))
        if entries:
            retention.append(Retention(scene=scene_id, entries=entries, watching=_curve(counts, scene_id, entries)))
    choices = []
    for scene in authored.scenes:
        for choice in scene.choices:
            chosen = counts[f"chose:{scene.id}/{choice.id}"]
            defaulted = counts[f"default:{scene.id}/{choice.id}"]
            choices.append(ChoiceStats(scene=scene.id, choice=choice.id, label=choice.label, chosen=chosen,
                                       defaulted=defaulted, taken=chosen + defaulted))
    episodes = [
        EpisodeStats(number=e.number, title=e.title, started=counts[f"ep:{e.number}:started"],
                     finished=counts[f"ep:{e.number}:finished"], continued=counts[f"ep:{e.number}:continued"])
        for e in episodes_of(authored)
    ]
    walls = [
        PaywallStats(episode=e.number, shown=counts[f"paywall:{e.number}"], unlocked=counts[f"unlocked:{e.number}"],
                     unlock_rate=_rate(counts[f"unlocked:{e.number}"], counts[f"paywall:{e.number}"]))
        for e in episodes_of(authored) if counts[f"paywall:{e.number}"] or counts[f"unlocked:{e.number}"]
    ]
    shown, unlocked = sum(w.shown for w in walls), sum(w.unlocked for w in walls)
    endings = [
        EndingStats(scene=scene.id, title=scene.title, reached=counts[f"ending:{scene.id}"])
        for scene in authored.scenes if scene.ending
    ]
    return AnalyticsReport(
        story=authored.id, version=story.version, since=since, until=until, locale=locale, look=look,
        sessions_started=counts["sessions"], scenes=scenes, choices=choices, episodes=episodes,
        paywall=Paywall(shown=shown, unlocked=unlocked, unlock_rate=_rate(unlocked, shown), episodes=walls),
        endings=endings, retention=retention,
    )


async def report(
    redis: aioredis.Redis, story: StoryVersion, *, since: datetime | None = None, until: datetime | None = None,
    locale: str | None = None, look: str | None = None,
) -> AnalyticsReport:
    return build(story, await counters(redis, story, since, until, locale, look), since, until, locale, look)


def _curve(counts: Counter[str], scene_id: str, entries: int) -> list[float]:
    prefix = f"ret:{scene_id}:"
    seconds = [int(field[len(prefix):]) for field in counts if field.startswith(prefix)]
    last = max(seconds, default=0)
    return [1.0] + [round(counts[f"{prefix}{second}"] / entries, 4) for second in range(1, last + 1)]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
