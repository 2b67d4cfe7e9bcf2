"""How "test connection" reads a body (app.services.outbound): a bounded
prefix, decoded by its charset, masked whole and then cut; and how
`send(stream=True)` closes the responses it drops on the way (a retried 503,
a rejected 401) and leaves the last one to the caller.
httpx.MockTransport stands in for the server; the same on a real server, with
a multi-megabyte body, is in tests/integration/test_outbound_retries.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from app.models.profiles import AuthKind, ResolvedProfile
from app.services import outbound

CHUNK = b"z" * 4096


def _profile(kind: AuthKind = AuthKind.NONE, **auth: Any) -> ResolvedProfile:
    return ResolvedProfile(
        id=7,
        name="api",
        base_url="https://api.example.com/v1",
        headers={},
        timeout_s=5,
        verify_tls=True,
        auth_kind=kind,
        auth=auth,
    )


class Body(httpx.AsyncByteStream):
    """A response body: `first`, then CHUNK for ever (or `fail` after
    `chunks` of them); counts what was pulled and whether it was closed."""

    def __init__(self, first: bytes = b"", *, chunks: int | None = None, fail: bool = False):
        self.first = first
        self.chunks = chunks
        self.fail = fail
        self.pulled = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.first:
            self.pulled += len(self.first)
            yield self.first
        sent = 0
        while self.chunks is None or sent < self.chunks:
            sent += 1
            self.pulled += len(CHUNK)
            yield CHUNK
        if self.fail:
            raise httpx.ReadError("connection reset")

    async def aclose(self) -> None:
        self.closed = True


async def _test(
    profile: ResolvedProfile, answer: Callable[[httpx.Request], httpx.Response]
) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        return await outbound.test_connection(profile, tokens=None, client=client)


async def test_an_endless_body_is_read_up_to_the_prefix_then_closed() -> None:
    body = Body(b"hello " + b"x" * 400)

    result = await _test(_profile(), lambda request: httpx.Response(200, stream=body))

    assert result["ok"] is True
    assert result["excerpt"] == "hello " + "x" * (outbound.EXCERPT_CHARS - 6)
    assert body.pulled <= outbound.EXCERPT_READ_BYTES + len(CHUNK)
    assert body.closed


async def test_a_secret_is_masked_across_the_excerpt_cut_of_a_long_body() -> None:
    key = "k3y-Do-Not-Show-4411"
    profile = _profile(AuthKind.API_KEY, header="X-Key", param=None, value=key)
    body = Body(("x" * 295 + key).encode())

    result = await _test(profile, lambda request: httpx.Response(200, stream=body))

    assert result["excerpt"] == ("x" * 295 + "[redacted]")[: outbound.EXCERPT_CHARS]


async def test_the_body_is_decoded_by_its_charset() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": "text/plain; charset=iso-8859-1"}
        body = Body("Grüße".encode("latin-1"), chunks=0)
        return httpx.Response(200, headers=headers, stream=body)

    result = await _test(_profile(), answer)

    assert result["excerpt"] == "Grüße"


async def test_an_unknown_charset_falls_back_to_utf8() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": "text/plain; charset=no-such-charset"}
        return httpx.Response(200, headers=headers, stream=Body("é ok".encode(), chunks=0))

    assert (await _test(_profile(), answer))["excerpt"] == "é ok"


async def test_a_body_that_breaks_off_is_a_failed_test_with_its_status() -> None:
    body = Body(b"partial", chunks=2, fail=True)

    result = await _test(_profile(), lambda request: httpx.Response(200, stream=body))

    assert result["ok"] is False
    assert result["status_code"] == 200
    assert result["excerpt"] == ""
    assert "ReadError" in result["error"]
    assert body.closed


async def test_streamed_send_closes_the_retried_503_and_returns_the_last_open() -> None:
    bodies: list[Body] = []
    closed_before_retry: list[bool] = []

    def answer(request: httpx.Request) -> httpx.Response:
        closed_before_retry.extend(body.closed for body in bodies)
        bodies.append(Body(b"busy" if not bodies else b"ok", chunks=0))
        status = 503 if len(bodies) == 1 else 200
        return httpx.Response(status, headers={"Retry-After": "0"}, stream=bodies[-1])

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        response = await outbound.send(_profile(), "GET", tokens=None, client=client, stream=True)
        try:
            assert response.status_code == 200
            assert closed_before_retry == [True]
            assert not bodies[-1].closed  # the caller's to read and close
            assert await response.aread() == b"ok"
        finally:
            await response.aclose()


class FakeTokens:
    def __init__(self) -> None:
        self.issued = 1

    async def get_token(self, profile: ResolvedProfile) -> str:
        return f"token-{self.issued}"

    async def refresh(
        self, profile: ResolvedProfile, *, force: bool = False, rejected_token: str | None = None
    ) -> str:
        self.issued += 1
        return f"token-{self.issued}"


async def test_streamed_send_closes_the_rejected_401_before_it_refreshes() -> None:
    bodies: list[Body] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(Body(b"{}", chunks=0))
        status = 401 if request.headers["Authorization"] == "Bearer token-1" else 200
        return httpx.Response(status, stream=bodies[-1])

    profile = _profile(AuthKind.OAUTH2_CLIENT_CREDENTIALS)
    tokens: Any = FakeTokens()  # stands in for a TokenManager
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        response = await outbound.send(profile, "GET", tokens=tokens, client=client, stream=True)
        await response.aclose()

    assert response.status_code == 200
    assert [body.closed for body in bodies] == [True, True]
