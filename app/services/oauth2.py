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
- A proactive refresher (a worker loop) calls `refresh_due`, so that busy
  and idle profiles alike have a fresh token before anyone needs it.

Redis keys (values are Fernet tokens, purpose "oauth2-token-cache"):
    taskdeck:oauth2:token:<id>     {"access_token", "expires_at", "obtained_at"}
                                   (epoch seconds), TTL until expiry
    taskdeck:oauth2:refresh:<id>   {"refresh_token", "superseded"}: the latest
                                   rotated refresh token, and SHA-256 digests
                                   of the ones it replaced
    taskdeck:oauth2:lock:<id>      owner of the refresh in progress (SET NX PX)
    taskdeck:oauth2:failure:<id>   the last failed refresh (plain JSON: reason
                                   and time, no secret) for the callers that
                                   waited on it

Refresh-token rotation: the profile object is immutable and a process may
hold an old copy, so the newest refresh token lives in Redis too. It wins
over `profile.auth["refresh_token"]` unless the profile's token is one that
was never replaced (a user pasted a new one): then the profile's is used.
The database copy is updated through the `TokenStateStore`.

Token state goes to the store: `refreshing` while asking, `valid` with the
expiry after, `failed` with the server's error text. Tokens and secrets are
never logged, never in an error message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import structlog
from cryptography.fernet import InvalidToken
from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt, wait_random_exponential

from app.crypto import fernet_for
from app.errors import TokenRefreshFailed
from app.models.profiles import OAUTH2_KINDS, AuthKind, ResolvedProfile, TokenStatus
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

POLL_INTERVAL_S = 0.05
MAX_EXPIRY_SKEW_S = 5.0
TOKEN_ATTEMPTS = 3
TOKEN_MAX_RETRY_AFTER_S = 30.0
TOKEN_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_TOKEN_TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
MAX_REASON_CHARS = 300
# How many replaced refresh tokens are remembered (as digests) per profile.
MAX_SUPERSEDED = 20
REFRESH_DUE_CONCURRENCY = 8
# refresh_due leaves a profile whose refresh failed alone this long (callers
# that need a token still try), so a refresher loop does not hammer a
# failing token endpoint every round.
FAILED_RETRY_AFTER_S = 15.0

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

    async def store_refresh_token(self, profile_id: int, refresh_token: str) -> None: ...


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
    refresh_token: str | None


@dataclass(frozen=True)
class _SavedRefreshToken:
    refresh_token: str
    superseded: tuple[str, ...]


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


