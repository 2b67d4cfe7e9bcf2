"""The event wire format: `<version>|<json>` on a Redis channel. What
`publish()` sends must decode back into the same Event on the web side."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.services.events import (
    CHANNEL_PREFIX,
    VERSION_PREFIX,
    VERSION_TTL_S,
    Event,
    decode,
    publish,
    run_topic,
)


class RecordingRedis:
    """Stands in for Redis' EVAL: records the call, numbers versions per key."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.versions: dict[str, int] = {}

    async def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> int:
        self.calls.append((script, numkeys, *keys_and_args))
        key = keys_and_args[0]
        self.versions[key] = self.versions.get(key, 0) + 1
        return self.versions[key]


def _event(**data: Any) -> Event:
    return Event(topic=run_topic(12), type="progress", id="12", data=data, at="2026-12-03T18:00:00Z")


def test_decode_reads_version_and_payload() -> None:
    body = json.dumps(
        {
            "topic": "run:3",
            "type": "log",
            "id": "3",
            "data": {"line": {"message": "hi"}},
            "at": "2026-12-03T18:00:00Z",
        }
    )

    event = decode(f"7|{body}".encode())

    assert event == Event(
        topic="run:3",
        type="log",
        id="3",
        data={"line": {"message": "hi"}},
        version=7,
        at="2026-12-03T18:00:00Z",
    )


def test_decode_accepts_str_and_bytes_alike() -> None:
    """redis-py hands out bytes or str depending on decode_responses."""
    body = json.dumps({"topic": "t", "type": "x", "id": "1", "data": {}, "at": "a"})

    assert decode(f"12|{body}") == decode(f"12|{body}".encode())


async def test_publish_then_decode_round_trips() -> None:
    """The body publish() hands to the script, prefixed as the script does,
    decodes to the published event with the version the script returned."""
    redis = RecordingRedis()
    event = _event(progress={"percent": 40.0, "message": "a|b ünïcode"})

    version = await publish(redis, event)

    script, numkeys, key, channel, body, ttl = redis.calls[0]
    assert (numkeys, key, channel, ttl) == (
        1,
        VERSION_PREFIX + "run:12",
        CHANNEL_PREFIX + "run:12",
        VERSION_TTL_S,
    )
    assert "PUBLISH" in script and "INCR" in script
    assert "version" not in json.loads(body), "the version comes from Redis, not the body"
    decoded = decode(f"{version}|{body}".encode())
    assert decoded == Event(**{**event.to_dict(), "version": 1})


async def test_versions_grow_per_topic() -> None:
    redis = RecordingRedis()
    a1 = await publish(redis, _event())
    a2 = await publish(redis, _event())
    b1 = await publish(redis, Event(topic=run_topic(13), type="progress", id="13", data={}))

    assert (a1, a2, b1) == (1, 2, 1)


@pytest.mark.parametrize("message", [b"", b"7", b"x|{}", b'7|{"topic": "t"}', b"7|not json"])
def test_decode_rejects_malformed_messages(message: bytes) -> None:
    """A stray message on the channel must raise, not yield a half event."""
    with pytest.raises((ValueError, KeyError)):
        decode(message)
