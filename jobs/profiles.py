"""Worker side of profiles: "test connection" jobs, and the loop that
refreshes OAuth2 tokens before they expire (so no task ever meets a 401
from an expired token)."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from app.db import session_scope
from app.errors import TaskdeckError
from app.models.profiles import ResolvedProfile, TokenStatus
from app.services import profiles as profile_store
from app.services.outbound import test_connection

log = structlog.get_logger(__name__)

# Tokens living 30 s are refreshed at 24 s: a check every second keeps up.
REFRESH_CHECK_S = 1.0


def _resolve(profile_id: int) -> ResolvedProfile:
    with session_scope() as session:
        return profile_store.resolve_profile(session=session, profile_id=profile_id)


def _resolve_oauth2_profiles() -> tuple[list[ResolvedProfile], list[tuple[int, str]]]:
    """Every OAuth2 profile that can be read, and the ids (with why) of those
    that cannot: one unreadable profile must not stop the others' refreshes."""
    resolved: list[ResolvedProfile] = []
    unreadable: list[tuple[int, str]] = []
    with session_scope() as session:
        for profile_id in profile_store.oauth2_profile_ids(session=session):
            try:
                profile = profile_store.resolve_profile(session=session, profile_id=profile_id)
            except TaskdeckError as error:
                unreadable.append((profile_id, error.message))
            else:
                resolved.append(profile)
    return resolved, unreadable


async def test_profile_connection(
    ctx: dict[str, Any], profile_id: int, path: str
) -> dict[str, Any]:
    """Call the profile's API once; the result shape of POST /profiles/{id}/test."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(profile_id=profile_id)
    profile = await asyncio.to_thread(_resolve, profile_id)
    return await test_connection(profile, tokens=ctx["tokens"], path=path)


async def refresh_tokens_forever(ctx: dict[str, Any]) -> None:
    """Refresh every OAuth2 token that is past its refresh point; with several
    workers, the token manager's Redis lock lets only one refresh each. Each
    profile renews in its own task (the round does not wait for them), so a
    slow token endpoint delays its own profile only; a profile whose renewal
    still runs gets no second one."""
    reported: set[int] = set()
    try:
        while True:
            try:
                profiles, unreadable = await asyncio.to_thread(_resolve_oauth2_profiles)
                for profile_id, why in unreadable:
                    if profile_id not in reported:  # once, not every second
                        reported.add(profile_id)
                        await ctx["token_store"].record(profile_id, TokenStatus.FAILED, None, why)
                reported &= {profile_id for profile_id, _ in unreadable}
                if profiles:
                    await ctx["tokens"].start_due_refreshes(profiles)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # keep refreshing the others next round
                log.warning("token_refresh_round_failed", error=type(error).__name__)
            await asyncio.sleep(REFRESH_CHECK_S)
    finally:
        await ctx["tokens"].cancel_background_refreshes()
