"""The event bus on Redis pub/sub: writers publish after commit, each web
process subscribes once and fans events out to the views that watch a topic.

An event is `{"topic", "type", "id", "version", "data", "at"}`. `version`
grows by one per topic (a Redis counter bumped in the same script that
publishes), so a view can drop stale or duplicate events and notice a gap.
Events are hints for live views; the database stays the truth.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import structlog

from app.models.common import iso_utc, utc_now

CHANNEL_PREFIX = "taskdeck:events:"
CHANNEL_PATTERN = CHANNEL_PREFIX + "*"
VERSION_PREFIX = "taskdeck:version:"
# Counters of objects nobody touched for a week go away.
VERSION_TTL_S = 7 * 24 * 3600

# INCR and PUBLISH in one script, so versions reach subscribers in order.
_PUBLISH_SCRIPT = """
local version = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[1], version .. '|' .. ARGV[2])
return version
"""

log = structlog.get_logger(__name__)


class RedisLike(Protocol):
    async def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any: ...


@dataclass(frozen=True)
class Event:
    topic: str
    type: str
    id: str
    data: dict[str, Any]
    version: int = 0
    at: str = field(default_factory=lambda: iso_utc(utc_now()) or "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_topic(run_id: int) -> str:
    return f"run:{run_id}"


async def publish(redis: RedisLike, event: Event) -> int:
    """Publish `event` on its topic; returns the version it was given."""
    body = json.dumps({k: v for k, v in event.to_dict().items() if k != "version"})
    version = await redis.eval(
        _PUBLISH_SCRIPT,
        1,
        VERSION_PREFIX + event.topic,
        CHANNEL_PREFIX + event.topic,
        body,
        VERSION_TTL_S,
    )
    return int(version)


async def publish_quietly(redis: RedisLike | None, event: Event) -> None:
    """Publish, but never fail the caller: live updates are best effort."""
    if redis is None:
        return
    try:
        await publish(redis, event)
    except Exception as error:  # Redis down: views catch up from the database.
        log.warning("event_publish_failed", topic=event.topic, error=type(error).__name__)


def decode(message: bytes | str) -> Event:
    """Turn a pub/sub message body (`<version>|<json>`) back into an Event."""
    text = message.decode() if isinstance(message, bytes) else message
    version, _, body = text.partition("|")
    payload = json.loads(body)
    return Event(
        topic=payload["topic"],
        type=payload["type"],
        id=payload["id"],
        data=payload["data"],
        at=payload["at"],
        version=int(version),
    )
