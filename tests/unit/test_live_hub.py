"""The live-update hub's routing: which client gets which event, and that
clients whose socket is gone are forgotten."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from app.services.events import Event
from state.live import LiveHub
from state.profiles import ProfileState
from state.runs import RunsState


def _event(topic: str) -> Event:
    return Event(topic=topic, type="status", id=topic.split(":")[1], data={})


def _inbox(hub: LiveHub) -> dict[str, list[str]]:
    return {token: [e.topic for e in events] for (token, _), events in hub._inbox.items()}


def test_events_reach_exact_and_prefix_watchers_only() -> None:
    hub = LiveHub()
    hub.watch("tab-a", ["run:*"], RunsState)
    hub.watch("tab-b", ["profile:7"], ProfileState)

    for topic in ("run:1", "profile:7", "profile:8", "session:3"):
        hub.dispatch(_event(topic))

    assert _inbox(hub) == {"tab-a": ["run:1"], "tab-b": ["profile:7"]}


def test_unwatch_one_topic_or_all() -> None:
    hub = LiveHub()
    hub.watch("tab", ["profile:1", "run:*"], RunsState)
    hub.unwatch("tab", ["profile:1"])
    hub.dispatch(_event("profile:1"))
    assert _inbox(hub) == {}
    hub.unwatch("tab")
    hub.dispatch(_event("run:5"))
    assert _inbox(hub) == {} and hub.watcher_count() == 0


def test_sweep_forgets_clients_whose_socket_is_gone() -> None:
    hub = LiveHub()
    app: Any = SimpleNamespace(event_namespace=SimpleNamespace(token_to_sid={"open": "sid-1"}))
    hub.bind(app)
    hub.watch("open", ["run:*"], RunsState)
    hub.watch("closed", ["run:*", "profile:2"], RunsState)

    assert hub.sweep() == 1
    assert hub.watcher_count() == 1
    hub.dispatch(_event("run:9"))
    assert list(_inbox(hub)) == ["open"]