def _failed(
    reason: str, *, profile: ResolvedProfile, status_code: int | None = None
) -> TokenRefreshFailed:
    reason = " ".join(reason.split())[:MAX_REASON_CHARS]
    # A server that echoes what it was sent must not put a secret in our error.
    for field in ("client_secret", "refresh_token"):
        value = profile.auth.get(field)
        if isinstance(value, str) and len(value) >= 4:
            reason = reason.replace(value, "[redacted]")
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
    error = payload.get("error")
    if error or status >= 400:
        if isinstance(error, str) and error:
            description = payload.get("error_description")
            described = isinstance(description, str) and description
            reason = f"{error}: {description}" if described else error
        else:
            reason = f"token endpoint answered status {status}"
        raise _failed(reason, profile=profile, status_code=status)
    access_token = payload.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise _failed(
            "token endpoint returned no access_token", profile=profile, status_code=status
        )
    expires_in = _number(payload.get("expires_in"))
    if expires_in is None:
        raise _failed("token endpoint returned no expires_in", profile=profile, status_code=status)
    if expires_in <= 0:
        raise _failed(
            f"token endpoint returned expires_in {expires_in:g}, which is not positive",
            profile=profile,
            status_code=status,
        )
    refresh_token = payload.get("refresh_token")
    return _Grant(
        access_token=access_token,
        expires_in=expires_in,
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
    )


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

    # ----- public -----

    async def get_token(self, profile: ResolvedProfile) -> str:
        """A token fit to send now: the cached one before its refresh point;
        past it a new one, or the old one while it is still usable and
        another process is already renewing it."""
        _require_oauth2(profile)
        cached = await self._read_token(profile.id)
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
        """Renew the tokens of the OAuth2 profiles whose cached token is
        missing or past its refresh point. Returns the ids this call renewed
        (not those another process renewed meanwhile); a failure is recorded
        as FAILED by the refresh and does not stop the others; a profile
        whose refresh failed less than FAILED_RETRY_AFTER_S ago is skipped."""
        now = time.time()
        due: list[ResolvedProfile] = []
        for profile in profiles:
            if profile.auth_kind not in OAUTH2_KINDS:
                continue
            cached = await self._read_token(profile.id)
            if cached is not None and now < cached.refresh_point(self.refresh_at_fraction):
                continue
            failure = await self._read_failure(profile.id)
            if failure is not None and now - failure.get("at", 0) < FAILED_RETRY_AFTER_S:
                continue
            due.append(profile)
        gate = asyncio.Semaphore(REFRESH_DUE_CONCURRENCY)

        async def renew(profile: ResolvedProfile) -> int | None:
            async with gate:
                try:
                    _, fetched = await self._renew(
                        profile, force=False, rejected_token=None, stale_ok=True
                    )
                except TokenRefreshFailed:
                    return None
            return profile.id if fetched else None

        renewed = await asyncio.gather(*(renew(profile) for profile in due))
        return [profile_id for profile_id in renewed if profile_id is not None]

    async def token_info(self, profile_id: int) -> TokenInfo | None:
        """Obtained and expiry times of the cached token, and its state."""
        cached = await self._read_token(profile_id)
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

    async def forget(self, profile_id: int) -> None:
        """Drop the cached token and refresh token (the auth config changed)."""
        await self._redis.delete(
            TOKEN_KEY_PREFIX + str(profile_id),
            REFRESH_KEY_PREFIX + str(profile_id),
            FAILURE_KEY_PREFIX + str(profile_id),
        )

    # ----- one refresh at a time -----

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
        seen = await self._read_token(profile.id)
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

        if seen is not None and good(seen):
            return seen.access_token, False
        lock_key = LOCK_KEY_PREFIX + str(profile.id)
        owner = secrets.token_hex(16)
        deadline = time.monotonic() + self.wait_timeout_s
        while True:
            # The lock must outlive the slowest fetch (every attempt timing
            # out, plus the waits between them), or a second process would
            # refresh at the same time and spend a rotating refresh token twice.
            lock_ttl_s = max(
                self.lock_ttl_s, TOKEN_ATTEMPTS * (profile.timeout_s + TOKEN_MAX_RETRY_AFTER_S + 5)
            )
            if await self._redis.set(lock_key, owner, nx=True, px=int(lock_ttl_s * 1000)):
                try:
                    current = await self._read_token(profile.id)
                    if current is not None and good(current):
                        return current.access_token, False
                    return await self._fetch(profile), True
                finally:
                    await self._redis.eval(_RELEASE_SCRIPT, 1, lock_key, owner)
            # Someone else is renewing it.
            if (
                stale_ok
                and not force
                and seen is not None
                and time.time() < seen.usable_until(fraction)
            ):
                return seen.access_token, False
            while True:
                await asyncio.sleep(POLL_INTERVAL_S)
                current = await self._read_token(profile.id)
                if current is not None and good(current):
                    return current.access_token, False
                failure = await self._read_failure(profile.id)
                if failure is not None and failure.get("at", 0) >= started:
                    raise _failed(
                        str(failure.get("reason", "token refresh failed")),
                        profile=profile,
                        status_code=failure.get("status_code"),
                    )
                if time.monotonic() >= deadline:
                    raise _failed(
                        f"no new token after waiting {self.wait_timeout_s:g} s for another "
                        "process to refresh it",
                        profile=profile,
                    )
                if not await self._redis.exists(lock_key):
                    break  # the other renewal ended without a fresh token: try ourselves

    async def _fetch(self, profile: ResolvedProfile) -> str:
        """Ask the token endpoint (the caller holds the lock), cache the
        token, keep a rotated refresh token, record the state."""
        await self._record(profile.id, TokenStatus.REFRESHING, None, None)
        refresh_token: str | None = None
        obtained_at = time.time()
        try:
            if profile.auth_kind == AuthKind.OAUTH2_REFRESH_TOKEN:
                refresh_token = await self._current_refresh_token(profile)
            grant = await self._request_grant(profile, refresh_token)
        except TokenRefreshFailed as error:
            reason = str(error.details.get("reason") or error.message)
            log.warning("oauth2_refresh_failed", profile_id=profile.id, reason=reason)
            await self._record(profile.id, TokenStatus.FAILED, None, reason)
            await self._write_failure(profile.id, reason, error.details.get("status_code"))
            raise
        if (
            refresh_token is not None
            and grant.refresh_token is not None
            and grant.refresh_token != refresh_token
        ):
            await self._rotate(profile, old=refresh_token, new=grant.refresh_token)
        token = _CachedToken(
            access_token=grant.access_token,
            obtained_at=obtained_at,
            expires_at=obtained_at + grant.expires_in,
        )
        await self._write_token(profile.id, token)
        await self._record(profile.id, TokenStatus.VALID, _utc(token.expires_at), None)
        log.info("oauth2_token_refreshed", profile_id=profile.id, expires_in_s=grant.expires_in)
        return token.access_token

    async def _request_grant(self, profile: ResolvedProfile, refresh_token: str | None) -> _Grant:
        if refresh_token and refresh_token != profile.auth.get("refresh_token"):
            # The token sent is a rotated one: errors must mask that one.
            profile = dataclasses.replace(
                profile, auth={**profile.auth, "refresh_token": refresh_token}
            )
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
        return _parse_grant(response, profile)

    # ----- refresh tokens -----

    async def _current_refresh_token(self, profile: ResolvedProfile) -> str | None:
        configured = profile.auth.get("refresh_token") or None
        saved = await self._read_refresh(profile.id)
        if saved is None:
            return configured
        if (
            configured is None
            or configured == saved.refresh_token
            or _digest(configured) in saved.superseded
        ):
            return saved.refresh_token
        return configured  # not one we replaced: a new token from the user

    async def _rotate(self, profile: ResolvedProfile, *, old: str, new: str) -> None:
        saved = await self._read_refresh(profile.id)
        superseded = list(saved.superseded if saved else ())
        if saved is not None and saved.refresh_token != old:
            superseded.append(_digest(saved.refresh_token))
        superseded.append(_digest(old))
        body = json.dumps({"refresh_token": new, "superseded": superseded[-MAX_SUPERSEDED:]})
        await self._redis.set(
            REFRESH_KEY_PREFIX + str(profile.id), fernet_for(FERNET_PURPOSE).encrypt(body.encode())
        )
        try:
            await self._store.store_refresh_token(profile.id, new)
        except Exception as error:  # Redis holds it; the next rotation tries again.
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

    async def _read_token(self, profile_id: int) -> _CachedToken | None:
        key = TOKEN_KEY_PREFIX + str(profile_id)
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

    async def _write_token(self, profile_id: int, token: _CachedToken) -> None:
        body = json.dumps(
            {
                "access_token": token.access_token,
                "expires_at": token.expires_at,
                "obtained_at": token.obtained_at,
            }
        )
        ttl_ms = max(1, int((token.expires_at - time.time()) * 1000))
        await self._redis.set(
            TOKEN_KEY_PREFIX + str(profile_id),
            fernet_for(FERNET_PURPOSE).encrypt(body.encode()),
            px=ttl_ms,
        )

    async def _read_refresh(self, profile_id: int) -> _SavedRefreshToken | None:
        key = REFRESH_KEY_PREFIX + str(profile_id)
        value = self._decrypt(await self._redis.get(key), key)
        if value is None or not isinstance(value.get("refresh_token"), str):
            return None
        return _SavedRefreshToken(
            refresh_token=value["refresh_token"],
            superseded=tuple(str(item) for item in value.get("superseded") or ()),
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
