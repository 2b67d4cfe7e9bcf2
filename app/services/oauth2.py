"""OAuth2 access tokens of profiles: fetched from the token endpoint, cached
in Redis (encrypted), renewed before they expire, one refresh at a time.

Life of a token (`refresh_at_fraction` f, 0.8 by default):
    obtained ──(f of its lifetime)──> refresh point ──> expires_at
- Before the refresh point `get_token` answers from the cache.
- Past it, the first caller (in any process) takes the per-profile Redis
  lock and asks for a new token; the others keep using the old one while it
  is still usable, or wait for the new one (they never ask a second time).
  A token living 30 s is renewed at 24 s, one living 2 s at 1.6 s.
- "Usable" stops a little before `expires_at` (min(5 s, half the time left
  after the refresh point)) so that a token never reaches the API expired.
- After a 401, `refresh(force=True, rejected_token=...)` renews only if the
  rejected token is still the cached one: N concurrent 401s, one refresh.
- A failed renewal before the token expires (past the refresh point, not
  after a 401) is recorded as FAILED for people to see, but callers keep
  getting the still-usable token; the endpoint is asked again after
  FAILED_RETRY_AFTER_S.
- A proactive refresher (a worker loop) calls `start_due_refreshes`, so that
  busy and idle profiles alike have a fresh token before anyone needs it.
  Each profile renews in its own task: a slow endpoint delays only its own.
- The lock lives as long as the slowest fetch may take; the fetch as a whole
  (not each httpx operation: a server may drip its answer) is cut a margin
  before the lock expires, and callers waiting on it wait as long as it.

Redis keys (values are Fernet tokens, purpose "oauth2-token-cache"):
    taskdeck:oauth2:token:<id>:<fp>  {"access_token", "expires_at", "obtained_at"}
                                   (epoch seconds), TTL until expiry. <fp> is
                                   an HMAC of what the token is valid for
                                   (see `_fingerprint`): a changed profile,
                                   or a new one that reuses a deleted one's
                                   id, never finds a token it did not earn,
                                   even one a refresh in flight wrote after
                                   the cache was cleared
    taskdeck:oauth2:refresh:<id>   {"refresh_token", "superseded", "origin"}:
                                   the latest rotated refresh token, SHA-256
                                   digests of the ones it replaced, and that
                                   of the first one of its line (the one a
                                   user entered)
    taskdeck:oauth2:lock:<id>      owner of the refresh in progress (SET NX PX)
    taskdeck:oauth2:failure:<id>   the last failed refresh (plain JSON: reason
                                   and time, no secret) for the callers that
                                   waited on it

Refresh-token rotation: the profile object is immutable and a process may
hold an old copy, so the newest refresh token lives in Redis too. It wins
over `profile.auth["refresh_token"]` unless the profile's token is one that
was never replaced (a user pasted a new one): then the profile's is used.
The database copy is updated through the `TokenStateStore`, only while it
still holds a token this line replaced (a user may have pasted a new one
meanwhile). A rotated refresh token is kept even when the rest of the
answer is unusable: the server may have revoked the old one already.

Token state goes to the store: `refreshing` while asking, `valid` with the
expiry after, `failed` with the server's error text, in which every secret
(raw, URL-encoded, JSON-escaped, inside a Basic credential) is masked.
Tokens and secrets are never logged, never in an error message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import structlog
from cryptography.fernet import InvalidToken
from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt, wait_random_exponential

from app.crypto import fernet_for, keyed_digest
from app.errors import TokenRefreshFailed
from app.models.profiles import OAUTH2_KINDS, AuthKind, ResolvedProfile, TokenStatus
from app.redaction import basic_credential, scrub_secrets
from app.services.outbound import USER_AGENT, get_http_client, loggable_url, retry_after_s

__all__ = [
    "TokenInfo",
    "TokenManager",
    "TokenStateStore",
    "token_state",
]

log = structlog.get_logger(__name__)

TOKEN_KEY_PREFIX = "taskdeck:oauth2:token:"
REFRESH_KEY_PREFIX = "taskdeck:oauth2:refresh:"
LOCK_KEY_PREFIX = "taskdeck:oauth2:lock:"
FAILURE_KEY_PREFIX = "taskdeck:oauth2:failure:"
FERNET_PURPOSE = "oauth2-token-cache"
FINGERPRINT_PURPOSE = "oauth2-token-cache-key"

POLL_INTERVAL_S = 0.05
MAX_EXPIRY_SKEW_S = 5.0
TOKEN_ATTEMPTS = 3
TOKEN_MAX_RETRY_AFTER_S = 30.0
TOKEN_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_TOKEN_TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
MAX_REASON_CHARS = 300
# How many replaced refresh tokens are remembered (as digests) per profile.
MAX_SUPERSEDED = 20
# The refresher leaves a profile whose refresh failed alone this long (callers
# that need a token still try), so a refresher loop does not hammer a
# failing token endpoint every round.
FAILED_RETRY_AFTER_S = 15.0
# The fetch ends this long before its lock expires: time to save a rotated
# refresh token while no other process may refresh.
LOCK_MARGIN_S = 5.0
# How long a stopping worker lets renewals in flight finish: well under the
# 10 s a supervisor (ours, Docker's, systemd's) waits before SIGKILL, so the
# shielded save after it still has time.
SHUTDOWN_GRACE_S = 5.0

# Delete the lock only if we still own it (it may have expired and been taken).
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class TokenStateStore(Protocol):
    """Where token state and rotated refresh tokens are kept (the database)."""

    async def record(
        self,
        profile_id: int,
        status: TokenStatus,
        expires_at: datetime | None,
        error: str | None,
    ) -> None: ...

    async def store_refresh_token(
        self, profile_id: int, refresh_token: str, *, replaces_sha256: frozenset[str]
    ) -> None:
        """Keep `refresh_token` only while the stored one's SHA-256 is in
        `replaces_sha256` (one this token's line replaced): a token a user
        pasted during the refresh must win."""
        ...


@dataclass(frozen=True)
class TokenInfo:
    """What may be said about a cached token without showing it."""

    obtained_at: datetime
    expires_at: datetime
    status: TokenStatus


@dataclass(frozen=True)
class _CachedToken:
    access_token: str
    obtained_at: float
    expires_at: float

    def refresh_point(self, fraction: float) -> float:
        return self.obtained_at + fraction * (self.expires_at - self.obtained_at)

    def usable_until(self, fraction: float) -> float:
        lifetime = self.expires_at - self.obtained_at
        return self.expires_at - min(MAX_EXPIRY_SKEW_S, (1 - fraction) * lifetime / 2)


@dataclass(frozen=True)
class _Grant:
    access_token: str
    expires_in: float


@dataclass(frozen=True)
class _SavedRefreshToken:
    refresh_token: str
    superseded: tuple[str, ...]
    # Digest of the first token of this line: stays across rotations, so the
    # cache key (which it is part of) does not change when a token rotates.
    origin: str

    def continues(self, refresh_token: str) -> bool:
        """Whether `refresh_token` is this line's latest or one it replaced
        (not a token a user entered since)."""
        return refresh_token == self.refresh_token or _digest(refresh_token) in self.superseded


def token_state(
    *,
    obtained_at: datetime,
    expires_at: datetime,
    now: datetime | None = None,
    refresh_at_fraction: float = 0.8,
) -> TokenStatus:
    """VALID while more than (1 - fraction) of the token's lifetime is left,
    EXPIRING after that (expired included: there is no "expired" state, the
    refresher renews it and a failure shows as FAILED)."""
    now = now or datetime.now(UTC)
    lifetime = (expires_at - obtained_at).total_seconds()
    left = (expires_at - now).total_seconds()
    if lifetime > 0 and left > (1 - refresh_at_fraction) * lifetime:
        return TokenStatus.VALID
    return TokenStatus.EXPIRING


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def _profile_secrets(profile: ResolvedProfile) -> list[str | None]:
    """What a token request sends that is secret: the client secret (in the
    body, or base64 in the Basic header) and the refresh token."""
    auth = profile.auth
    client_secret = auth.get("client_secret")
    secrets_sent = [client_secret, auth.get("refresh_token")]
    if isinstance(client_secret, str) and client_secret:
        secrets_sent.append(basic_credential(auth.get("client_id") or "", client_secret))
    return secrets_sent


def _failed(
    reason: str,
    *,
    profile: ResolvedProfile,
    status_code: int | None = None,
    also_secret: Iterable[str | None] = (),
) -> TokenRefreshFailed:
    """The error for a failed refresh. Its reason goes to the database,
    Redis, logs, UI and API, and a server may echo what it was sent: every
    secret is masked in the whole text before it is shortened."""
    masked = scrub_secrets(reason, [*_profile_secrets(profile), *also_secret])
    reason = " ".join(masked.split())[:MAX_REASON_CHARS]
    return TokenRefreshFailed(
        f"Token refresh failed: {reason}",
        details={"profile_id": profile.id, "reason": reason, "status_code": status_code},
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        payload = response.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def _returned_refresh_token(response: httpx.Response) -> str | None:
    """The refresh token of a successful answer, whatever else is wrong
    with it: a rotating server may have revoked the one we sent already."""
    payload = _json_object(response)
    if not response.is_success or payload is None or payload.get("error"):
        return None
    token = payload.get("refresh_token")
    return token if isinstance(token, str) and token else None


def _parse_grant(response: httpx.Response, profile: ResolvedProfile) -> _Grant:
    """The token response as a grant, or TokenRefreshFailed saying plainly
    what is wrong with it (the body is never quoted, only error fields)."""
    status = response.status_code
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    json_type = content_type == "application/json" or content_type.endswith("+json")
    try:
        payload = response.json()
    except (ValueError, UnicodeDecodeError):
        payload = None
    if not isinstance(payload, dict):
        if payload is not None:
            reason = f"token endpoint returned JSON that is not an object (status {status})"
        elif json_type:
            reason = f"token endpoint returned invalid JSON (status {status})"
        else:
            shown = content_type or "a body without a content type"
            reason = f"token endpoint returned {shown} instead of JSON (status {status})"
        raise _failed(reason, profile=profile, status_code=status)

    def fail(reason: str) -> TokenRefreshFailed:
        # Tokens the answer carries are secrets too, should a text repeat them.
        issued = [payload.get("access_token"), payload.get("refresh_token")]
        return _failed(reason, profile=profile, status_code=status, also_secret=issued)

    error = payload.get("error")
    if error or status >= 400:
        if isinstance(error, str) and error:
            description = payload.get("error_description")
            described = isinstance(description, str) and description
            reason = f"{error}: {description}" if described else error
        else:
            reason = f"token endpoint answered status {status}"
        raise fail(reason)
    access_token = payload.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise fail("token endpoint returned no access_token")
    expires_in = _number(payload.get("expires_in"))
    if expires_in is None:
        raise fail("token endpoint returned no expires_in")
    if expires_in <= 0:
        raise fail(f"token endpoint returned expires_in {expires_in:g}, which is not positive")
    return _Grant(access_token=access_token, expires_in=expires_in)


def _fingerprint(profile: ResolvedProfile, line: str) -> str:
    """What a cached token is valid for: the profile id, kind and API, the
    token endpoint, the client and its secret, scopes, audience and (for
    refresh tokens) the line of refresh tokens it came from. An HMAC under
    a key derived from TASKDECK_SECRET_KEY: the Redis key shows no secret
    and is no oracle for guessing one."""
    auth = profile.auth
    scopes = auth.get("scopes") or []
    if isinstance(scopes, str):
        scopes = scopes.split()
    material = json.dumps(
        [
            profile.id,
            AuthKind(profile.auth_kind).value,
            profile.base_url,
            auth.get("token_url"),
            auth.get("client_id"),
            auth.get("client_secret"),
            sorted(str(scope) for scope in scopes),
            auth.get("audience"),
            line,
        ]
    )
    return keyed_digest(FINGERPRINT_PURPOSE, material)[:32]


_token_backoff = wait_random_exponential(multiplier=0.2, max=5)


def _token_wait(state: RetryCallState) -> float:
    outcome = state.outcome
    if outcome is not None and not outcome.failed:
        delay = retry_after_s(outcome.result(), cap_s=TOKEN_MAX_RETRY_AFTER_S)
        if delay is not None:
            return delay
    return _token_backoff(state)


def _token_should_retry(state: RetryCallState) -> bool:
    outcome = state.outcome
    assert outcome is not None
    if outcome.failed:
        error = outcome.exception()
        return isinstance(error, _TOKEN_TRANSIENT_ERRORS)
    return outcome.result().status_code in TOKEN_RETRY_STATUSES


def _last_outcome(state: RetryCallState) -> Any:
    assert state.outcome is not None
    return state.outcome.result()


def _with_refresh_token(profile: ResolvedProfile, refresh_token: str | None) -> ResolvedProfile:
    """The profile as sent: with the (rotated) refresh token actually used,
    so that an error text masks that one."""
    if not refresh_token or refresh_token == profile.auth.get("refresh_token"):
        return profile
    return dataclasses.replace(profile, auth={**profile.auth, "refresh_token": refresh_token})


def _require_oauth2(profile: ResolvedProfile) -> None:
    if profile.auth_kind not in OAUTH2_KINDS:
        raise ValueError(f"profile {profile.id} does not use OAuth2 ({profile.auth_kind})")


class TokenManager:
    """Access tokens of OAuth2 profiles, shared through Redis by every
    process. `http` replaces the shared outbound client (then the profile's
    verify_tls is that client's business)."""

    def __init__(
        self,
        *,
        redis: Any,
        store: TokenStateStore,
        http: httpx.AsyncClient | None = None,
        refresh_at_fraction: float = 0.8,
        lock_ttl_s: float = 30,
        wait_timeout_s: float = 30,
    ) -> None:
        if not 0 < refresh_at_fraction <= 1:
            raise ValueError("refresh_at_fraction must be in (0, 1]")
        self._redis = redis
        self._store = store
        self._http = http
        self.refresh_at_fraction = refresh_at_fraction
        self.lock_ttl_s = lock_ttl_s
        self.wait_timeout_s = wait_timeout_s
        # Renewals started by start_due_refreshes and still running, by profile id.
        self._renewals: dict[int, asyncio.Task[int | None]] = {}
        # Rotated refresh tokens being saved (never cancelled).
        self._saving: set[asyncio.Task[None]] = set()

    # ----- public -----

    async def get_token(self, profile: ResolvedProfile) -> str:
        """A token fit to send now: the cached one before its refresh point;
        past it a new one, or the old one while it is still usable and
        another process is already renewing it (or renewing it failed)."""
        _require_oauth2(profile)
        cached = await self._read_token(await self.cache_key(profile))
        if cached is not None and time.time() < cached.refresh_point(self.refresh_at_fraction):
            return cached.access_token
        token, _ = await self._renew(profile, force=False, rejected_token=None, stale_ok=True)
        return token

    async def refresh(
        self,
        profile: ResolvedProfile,
        *,
        force: bool = False,
        rejected_token: str | None = None,
    ) -> str:
        """Renew the token unless a fresh one is cached. With force (after a
        401) renew unless the cached token differs from `rejected_token` (or,
        without it, from the one cached when called): so concurrent callers
        cause one request to the token endpoint."""
        _require_oauth2(profile)
        token, _ = await self._renew(
            profile, force=force, rejected_token=rejected_token, stale_ok=False
        )
        return token

    async def refresh_due(self, profiles: Iterable[ResolvedProfile]) -> list[int]:
        """`start_due_refreshes`, then wait for the renewals it started.
        Returns the ids whose token this call fetched (not those another
        process renewed meanwhile, nor failed ones: FAILED is recorded)."""
        renewals = await self._start_due(profiles)
        renewed = await asyncio.gather(*renewals.values())
        return [profile_id for profile_id in renewed if profile_id is not None]

    async def start_due_refreshes(self, profiles: Iterable[ResolvedProfile]) -> list[int]:
        """Start, without waiting for it, a renewal task for each OAuth2
        profile whose cached token is missing or past its refresh point and
        that has none running yet: one slow token endpoint then delays its
        own profile only, and a profile never has two renewals queued. A
        profile whose refresh failed less than FAILED_RETRY_AFTER_S ago is
        skipped. Returns the ids started."""
        return list(await self._start_due(profiles))

    async def _start_due(
        self, profiles: Iterable[ResolvedProfile]
    ) -> dict[int, asyncio.Task[int | None]]:
        idle = [profile for profile in profiles if profile.id not in self._renewals]
        started: dict[int, asyncio.Task[int | None]] = {}
        for profile in await self._due(idle):
            task = asyncio.create_task(
                self._renew_in_background(profile), name=f"oauth2-renew-{profile.id}"
            )
            self._renewals[profile.id] = task
            task.add_done_callback(self._forget_renewal(profile.id))
            started[profile.id] = task
        return started

    async def cancel_background_refreshes(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Stop the renewals `start_due_refreshes` started (worker shutdown).
        Those still running get `grace_s` to finish first: one cut off after
        a rotating server answered would lose the refresh token it was
        handed, and with it the grant. A rotated token being saved is saved
        whatever happens (see `_keep_rotated`)."""
        tasks = list(self._renewals.values())
        if tasks:
            if grace_s > 0:
                await asyncio.wait(tasks, timeout=grace_s)
            for task in tasks:
                task.cancel()  # nothing for those that finished
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._saving:
            await asyncio.gather(*self._saving, return_exceptions=True)

    async def token_info(self, profile: ResolvedProfile) -> TokenInfo | None:
        """Obtained and expiry times of the cached token, and its state."""
        cached = await self._read_token(await self.cache_key(profile))
        if cached is None:
            return None
        obtained_at, expires_at = _utc(cached.obtained_at), _utc(cached.expires_at)
        return TokenInfo(
            obtained_at=obtained_at,
            expires_at=expires_at,
            status=token_state(
                obtained_at=obtained_at,
                expires_at=expires_at,
                refresh_at_fraction=self.refresh_at_fraction,
            ),
        )

    async def cache_key(self, profile: ResolvedProfile) -> str:
        """The Redis key of the profile's cached token: its id and the
        fingerprint of what the token is valid for (see `_fingerprint`)."""
        line = ""
        if profile.auth_kind == AuthKind.OAUTH2_REFRESH_TOKEN:
            _, line = self._choose_refresh_token(profile, await self._read_refresh(profile.id))
        return f"{TOKEN_KEY_PREFIX}{profile.id}:{_fingerprint(profile, line)}"

    async def forget_failure(self, profile_id: int) -> None:
        """After an edit: ask the token endpoint again at once rather than
        after FAILED_RETRY_AFTER_S (the edit may be the fix). Cached tokens
        stay: a changed auth configuration has another cache key already,
        and the rotated refresh token must never be lost to an edit of, say,
        the description."""
        await self._redis.delete(FAILURE_KEY_PREFIX + str(profile_id))

    async def forget(self, profile_id: int) -> None:
        """Drop the cached tokens and refresh token (the profile is gone). A
        refresh still in flight may write its token afterwards: under the old
        fingerprint, which a re-created profile does not match."""
        keys = [key async for key in self._redis.scan_iter(match=f"{TOKEN_KEY_PREFIX}{profile_id}:*")]
        await self._redis.delete(
            *keys, REFRESH_KEY_PREFIX + str(profile_id), FAILURE_KEY_PREFIX + str(profile_id)
        )

    # ----- the proactive refresher -----

    async def _due(self, profiles: Iterable[ResolvedProfile]) -> list[ResolvedProfile]:
        """The OAuth2 profiles without a cached token before its refresh
        point, except those whose refresh failed in the last
        FAILED_RETRY_AFTER_S (no hammering a failing endpoint)."""
        now = time.time()
        due: list[ResolvedProfile] = []
        for profile in profiles:
            if profile.auth_kind not in OAUTH2_KINDS:
                continue
            cached = await self._read_token(await self.cache_key(profile))
            if cached is not None and now < cached.refresh_point(self.refresh_at_fraction):
                continue
            if await self._failed_recently(profile.id):
                continue
            due.append(profile)
        return due

    async def _renew_due(self, profile: ResolvedProfile) -> int | None:
        """The profile's id if this call fetched its token; None if another
        process did or the refresh failed (recorded as FAILED already)."""
        try:
            _, fetched = await self._renew(profile, force=False, rejected_token=None, stale_ok=True)
        except TokenRefreshFailed:
            return None
        return profile.id if fetched else None

    async def _renew_in_background(self, profile: ResolvedProfile) -> int | None:
        """`_renew_due` for a task nobody awaits: anything else that goes
        wrong (Redis down) is logged, not left for the event loop to report."""
        try:
            return await self._renew_due(profile)
        except Exception as error:
            log.warning("oauth2_renewal_failed", profile_id=profile.id, error=type(error).__name__)
            return None

    def _forget_renewal(self, profile_id: int) -> Callable[[asyncio.Task[int | None]], None]:
        def done(task: asyncio.Task[int | None]) -> None:
            if self._renewals.get(profile_id) is task:
                del self._renewals[profile_id]

        return done

    # ----- one refresh at a time -----

    def _lock_ttl_s(self, profile: ResolvedProfile) -> float:
        """Long enough for the slowest regular fetch: every attempt timing
        out plus the waits between them. The fetch is cut LOCK_MARGIN_S
        before (a server may drip its answer past httpx's per-operation
        timeouts), so a second process never refreshes at the same time and
        spends a rotating refresh token twice."""
        slowest_s = TOKEN_ATTEMPTS * (profile.timeout_s + TOKEN_MAX_RETRY_AFTER_S)
        return max(self.lock_ttl_s, slowest_s + LOCK_MARGIN_S)

    async def _renew(
        self,
        profile: ResolvedProfile,
        *,
        force: bool,
        rejected_token: str | None,
        stale_ok: bool,
    ) -> tuple[str, bool]:
        """(token, whether this call fetched it)."""
        fraction = self.refresh_at_fraction
        started = time.time()
        key = await self.cache_key(profile)
        seen = await self._read_token(key)
        stale = rejected_token
        if force and stale is None and seen is not None:
            stale = seen.access_token

        def good(candidate: _CachedToken | None) -> bool:
            if candidate is None:
                return False
            if force:
                return (
                    candidate.access_token != stale
                    and time.time() < candidate.usable_until(fraction)
                )
            return time.time() < candidate.refresh_point(fraction)

        # Not after a 401: the old token may serve while it is usable.
        keep_old = stale_ok and not force
        old_usable = seen is not None and time.time() < seen.usable_until(fraction)
        if seen is not None and good(seen):
            return seen.access_token, False
        if seen is not None and keep_old and old_usable and await self._failed_recently(profile.id):
            return seen.access_token, False  # the refresher asks again later
        lock_key = LOCK_KEY_PREFIX + str(profile.id)
        owner = secrets.token_hex(16)
        lock_ttl_s = self._lock_ttl_s(profile)
        # Waiting less than the lock may last would fail callers while the
        # refresh they wait for is still allowed to succeed.
        deadline = time.monotonic() + max(self.wait_timeout_s, lock_ttl_s)
        while True:
            if await self._redis.set(lock_key, owner, nx=True, px=int(lock_ttl_s * 1000)):
                cutoff = asyncio.get_running_loop().time() + lock_ttl_s - LOCK_MARGIN_S
                try:
                    return await self._renew_locked(profile, key, good, keep_old, cutoff)
                finally:
                    await self._redis.eval(_RELEASE_SCRIPT, 1, lock_key, owner)
            # Someone else is renewing it.
            if seen is not None and keep_old and time.time() < seen.usable_until(fraction):
                return seen.access_token, False
            token = await self._wait_for_renewal(
                profile, key, good, lock_key=lock_key, started=started, deadline=deadline
            )
            if token is not None:
                return token, False
            # The other renewal ended without a fresh token: try ourselves.

    async def _renew_locked(
        self,
        profile: ResolvedProfile,
        key: str,
        good: Callable[[_CachedToken | None], bool],
        keep_old: bool,
        cutoff: float,
    ) -> tuple[str, bool]:
        """Under the lock: fetch unless a good token arrived meanwhile. With
        `keep_old`, a failed renewal of a still-usable token is recorded
        (FAILED, for people to see) but the token is returned: the API call
        needing it must not fail while it is valid."""
        current = await self._read_token(key)
        if good(current):
            assert current is not None
            return current.access_token, False
        try:
            return await self._fetch(profile, key, cutoff=cutoff), True
        except TokenRefreshFailed:
            usable = current is not None and time.time() < current.usable_until(
                self.refresh_at_fraction
            )
            if not (keep_old and usable):
                raise
            assert current is not None
            log.info("oauth2_token_kept_after_failed_refresh", profile_id=profile.id)
            return current.access_token, False

    async def _wait_for_renewal(
        self,
        profile: ResolvedProfile,
        key: str,
        good: Callable[[_CachedToken | None], bool],
        *,
        lock_key: str,
        started: float,
        deadline: float,
    ) -> str | None:
        """The token another caller is fetching; its failure raised as
        ours; None when its lock went without a good token."""
        while True:
            await asyncio.sleep(POLL_INTERVAL_S)
            current = await self._read_token(key)
            if current is not None and good(current):
                return current.access_token
            failure = await self._read_failure(profile.id)
            if failure is not None and failure.get("at", 0) >= started:
                raise _failed(
                    str(failure.get("reason", "token refresh failed")),
                    profile=profile,
                    status_code=failure.get("status_code"),
                )
            if time.monotonic() >= deadline:
                raise _failed(
                    "no new token after waiting "
                    f"{max(self.wait_timeout_s, self._lock_ttl_s(profile)):g} s for another "
                    "process to refresh it",
                    profile=profile,
                )
            if not await self._redis.exists(lock_key):
                return None

    async def _fetch(self, profile: ResolvedProfile, key: str, *, cutoff: float) -> str:
        """Ask the token endpoint (the caller holds the lock), keep a rotated
        refresh token, cache the token, record the state."""
        obtained_at = time.time()
        try:
            sent, response = await self._exchange(profile, cutoff=cutoff)
            if sent is not None:
                profile = _with_refresh_token(profile, sent)  # errors mask the one sent
                await self._keep_rotated(profile, sent, response)
            grant = _parse_grant(response, profile)
        except TokenRefreshFailed as error:
            reason = str(error.details.get("reason") or error.message)
            log.warning("oauth2_refresh_failed", profile_id=profile.id, reason=reason)
            await self._record(profile.id, TokenStatus.FAILED, None, reason)
            await self._write_failure(profile.id, reason, error.details.get("status_code"))
            raise
        token = _CachedToken(
            access_token=grant.access_token,
            obtained_at=obtained_at,
            expires_at=obtained_at + grant.expires_in,
        )
        await self._write_token(key, token)
        await self._record(profile.id, TokenStatus.VALID, _utc(token.expires_at), None)
        log.info("oauth2_token_refreshed", profile_id=profile.id, expires_in_s=grant.expires_in)
        return token.access_token

    async def _exchange(
        self, profile: ResolvedProfile, *, cutoff: float
    ) -> tuple[str | None, httpx.Response]:
        """(refresh token sent, the endpoint's answer), all of it done by
        `cutoff` (event-loop time): httpx's timeouts bound each operation,
        not the whole, so a server that drips its answer would otherwise
        outlive the lock."""
        budget_s = cutoff - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout_at(cutoff):
                await self._record(profile.id, TokenStatus.REFRESHING, None, None)
                sent: str | None = None
                if profile.auth_kind == AuthKind.OAUTH2_REFRESH_TOKEN:
                    sent = await self._current_refresh_token(profile)
                return sent, await self._request_token(_with_refresh_token(profile, sent), sent)
        except TimeoutError:
            where = loggable_url(str(profile.auth.get("token_url") or ""))
            raise _failed(
                f"token endpoint {where} gave no complete answer within {budget_s:.0f} s",
                profile=profile,
            ) from None

    async def _request_token(
        self, profile: ResolvedProfile, refresh_token: str | None
    ) -> httpx.Response:
        """POST the grant (with retries for transient failures); the answer
        as it is, parsed by the caller."""
        auth = profile.auth
        token_url = auth.get("token_url")
        if not token_url:
            raise _failed("the profile has no token_url", profile=profile)
        form: dict[str, str] = {}
        if profile.auth_kind == AuthKind.OAUTH2_CLIENT_CREDENTIALS:
            form["grant_type"] = "client_credentials"
        else:
            if not refresh_token:
                raise _failed("the profile has no refresh token", profile=profile)
            form["grant_type"] = "refresh_token"
            form["refresh_token"] = refresh_token
        scopes = auth.get("scopes")
        if isinstance(scopes, str):
            scopes = scopes.split()
        if scopes:
            form["scope"] = " ".join(scopes)
        if profile.auth_kind == AuthKind.OAUTH2_CLIENT_CREDENTIALS and auth.get("audience"):
            form["audience"] = auth["audience"]
        client_id = auth.get("client_id") or ""
        client_secret = auth.get("client_secret")
        basic: httpx.Auth | None = None
        if client_secret and (auth.get("client_auth") or "header") == "header":
            basic = httpx.BasicAuth(client_id, client_secret)
        else:
            # Body authentication, or a public client that has no secret.
            if client_id:
                form["client_id"] = client_id
            if client_secret:
                form["client_secret"] = client_secret
        client = self._http or get_http_client(verify_tls=profile.verify_tls)
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}

        async def post() -> httpx.Response:
            return await client.post(
                token_url, data=form, headers=headers, auth=basic, timeout=profile.timeout_s
            )

        where = loggable_url(token_url)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(TOKEN_ATTEMPTS),
            wait=_token_wait,
            retry=_token_should_retry,
            retry_error_callback=_last_outcome,
            before_sleep=lambda state: log.info(
                "oauth2_token_request_retry",
                profile_id=profile.id,
                url=where,
                attempt=state.attempt_number,
            ),
        )
        try:
            response: httpx.Response = await retrying(post)
        except httpx.HTTPError as error:
            raise _failed(
                f"token endpoint {where} could not be reached ({type(error).__name__})",
                profile=profile,
            ) from error
        return response

    # ----- refresh tokens -----

    @staticmethod
    def _choose_refresh_token(
        profile: ResolvedProfile, saved: _SavedRefreshToken | None
    ) -> tuple[str | None, str]:
        """(the refresh token to send, the digest naming its line). The
        newest rotated one while the profile's is of its line; the profile's
        when a user entered a new one."""
        configured = profile.auth.get("refresh_token") or None
        if saved is not None and (configured is None or saved.continues(configured)):
            return saved.refresh_token, saved.origin
        return configured, _digest(configured) if configured else ""

    async def _current_refresh_token(self, profile: ResolvedProfile) -> str | None:
        token, _ = self._choose_refresh_token(profile, await self._read_refresh(profile.id))
        return token

    async def _keep_rotated(
        self, profile: ResolvedProfile, sent: str, response: httpx.Response
    ) -> None:
        """Keep a new refresh token before the rest of the answer is judged:
        the server may have revoked the one sent, so losing the new one
        (because expires_in is missing, say) would lose the grant."""
        new = _returned_refresh_token(response)
        if new is not None and new != sent:
            # Shielded: a cancelled renewal (a worker stopping) still saves
            # it, and cancel_background_refreshes waits for that.
            saving = asyncio.create_task(self._rotate(profile, old=sent, new=new))
            self._saving.add(saving)
            saving.add_done_callback(self._saving.discard)
            try:
                await asyncio.shield(saving)
            except asyncio.CancelledError:
                # Hold the refresh lock (released by our caller's `finally`)
                # until it is saved: another worker must not send the spent one.
                await saving
                raise

    async def _rotate(self, profile: ResolvedProfile, *, old: str, new: str) -> None:
        saved = await self._read_refresh(profile.id)
        origin = saved.origin if saved is not None and saved.continues(old) else _digest(old)
        superseded = list(saved.superseded if saved else ())
        if saved is not None and saved.refresh_token != old:
            superseded.append(_digest(saved.refresh_token))
        superseded.append(_digest(old))
        superseded = superseded[-MAX_SUPERSEDED:]
        body = json.dumps({"refresh_token": new, "superseded": superseded, "origin": origin})
        try:  # Either copy alone keeps the grant: a failing one must not stop the other.
            await self._redis.set(
                REFRESH_KEY_PREFIX + str(profile.id),
                fernet_for(FERNET_PURPOSE).encrypt(body.encode()),
            )
        except Exception as error:
            log.error(
                "oauth2_refresh_token_not_cached", profile_id=profile.id, error=type(error).__name__
            )
        try:
            # Only over a token we replaced: not over one a user pasted meanwhile.
            await self._store.store_refresh_token(
                profile.id, new, replaces_sha256=frozenset(superseded)
            )
        except Exception as error:  # Redis holds it (if it could); the next rotation tries again.
            log.error(
                "oauth2_refresh_token_not_stored", profile_id=profile.id, error=type(error).__name__
            )

    # ----- Redis values -----

    def _decrypt(self, raw: bytes | str | None, key: str) -> dict[str, Any] | None:
        if raw is None:
            return None
        try:
            value = json.loads(fernet_for(FERNET_PURPOSE).decrypt(raw))
        except (InvalidToken, ValueError):
            # Another secret key, or damage: as good as absent.
            log.warning("oauth2_cache_unreadable", key=key)
            return None
        return value if isinstance(value, dict) else None

    async def _read_token(self, key: str) -> _CachedToken | None:
        value = self._decrypt(await self._redis.get(key), key)
        if value is None:
            return None
        try:
            return _CachedToken(
                access_token=str(value["access_token"]),
                obtained_at=float(value["obtained_at"]),
                expires_at=float(value["expires_at"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    async def _write_token(self, key: str, token: _CachedToken) -> None:
        body = json.dumps(
            {
                "access_token": token.access_token,
                "expires_at": token.expires_at,
                "obtained_at": token.obtained_at,
            }
        )
        ttl_ms = max(1, int((token.expires_at - time.time()) * 1000))
        await self._redis.set(key, fernet_for(FERNET_PURPOSE).encrypt(body.encode()), px=ttl_ms)

    async def _read_refresh(self, profile_id: int) -> _SavedRefreshToken | None:
        key = REFRESH_KEY_PREFIX + str(profile_id)
        value = self._decrypt(await self._redis.get(key), key)
        if value is None or not isinstance(value.get("refresh_token"), str):
            return None
        origin = value.get("origin")
        return _SavedRefreshToken(
            refresh_token=value["refresh_token"],
            superseded=tuple(str(item) for item in value.get("superseded") or ()),
            # Saved before lines were named: the latest token names it.
            origin=origin if isinstance(origin, str) else _digest(value["refresh_token"]),
        )

    async def _read_failure(self, profile_id: int) -> dict[str, Any] | None:
        raw = await self._redis.get(FAILURE_KEY_PREFIX + str(profile_id))
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    async def _failed_recently(self, profile_id: int) -> bool:
        """A refresh failed less than FAILED_RETRY_AFTER_S ago."""
        failure = await self._read_failure(profile_id)
        return failure is not None and time.time() - failure.get("at", 0) < FAILED_RETRY_AFTER_S

    async def _write_failure(self, profile_id: int, reason: str, status_code: Any) -> None:
        body = json.dumps({"reason": reason, "status_code": status_code, "at": time.time()})
        ttl_s = int(max(self.wait_timeout_s, FAILED_RETRY_AFTER_S)) + 5
        await self._redis.set(FAILURE_KEY_PREFIX + str(profile_id), body, ex=ttl_s)

    async def _record(
        self,
        profile_id: int,
        status: TokenStatus,
        expires_at: datetime | None,
        error: str | None,
    ) -> None:
        """Token state is for people to see; failing to write it (the
        database is down) must not cost the API call its token."""
        try:
            await self._store.record(profile_id, status, expires_at, error)
        except Exception as failure:
            log.warning(
                "oauth2_token_state_not_recorded",
                profile_id=profile_id,
                status=str(status),
                error=type(failure).__name__,
            )
