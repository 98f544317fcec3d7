"""The websocket play protocol: one :class:`Connection` per socket, sessions in the store.

A connection holds no state that matters: everything a viewer acknowledged is in Redis before the
reply is sent, so a viewer can ``resume`` on any connection, on any replica. What it keeps is the scene it
presented (its choice window and default), so reported ``progress`` can take the default at ``closes_at``
without a round trip to Redis. The last reported position is kept in Redis apart from the session: at once
when it is a new scene's first report or playback is paused, else at most ``POSITION_EVERY_S`` apart while
the clip plays, and when the connection closes.
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
from reelfork.generation.render.segments import POSTER
from reelfork.narrative.persona import InvalidName
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
    is_generated,
)
from reelfork.narrative.story import Choice, Episode, Scene, Story, Window, choice_window
from reelfork.server.analytics.tracker import Tracker
from reelfork.server.director import default_look
from reelfork.server.dubbing import STREAMS, ViewerClip, checked_name
from reelfork.server.entitlements import InvalidEntitlement, is_open, locked_at, merged, verifier
from reelfork.server.metrics import CHOICE_LATENCY, SCENES, SESSIONS, STALLS
from reelfork.server.runtime import Runtime
from reelfork.server.store import (
    Position,
    SessionRecord,
    StoredClip,
    StoredStream,
    StoryVersion,
    new_session_token,
    new_viewer_id,
)
from reelfork.server.streaming import PLAYLIST
from reelfork.server.web.protocol import (
    Choose,
    Clip,
    EpisodeInfo,
    ErrorCode,
    LineText,
    Locked,
    Offer,
    PersonaChoice,
    PersonaInfo,
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

POSITION_EVERY_S = 5.0
"""While a clip plays, its position is kept at most this far apart: a resume after a crash starts that much early."""

log = logging.getLogger(__name__)

NEXT_PICTURE_S = 10.0
"""For a viewer in a look other than the default, when the pictures of the scenes after this one are due."""


@dataclass(frozen=True)
class Viewer:
    """Who watches: what the text, voice and subtitles are made for."""

    locale: str
    name: str
    machine: dict[str, str]
    """The scene's machine translation into ``locale`` (written scenes only), by text key."""


