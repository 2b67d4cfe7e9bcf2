"""How app.services.outbound BUILDS requests: each auth kind puts its
credentials in the right place, call headers override profile headers, a
User-Agent is always set; and which failures may repeat a POST (an error
raised before any byte left is safe, a read timeout is not).
httpx.MockTransport captures the requests; the retries on the wire are
tested against real servers in tests/integration/test_outbound_retries.py."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from app.errors import OutboundError
from app.models.profiles import AuthKind, ResolvedProfile
from app.services import outbound


def _profile(kind: AuthKind = AuthKind.NONE, **auth: Any) -> ResolvedProfile:
    return ResolvedProfile(
        id=7,
        name="api",
        base_url="https://api.example.com/v1",
        headers={"X-Team": "ops", "Accept": "application/json"},
        timeout_s=5,
        verify_tls=True,
        auth_kind=kind,
        auth=auth,
    )


class Recorder:
    def __init__(self, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self._answer = answer or (lambda request: httpx.Response(200, json={"ok": True}))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._answer(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


class FakeTokens:
    """Stands in for TokenManager: hands out numbered tokens."""

    def __init__(self) -> None:
        self.issued = 0
        self.refreshes: list[str | None] = []

    async def get_token(self, profile: ResolvedProfile) -> str:
        if self.issued == 0:
            self.issued = 1
        return f"token-{self.issued}"

    async def refresh(
        self, profile: ResolvedProfile, *, force: bool = False, rejected_token: str | None = None
    ) -> str:
        self.refreshes.append(rejected_token)
        self.issued += 1
        return f"token-{self.issued}"


async def _send(
    profile: ResolvedProfile, recorder: Recorder, *args: Any, **kwargs: Any
) -> httpx.Response:
    kwargs.setdefault("tokens", None)
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        return await outbound.send(profile, *args, client=client, **kwargs)


async def test_no_auth_sends_profile_headers_and_user_agent() -> None:
    recorder = Recorder()
    await _send(_profile(), recorder, "GET", "/users")

    request = recorder.last
    assert str(request.url) == "https://api.example.com/v1/users"
    assert request.headers["User-Agent"].startswith("Taskdeck/")
    assert request.headers["X-Team"] == "ops"
    assert "Authorization" not in request.headers


async def test_bearer_token_goes_to_the_authorization_header() -> None:
    recorder = Recorder()
    await _send(_profile(AuthKind.BEARER, token="abc123"), recorder, "GET")

    assert recorder.last.headers["Authorization"] == "Bearer abc123"
    assert str(recorder.last.url) == "https://api.example.com/v1"


async def test_basic_auth_encodes_user_and_password() -> None:
    recorder = Recorder()
    await _send(_profile(AuthKind.BASIC, username="ann", password="pä ss"), recorder, "GET")

    scheme, _, encoded = recorder.last.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "ann:pä ss"


async def test_api_key_in_a_header() -> None:
    recorder = Recorder()
    profile = _profile(AuthKind.API_KEY, header="X-Api-Key", param=None, value="k-123")
    await _send(profile, recorder, "GET", "/items", query={"page": "2"})

    assert recorder.last.headers["X-Api-Key"] == "k-123"
    assert recorder.last.url.params == httpx.QueryParams({"page": "2"})


async def test_api_key_in_a_query_parameter() -> None:
    recorder = Recorder()
    profile = _profile(AuthKind.API_KEY, header=None, param="api_key", value="k-123")
    await _send(profile, recorder, "GET", "/items?sort=name", query={"page": "2"})

    params = recorder.last.url.params
    assert params["api_key"] == "k-123"
    assert params["sort"] == "name"
    assert params["page"] == "2"
    assert "X-Api-Key" not in recorder.last.headers


@pytest.mark.parametrize(
    "kind", [AuthKind.OAUTH2_CLIENT_CREDENTIALS, AuthKind.OAUTH2_REFRESH_TOKEN]
)
async def test_oauth2_kinds_send_the_token_managers_token(kind: AuthKind) -> None:
    recorder = Recorder()
    await _send(_profile(kind), recorder, "GET", tokens=FakeTokens())

    assert recorder.last.headers["Authorization"] == "Bearer token-1"


async def test_oauth2_401_refreshes_once_with_the_rejected_token_and_repeats() -> None:
    recorder = Recorder(lambda request: httpx.Response(401))
    tokens = FakeTokens()
    profile = _profile(AuthKind.OAUTH2_CLIENT_CREDENTIALS)
    response = await _send(profile, recorder, "POST", tokens=tokens)

    assert response.status_code == 401  # the second 401 is the caller's
    assert tokens.refreshes == ["token-1"]
    assert [r.headers["Authorization"] for r in recorder.requests] == [
        "Bearer token-1",
        "Bearer token-2",
    ]


async def test_call_headers_override_profile_headers() -> None:
    recorder = Recorder()
    await _send(
        _profile(),
        recorder,
        "GET",
        headers={"accept": "text/csv", "User-Agent": "custom/1"},
    )

    assert recorder.last.headers["Accept"] == "text/csv"
    assert recorder.last.headers.get_list("Accept") == ["text/csv"]
    assert recorder.last.headers["User-Agent"] == "custom/1"


async def test_auth_wins_over_a_call_authorization_header() -> None:
    recorder = Recorder()
    await _send(
        _profile(AuthKind.BEARER, token="real"), recorder, "GET", headers={"Authorization": "x"}
    )

    assert recorder.last.headers.get_list("Authorization") == ["Bearer real"]


async def test_idempotency_key_json_body_and_method() -> None:
    recorder = Recorder()
    await _send(_profile(), recorder, "post", "/orders", json={"n": 1}, idempotency_key="run-42")

    request = recorder.last
    assert request.method == "POST"
    assert request.headers["Idempotency-Key"] == "run-42"
    assert request.headers["Content-Type"] == "application/json"
    assert request.content == b'{"n":1}'


async def test_post_is_retried_after_a_connect_error_the_request_never_left() -> None:
    calls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(201)

    response = await _send(_profile(), Recorder(answer), "POST", "/orders", json={})

    assert response.status_code == 201
    assert calls == 3


async def test_post_is_not_retried_after_a_read_timeout_without_a_key() -> None:
    calls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(OutboundError, match="ReadTimeout"):
        await _send(_profile(), Recorder(answer), "POST", "/orders", json={})
    assert calls == 1


@pytest.mark.parametrize(
    "path",
    ["https://evil.example/x", "//evil.example/x", "HTTP://evil.example", "http:\\\\evil.example"],
)
def test_absolute_paths_are_refused(path: str) -> None:
    with pytest.raises(OutboundError):
        outbound.build_url("https://api.example.com/v1", path)


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("https://h/api/v1", "/users", "https://h/api/v1/users"),
        ("https://h/api/v1/", "users", "https://h/api/v1/users"),
        ("https://h/api/v1", "", "https://h/api/v1"),
        ("https://h/api?v=2", "/users?page=3", "https://h/api/users?v=2&page=3"),
        ("https://h", "/a:run", "https://h/a:run"),
    ],
)
def test_path_joining(base: str, path: str, expected: str) -> None:
    assert str(outbound.build_url(base, path)) == expected


def test_loggable_url_drops_query_and_user_info() -> None:
    url = "https://user:pw@h:8443/api/x?api_key=SECRET#frag"
    assert outbound.loggable_url(url) == "https://h:8443/api/x"


def test_retry_after_seconds_and_http_dates_are_capped() -> None:
    def response(value: str) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": value})

    assert outbound.retry_after_s(response("2"), cap_s=60) == 2
    assert outbound.retry_after_s(response("3600"), cap_s=60) == 60
    assert outbound.retry_after_s(response("Wed, 21 Oct 2015 07:28:00 GMT"), cap_s=60) == 0
    assert outbound.retry_after_s(response("soon"), cap_s=60) is None
    assert outbound.retry_after_s(httpx.Response(503), cap_s=60) is None


# ----- "test connection" never shows a credential back -----

KEY = 'k3y+Do/Not"Show-4411'


async def _tested(profile: ResolvedProfile, answer: Callable[[httpx.Request], str]) -> str:
    """The excerpt of a test connection to an API answering `answer(request)`."""
    recorder = Recorder(lambda request: httpx.Response(200, text=answer(request)))
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        result = await outbound.test_connection(profile, tokens=None, client=client)
    excerpt: str = result["excerpt"]
    return excerpt


@pytest.mark.parametrize(
    "echo",
    [
        lambda request: f"you asked for {request.url}",  # ?api_key=k3y%2BDo%2FNot%22Show-4411
        lambda request: json.dumps({"query": dict(request.url.params)}),  # k3y+Do/Not\"Show
        lambda request: json.dumps({"url": str(request.url)}),
    ],
    ids=["url-encoded", "json-escaped", "json-of-url"],
)
async def test_excerpt_masks_an_echoed_api_key_in_any_encoding(echo: Any) -> None:
    profile = _profile(AuthKind.API_KEY, header=None, param="api_key", value=KEY)

    excerpt = await _tested(profile, echo)

    assert "[redacted]" in excerpt
    assert "k3y" not in excerpt and "Show-4411" not in excerpt


async def test_excerpt_masks_the_whole_body_before_cutting_it() -> None:
    """A key crossing the 300th character must not leave its prefix."""
    profile = _profile(AuthKind.BEARER, token="tok-" + KEY)

    excerpt = await _tested(profile, lambda request: "x" * 290 + request.headers["authorization"])

    assert excerpt == ("x" * 290 + "[redacted]")[: outbound.EXCERPT_CHARS]
    assert "Bearer" not in excerpt and "tok-" not in excerpt


async def test_excerpt_masks_an_echoed_basic_header_and_password() -> None:
    profile = _profile(AuthKind.BASIC, username="ann", password="pa55-" + KEY)

    excerpt = await _tested(
        profile,
        lambda request: json.dumps(
            {"headers": dict(request.headers), "form": urlencode({"password": "pa55-" + KEY})}
        ),
    )

    assert "[redacted]" in excerpt
    encoded = base64.b64encode(f"ann:pa55-{KEY}".encode()).decode()
    assert encoded[:12] not in excerpt and "pa55" not in excerpt
