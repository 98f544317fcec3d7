"""The websocket play protocol: one :class:`Connection` per socket, sessions in the store.

A connection holds no state that matters: everything a viewer acknowledged is in Redis before the
reply is sent, so a viewer can ``resume`` on any connection, on any replica. What it keeps is the scene it
presented (its choice window and default), so reported ``progress`` can take the default at ``closes_at``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from redis.exceptions import RedisError
from reelfork.narrative.state import (
    UnavailableChoice,
    UnknownChoice,
    ViewerState,
    available_choices,
    begin,
    choose,
    current_episode,
    default_choice,
    find_choice,
)
from reelfork.narrative.story import Episode, Scene, Window, choice_window
from reelfork.server.analytics.tracker import Tracker
from reelfork.server.entitlements import InvalidEntitlement, is_open, locked_at, merged, verifier
from reelfork.server.metrics import CHOICE_LATENCY, SCENES, SESSIONS, STALLS
from reelfork.server.runtime import Runtime
from reelfork.server.store import Position, SessionRecord, StoredClip, StoryVersion, new_session_token, new_viewer_id
from reelfork.server.web.protocol import (
    Choose,
    Clip,
    EpisodeInfo,
    ErrorCode,
    Locked,
    Offer,
    PriceInfo,
    Progress,
    ProtocolError,
    Resume,
    SceneMessage,
    ServerMessage,
    Session,
    Start,
    Unlock,
    WindowTimes,
    error,
    parse,
)
from reelfork.server.web.ratelimit import TokenBucket
from starlette.websockets import WebSocketState

log = logging.getLogger(__name__)


@dataclass
class Playing:
    """The scene this connection presented last: what the default needs."""

    scene: str
    default: str | None
    window: Window | None
    """Known once the clip is: its duration places the window."""
    since: float
    """``time.monotonic()`` when the clip could start playing (the scene, or its late ``clip`` frame, was sent)."""
    reported: float | None = None
    """``time.monotonic()`` of the last ``progress`` for this scene."""


class Connection:
    def __init__(self, websocket: WebSocket, runtime: Runtime) -> None:
        self.websocket = websocket
        self.runtime = runtime
        self.director = runtime.director
        self.lookahead = runtime.lookahead
        self.store = runtime.store
        settings = runtime.settings
        secret = settings.entitlement_secret.get_secret_value() if settings.entitlement_secret else None
        self.verifier = verifier(secret, settings.entitlement_public_key)
        self.token: str | None = None
        self.playing: Playing | None = None
        self._send_lock = asyncio.Lock()
        self._choice_lock = asyncio.Lock()
        """Held while a message is handled, so a default never races the viewer's own choice."""
        self._notifiers: set[asyncio.Task[None]] = set()
        self.bucket = TokenBucket(settings.message_rate, settings.message_burst)
        self.audience = Tracker(runtime.analytics)

    async def serve(self) -> None:
        await self.websocket.accept()
        SESSIONS.inc()
        try:
            while True:
                frame = await self.websocket.receive()
                if frame["type"] == "websocket.disconnect":
                    return
                text = frame.get("text")
                if not self.bucket.take():
                    await self.send(error(ErrorCode.RATE_LIMITED, "too many messages; slow down and send this again"))
                    continue
                if text is None:
                    await self.send(error(ErrorCode.INVALID_MESSAGE, "send JSON in text frames, not binary frames"))
                    continue
                await self.handle(text)
        except WebSocketDisconnect:
            return
        finally:
            SESSIONS.dec()
            self.audience.disconnected()
            for task in self._notifiers:
                task.cancel()
            if self.token is not None:
                with contextlib.suppress(Exception):  # Redis away: the queued wishes expire on their own
                    await self.lookahead.viewer_left(self.token)

    async def handle(self, text: str) -> None:
        async with self._choice_lock:
            await self._handle(text)

    async def _handle(self, text: str) -> None:
        try:
            message = parse(text)
            if isinstance(message, Start):
                await self.on_start(message)
            elif isinstance(message, Resume):
                await self.on_resume(message)
            elif isinstance(message, Choose):
                await self.on_choose(message)
            elif isinstance(message, Progress):
                await self.on_progress(message)
            elif isinstance(message, Unlock):
                await self.on_unlock(message)
        except ProtocolError as exc:
            await self.send(error(exc.code, exc.message))
        except WebSocketDisconnect:
            raise  # the client left mid-answer: nothing failed
        except RedisError:
            log.exception("store unavailable")
            await self.send(
                error(ErrorCode.UNAVAILABLE, "the session store is unavailable; retry shortly, nothing was lost")
            )
        except Exception:
            log.exception("unexpected failure handling a message")
            await self.send(
                error(ErrorCode.INTERNAL, "the server failed to handle this message; your session is unchanged")
            )

    async def on_start(self, message: Start) -> None:
        viewer = message.viewer or new_viewer_id()
        story = await self.runtime.experiments.story_for(message.story, viewer)  # the viewer's arm, if any
        if story is None:
            known = ", ".join(await self.store.story_ids()) or "none"
            raise ProtocolError(ErrorCode.UNKNOWN_STORY, f"no story {message.story!r}; published stories: {known}")
        token = new_session_token()
        record = SessionRecord(state=begin(story.story, story.version), viewer=viewer)
        await self.store.save_session(token, record)
        if self.token is not None:  # a new start on this connection: the earlier session is no longer watched here
            await self.lookahead.viewer_left(self.token)
        self.token = token
        self.audience.started(story, token, record)
        await self.send(Session(session=token, viewer=record.viewer, story=story.story.id, version=story.version))
        await self.present(story, record, story.story.scene(record.state.current))

    async def on_resume(self, message: Resume) -> None:
        if self.token is not None and message.session != self.token:
            raise ProtocolError(
                ErrorCode.SESSION_IN_USE,
                "this connection plays another session; resume a different one on a new connection",
            )
        record = await self.store.load_session(message.session)
        if record is None:
            raise ProtocolError(ErrorCode.UNKNOWN_SESSION, "no session with that token; start a new one")
        story, scene = await self._position(record.state)
        self.token = message.session
        self.audience.started(story, message.session, record, resumed=True)
        state = record.state
        session = Session(session=message.session, viewer=record.viewer, story=state.story, version=state.version)
        await self.send(session)
        position = record.position.seconds if record.position and record.position.scene == scene.id else 0.0
        await self.present(story, record, scene, position=position)

    async def on_choose(self, message: Choose) -> None:
        with CHOICE_LATENCY.time():
            record = await self._record()
            if message.scene is not None and message.scene != record.state.current:
                raise ProtocolError(
                    ErrorCode.STALE_CHOICE,
                    f"scene {message.scene!r} is over: the viewer is at {record.state.current!r}; nothing changed",
                )
            await self.take_choice(record, message.choice)

    async def take_choice(self, record: SessionRecord, choice_id: str, *, by_default: bool = False) -> None:
        """Apply a choice of the current scene and present the next one (refused while the scene is locked)."""
        state = record.state
        story, scene = await self._position(state)
        if self._locked_episode(story, record) is not None:
            raise ProtocolError(ErrorCode.LOCKED, "this episode is locked: send 'unlock' with an entitlement first")
        try:
            choice = find_choice(scene, choice_id)
            if choice not in available_choices(scene, state):
                raise UnavailableChoice(f"choice {choice_id!r} of scene {scene.id!r} is not available now")
        except UnavailableChoice as exc:
            raise ProtocolError(ErrorCode.UNAVAILABLE_CHOICE, str(exc)) from None
        except UnknownChoice as exc:
            raise ProtocolError(ErrorCode.UNKNOWN_CHOICE, str(exc)) from None
        target = await self.director.resolved_target(story, state, choice)
        if target is None:
            written_id = self.director.target(story, state, choice)
            await self.director.ensure_written(story, state, choice, written_id, time.time())
            if not await self.director.wait_written(written_id, self.runtime.settings.choice_wait_s):
                raise ProtocolError(
                    ErrorCode.NOT_READY, "the next scene is still being written; choose again in a moment"
                )
            target = await self.director.resolved_target(story, state, choice)
        next_scene = await self.director.scene(story, target) if target is not None else None
        if target is None or next_scene is None:
            raise ProtocolError(ErrorCode.NOT_READY, "the next scene is not available yet; choose again in a moment")
        state = choose(state, scene, choice.id, target, story=story.story)
        record = record.model_copy(update={"state": state, "position": None})
        await self.store.save_session(self._require_token(), record)
        await self.store.count_choice(story, scene.id, choice.id)
        self.audience.chose(scene.id, choice.id, by_default)
        await self.lookahead.viewer_chose(self._require_token(), story, scene.id, choice.id)
        await self.present(story, record, next_scene)

    async def take_default(self, scene_id: str) -> None:
        """Take the presented scene's default, as a ``choose`` would, unless the viewer already left it."""
        playing = self.playing
        if playing is None or playing.scene != scene_id or playing.default is None:
            return
        record = await self._record()
        if record.state.current != scene_id:
            return
        self.playing = None  # once: a later report past closes_at must not choose again
        try:
            await self.take_choice(record, playing.default, by_default=True)
        except ProtocolError as exc:
            if exc.code == ErrorCode.NOT_READY:
                self.playing = playing  # the next report past closes_at tries again
            raise

    async def on_progress(self, message: Progress) -> None:
        """Where playback is: the lookahead follows it, and a report at or past ``closes_at`` takes the default."""
        record = await self._record()
        state = record.state
        if message.scene != state.current:
            return  # a late report from the scene before: the choice already moved the viewer on
        self.audience.progress(message.scene, message.position)
        position = Position(scene=message.scene, seconds=message.position)
        if record.position != position:
            await self.store.save_session(self._require_token(), record.model_copy(update={"position": position}))
        playing = self.playing
        if playing is not None and playing.scene == message.scene:
            playing.reported = time.monotonic()
            if playing.window is not None and message.position >= playing.window.closes_at:
                await self.take_default(message.scene)
                return
        story, scene = await self._position(state)
        await self.lookahead.viewer_at(
            self._require_token(), story, state, scene, message.position, may_enter=self._may_enter(story, record)
        )

    async def on_unlock(self, message: Unlock) -> None:
        record = await self._record()
        story, scene = await self._position(record.state)
        episode = self._locked_episode(story, record)
        if episode is None or self.verifier is None:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"nothing is locked: the viewer is at {scene.id!r}")
        try:
            claims = self.verifier.verify(
                message.entitlement, viewer=record.viewer, story=story.story.id, episode=episode.number
            )
        except InvalidEntitlement as exc:
            raise ProtocolError(ErrorCode.INVALID_ENTITLEMENT, f"{exc}; the episode stays locked") from None
        record = record.model_copy(update={"unlocked": merged(record.unlocked, claims.episodes)})
        await self.store.save_session(self._require_token(), record)
        self.audience.unlocked(episode.number)
        await self.present(story, record, scene)

    def _locked_episode(self, story: StoryVersion, record: SessionRecord) -> Episode | None:
        """The episode the viewer is held at, or ``None`` when the current scene may play."""
        return locked_at(story.story, record.state, record.unlocked, self.verifier is not None)

    def _may_enter(self, story: StoryVersion, record: SessionRecord) -> Callable[[int], bool]:
        """Which episodes this viewer may enter: the lookahead renders nothing ahead behind a paywall they face."""
        paywall = self.verifier is not None
        return lambda episode: is_open(story.story, episode, record.unlocked, paywall)

    def _episode_info(self, story: StoryVersion, episode: Episode) -> EpisodeInfo:
        free = is_open(story.story, episode.number, [], self.verifier is not None)
        return EpisodeInfo(number=episode.number, title=episode.title, free=free)

    async def present(self, story: StoryVersion, record: SessionRecord, scene: Scene, *, position: float = 0.0) -> None:
        """Send a scene (or ``locked``), with its clip when ready within the wait budget, and look ahead from it."""
        state = record.state
        locked = self._locked_episode(story, record)
        self.audience.presented(story, record, scene, locked)
        if locked is not None:
            self.playing = None
            price = locked.price.coins if locked.price is not None else 0
            await self.send(Locked(episode=self._episode_info(story, locked), price=PriceInfo(coins=price)))
            return
        choices = available_choices(scene, state)
        default = default_choice(scene, state)
        await self.lookahead.viewer_at(
            self._require_token(), story, state, scene, position, may_enter=self._may_enter(story, record)
        )
        keys = self.director.clip_keys(story, scene)
        clip = await self.director.wait_clip(keys, self.runtime.settings.choice_wait_s)
        SCENES.labels(clip="pending" if clip is None else "ready" if clip.key == keys[0] else "degraded").inc()
        if clip is None:
            STALLS.inc()
        window = self._window(story, scene, clip)
        default_id = default.id if default is not None else None
        self.playing = Playing(scene.id, default_id, window, time.monotonic() - position)
        await self.send(
            SceneMessage(
                scene=scene.id,
                title=scene.title,
                clip=self.url(clip) if clip else None,
                duration=clip.duration if clip else None,
                choices=[Offer(id=c.id, label=c.label, default=c.id == default_id) for c in choices],
                choice_window=_times(window),
                episode=self._episode_info(story, current_episode(story.story, state)),
                ending=scene.ending,
                position=position,
            )
        )
        if clip is None or default is not None:
            self._background(self._follow_up(story, scene, keys, clip))

    def _window(self, story: StoryVersion, scene: Scene, clip: StoredClip | None) -> Window | None:
        if clip is None or not scene.choices:
            return None
        return choice_window(story.story, scene, clip.duration)

    async def _follow_up(self, story: StoryVersion, scene: Scene, keys: list[str], clip: StoredClip | None) -> None:
        """Send the clip once it is rendered; then, as a backstop, take the default for a viewer who never reports."""
        if clip is None:
            clip = await self.director.wait_clip(keys, 3600)
            with contextlib.suppress(Exception):
                if clip is None:
                    message = f"the clip of scene {scene.id!r} could not be rendered"
                    await self.send(error(ErrorCode.RENDER_FAILED, message))
                    return
                window = self._window(story, scene, clip)
                if self.playing is not None and self.playing.scene == scene.id:
                    self.playing.window, self.playing.since = window, time.monotonic()
                await self.send(Clip(scene=scene.id, url=self.url(clip), duration=clip.duration,
                                     choice_window=_times(window)))
        await self._backstop(scene.id)

    async def _backstop(self, scene_id: str) -> None:
        """The default, ``choice_backstop_s`` after ``closes_at`` (by the clock since the clip could play) or after
        the last report, whichever is later: a paused viewer keeps reporting and so is never moved on."""
        backstop = self.runtime.settings.choice_backstop_s
        while True:
            playing = self.playing
            if playing is None or playing.scene != scene_id or playing.window is None or playing.default is None:
                return
            due = max(playing.since + playing.window.closes_at, playing.reported or 0.0) + backstop
            wait = due - time.monotonic()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        async with self._choice_lock:
            with contextlib.suppress(ProtocolError):
                await self.take_default(scene_id)

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._notifiers.add(task)
        task.add_done_callback(self._notifiers.discard)

    def url(self, clip: StoredClip) -> str:
        base = self.runtime.settings.public_url
        if base is None:
            scheme = "https" if self.websocket.url.scheme == "wss" else "http"
            host = self.websocket.headers.get("host") or f"{self.runtime.settings.host}:{self.runtime.settings.port}"
            base = f"{scheme}://{host}"
        return f"{base.rstrip('/')}/media/{clip.file}"

    async def send(self, message: ServerMessage) -> None:
        async with self._send_lock:
            if self.websocket.application_state == WebSocketState.DISCONNECTED:
                raise WebSocketDisconnect(1006)
            await self.websocket.send_text(message.model_dump_json())

    def _require_token(self) -> str:
        if self.token is None:
            raise ProtocolError(ErrorCode.NO_SESSION, "send 'start' or 'resume' first")
        return self.token

    async def _record(self) -> SessionRecord:
        record = await self.store.load_session(self._require_token())
        if record is None:
            raise ProtocolError(ErrorCode.UNKNOWN_SESSION, "this session expired or was removed; start a new one")
        return record

    async def _position(self, state: ViewerState) -> tuple[StoryVersion, Scene]:
        story = await self.store.story(state.story, state.version)
        scene = await self.director.scene(story, state.current) if story is not None else None
        if story is None or scene is None:
            raise ProtocolError(ErrorCode.UNKNOWN_SESSION, "this session's story version is no longer available")
        return story, scene


def _times(window: Window | None) -> WindowTimes | None:
    return WindowTimes(opens_at=window.opens_at, closes_at=window.closes_at) if window is not None else None