@dataclass
class Playing:
    """The scene this connection presented last: what the default needs."""

    scene: str
    default: str | None
    window: Window | None
    """Known once the clip is: its duration places the window."""
    since: float
    """``time.monotonic()`` when the clip could start playing (the scene, or its late ``clip`` frame, was sent)."""
    story: StoryVersion
    node: Scene
    record: SessionRecord
    """The session as it was when the scene was presented: what a report that keeps playing it needs."""
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
        self.kept: tuple[Position, float] | None = None
        """The position last kept in Redis, and ``time.monotonic()`` then."""
        self.unkept: Position | None = None
        """A reported position not kept yet (the clip plays on): kept when the connection closes."""
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
            with contextlib.suppress(Exception):  # Redis away: a resume starts up to POSITION_EVERY_S early
                await self.flush_position()
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
        locale, name, look = self._persona(story.story, message)
        token = new_session_token()
        record = SessionRecord(
            state=begin(story.story, story.version), viewer=viewer, locale=locale, name=name, look=look
        )
        await self.store.save_session(token, record)
        if self.token is not None:  # a new start on this connection: the earlier session is no longer watched here
            await self.lookahead.viewer_left(self.token)
            await self.flush_position()
        self.token = token
        self.audience.started(story, token, record, locale, look)
        await self.send(self._session(token, story.story, record))
        await self.present(story, record, story.story.scene(record.state.current))

    def _persona(self, story: Story, message: Start) -> tuple[str, str, str | None]:
        """The viewer's locale, name and look, checked against the story (defaults for what is absent)."""
        locale = message.locale or story.language
        if locale not in story.offered_locales():
            offered = ", ".join(story.offered_locales())
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_LOCALE, f"story {story.id!r} is not offered in {locale!r}; it offers {offered}"
            )
        chosen = message.persona or PersonaChoice()
        try:
            name = checked_name(story, chosen.name, self.runtime.dubbing.policy)
        except InvalidName as exc:
            raise ProtocolError(ErrorCode.INVALID_NAME, f"{exc}; no session was created") from None
        look = default_look(story, chosen.look)
        if chosen.look is not None:
            looks = [option.id for option in story.persona.looks] if story.persona is not None else []
            if chosen.look not in looks:
                raise ProtocolError(
                    ErrorCode.UNKNOWN_LOOK,
                    f"story {story.id!r} has no look {chosen.look!r}; its looks: {', '.join(looks) or 'none'}",
                )
        return locale, name, look

    def _session(self, token: str, story: Story, record: SessionRecord) -> Session:
        persona = None
        if story.persona is not None:
            persona = PersonaInfo(name=record.name or story.persona.name, look=default_look(story, record.look))
        state = record.state
        return Session(
            session=token,
            viewer=record.viewer,
            story=state.story,
            version=state.version,
            locale=record.locale or story.language,
            persona=persona,
        )

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
        self.audience.started(story, message.session, record, record.locale, record.look, resumed=True)
        await self.send(self._session(message.session, story.story, record))
        kept = await self.store.load_position(message.session, record)
        await self.present(story, record, scene, position=kept.seconds if kept and kept.scene == scene.id else 0.0)

    async def on_choose(self, message: Choose) -> None:
        with CHOICE_LATENCY.time():
            record = await self._record()
            if message.scene is not None and message.scene != record.state.current:
                raise ProtocolError(
                    ErrorCode.STALE_CHOICE,
                    f"scene {message.scene!r} is over: the viewer is at {record.state.current!r}; nothing changed",
                )
            try:
                await self.take_choice(record, message.choice)
            except ProtocolError as exc:
                playing = self.playing
                if exc.code == ErrorCode.NOT_READY and playing is not None and playing.scene == record.state.current:
                    playing.reported = time.monotonic()  # a viewer waiting on their own choice is not moved on
                raise

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
        """Where playback is: kept for resume, followed by the lookahead, and at or past ``closes_at`` the default."""
        token = self._require_token()
        playing = self.playing
        if playing is None or playing.scene != message.scene:
            # Not the scene on screen here (held at the paywall, or a late report): ask the store where it is.
            record = await self._record()
            if message.scene != record.state.current:
                return  # a late report from the scene before: the choice already moved the viewer on
            self.audience.progress(message.scene, message.position)
            await self.keep_position(Position(scene=message.scene, seconds=message.position), message.playing)
            story, scene = await self._position(record.state)
            may_enter = self._may_enter(story, record)
            await self.lookahead.viewer_at(token, story, record.state, scene, message.position, may_enter=may_enter)
            return
        self.audience.progress(message.scene, message.position)
        await self.keep_position(Position(scene=message.scene, seconds=message.position), message.playing)
        playing.reported = time.monotonic()
        if playing.window is not None and message.position >= playing.window.closes_at:
            await self.take_default(message.scene)
            return
        may_enter = self._may_enter(playing.story, playing.record)
        state = playing.record.state
        await self.lookahead.viewer_at(token, playing.story, state, playing.node, message.position, may_enter=may_enter)

    async def flush_position(self) -> None:
        """Keep the last reported position now: the connection closes, or moves on to another session."""
        if self.token is not None and self.unkept is not None:
            await self.store.save_position(self.token, self.unkept)
        self.kept = self.unkept = None

    async def keep_position(self, position: Position, playing: bool) -> None:
        """Keep ``position`` for resume: at once for a new scene or a paused clip, else every few seconds."""
        now = time.monotonic()
        if self.kept is not None:
            kept, at = self.kept
            if kept == position:
                return
            if playing and kept.scene == position.scene and now - at < POSITION_EVERY_S:
                self.unkept = position
                return
        await self.store.save_position(self._require_token(), position)
        self.kept, self.unkept = (position, now), None

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
        self._supersede()
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
        look = default_look(story.story, record.look)
        locale = record.locale or story.story.language
        keys = self.director.clip_keys(story, scene, look, locale)
        if look != default_look(story.story, None) or locale != story.story.language:
            # The lookahead renders the default look and locale ahead; another look's or locale's pictures (the
            # lips move to the dub) are asked for here: this scene's now, the authored scenes its choices lead
            # to once it would have played.
            await self.director.ensure_clip(story, scene, time.time(), look, locale)
            index = story.story.scene_index()
            for choice in choices:
                following = index.get(choice.target) if choice.target is not None else None
                if following is not None:
                    await self.director.ensure_clip(story, following, time.time() + NEXT_PICTURE_S, look, locale)
        machine = await self.store.translation(scene.id, locale) if is_generated(scene.id) else {}
        viewer = Viewer(locale, self._name(story.story, record), machine)
        text = self.runtime.dubbing.text(story.story, scene, viewer.locale, viewer.name, viewer.machine)
        picture, stream = await self.director.wait_playable(keys, self.runtime.settings.choice_wait_s)
        shown = picture.key if picture is not None else stream.key if stream is not None else None
        SCENES.labels(clip="pending" if shown is None else "ready" if shown == keys[0] else "degraded").inc()
        if picture is None and stream is None:
            STALLS.inc()
        clip = await self._assembled(story, scene, picture, viewer) if picture is not None else None
        unassembled = picture is not None and clip is None
        opened = await self._stream(story, scene, stream, viewer) if stream is not None else None
        duration = picture.duration if picture is not None else stream.duration if stream is not None else None
        window = self._window(story, scene, duration)
        default_id = default.id if default is not None else None
        self.playing = Playing(scene.id, default_id, window, time.monotonic() - position, story, scene, record)
        labels = {choice.id: choice.label for choice in text.scene.choices}
        offered = await self._following(story, record, choices, look, viewer)
        subtitles = clip.subtitles if clip else opened[1] if opened else None
        await self.send(
            SceneMessage(
                scene=scene.id,
                title=text.scene.title,
                lines=[LineText(id=line.id, speaker=line.speaker, text=line.text,
                                machine_translated=line.machine_translated) for line in text.lines],
                clip=self.media_url(clip.file) if clip else None,
                stream=opened[0] if opened else None,
                subtitles=self.media_url(subtitles) if subtitles else None,
                poster=self.poster_url(stream),
                duration=duration,
                choices=[Offer(id=c.id, label=labels.get(c.id, c.label), default=c.id == default_id,
                               stream=offered.get(c.id)) for c in choices],
                choice_window=_times(window),
                episode=self._episode_info(story, current_episode(story.story, state)),
                ending=scene.ending,
                position=position,
            )
        )
        if unassembled:
            await self.send(error(ErrorCode.RENDER_FAILED, f"the clip of scene {scene.id!r} could not be assembled"))
        elif picture is None or default is not None:
            self._background(self._follow_up(story, scene, keys, picture, stream, viewer))

    async def _stream(
        self, story: StoryVersion, scene: Scene, stream: StoredStream, viewer: Viewer, subtitles: bool = True
    ) -> tuple[str, str] | None:
        """The viewer's stream URL of ``stream`` and their WebVTT (relative to the media dir); None if that failed."""
        try:
            stream_id, vtt = await self.runtime.streaming.open(
                story.story, story.version, scene, stream, viewer.locale, viewer.name, viewer.machine or None,
                subtitles=subtitles,
            )
        except Exception:
            log.exception("opening the stream of scene %s from picture %s failed", scene.id, stream.key)
            return None
        return self.stream_url(stream_id), vtt

    async def _following(
        self, story: StoryVersion, record: SessionRecord, choices: list[Choice], look: str | None, viewer: Viewer
    ) -> dict[str, str]:
        """Choice → the viewer's stream of the authored scene it leads to, for those whose first segment is stored."""
        index = story.story.scene_index()
        targets = {c.id: index[c.target] for c in choices if c.target is not None and c.target in index}
        if not targets:
            return {}
        groups = [self.director.clip_keys(story, scene, look, record.locale) for scene in targets.values()]
        found: dict[str, str] = {}
        for choice, stream in zip(targets, await self.store.best_streams(groups), strict=True):
            if stream is not None:
                # Their own locale and name, but the machine translation of a written scene is not known yet.
                following = Viewer(record.locale or story.story.language, viewer.name, {})
                opened = await self._stream(story, targets[choice], stream, following, subtitles=False)
                if opened is not None:
                    found[choice] = opened[0]
        return found

    def _name(self, story: Story, record: SessionRecord) -> str:
        if story.persona is None:
            return ""
        return record.name or story.persona.name

    async def _assembled(
        self, story: StoryVersion, scene: Scene, picture: StoredClip, viewer: Viewer
    ) -> ViewerClip | None:
        """The viewer's own clip from the shared picture, assembled off the event loop; None if that failed."""
        dubbing = self.runtime.dubbing
        try:
            ready = dubbing.assembled(picture, viewer.locale, viewer.name, viewer.machine)
            return ready or await asyncio.to_thread(
                dubbing.clip, story.story, scene, picture, viewer.locale, viewer.name, viewer.machine
            )
        except Exception:
            log.exception("assembling the clip of scene %s from picture %s failed", scene.id, picture.key)
            return None

    def _window(self, story: StoryVersion, scene: Scene, duration: float | None) -> Window | None:
        if duration is None or not scene.choices:
            return None
        return choice_window(story.story, scene, duration)

    async def _follow_up(
        self,
        story: StoryVersion,
        scene: Scene,
        keys: list[str],
        clip: StoredClip | None,
        stream: StoredStream | None,
        viewer: Viewer,
    ) -> None:
        """Send what the scene lacked once it exists (the stream's first segment, then the complete clip); then, as
        a backstop, take the default for a viewer who never reports."""
        if clip is None:
            with contextlib.suppress(Exception):
                if stream is None:
                    clip, stream = await self.director.wait_playable(keys, 3600)
                    if clip is None and stream is not None:
                        opened = await self._stream(story, scene, stream, viewer)
                        if opened is not None:
                            self._timed(scene.id, stream.duration)
                            await self.send(Clip(scene=scene.id, url=None, stream=opened[0],
                                                 poster=self.poster_url(stream),
                                                 subtitles=self.media_url(opened[1]), duration=stream.duration,
                                                 choice_window=_times(self._window(story, scene, stream.duration))))
                if clip is None:
                    clip = await self.director.wait_clip(keys, 3600)
                if clip is None:
                    message = f"the clip of scene {scene.id!r} could not be rendered"
                    await self.send(error(ErrorCode.RENDER_FAILED, message))
                    return
                assembled = await self._assembled(story, scene, clip, viewer)
                if assembled is None:
                    await self.send(error(ErrorCode.RENDER_FAILED, f"the clip of scene {scene.id!r} could not be made"))
                    return
                if stream is None or stream.key != clip.key:
                    stream = await self.store.stream(clip.key)
                opened = await self._stream(story, scene, stream, viewer) if stream is not None else None
                if self.playing is None or self.playing.window is None:
                    self._timed(scene.id, clip.duration)
                await self.send(Clip(scene=scene.id, url=self.media_url(assembled.file),
                                     stream=opened[0] if opened else None, poster=self.poster_url(stream),
                                     subtitles=self.media_url(assembled.subtitles), duration=clip.duration,
                                     choice_window=_times(self._window(story, scene, clip.duration))))
        await self._backstop(scene.id)

    def _timed(self, scene_id: str, duration: float) -> None:
        """The presented scene's length is known now: its choice window, and the clock of the backstop."""
        if self.playing is not None and self.playing.scene == scene_id:
            self.playing.window = self._window(self.playing.story, self.playing.node, duration)
            self.playing.since = time.monotonic()

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

    def _supersede(self) -> None:
        """A scene is presented: the earlier scene's late clip and backstop have nothing left to do (each would
        otherwise sleep out its backstop: thousands of idle tasks at 1,000 viewers)."""
        current = asyncio.current_task()
        for task in self._notifiers:
            if task is not current:
                task.cancel()

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._notifiers.add(task)
        task.add_done_callback(self._notifiers.discard)

    def media_url(self, file: str) -> str:
        return f"{self.base_url()}/media/{file}"

    def poster_url(self, stream: StoredStream | None) -> str | None:
        """The first frame of a stream's picture: shared by every viewer of it (it holds no text)."""
        return self.media_url(f"{STREAMS}/{stream.key}/{POSTER}") if stream is not None else None

    def stream_url(self, stream_id: str) -> str:
        return f"{self.base_url()}/v1/streams/{stream_id}/{PLAYLIST}"

    def base_url(self) -> str:
        base = self.runtime.settings.public_url
        if base is None:
            scheme = "https" if self.websocket.url.scheme == "wss" else "http"
            host = self.websocket.headers.get("host") or f"{self.runtime.settings.host}:{self.runtime.settings.port}"
            base = f"{scheme}://{host}"
        return base.rstrip("/")

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
