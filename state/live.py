"""Live updates for open views: one Redis subscriber per web process fans
events out to the clients that watch a topic.

A view registers `(client token, topic, state class)`; the subscriber puts
each event in that client's inbox, and a flusher applies each inbox in one
state update per frame (FRAME_S), so a burst of progress events costs one
websocket message per client, not one per event. When the subscription
drops or comes back, every watching view is told to reload from the
database: missed events are never needed for correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

import redis.asyncio as aioredis
import reflex as rx
import structlog

from app.services.events import CHANNEL_PATTERN, Event, decode
from app.settings import get_settings

FRAME_S = 0.05
SWEEP_EVERY_S = 60.0
RESUBSCRIBE_INITIAL_S = 0.5
RESUBSCRIBE_MAX_S = 10.0

log = structlog.get_logger(__name__)


class LiveView(Protocol):
    """What a state class that watches topics implements."""

    async def _apply_live_events(self, events: Sequence[Event]) -> None: ...

    async def _on_live_status(self, connected: bool) -> None: ...


class LiveHub:
    def __init__(self) -> None:
        self._app: rx.App | None = None
        # topic -> client token -> state class
        self._watchers: dict[str, dict[str, type[rx.State]]] = defaultdict(dict)
        self._inbox: dict[tuple[str, type[rx.State]], list[Event]] = defaultdict(list)
        self._wakeup = asyncio.Event()
        self.connected = False

    def bind(self, app: rx.App) -> None:
        self._app = app

    def watch(self, token: str, topics: Sequence[str], state_cls: type[rx.State]) -> None:
        """Send events of `topics` to this client's `state_cls`; a topic ending
        in `*` (e.g. `run:*`) matches every topic with that prefix."""
        for topic in topics:
            self._watchers[topic][token] = state_cls

    def unwatch(self, token: str, topics: Sequence[str] | None = None) -> None:
        for topic in list(topics or self._watchers):
            self._watchers.get(topic, {}).pop(token, None)

    def watcher_count(self) -> int:
        return len({token for tokens in self._watchers.values() for token in tokens})

    def dispatch(self, event: Event) -> None:
        """Queue `event` for every client watching its topic or its prefix."""
        prefix = event.topic.split(":", 1)[0] + ":*"
        for topic in (event.topic, prefix):
            for token, state_cls in self._watchers.get(topic, {}).items():
                self._inbox[(token, state_cls)].append(event)
        self._wakeup.set()

    async def run(self) -> None:
        """Lifespan task: subscribe, dispatch and flush until the app stops."""
        flusher = asyncio.create_task(self._flush_forever())
        try:
            await self._subscribe_forever()
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher

    async def _subscribe_forever(self) -> None:
        delay_s = RESUBSCRIBE_INITIAL_S
        while True:
            url = get_settings().redis_url
            if not url:
                log.warning("live_updates_disabled", reason="TASKDECK_REDIS_URL not set")
                return
            client = aioredis.Redis.from_url(url, socket_connect_timeout=2)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.psubscribe(CHANNEL_PATTERN)
                    await self._set_connected(True)
                    delay_s = RESUBSCRIBE_INITIAL_S
                    async for message in pubsub.listen():
                        if message.get("type") == "pmessage":
                            self._dispatch_raw(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("live_subscription_lost", error=type(error).__name__, retry_s=delay_s)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
            await self._set_connected(False)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, RESUBSCRIBE_MAX_S)

    def _dispatch_raw(self, data: Any) -> None:
        try:
            event = decode(data)
        except Exception:
            log.warning("live_event_undecodable")
            return
        self.dispatch(event)

    async def _set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        log.info("live_updates", connected=connected)
        clients = {(t, c) for watchers in self._watchers.values() for t, c in watchers.items()}
        for token, state_cls in clients:
            await self._with_state(token, state_cls, lambda s: s._on_live_status(connected))

    def sweep(self) -> int:
        """Forget clients whose socket is gone (closed tabs of quiet topics);
        returns how many were dropped."""
        gone = {
            token
            for tokens in self._watchers.values()
            for token in tokens
            if not self._is_connected_client(token)
        }
        for token in gone:
            self.unwatch(token)
        return len(gone)

    async def _flush_forever(self) -> None:
        last_sweep = time.monotonic()
        while True:
            try:
                await asyncio.wait_for(self._wakeup.wait(), SWEEP_EVERY_S)
            except TimeoutError:
                pass
            if time.monotonic() - last_sweep >= SWEEP_EVERY_S:
                self.sweep()
                last_sweep = time.monotonic()
            self._wakeup.clear()
            batches, self._inbox = self._inbox, defaultdict(list)
            await asyncio.gather(
                *(
                    self._with_state(token, cls, lambda s, ev=events: s._apply_live_events(ev))
                    for (token, cls), events in batches.items()
                )
            )
            await asyncio.sleep(FRAME_S)

    async def _with_state(self, token: str, state_cls: type[rx.State], action: Any) -> None:
        if self._app is None:
            return
        if not self._is_connected_client(token):
            self.unwatch(token)
            return
        try:
            async with self._app.modify_state(
                rx.BaseStateToken(ident=token, cls=state_cls)
            ) as root:
                await action(await root.get_state(state_cls))
        except Exception:
            log.exception("live_update_failed", state=state_cls.__name__)

    def _is_connected_client(self, token: str) -> bool:
        namespace = self._app.event_namespace if self._app else None
        return namespace is None or token in namespace.token_to_sid


hub = LiveHub()
