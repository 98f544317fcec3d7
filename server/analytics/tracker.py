"""A connection's tracker: turns what the play protocol does into :class:`Event` s for the recorder.

Every call is synchronous and only queues: the play path never waits on analytics. ``progress`` is sampled
at most once a second; a sample skipped meanwhile is kept and sent before the session's next event.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass

from reelfork.narrative.state import current_episode
from reelfork.narrative.story import Episode, Scene
from reelfork.server.analytics.events import Event, EventKind
from reelfork.server.analytics.recorder import Recorder
from reelfork.server.store import SessionRecord, StoryVersion

SAMPLE_S = 1.0
DEFAULT_LOOK = "default"


def session_id(token: str) -> str:
    """The session's name in analytics: a digest of its token, unrelated to the store's key."""
    return hashlib.sha256(b"analytics\x1f" + token.encode()).hexdigest()[:24]


@dataclass
class Context:
    """The session's part of every :class:`~reelfork.server.analytics.events.Event` (same field names)."""

    story: str
    version: int
    session: str
    viewer: str
    locale: str
    look: str
    scene: str = ""
    episode: int = 0
    arrival: int = 0


class Tracker:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.context: Context | None = None
        self._sampled = 0.0
        self._pending: Event | None = None

    def started(
        self, story: StoryVersion, token: str, record: SessionRecord, locale: str | None = None,
        look: str | None = None, *, resumed: bool = False,
    ) -> None:
        """A session began (or, with ``resumed``, continued) on this connection."""
        self._flush_sample()
        self.context = Context(
            story=story.story.id, version=story.version, session=session_id(token), viewer=record.viewer,
            locale=locale or story.story.language, look=look or DEFAULT_LOOK, scene=record.state.current,
        )
        self._emit("resumed" if resumed else "started")

    def presented(self, story: StoryVersion, record: SessionRecord, scene: Scene, locked: Episode | None) -> None:
        """A scene was sent (an entry, unless it is the same arrival again), or ``locked`` for its episode."""
        context = self.context
        if context is None:
            return
        self._flush_sample()
        context.scene, context.arrival = scene.id, len(record.state.path)
        if locked is not None:
            context.episode = locked.number
            self._emit("paywall")
            return
        context.episode = current_episode(story.story, record.state).number
        self._emit("entered")
        if scene.ending:
            self._emit("ending")

    def chose(self, scene_id: str, choice_id: str, defaulted: bool) -> None:
        self._flush_sample()
        self._emit("chose", scene=scene_id, choice=choice_id, defaulted=defaulted)

    def unlocked(self, episode: int) -> None:
        self._flush_sample()
        self._emit("unlocked", episode=episode)

    def progress(self, scene_id: str, position: float) -> None:
        """A playback position on the current scene: one sample a second reaches the recorder."""
        context = self.context
        if context is None or scene_id != context.scene:
            return
        event = self._event("progress", seconds=position)
        now = time.monotonic()
        if event is not None and now - self._sampled >= SAMPLE_S:
            self._sampled, self._pending = now, None
            self.recorder.record(event)
        else:
            self._pending = event

    def disconnected(self) -> None:
        self._flush_sample()
        self._emit("disconnected")
        self.context = None

    def _flush_sample(self) -> None:
        if self._pending is not None:
            self.recorder.record(self._pending)
            self._pending = None

    def _emit(self, kind: EventKind, **fields: str | int | float | bool) -> None:
        event = self._event(kind, **fields)
        if event is not None:
            self.recorder.record(event)

    def _event(self, kind: EventKind, **fields: str | int | float | bool) -> Event | None:
        context = self.context
        if context is None:
            return None
        return Event.model_validate({**asdict(context), "kind": kind, "at": time.time(), **fields})
