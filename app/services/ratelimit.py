"""Slows down password guessing at sign-in (and at "change my password").

Per account: MAX_FAILURES failed tries within the last WINDOW_S (a sliding
window) lock the account for LOCK_S; each further failure within the window
locks it again. Per address: MAX_ADDRESS_FAILURES failures within the
window, whatever the emails, lock the address for LOCK_S. A locked try is
refused before the password is checked, with the same message whether the
account exists or not.

A try is admitted and counted as a failure in one atomic step, before the
password is checked, and taken back when it turns out right: so a burst of
tries in parallel gets MAX_FAILURES guesses, not one per request in flight.

Attempts live in Redis under `taskdeck:signin:` (emails only as SHA-256,
never in clear). Without Redis, or when a Redis call fails, both rules are
applied from the audit log instead (the "auth.sign_in_failed" events that
every failed try writes); that fallback counts only finished tries.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
from dataclasses import dataclass, replace
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

# Each scope (account, then address) is a pair of keys: a sorted set of
# attempts scored by Redis's clock, and a lock.
# KEYS: pairs. ARGV: window_ms, lock_ms, attempt id, then one limit a scope.
# Refuses (the longest lock in ms) while a scope is locked; else counts the
# attempt as a failure up front, so that tries made in parallel cannot all
# pass the check before any is counted, and locks a scope that reaches its
# limit. Returns 0 when admitted.
_ADMIT_SCRIPT = """
local longest = 0
for i = 1, #KEYS, 2 do
  local ttl = redis.call('PTTL', KEYS[i + 1])
  if ttl > longest then longest = ttl end
