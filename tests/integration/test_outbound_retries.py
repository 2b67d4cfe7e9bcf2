"""app.services.outbound against a real HTTP server on loopback: which
failures are retried and how, what reaches the server, what an error says,
and what "test connection" answers."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from app.errors import OutboundError
from app.models.profiles import AuthKind, ResolvedProfile
from app.services import outbound
from tests.integration.oauth_server import OAuthServer, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[OAuthServer]:
    running = OAuthServer().start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
async def shared_clients() -> AsyncIterator[None]:
    yield
    await outbound.close_http_client()


def _profile(
    base_url: str,
    kind: AuthKind = AuthKind.NONE,
    *,
    timeout_s: float = 5,
    **auth: Any,
) -> ResolvedProfile:
    return ResolvedProfile(
        id=1,
        name="api",
        base_url=base_url,
        headers={"X-Team": "ops"},
        timeout_s=timeout_s,
        verify_tls=True,
        auth_kind=kind,
        auth=auth,
    )


async def test_503_with_retry_after_is_retried_after_the_wait(server: OAuthServer) -> None:
    server.flaky_failures = 2
    started = time.monotonic()

    response = await outbound.send(_profile(server.url + "/api/v1"), "GET", "/flaky", tokens=None)

    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert [seen.status for seen in server.seen("/api/v1/flaky")] == [503, 503, 200]
    assert 1.8 <= elapsed < 10  # Retry-After: 1, twice


async def test_503_is_returned_when_attempts_run_out(server: OAuthServer) -> None:
    server.flaky_failures = 5

    response = await outbound.send(
        _profile(server.url), "GET", "/flaky", tokens=None, max_attempts=2
    )

    assert response.status_code == 503
    assert len(server.seen("/flaky")) == 2


async def test_timeouts_are_retried_then_raise_outbound_error(server: OAuthServer) -> None:
    server.slow_s = 1.5
    profile = _profile(server.url, timeout_s=0.3)

    with pytest.raises(OutboundError) as caught:
        await outbound.send(profile, "GET", "/slow", tokens=None, max_attempts=2)

    assert "ReadTimeout" in caught.value.message
    assert "127.0.0.1" in caught.value.message
    assert caught.value.http_status == 502
    assert len(server.seen("/slow")) == 2


async def test_post_without_idempotency_key_is_not_repeated_after_a_503(
    server: OAuthServer,
) -> None:
    server.flaky_failures = 1

    response = await outbound.send(_profile(server.url), "POST", "/flaky", tokens=None, json={})

    assert response.status_code == 503
    assert len(server.seen("/flaky")) == 1


async def test_post_with_idempotency_key_is_repeated_with_the_same_key(
    server: OAuthServer,
) -> None:
    server.flaky_failures = 1

    response = await outbound.send(
        _profile(server.url),
        "POST",
        "/flaky",
        tokens=None,
        json={"n": 1},
        idempotency_key="run-42",
    )

    assert response.status_code == 200
    seen = server.seen("/flaky")
    assert [request.headers.get("idempotency-key") for request in seen] == ["run-42", "run-42"]


async def test_path_is_joined_under_the_base_path_with_query(server: OAuthServer) -> None:
    response = await outbound.send(
        _profile(server.url + "/api/v1/"),
        "GET",
        "/users?sort=name",
        tokens=None,
        query={"page": 2},
    )

    body = response.json()
    assert body["path"] == "/api/v1/users"
    assert body["query"] == {"sort": ["name"], "page": ["2"]}
    headers = server.seen("/api/v1/users")[0].headers
    assert headers["x-team"] == "ops"
    assert headers["user-agent"].startswith("Taskdeck/")


async def test_absolute_url_is_refused_before_any_request(server: OAuthServer) -> None:
    profile = _profile(server.url, AuthKind.BEARER, token="do-not-leak")

    with pytest.raises(OutboundError):
        await outbound.send(
            profile, "GET", f"http://127.0.0.1:{server.port}/elsewhere", tokens=None
        )

    assert server.requests == []


async def test_api_key_in_the_query_reaches_the_server_but_no_error_or_log(
    server: OAuthServer,
) -> None:
    secret = "SUPERSECRETKEY-123"
    reachable = _profile(server.url, AuthKind.API_KEY, header=None, param="api_key", value=secret)
    await outbound.send(reachable, "GET", "/echo", tokens=None)
    assert server.seen("/echo")[0].query == {"api_key": [secret]}

    unreachable = _profile(
        f"http://127.0.0.1:{free_port()}/api",
        AuthKind.API_KEY,
        header=None,
        param="api_key",
        value=secret,
    )
    with capture_logs() as logged, pytest.raises(OutboundError) as caught:
        await outbound.send(unreachable, "GET", "/items?x=1", tokens=None, max_attempts=2)

    error = caught.value
    assert "ConnectError" in error.message
    assert secret not in error.message
    assert secret not in repr(error.details)
    assert secret not in str(error)
    assert secret not in repr(logged)


async def test_test_connection_success(server: OAuthServer) -> None:
    profile = _profile(server.url, AuthKind.BEARER, token=server.issue_access_token())

    result = await outbound.test_connection(profile, tokens=None, path="/api/ping")

    assert set(result) == {"ok", "status_code", "latency_ms", "excerpt", "error"}
    assert result["ok"] is True
    assert result["status_code"] == 200
    assert isinstance(result["latency_ms"], int) and result["latency_ms"] >= 0
    assert "pong" in result["excerpt"]
    assert result["error"] is None


async def test_test_connection_401(server: OAuthServer) -> None:
    profile = _profile(server.url, AuthKind.BEARER, token="not-a-valid-token")

    result = await outbound.test_connection(profile, tokens=None, path="/api/ping")

    assert result["ok"] is False
    assert result["status_code"] == 401
    assert "invalid_token" in result["excerpt"]
    assert "401" in result["error"]
    assert "not-a-valid-token" not in repr(result)


async def test_test_connection_unreachable_port() -> None:
    profile = _profile(f"http://127.0.0.1:{free_port()}", AuthKind.BEARER, token="t0ken-value")

    result = await outbound.test_connection(profile, tokens=None)

    assert result["ok"] is False
    assert result["status_code"] is None
    assert result["excerpt"] == ""
    assert "ConnectError" in result["error"]
    assert "127.0.0.1" in result["error"]
    assert "t0ken-value" not in repr(result)


async def test_excerpt_is_at_most_300_characters(server: OAuthServer) -> None:
    result = await outbound.test_connection(
        _profile(server.url), tokens=None, path="/" + "x" * 400
    )

    assert result["ok"] is True
    assert len(result["excerpt"]) == 300


# ----- "test connection" reads a bounded prefix of a large body -----

BIG_BODY_BYTES = 32 * 1024 * 1024  # more than loopback socket buffers hold
CHUNK_BYTES = 64 * 1024


class BigBodyServer:
    """Answers every GET with BIG_BODY_BYTES of text that starts by echoing
    the Authorization header (once near the start, once across the 300th
    character), and records, per request, the body bytes it managed to send
    before the client hung up."""

    def __init__(self) -> None:
        self.sent_bytes: list[int] = []
        self.done = threading.Semaphore(0)  # released when a handler stops sending
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                sent = 0
                head = f"echo {self.headers.get('Authorization', '')} ".encode()
                head = head.ljust(290, b"x") + self.headers.get("Authorization", "").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(BIG_BODY_BYTES))
                self.end_headers()
                filler = b"y" * CHUNK_BYTES
                try:
                    self.wfile.write(head)
                    sent += len(head)
                    while sent < BIG_BODY_BYTES:
                        chunk = filler[: BIG_BODY_BYTES - sent]
                        self.wfile.write(chunk)
                        sent += len(chunk)
                except (BrokenPipeError, ConnectionResetError):  # the client closed
                    self.close_connection = True
                finally:
                    server.sent_bytes.append(sent)
                    server.done.release()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> BigBodyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"


class CountingStream(httpx.AsyncByteStream):
    """A response body as it comes off the connection: counts the bytes
    the client pulled and whether it was closed."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner
        self.bytes_read = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self.bytes_read += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        self.closed = True
        await self._inner.aclose()


