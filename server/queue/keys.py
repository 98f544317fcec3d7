"""Every Redis key and channel name the project uses, in one place: all of them start with ``rf:``."""

from __future__ import annotations

PREFIX = "rf:"

# -- the job queue (server/queue/jobs.py) ---------------------------------------------------------

JOB_PREFIX = PREFIX + "job:"
"""A job's hash (kind, payload, attempt, score, worker) is this prefix and its key; the Lua scripts get it too."""


def queued(kind: str) -> str:
    """The sorted set of a kind's queued job keys, scored by priority."""
    return f"{PREFIX}q:{kind}"


def leases(kind: str) -> str:
    """The sorted set of a kind's running job keys, scored by lease expiry (ms)."""
    return f"{PREFIX}lease:{kind}"


def delayed(kind: str) -> str:
    """The sorted set of a kind's retries waiting out their back-off, scored by when they are due (ms)."""
    return f"{PREFIX}delayed:{kind}"


def wake(kind: str) -> str:
    """The list a new job of a kind is announced on, for workers blocked waiting for one."""
    return f"{PREFIX}wake:{kind}"


def job(key: str) -> str:
    return JOB_PREFIX + key


def wants(key: str) -> str:
    """A job's wishes: wanter → score."""
    return f"{PREFIX}want:{key}"


EVENTS = PREFIX + "events"
"""The pub/sub channel of the notices (server/queue/events.py)."""

COMPLETED = PREFIX + "stats:completed"
"""Job key → how many times a worker ran it to the end (once, unless a crash made it run twice)."""
FAILED = PREFIX + "failed"
"""Job key → the error of the job's last attempt, for jobs given up on."""

# -- the store (server/store.py) -------------------------------------------------------------------

STORIES = PREFIX + "stories"
"""The set of story ids."""
SESSION_PREFIX = PREFIX + "session:"
SESSIONS = SESSION_PREFIX + "*"
"""The pattern of every viewer session's key."""


def story(story_id: str) -> str:
    """A story's hash: ``latest``, ``v<n>`` → its JSON, ``digest:<digest>`` → its version."""
    return f"{PREFIX}story:{story_id}"


def session(token_digest: str) -> str:
    """A viewer's session, under a digest of its token (the token itself is never at rest)."""
    return SESSION_PREFIX + token_digest


def playback(token_digest: str) -> str:
    """Where a session's playback was (a :class:`~reelfork.server.store.Position`): apart from the session, so
    the frequent ``progress`` reports never rewrite, or race, the story state."""
    return f"{PREFIX}playback:{token_digest}"


def choices(story_id: str, version: int) -> str:
    """The audience's choices in a story version: ``scene/choice`` → times chosen."""
    return f"{PREFIX}choices:{story_id}:{version}"


def written(scene_id: str) -> str:
    return f"{PREFIX}written:{scene_id}"


def translation(scene_id: str, locale: str) -> str:
    """A written scene's texts machine-translated into ``locale``: text key → translation (the keys translated)."""
    return f"{PREFIX}translation:{scene_id}:{locale}"


def written_index(story_id: str, version: int) -> str:
    """The scenes written in a story version: ``parent/choice`` → scene id and title."""
    return f"{PREFIX}written-index:{story_id}:{version}"


def clip(key: str) -> str:
    return f"{PREFIX}clip:{key}"


def stream(key: str) -> str:
    """A clip's stream of segments (a hash): ``plan`` → its :class:`~reelfork.server.store.StreamPlan`, and each
    stored segment's index → its :class:`~reelfork.server.store.StoredSegment`."""
    return f"{PREFIX}stream:{key}"


def viewer_stream(stream_id: str) -> str:
    """What one viewer's stream is made of (a :class:`~reelfork.server.streaming.ViewerStream`): the picture's
    stream with their voice, by the id in its URL."""
    return f"{PREFIX}viewer-stream:{stream_id}"


def warming(story_id: str) -> str:
    """The warm-up wishes a story's latest publish left in the queue: clip key → queue kind."""
    return f"{PREFIX}warming:{story_id}"


# -- productions (server/productions.py) -----------------------------------------------------------


def production(production_id: str) -> str:
    """A production's status hash."""
    return f"{PREFIX}production:{production_id}"


# -- audience analytics (server/analytics/) -------------------------------------------------------

ANALYTICS_STREAMS = PREFIX + "an:streams"
"""The set of every analytics event stream's key (for export and for deleting a viewer's events)."""


def analytics_events(story_id: str, version: int) -> str:
    """A story version's capped stream of playback events."""
    return f"{PREFIX}an:events:{story_id}:{version}"


def analytics_buckets(story_id: str, version: int) -> str:
    """The sorted set of a story version's counter hashes (:func:`analytics_counters`), scored by their hour."""
    return f"{PREFIX}an:buckets:{story_id}:{version}"


def analytics_counters(story_id: str, version: int, locale: str, look: str, hour: int) -> str:
    """Counters of the events of one hour (epoch hours) from sessions of one locale and look."""
    return f"{PREFIX}an:c:{story_id}:{version}:{locale}:{look}:{hour}"


def analytics_session(session_id: str) -> str:
    """One session's analytics state: what was counted once already, the scene it left at, watch marks."""
    return f"{PREFIX}an:session:{session_id}"


def experiments(story_id: str) -> str:
    """A story's experiments: experiment id → its definition (JSON)."""
    return f"{PREFIX}experiments:{story_id}"
