"""The one outbound HTTP client: every request Taskdeck sends to a profile's
API (tasks, "test connection") goes through `send`, nothing else builds its
own client.

One shared `httpx.AsyncClient` per event loop pools the connections; TLS
verification is a per-client setting in httpx, so profiles that turn it off
get a second shared client.

A request is built from the profile: its base URL joined with `path` (a
relative path only: an absolute URL could carry the profile's credentials to
another host), its headers, then the call's headers, then the credentials of
the auth kind, a `User-Agent: Taskdeck/<version>` and, when given, an
`Idempotency-Key`.

Retries (tenacity, at most `max_attempts`, Retry-After honoured up to 60 s,
else exponential backoff with jitter) cover transient failures only, and
only when repeating the request is safe:
- the connection could not be opened (ConnectError, ConnectTimeout,
  PoolTimeout): the request never left, so every method is retried;
- the request left but the answer did not come back whole (ReadTimeout,
  WriteTimeout, ReadError, WriteError, RemoteProtocolError) or the server
  answered 429/502/503/504: retried for idempotent methods (GET, HEAD,
  OPTIONS, PUT, DELETE, TRACE) and for any method sent with an
  Idempotency-Key. A POST or PATCH without a key gets the 503 back as is:
  the server may have acted on it.
A 401 on an OAuth2 profile refreshes the token once (only if the rejected
token is still the cached one, so concurrent 401s cause one refresh) and
repeats the request once; a second 401 is returned to the caller.

`send(..., stream=True)` returns as soon as the headers are in and leaves
the body unread (as httpx's `send(stream=True)`): the caller reads what it
needs and must `aclose()` the response, or its connection stays out of the
pool. The responses `send` drops on the way (one answered 503 that is
retried, a rejected 401) it closes itself.

Log lines and error messages carry the URL without its query string (an API
key may ride there) and never a header.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import time
from contextlib import aclosing
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt, wait_random_exponential

from app.errors import OutboundError
from app.models.profiles import ALL_SECRET_FIELDS, OAUTH2_KINDS, AuthKind, ResolvedProfile
from app.redaction import basic_credential, scrub_secrets

if TYPE_CHECKING:
    from app.services.oauth2 import TokenManager

__all__ = [
    "RETRY_STATUSES",
    "USER_AGENT",
    "build_url",
    "close_http_client",
    "get_http_client",
    "loggable_url",
    "retry_after_s",
    "send",
    "test_connection",
]

log = structlog.get_logger(__name__)

LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30)
RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# The request never reached the server: safe to repeat whatever the method.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# The server may have received (and acted on) the request.
MAYBE_PROCESSED = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)
MAX_RETRY_AFTER_S = 60.0
BACKOFF_MULTIPLIER_S = 0.2
MAX_BACKOFF_S = 10.0
EXCERPT_CHARS = 300
# How much of a body "test connection" reads: masked whole, then cut to
# EXCERPT_CHARS. Far more than EXCERPT_CHARS (at most 4 bytes each in UTF-8)
# plus any secret in its longest echoed form (\uXXXX, %XX%XX: 6 to 12
# characters per character), so no secret starting in the excerpt crosses
# the end of what was read. Masking 64 KiB takes about 10 ms.
EXCERPT_READ_BYTES = 64 * 1024
_ABSOLUTE = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.-]*:)?[/\\]{2}")


def _taskdeck_version() -> str:
    try:
        return version("taskdeck")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0"


USER_AGENT = f"Taskdeck/{_taskdeck_version()}"

# ----- the shared clients -----

_clients: dict[bool, httpx.AsyncClient] = {}
_clients_loop: asyncio.AbstractEventLoop | None = None


def get_http_client(*, verify_tls: bool = True) -> httpx.AsyncClient:
    """The process-wide client of the running event loop (one per TLS mode)."""
    global _clients_loop
    loop = asyncio.get_running_loop()
    if _clients_loop is not loop:
        # Connections belong to the loop that opened them; a new loop starts afresh.
        _clients.clear()
        _clients_loop = loop
    client = _clients.get(verify_tls)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(verify=verify_tls, limits=LIMITS, follow_redirects=False)
        _clients[verify_tls] = client
    return client


async def close_http_client() -> None:
    """Close the shared clients (on shutdown, and between tests)."""
    global _clients_loop
    current = asyncio.get_running_loop()
    clients = list(_clients.values()) if _clients_loop is current else []
    _clients.clear()
    _clients_loop = None
    for client in clients:
        await client.aclose()


# ----- URLs -----


def build_url(base_url: str, path: str = "") -> httpx.URL:
    """`base_url` joined with a relative `path`: "/users" on
    "https://h/api/v1" is "https://h/api/v1/users". An absolute or
    scheme-relative URL is refused, so credentials never leave the host."""
    base = httpx.URL(base_url)
    if not path:
        return base
    if _ABSOLUTE.match(path):
        raise OutboundError(
            "The path must be relative to the profile's base URL, not a full URL",
            details={"host": base.host},
        )
    rel_path, _, rel_query = path.partition("#")[0].partition("?")
    trunk = str(base.copy_with(query=None, fragment=None)).rstrip("/")
    url = httpx.URL(f"{trunk}/{rel_path.lstrip('/')}")
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
        raise OutboundError(
            "The path must stay on the profile's host", details={"host": base.host}
        )
    url = url.copy_with(query=base.query or None)
    if rel_query:
        url = url.copy_merge_params(httpx.QueryParams(rel_query))
    return url


def loggable_url(url: httpx.URL | str) -> str:
    """The URL without user info, query string or fragment: safe to log."""
    parsed = httpx.URL(url) if isinstance(url, str) else url
    return str(parsed.copy_with(username=None, password=None, query=None, fragment=None))


def retry_after_s(response: httpx.Response, *, cap_s: float) -> float | None:
    """The wait a Retry-After header asks for (seconds or an HTTP date),
    capped at `cap_s`; None without a readable header."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        delay = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = (when - datetime.now(UTC)).total_seconds()
    if delay != delay:  # NaN
        return None
    return min(max(delay, 0.0), cap_s)