class CountingTransport(httpx.AsyncBaseTransport):
    """The real HTTP transport (and pool), with each body wrapped in a
    CountingStream."""

    def __init__(self, *, max_connections: int = 10) -> None:
        self._inner = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=max_connections)
        )
        self.streams: list[CountingStream] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        stream = CountingStream(response.stream)
        self.streams.append(stream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=stream,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_test_connection_reads_a_masked_prefix_of_a_large_body() -> None:
    token = "tok-" + "Zq9" * 8
    transport = CountingTransport()
    with BigBodyServer() as server:
        async with httpx.AsyncClient(transport=transport) as client:
            result = await outbound.test_connection(
                _profile(server.url, AuthKind.BEARER, token=token), tokens=None, client=client
            )
        assert server.done.acquire(timeout=10)  # the handler saw the client go

    # Masked whole, then cut: the header crossing the 300th character leaves no prefix.
    sent = f"Bearer {token}"
    body_start = f"echo {sent} ".ljust(290, "x") + sent + "y" * 300
    expected = body_start.replace(sent, "[redacted]")[: outbound.EXCERPT_CHARS]
    assert result["excerpt"] == expected
    assert "tok-" not in result["excerpt"] and "Bearer" not in result["excerpt"]
    assert result["ok"] is True and result["status_code"] == 200 and result["error"] is None
    # At most the prefix and the one network read (64 KiB) that went past it.
    [stream] = transport.streams
    assert stream.bytes_read <= outbound.EXCERPT_READ_BYTES + CHUNK_BYTES
    assert stream.closed
    assert server.sent_bytes[0] < BIG_BODY_BYTES  # the rest was never sent


async def test_large_bodies_give_their_connections_back() -> None:
    """Three test connections in a row through a one-connection pool: each
    finds the connection free, and each response was closed by test_connection
    itself (not left to the garbage collector)."""
    transport = CountingTransport(max_connections=1)
    with BigBodyServer() as server:
        async with httpx.AsyncClient(transport=transport) as client:
            profile = _profile(server.url, timeout_s=2)
            results = [
                await outbound.test_connection(profile, tokens=None, client=client)
                for _ in range(3)
            ]

        for _ in results:
            assert server.done.acquire(timeout=10)

    assert [result["error"] for result in results] == [None, None, None]
    assert len(server.sent_bytes) == 3
    assert all(sent < BIG_BODY_BYTES for sent in server.sent_bytes)
    assert len(transport.streams) == 3 and all(stream.closed for stream in transport.streams)
