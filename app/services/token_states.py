"""Token state that also reaches open views: every change recorded in the
database is published on `profile:<id>` right after."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from app.models.profiles import ProfilePublic, TokenStatus
from app.services.events import Event, RedisLike, publish_quietly
from app.services.oauth2 import TokenManager
from app.services.profiles import DbTokenStateStore


def profile_topic(profile_id: int) -> str:
    return f"profile:{profile_id}"


def profile_event(profile: ProfilePublic, event_type: str) -> Event:
    return Event(
        topic=profile_topic(profile.id),
        type=event_type,
        id=str(profile.id),
        data={"profile": profile.model_dump(mode="json")},
    )


async def forget_cached_token(redis: RedisLike | None, profile_id: int) -> None:
    """After a delete: the profile's OAuth2 tokens go."""
    if redis is not None:
        await TokenManager(redis=redis, store=LiveTokenStateStore(redis)).forget(profile_id)


async def retry_token_soon(redis: RedisLike | None, profile_id: int) -> None:
    """After an edit: a failed refresh is tried again at once (the tokens
    themselves are kept; see TokenManager.forget_failure)."""
    if redis is not None:
        manager = TokenManager(redis=redis, store=LiveTokenStateStore(redis))
        await manager.forget_failure(profile_id)


class LiveTokenStateStore:
    """The OAuth2 token manager's store: the database, then an event."""

    def __init__(self, redis: RedisLike | None) -> None:
        self._db = DbTokenStateStore()
        self._redis = redis

    async def record(
        self,
        profile_id: int,
        status: TokenStatus,
        expires_at: datetime | None,
        error: str | None,
    ) -> ProfilePublic:
        profile = await self._db.record(profile_id, status, expires_at, error)
        await publish_quietly(self._redis, profile_event(profile, "token_state"))
        return profile

    async def store_refresh_token(
        self, profile_id: int, refresh_token: str, *, replaces_sha256: Collection[str]
    ) -> None:
        """Compare-and-set in the database: kept only over a token of the
        same line (`replaces_sha256`), never over one a user pasted while
        the refresh was in flight."""
        await self._db.store_refresh_token(
            profile_id, refresh_token, replaces_sha256=replaces_sha256
        )