# ----- requests -----


def _prepare(
    client: httpx.AsyncClient,
    profile: ResolvedProfile,
    method: str,
    url: httpx.URL,
    *,
    token: str | None,
    query: dict[str, Any] | None,
    headers: dict[str, str] | None,
    json: Any,
    content: bytes | None,
    idempotency_key: str | None,
) -> tuple[httpx.Request, httpx.Auth | None]:
    # Later sources win; header names compare case-insensitively in httpx.Headers.
    final = httpx.Headers({"User-Agent": USER_AGENT})
    for source in (profile.headers or {}, headers or {}):
        for name, value in source.items():
            final[name] = value
    # httpx replaces the URL's query with `params`: merge them here instead.
    params = url.params.merge(query or {})
    auth: httpx.Auth | None = None
    kind = profile.auth_kind
    settings = profile.auth
    if kind == AuthKind.BEARER:
        final["Authorization"] = f"Bearer {settings['token']}"
    elif kind == AuthKind.BASIC:
        auth = httpx.BasicAuth(settings.get("username") or "", settings.get("password") or "")
    elif kind == AuthKind.API_KEY:
        if settings.get("header"):
            final[settings["header"]] = settings["value"]
        elif settings.get("param"):
            params = params.set(settings["param"], settings["value"])
        else:
            raise OutboundError(
                "The API key profile names neither a header nor a query parameter",
                details={"profile_id": profile.id},
            )
    elif kind in OAUTH2_KINDS:
        final["Authorization"] = f"Bearer {token}"
    if idempotency_key is not None:
        final["Idempotency-Key"] = idempotency_key
    request = client.build_request(
        method,
        url.copy_with(query=None),
        params=params,
        headers=final,
        json=json,
        content=content,
        timeout=profile.timeout_s,
    )
    return request, auth


def _last_outcome(state: RetryCallState) -> Any:
    """After the last attempt: the last response, or its exception re-raised."""
    assert state.outcome is not None
    return state.outcome.result()