end
if longest > 0 then return longest end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS, 2 do
  local limit = tonumber(ARGV[3 + (i + 1) / 2])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - tonumber(ARGV[1]))
  redis.call('ZADD', KEYS[i], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
  if redis.call('ZCARD', KEYS[i]) >= limit then
    redis.call('SET', KEYS[i + 1], '1', 'PX', ARGV[2])
  end
end
return 0
"""

# A failure confirmed: a scope at its limit stays locked for lock_ms from
# now. KEYS: pairs. ARGV: lock_ms, then one limit a scope. Returns the counts.
_FAILED_SCRIPT = """
local counts = {}
for i = 1, #KEYS, 2 do
  local n = redis.call('ZCARD', KEYS[i])
  if n >= tonumber(ARGV[1 + (i + 1) / 2]) then
    redis.call('SET', KEYS[i + 1], '1', 'PX', ARGV[1])
  end
  counts[#counts + 1] = n
end
return counts
"""

# Not a failure after all: take the attempt back, and the lock it set.
# KEYS: pairs. ARGV: attempt id, then one limit a scope.
_TAKE_BACK_SCRIPT = """
for i = 1, #KEYS, 2 do
  redis.call('ZREM', KEYS[i], ARGV[1])
  if redis.call('ZCARD', KEYS[i]) < tonumber(ARGV[1 + (i + 1) / 2]) then
    redis.call('DEL', KEYS[i + 1])
  end
end
return 0
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


def _db_lock_remaining_s(email: str, ip: str | None) -> float:
    """Both rules from the audit log: seconds the account or the address
    stays locked (0 when neither is). Failures before the account's last
    successful sign-in do not count against it, as in Redis."""
    now = utc_now()
    window_start = now - timedelta(seconds=WINDOW_S)
    with session_scope() as session:
        since = window_start
        last_success = audit.last_sign_in_at(session=session, email=email)
        if last_success is not None and last_success > since:
            since = last_success
        rules = [(audit.count_recent_failures(session=session, email=email, since=since),
                  MAX_FAILURES)]
        if ip:
            recent = audit.count_recent_failures_from(session=session, ip=ip, since=window_start)
            rules.append((recent, MAX_ADDRESS_FAILURES))
    remaining = 0.0
    for (count, latest), limit in rules:
        if count >= limit and latest is not None:
            remaining = max(remaining, LOCK_S - (now - latest).total_seconds())
    return remaining


@dataclass(frozen=True)
class Attempt:
    """One admitted try; `counted` when Redis holds it."""

    email: str
    ip: str | None
    attempt_id: str
    counted: bool


class SignInLimiter:
    """The sign-in limits, on Redis when there is one, else on the database.

    attempt = await limiter.admit(...)   # SignInLocked while locked
    then exactly one of failed(attempt), succeeded(attempt), withdraw(attempt).
    """

    def __init__(self, redis: RedisLike | None) -> None:
        self._redis = redis

    def _scopes(self, email: str, ip: str | None) -> tuple[list[str], list[int]]:
        keys = list(account_keys(email))
        limits = [MAX_FAILURES]
        if ip:
            keys += address_keys(ip)
            limits.append(MAX_ADDRESS_FAILURES)
        return keys, limits

    async def _eval(self, step: str, script: str, keys: list[str], *args: Any) -> Any:
        """Run a script; None when Redis failed (logged)."""
        assert self._redis is not None
        try:
            return await asyncio.wait_for(
                self._redis.eval(script, len(keys), *keys, *args), REDIS_TIMEOUT_S
            )
        except Exception as error:
            log.warning("sign_in_limiter_redis_failed", step=step, error=type(error).__name__)
            return None

    async def admit(self, *, email: str, ip: str | None) -> Attempt:
        """Admit one try, or SignInLocked while the account or address is locked."""
        attempt = Attempt(email=email, ip=ip, attempt_id=secrets.token_hex(8), counted=False)
        if self._redis is not None:
            keys, limits = self._scopes(email, ip)
            remaining_ms = await self._eval(
                "admit", _ADMIT_SCRIPT, keys, WINDOW_S * 1000, LOCK_S * 1000,
                attempt.attempt_id, *limits,
            )
            if remaining_ms is not None:
                if int(remaining_ms) > 0:
                    log.info("sign_in_refused_locked", ip=ip)
                    raise _locked(int(remaining_ms) / 1000)
                return replace(attempt, counted=True)
        remaining_s = await asyncio.to_thread(_db_lock_remaining_s, email, ip)
        if remaining_s > 0:
            log.info("sign_in_refused_locked", ip=ip, limiter="database")
            raise _locked(remaining_s)
        return attempt

    async def failed(self, attempt: Attempt) -> None:
        """The try was wrong: it stays counted; a scope at its limit locks
        for LOCK_S from now. (Without Redis the audit event is the record.)"""
        if not attempt.counted or self._redis is None:
            return
        keys, limits = self._scopes(attempt.email, attempt.ip)
        counts = await self._eval("failed", _FAILED_SCRIPT, keys, LOCK_S * 1000, *limits)
        if counts is None:
            return
        if int(counts[0]) == MAX_FAILURES:
            log.warning("sign_in_account_locked", ip=attempt.ip, lock_s=LOCK_S)
        if len(counts) > 1 and int(counts[1]) == MAX_ADDRESS_FAILURES:
            log.warning("sign_in_address_locked", ip=attempt.ip, lock_s=LOCK_S)

    async def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the account's failures are forgotten and
        the try no longer counts against the address."""
        if not attempt.counted or self._redis is None:
            return
        try:
            await asyncio.wait_for(
                self._redis.delete(*account_keys(attempt.email)), REDIS_TIMEOUT_S
            )
        except Exception as error:
            log.warning("sign_in_limiter_redis_failed", step="reset", error=type(error).__name__)
        if attempt.ip:
            keys, limits = address_keys(attempt.ip), [MAX_ADDRESS_FAILURES]
            await self._eval("succeeded", _TAKE_BACK_SCRIPT, list(keys), attempt.attempt_id,
                             *limits)

    async def withdraw(self, attempt: Attempt) -> None:
        """The try was no guess (say, the form was refused before the
        password was checked): take it back everywhere."""
        if not attempt.counted or self._redis is None:
            return
        keys, limits = self._scopes(attempt.email, attempt.ip)
        await self._eval("withdraw", _TAKE_BACK_SCRIPT, keys, attempt.attempt_id, *limits)
