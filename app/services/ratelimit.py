"""Slows down password guessing at sign-in.

Per account: MAX_FAILURES failed sign-ins within WINDOW_S lock the account
for LOCK_S; each further failure within the window locks it again. Per
address: MAX_ADDRESS_FAILURES failures within the window, whatever the
emails, lock the address for LOCK_S. A locked sign-in is refused before the
password is checked, with the same message whether the account exists or not.

Counters live in Redis under `taskdeck:signin:` (emails only as SHA-256, never
in clear). Without Redis, or when a Redis call fails, the account rule is
applied from the audit log instead (the "auth.sign_in_failed" events that
every failed sign-in writes); the address rule then needs Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from datetime import timedelta
from typing import Any, Protocol

import structlog

from app.db import session_scope
from app.errors import SignInLocked
from app.models.common import utc_now
from app.models.users import MAX_IP_CHARS
from app.services import audit

KEY_PREFIX = "taskdeck:signin:"
MAX_FAILURES = 5
MAX_ADDRESS_FAILURES = 20
WINDOW_S = 900
LOCK_S = 60
# A healthy Redis answers in milliseconds; a sick one must not hold a sign-in
# for the client's whole retry policy (redis-py retries with backoff).
REDIS_TIMEOUT_S = 1.0

# KEYS: account counter, account lock[, address counter, address lock]
# ARGV: window_s, lock_s, max account failures, max address failures
# A counter starts its window on its first failure; reaching the limit, or
# failing while locked, (re)sets the lock. Returns the counters.
_RECORD_SCRIPT = """
local counts = {}
for i = 1, #KEYS, 2 do
  local limit = tonumber(i == 1 and ARGV[3] or ARGV[4])
  local n = redis.call('INCR', KEYS[i])
  if n == 1 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
  if n >= limit or redis.call('EXISTS', KEYS[i + 1]) == 1 then
    redis.call('SET', KEYS[i + 1], '1', 'EX', ARGV[2])
  end
  counts[#counts + 1] = n
end
return counts
"""

# KEYS: the locks. Returns the longest remaining lock in ms (<= 0: none).
_CHECK_SCRIPT = """
local longest = 0
for _, key in ipairs(KEYS) do
  local ttl = redis.call('PTTL', key)
  if ttl > longest then longest = ttl end
end
return longest
"""

log = structlog.get_logger(__name__)


class RedisLike(Protocol):
    async def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any: ...

    async def delete(self, *names: Any) -> Any: ...


def _account_id(email: str) -> str:
    return hashlib.sha256(audit.email_key(email).encode("utf-8")).hexdigest()


def account_keys(email: str) -> tuple[str, str]:
    """(failure counter, lock) keys of the account named by `email`."""
    account = _account_id(email)
    return f"{KEY_PREFIX}fail:account:{account}", f"{KEY_PREFIX}lock:account:{account}"


def address_keys(ip: str) -> tuple[str, str]:
    """(failure counter, lock) keys of a client address."""
    address = ip[:MAX_IP_CHARS]
    return f"{KEY_PREFIX}fail:address:{address}", f"{KEY_PREFIX}lock:address:{address}"


def _locked(retry_after_s: float) -> SignInLocked:
    return SignInLocked(details={"retry_after_s": max(1, math.ceil(retry_after_s))})


def _db_lock_remaining_s(email: str) -> float:
    """The account rule from the audit log: seconds the account stays locked
    (0 when it is not). Failures before the last successful sign-in do not
    count, as a successful sign-in resets the Redis counter."""
    now = utc_now()
    since = now - timedelta(seconds=WINDOW_S)
    with session_scope() as session:
        last_success = audit.last_sign_in_at(session=session, email=email)
        if last_success is not None and last_success > since:
            since = last_success
        count, latest = audit.count_recent_failures(session=session, email=email, since=since)
    if count < MAX_FAILURES or latest is None:
        return 0.0
    return max(0.0, LOCK_S - (now - latest).total_seconds())


class SignInLimiter:
    """The sign-in limits, on Redis when there is one, else on the database."""

    def __init__(self, redis: RedisLike | None) -> None:
        self._redis = redis

    async def check(self, *, email: str, ip: str | None) -> None:
        """SignInLocked while the account or the address is locked."""
        if self._redis is not None:
            keys = [account_keys(email)[1]] + ([address_keys(ip)[1]] if ip else [])
            try:
                remaining_ms = int(
                    await asyncio.wait_for(
                        self._redis.eval(_CHECK_SCRIPT, len(keys), *keys), REDIS_TIMEOUT_S
                    )
                )
            except Exception as error:
                log.warning(
                    "sign_in_limiter_redis_failed", step="check", error=type(error).__name__
                )
            else:
                if remaining_ms > 0:
                    log.info("sign_in_refused_locked", ip=ip)
                    raise _locked(remaining_ms / 1000)
                return
        remaining_s = await asyncio.to_thread(_db_lock_remaining_s, email)
        if remaining_s > 0:
            log.info("sign_in_refused_locked", ip=ip, limiter="database")
            raise _locked(remaining_s)

    async def record_failure(self, *, email: str, ip: str | None) -> None:
        """Count a failed sign-in against the account and the address.
        (Without Redis the audit event of the failure is the record.)"""
        if self._redis is None:
            return
        keys = list(account_keys(email)) + (list(address_keys(ip)) if ip else [])
        try:
            counts = await asyncio.wait_for(
                self._redis.eval(
                    _RECORD_SCRIPT,
                    len(keys),
                    *keys,
                    WINDOW_S,
                    LOCK_S,
                    MAX_FAILURES,
                    MAX_ADDRESS_FAILURES,
                ),
                REDIS_TIMEOUT_S,
            )
        except Exception as error:
            log.warning("sign_in_limiter_redis_failed", step="record", error=type(error).__name__)
            return
        counts = [int(n) for n in counts]
        if counts[0] == MAX_FAILURES:
            log.warning("sign_in_account_locked", ip=ip, lock_s=LOCK_S)
        if len(counts) > 1 and counts[1] == MAX_ADDRESS_FAILURES:
            log.warning("sign_in_address_locked", ip=ip, lock_s=LOCK_S)

    async def reset(self, *, email: str) -> None:
        """Forget the account's failures (after a successful sign-in)."""
        if self._redis is None:
            return
        try:
            await asyncio.wait_for(self._redis.delete(*account_keys(email)), REDIS_TIMEOUT_S)
        except Exception as error:
            log.warning("sign_in_limiter_redis_failed", step="reset", error=type(error).__name__)
