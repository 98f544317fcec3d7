"""The websocket play protocol: one :class:`Connection` per socket, sessions in the store.

A connection holds no state that matters: everything a viewer acknowledged is in Redis before the
reply is sent, so a viewer can ``resume`` on any connection, on any replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
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
    default_choice,
    find_choice,
)
from reelfork.narrative.story import Scene
from reelfork.server.metrics import CHOICE_LATENCY, SCENES, SESSIONS, STALLS
from reelfork.server.runtime import Runtime
from reelfork.server.store import StoredClip, StoryVersion, new_session_token
from reelfork.server.web.protocol import (
    Choose,
    Clip,
    Default,
    ErrorCode,
    Offer,
    Progress,
    ProtocolError,
    Resume,
    SceneMessage,
    ServerMessage,
    Session,
    Start,
    error,
    parse,
)

log = logging.getLogger(__name__)


class _Interim:
    def __init__(self, choice: Any, timeout_s: float) -> None:
        self.choice = choice
        self.timeout_s = timeout_s


class Connection:
    def __init__(self, websocket: WebSocket, runtime: Runtime) -> None:
        self.websocket = websocket
        self.runtime = runtime
        self.director = runtime.director
        self.lookahead = runtime.lookahead
        self.store = runtime.store
        self.token: str | None = None
        self._send_lock = asyncio.Lock()
        self._choice_lock = asyncio.Lock()
        """Held while a message is handled, so a timed default never races the viewer's own choice."""
        self._notifiers: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        await self.websocket.accept()
        SESSIONS.inc()
        try:
            while True:
                frame = await self.websocket.receive()
                if frame["type"] == "websocket.disconnect":
                    return
                text = frame.get("text")
                if text is None:
                    await self.send(error(ErrorCode.INVALID_MESSAGE, "send JSON in text frames, not binary frames"))
                    continue
                await self.handle(text)
        except WebSocketDisconnect:
            return
        finally:
            SESSIONS.dec()
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
        except ProtocolError as exc:
            await self.send(error(exc.code, exc.message))
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
        story = await self.store.story(message.story)
        if story is None:
            known = ", ".join(await self.store.story_ids()) or "none"
            raise ProtocolError(ErrorCode.UNKNOWN_STORY, f"no story {message.story!r}; published stories: {known}")
        token = new_session_token()
        state = begin(story.story, story.version)
        await self.store.save_session(token, state)
        self.token = token
        await self.send(Session(session=token, story=story.story.id, version=story.version))
        await self.present(story, state, story.story.scene(state.current))

    async def on_resume(self, message: Resume) -> None:
        if self.token is not None and message.session != self.token:
            raise ProtocolError(
                ErrorCode.SESSION_IN_USE,
                "this connection plays another session; resume a different one on a new connection",
            )
        state = await self.store.load_session(message.session)
        if state is None:
            raise ProtocolError(ErrorCode.UNKNOWN_SESSION, "no session with that token; start a new one")
        story, scene = await self._position(state)
        self.token = message.session
        await self.send(Session(session=message.session, story=state.story, version=state.version))
        await self.present(story, state, scene)

    async def on_choose(self, message: Choose) -> None:
        with CHOICE_LATENCY.time():
            await self.take_choice(message.choice)

    async def take_choice(self, choice_id: str, *, expected_scene: str | None = None) -> None:
        """Apply a choice of the current scene and present the next one.

        ``expected_scene`` guards the server's timed default: it is skipped if the viewer moved on.
        """
        state = await self._state()
        if expected_scene is not None and state.current != expected_scene:
            return
        story, scene = await self._position(state)
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
        await self.store.save_session(self._require_token(), state)
        await self.store.count_choice(story, scene.id, choice.id)
        await self.lookahead.viewer_chose(self._require_token(), story, scene.id, choice.id)
        await self.present(story, state, next_scene)

    async def on_progress(self, message: Progress) -> None:
        """Where playback is: the lookahead scheduler's deadlines for this viewer follow it."""
        state = await self._state()
        if message.scene != state.current:
            return  # a late report from the scene before: the choice already moved the viewer on
        story, scene = await self._position(state)
        await self.lookahead.viewer_at(self._require_token(), story, state, scene, message.position)

    async def present(self, story: StoryVersion, state: ViewerState, scene: Scene) -> None:
        """Send a scene, with its clip when ready within the wait budget, and look ahead from it."""
        choices = available_choices(scene, state)
        await self.lookahead.viewer_at(self._require_token(), story, state, scene, 0.0)
        keys = self.director.clip_keys(story, scene)
        clip = await self.director.wait_clip(keys, self.runtime.settings.choice_wait_s)
        chosen = default_choice(scene, state) if scene.default is not None else None
        default = _Interim(chosen, 10.0) if chosen is not None else None
        SCENES.labels(clip="pending" if clip is None else "ready" if clip.key == keys[0] else "degraded").inc()
        if clip is None:
            STALLS.inc()
        await self.send(
            SceneMessage(
                scene=scene.id,
                title=scene.title,
                clip=self.url(clip) if clip else None,
                duration=clip.duration if clip else None,
                choices=[Offer(id=c.id, label=c.label) for c in choices],
                ending=scene.ending,
                default=Default(choice=default.choice.id, timeout_s=default.timeout_s) if default else None,
            )
        )
        if clip is None or default is not None:
            self._background(
                self._follow_up(
                    scene.id, keys, clip, default.choice.id if default else None, default.timeout_s if default else 0.0
                )
            )

    async def _follow_up(
        self, scene_id: str, keys: list[str], clip: StoredClip | None, default: str | None, timeout_s: float
    ) -> None:
        """Send the clip once it is rendered; then, for a timed default, choose it if the viewer does not."""
        if clip is None:
            clip = await self.director.wait_clip(keys, 3600)
            with contextlib.suppress(Exception):
                if clip is not None:
                    await self.send(Clip(scene=scene_id, url=self.url(clip), duration=clip.duration))
                else:
                    message = f"the clip of scene {scene_id!r} could not be rendered"
                    await self.send(error(ErrorCode.RENDER_FAILED, message))
        if default is None or clip is None:
            return
        await asyncio.sleep(clip.duration + timeout_s)
        async with self._choice_lock:
            with contextlib.suppress(ProtocolError):
                await self.take_choice(default, expected_scene=scene_id)

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
            await self.websocket.send_text(message.model_dump_json())

    def _require_token(self) -> str:
        if self.token is None:
            raise ProtocolError(ErrorCode.NO_SESSION, "send 'start' or 'resume' first")
        return self.token

    async def _state(self) -> ViewerState:
        state = await self.store.load_session(self._require_token())
        if state is None:
            raise ProtocolError(ErrorCode.UNKNOWN_SESSION, "this session expired or was removed; start a new one")
        return state

    async def _position(self, state: ViewerState) -> tuple[StoryVersion, Scene]:
        story = await self.store.story(state.story, state.version)
        scene = await self.director.scene(story, state.current) if story is not None else None
        if story is None or scene is None:
            raise ProtocolError(ErrorCode.UNKNOWN_SESSION, "this session's story version is no longer available")
        return story, scene