def _retry_predicate(safe_to_repeat: bool) -> Any:
    def should_retry(state: RetryCallState) -> bool:
        outcome = state.outcome
        assert outcome is not None
        if outcome.failed:
            error = outcome.exception()
            if isinstance(error, NEVER_SENT):
                return True
            return safe_to_repeat and isinstance(error, MAYBE_PROCESSED)
        return safe_to_repeat and outcome.result().status_code in RETRY_STATUSES

    return should_retry


_backoff = wait_random_exponential(multiplier=BACKOFF_MULTIPLIER_S, max=MAX_BACKOFF_S)


def _wait(state: RetryCallState) -> float:
    outcome = state.outcome
    if outcome is not None and not outcome.failed:
        delay = retry_after_s(outcome.result(), cap_s=MAX_RETRY_AFTER_S)
        if delay is not None:
            return delay
    return _backoff(state)


def _before_retry(method: str, where: str) -> Any:
    """Log the retry, and close the response it drops (a streamed one would
    hold its connection otherwise; closing a read one does nothing)."""

    async def before_sleep(state: RetryCallState) -> None:
        outcome = state.outcome
        assert outcome is not None
        if outcome.failed:
            reason = type(outcome.exception()).__name__
        else:
            dropped: httpx.Response = outcome.result()
            reason = f"status {dropped.status_code}"
            await dropped.aclose()
        wait_s = state.next_action.sleep if state.next_action else None
        log.info(
            "outbound_retry",
            method=method,
            url=where,
            attempt=state.attempt_number,
            reason=reason,
            wait_s=round(wait_s, 3) if wait_s is not None else None,
        )

    return before_sleep


async def send(
    profile: ResolvedProfile,
    method: str,
    path: str = "",
    *,
    tokens: TokenManager | None,
    query: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    json: Any = None,
    content: bytes | None = None,
    idempotency_key: str | None = None,
    max_attempts: int = 3,
    client: httpx.AsyncClient | None = None,
    stream: bool = False,
) -> httpx.Response:
    """Send one request to the profile's API, with retries for transient
    failures (see the module docstring). Returns the last response, also
    4xx/5xx; raises OutboundError when no response came at all, and
    TokenRefreshFailed when an OAuth2 token cannot be had. `client` replaces
    the shared client (tests). With `stream`, the body is left unread and
    the caller must `aclose()` the response."""
    method = method.upper()
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if json is not None and content is not None:
        raise ValueError("give json or content, not both")
    url = build_url(profile.base_url, path)
    where = loggable_url(url)
    oauth2 = profile.auth_kind in OAUTH2_KINDS
    if oauth2 and tokens is None:
        raise ValueError(f"profile {profile.id} uses OAuth2: send() needs a TokenManager")
    http = client or get_http_client(verify_tls=profile.verify_tls)
    safe_to_repeat = method in IDEMPOTENT_METHODS or idempotency_key is not None

    async def attempt(token: str | None) -> httpx.Response:
        request, auth = _prepare(
            http,
            profile,
            method,
            url,
            token=token,
            query=query,
            headers=headers,
            json=json,
            content=content,
            idempotency_key=idempotency_key,
        )
        return await http.send(request, auth=auth, stream=stream)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(max_attempts),
        wait=_wait,
        retry=_retry_predicate(safe_to_repeat),
        retry_error_callback=_last_outcome,
        before_sleep=_before_retry(method, where),
    )
    started = time.perf_counter()
    try:
        token = await tokens.get_token(profile) if oauth2 and tokens else None
        response: httpx.Response = await retrying(attempt, token)
        if response.status_code == 401 and oauth2 and tokens:
            log.info("outbound_token_rejected", method=method, url=where, profile_id=profile.id)
            await response.aclose()
            token = await tokens.refresh(profile, force=True, rejected_token=token)
            response = await retrying(attempt, token)
    except httpx.HTTPError as error:
        name = type(error).__name__
        log.warning("outbound_failed", method=method, url=where, error=name)
        raise OutboundError(
            f"{method} {where} failed: {name}",
            details={"host": url.host, "error": name},
        ) from error
    log.debug(
        "outbound_response",
        method=method,
        url=where,
        status=response.status_code,
        elapsed_ms=round((time.perf_counter() - started) * 1000),
    )
    return response


