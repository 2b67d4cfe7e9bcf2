"""Stored credentials go only where they were entered for, and a test
connection never shows them back, even when the API echoes requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db import session_scope
from app.errors import ValidationFailed
from app.models.profiles import ProfileInput
from app.services import profiles as profile_store
from app.services.outbound import close_http_client, test_connection
from tests.integration.oauth_server import OAuthServer

pytestmark = pytest.mark.integration

KEY = "k3y-Do-Not-Show-4411"


@pytest.fixture
def api() -> Iterator[OAuthServer]:
    server = OAuthServer().start()
    yield server
    server.stop()


def _create(base_url: str, auth: dict[str, object]) -> int:
    with session_scope() as session:
        return profile_store.create_profile(
            session=session, data=ProfileInput(name="p", base_url=base_url, auth=auth), actor=None
        ).id


def _update(profile_id: int, base_url: str, auth: dict[str, object]) -> None:
    with session_scope() as session:
        profile_store.update_profile(
            session=session, profile_id=profile_id,
            data=ProfileInput(name="p", base_url=base_url, auth=auth), actor=None,
        )


def test_moving_the_base_url_to_another_host_needs_the_secret_again(taskdeck: Path) -> None:
    profile_id = _create("https://api.example.com/v1", {"kind": "bearer", "token": KEY})

    _update(profile_id, "https://api.example.com/v2", {"kind": "bearer"})  # same host: kept
    with pytest.raises(ValidationFailed) as caught:
        _update(profile_id, "https://attacker.example/", {"kind": "bearer"})
    assert caught.value.details["fields"] == {"auth.token": "Enter this again: the address changed"}
    with session_scope() as session:
        assert profile_store.get_profile(session=session, profile_id=profile_id).base_url == (
            "https://api.example.com/v2"
        )

    _update(profile_id, "https://new.example.com/", {"kind": "bearer", "token": "fresh-token-99"})
    with session_scope() as session:
        resolved = profile_store.resolve_profile(session=session, profile_id=profile_id)
    assert resolved.base_url == "https://new.example.com/" and resolved.auth["token"] == "fresh-token-99"


def test_moving_the_token_url_needs_the_client_secret_again(taskdeck: Path) -> None:
    auth = {"kind": "oauth2_client_credentials", "token_url": "https://auth.example.com/token",
            "client_id": "c", "client_secret": KEY}
    profile_id = _create("https://api.example.com", auth)
    moved = {**auth, "token_url": "https://evil.example/token", "client_secret": None}
    with pytest.raises(ValidationFailed) as caught:
        _update(profile_id, "https://api.example.com", moved)
    assert "auth.client_secret" in caught.value.details["fields"]


async def test_a_test_connection_masks_credentials_the_api_echoes(
    taskdeck: Path, api: OAuthServer
) -> None:
    # The test server's catch-all path echoes the query string back.
    profile_id = _create(api.url, {"kind": "api_key", "param": "api_key", "value": KEY})
    with session_scope() as session:
        profile = profile_store.resolve_profile(session=session, profile_id=profile_id)

    result = await test_connection(profile, tokens=None, path="/echo")
    await close_http_client()

    assert result["ok"] is True
    assert api.seen("/echo")[0].query["api_key"] == [KEY]  # it was sent...
    assert KEY not in result["excerpt"] and "[redacted]" in result["excerpt"]  # ...not shown


async def test_a_test_connection_masks_the_whole_echo_before_cutting_it(
    taskdeck: Path, api: OAuthServer
) -> None:
    """The echo JSON-escapes the key (a quote comes back as \\") and puts it
    across the excerpt's 300th character: neither form nor prefix shows."""
    key = 'k3y"Do-Not-Show-4411'
    profile_id = _create(api.url, {"kind": "api_key", "param": "api_key", "value": key})
    with session_scope() as session:
        profile = profile_store.resolve_profile(session=session, profile_id=profile_id)
    # {"method": "GET", "path": "<path>", "query": {"api_key": ["<key>"]}}: start it at 294.
    before_path, after_path = len('{"method": "GET", "path": "'), len('", "query": {"api_key": ["')
    path = "/echo" + "-" * (294 - before_path - after_path - len("/echo"))

    result = await test_connection(profile, tokens=None, path=path)
    await close_http_client()

    assert api.seen(path)[0].query["api_key"] == [key]
    excerpt = result["excerpt"]
    assert len(excerpt) == 300 and excerpt.endswith('["[redac')
    assert "k3y" not in excerpt