async def test_connection(
    profile: ResolvedProfile,
    *,
    tokens: TokenManager | None,
    path: str = "",
    client: httpx.AsyncClient | None = None,
) -> dict[str, Any]:
    """GET the profile's base URL (or `path`) once and describe the outcome:
    {"ok", "status_code", "latency_ms", "excerpt", "error"}. Never raises for
    network or token failures: they go to "error" with ok False.

    latency_ms is the time until the response headers came (getting the
    token included), not until the whole body did: only the first
    EXCERPT_READ_BYTES of the body are read. A longer body is left unread and
    its connection dropped, not returned to the pool."""
    started = time.perf_counter()

    def elapsed_ms() -> int:
        return round((time.perf_counter() - started) * 1000)

    try:
        response = await send(
            profile, "GET", path, tokens=tokens, max_attempts=1, client=client, stream=True
        )
    except OutboundError as error:
        return {
            "ok": False,
            "status_code": None,
            "latency_ms": elapsed_ms(),
            "excerpt": "",
            "error": error.message,
        }
    except RedisError as error:
        return {
            "ok": False,
            "status_code": None,
            "latency_ms": elapsed_ms(),
            "excerpt": "",
            "error": f"The token cache (Redis) is unavailable: {type(error).__name__}",
        }
    latency_ms = elapsed_ms()
    status = response.status_code
    ok = 200 <= status < 400
    error_text = None if ok else f"The API answered {status} {response.reason_phrase}".rstrip()
    try:
        body, complete = await _read_prefix(response, EXCERPT_READ_BYTES)
    except httpx.HTTPError as error:
        # Headers came, the body broke off (a read timeout, a dropped connection).
        body, complete = b"", False
        ok = False
        name = type(error).__name__
        error_text = f"The API answered {status}, then the body could not be read: {name}"
        log.warning(
            "outbound_body_failed", method="GET", url=loggable_url(response.url), error=name
        )
    finally:
        await response.aclose()
    return {
        "ok": ok,
        "status_code": status,
        "latency_ms": latency_ms,
        "excerpt": _excerpt(body, complete, response, profile),
        "error": error_text,
    }


async def _read_prefix(response: httpx.Response, limit_bytes: int) -> tuple[bytes, bool]:
    """The first `limit_bytes` of the (decompressed) body, and whether that
    is all of it. Stops reading there; the caller closes the response."""
    chunks: list[bytes] = []
    size = 0
    async with aclosing(response.aiter_bytes()) as body:
        async for chunk in body:
            chunks.append(chunk)
            size += len(chunk)
            if size > limit_bytes:
                return b"".join(chunks)[:limit_bytes], False
    return b"".join(chunks), True


def _excerpt(
    body: bytes, complete: bool, response: httpx.Response, profile: ResolvedProfile
) -> str:
    """The start of `body` (the first bytes of the response) with credentials
    masked. ALL of `body` is masked before the cut to EXCERPT_CHARS: a secret
    crossing the cut would otherwise keep its prefix."""
    try:
        decoder = codecs.getincrementaldecoder(response.encoding or "utf-8")(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # A cut body may end inside a character: an incomplete one is left out.
    text = decoder.decode(body, final=complete)
    return scrub_secrets(text, _credentials_sent(profile, response.request), limit=EXCERPT_CHARS)


def _credentials_sent(profile: ResolvedProfile, request: httpx.Request) -> list[str]:
    """What an API that echoes the request must not show back to whoever
    runs the test: every secret of the profile, the Basic credential built
    from it, and the credentials actually sent (the Authorization header,
    an OAuth2 access token). `scrub_secrets` adds their encoded forms (an
    echoed ?api_key= comes back URL-encoded)."""
    auth = profile.auth
    sent = [value for field in ALL_SECRET_FIELDS if isinstance(value := auth.get(field), str)]
    if profile.auth_kind == AuthKind.BASIC:
        sent.append(basic_credential(auth.get("username") or "", auth.get("password") or ""))
    authorization = request.headers.get("authorization", "")
    sent += [authorization, authorization.partition(" ")[2]]
    return sent


# Not a pytest test, whatever its name says.
test_connection.__test__ = False  # type: ignore[attr-defined]
