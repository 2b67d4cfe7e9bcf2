"""/api/v1/profiles end to end below the browser: the FastAPI app in
process, a real arq worker on the private Redis, SQLite, and a real OAuth2
token server on loopback for "test connection"."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from app.api.main import create_api
from app.db import session_scope
from app.services import api_tokens, audit
from app.services import profiles as profile_store
from app.services import users as user_store
from app.services.events import CHANNEL_PREFIX, Event, decode
from jobs.worker import create_worker
from tests.principals import AUDITOR
from tests.integration.oauth_server import OAuthServer

pytestmark = pytest.mark.integration

SECRET = "api-Test-Secret-991"


def _token(role: str) -> str:
    with session_scope() as session:
        user = user_store.create_user(
            session=session, email=f"{role}@example.com", display_name=role,
            password="a long password 123", role=role, actor=None,
        )
        return api_tokens.create_token(
            session=session, owner_id=user.id, name="t", expires_at=None, actor=None
        ).token


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    server = OAuthServer(client_secret=SECRET, expires_in=60).start()
    yield server
    server.stop()


@pytest.fixture
async def clients(taskdeck: Path) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    transport = httpx.ASGITransport(app=create_api())
    made = {}
    for role in ("operator", "viewer"):
        made[role] = httpx.AsyncClient(
            transport=transport, base_url="http://taskdeck",
            headers={"Authorization": f"Bearer {_token(role)}"},
        )
    yield made
    for client in made.values():
        await client.aclose()


@pytest.fixture
async def worker(taskdeck: Path) -> AsyncIterator[None]:
    running = create_worker(poll_delay=0.05)
    task = asyncio.create_task(running.async_run())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await running.close()


def _oauth_profile(server: OAuthServer, name: str = "Billing") -> dict[str, Any]:
    return {
        "name": name,
        "base_url": server.url,
        "tags": ["billing"],
        "auth": {
            "kind": "oauth2_client_credentials",
            "token_url": server.token_url,
            "client_id": server.client_id,
            "client_secret": SECRET,
            "scopes": ["read"],
        },
    }


async def test_profile_crud_masks_secrets_and_names_errors(
    clients: dict[str, httpx.AsyncClient], oauth: OAuthServer
) -> None:
    operator, viewer = clients["operator"], clients["viewer"]

    created = await operator.post("/profiles", json=_oauth_profile(oauth))
    assert created.status_code == 201, created.text
    profile = created.json()
    assert profile["auth"]["client_secret"].startswith("****")
    assert SECRET not in created.text
    assert profile["token_state"]["status"] in ("expiring", "valid")

    listed = await viewer.get("/profiles", params={"tag": "billing"})
    assert [p["name"] for p in listed.json()["items"]] == ["Billing"]
    assert listed.json()["next_cursor"] is None
    assert SECRET not in listed.text

    # Keeping the masked secret keeps the stored one; a viewer may not edit.
    update = {**_oauth_profile(oauth), "auth": {**profile["auth"], "scopes": ["read", "write"]}}
    assert (await viewer.put(f"/profiles/{profile['id']}", json=update)).status_code == 403
    updated = await operator.put(f"/profiles/{profile['id']}", json=update)
    assert updated.status_code == 200, updated.text
    assert updated.json()["auth"]["client_secret"] == profile["auth"]["client_secret"]

    duplicate = await operator.post("/profiles", json=_oauth_profile(oauth, name="BILLING"))
    assert duplicate.status_code == 409 and duplicate.json()["error"] == "ProfileNameTaken"
    bad = await operator.post("/profiles", json={"name": "x", "base_url": "ftp://nope",
                                                 "auth": {"kind": "bearer"}})
    assert bad.status_code == 422 and bad.json()["error"] == "ValidationFailed"
    assert {"base_url", "auth.token"} <= set(bad.json()["details"]["fields"])

    missing = await viewer.get("/profiles/999999")
    assert missing.status_code == 404
    assert set(missing.json()) == {"error", "message", "details", "request_id"}
    assert missing.json()["error"] == "ProfileNotFound"

    clone = await operator.post(f"/profiles/{profile['id']}/clone", json={})
    assert clone.status_code == 201 and clone.json()["name"] == "Billing (copy)"
    assert (await operator.delete(f"/profiles/{clone.json()['id']}")).status_code == 204
    assert (await viewer.get(f"/profiles/{clone.json()['id']}")).status_code == 404


async def test_test_connection_runs_on_a_worker_and_reports(
    clients: dict[str, httpx.AsyncClient], oauth: OAuthServer, worker: None
) -> None:
    operator, viewer = clients["operator"], clients["viewer"]
    profile = (await operator.post("/profiles", json=_oauth_profile(oauth))).json()

    assert (await viewer.post(f"/profiles/{profile['id']}/test", json={})).status_code == 403
    answer = await operator.post(f"/profiles/{profile['id']}/test", json={"path": "/api/ping"})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert set(result) >= {"ok", "status_code", "latency_ms", "excerpt", "error"}
    assert result["ok"] is True and result["status_code"] == 200
    assert json.loads(result["excerpt"])["pong"] == "pong"
    assert oauth.token_requests == 1 and oauth.unauthorized == 0

    oauth.failure = "invalid_client"
    oauth.revoke_all()
    failed = (await operator.post(f"/profiles/{profile['id']}/test", json={"path": "/api/ping"}))
    assert failed.status_code == 200
    assert failed.json()["ok"] is False and "invalid_client" in failed.json()["error"]
    assert SECRET not in failed.text
    state = (await viewer.get(f"/profiles/{profile['id']}")).json()["token_state"]
    assert state["status"] == "failed" and "invalid_client" in state["error"]


async def test_test_connection_without_redis_is_a_clear_503(
    clients: dict[str, httpx.AsyncClient], oauth: OAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = clients["operator"]
    profile = (await operator.post("/profiles", json=_oauth_profile(oauth))).json()

    async def no_redis() -> None:
        return None

    monkeypatch.setattr("app.api.profiles.get_queue_or_none", no_redis)
    answer = await operator.post(f"/profiles/{profile['id']}/test", json={})
    assert answer.status_code == 503 and answer.json()["error"] == "QueueUnavailable"


async def test_lists_page_with_cursors_and_refuse_foreign_ones(
    clients: dict[str, httpx.AsyncClient], oauth: OAuthServer
) -> None:
    operator, viewer = clients["operator"], clients["viewer"]
    names = [f"Profile {n:02d}" for n in range(7)]
    for name in reversed(names):
        created = await operator.post("/profiles", json=_oauth_profile(oauth, name=name))
        assert created.status_code == 201, created.text

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await viewer.get("/profiles", params=params)).json()
        assert len(page["items"]) <= 3
        seen += [p["name"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # A profile deleted between pages neither repeats nor hides another.
        if len(seen) == 3:
            doomed = page["items"][0]["id"]
            assert (await operator.delete(f"/profiles/{doomed}")).status_code == 204
    assert seen == names

    filtered = (await viewer.get("/profiles", params={"limit": 2, "search": "0"})).json()
    assert [p["name"] for p in filtered["items"]] == names[1:3]  # names[0] is gone
    assert filtered["next_cursor"] is not None

    for params in ({"cursor": "garbage"}, {"limit": 0}, {"limit": 201}):
        refused = await viewer.get("/profiles", params=params)
        assert refused.status_code == 422, params
        assert refused.json()["error"] == "ValidationFailed"
        assert set(refused.json()) == {"error", "message", "details", "request_id"}
    garbage = (await viewer.get("/profiles", params={"cursor": "garbage"})).json()
    assert garbage["details"]["fields"] == {"cursor": "Not a cursor from this list"}


async def test_users_list_pages_by_email(taskdeck: Path) -> None:
    admin_token = _token("admin")
    with session_scope() as session:
        for n in range(4):
            user_store.create_user(
                session=session, email=f"user{n}@example.com", display_name=f"U{n}",
                password="a long password 123", role="viewer", actor=None,
            )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api()), base_url="http://taskdeck",
        headers={"Authorization": f"Bearer {admin_token}"},
    ) as admin:
        emails: list[str] = []
        params: dict[str, Any] = {"limit": 2}
        while True:
            page = (await admin.get("/users", params=params)).json()
            emails += [u["email"] for u in page["items"]]
            if page["next_cursor"] is None:
                break
            params = {"limit": 2, "cursor": page["next_cursor"]}
        assert emails == sorted(emails) and len(emails) == 5
        assert "admin@example.com" in emails


async def _events_until(
    pubsub: Any, count: int, timeout_s: float = 10.0
) -> list[Event]:
    events: list[Event] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while len(events) < count and loop.time() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message and message["type"] == "pmessage":
            events.append(decode(message["data"]))
    return events


async def test_api_changes_reach_open_views_as_profile_events(
    clients: dict[str, httpx.AsyncClient], oauth: OAuthServer, redis_url: str
) -> None:
    """What the UI's own handlers announce, the API announces too: a view
    watching `profile:*` follows a change made with a token."""
    operator = clients["operator"]
    async with aioredis.Redis.from_url(redis_url) as client, client.pubsub() as pubsub:
        await pubsub.psubscribe(CHANNEL_PREFIX + "profile:*")

        created = (await operator.post("/profiles", json=_oauth_profile(oauth))).json()
        update = {**_oauth_profile(oauth), "description": "live", "auth": created["auth"]}
        assert (await operator.put(f"/profiles/{created['id']}", json=update)).status_code == 200
        copy = (await operator.post(f"/profiles/{created['id']}/clone", json={})).json()
        assert (await operator.delete(f"/profiles/{created['id']}")).status_code == 204

        events = await _events_until(pubsub, 4)

    seen = [(event.topic, event.type) for event in events if event.type != "token_state"]
    assert seen == [
        (f"profile:{created['id']}", "created"),
        (f"profile:{created['id']}", "updated"),
        (f"profile:{copy['id']}", "created"),
        (f"profile:{created['id']}", "deleted"),
    ]
    updated = next(event for event in events if event.type == "updated")
    assert updated.data["profile"]["description"] == "live"
    assert all(SECRET not in json.dumps(event.data) for event in events)


async def test_api_changes_are_audited_with_the_client_address(
    clients: dict[str, httpx.AsyncClient], oauth: OAuthServer
) -> None:
    operator = clients["operator"]
    created = (await operator.post("/profiles", json=_oauth_profile(oauth))).json()
    await operator.post(f"/profiles/{created['id']}/clone", json={})
    await operator.delete(f"/profiles/{created['id']}")

    with session_scope() as session:
        events = audit.list_events(session=session, actor=AUDITOR, object_type="profile")
    actions = {event.action: event.ip for event in events}
    assert set(actions) >= {
        profile_store.PROFILE_CREATE, profile_store.PROFILE_CLONE, profile_store.PROFILE_DELETE
    }
    assert set(actions.values()) == {"127.0.0.1"}  # httpx's ASGI transport's client


def _refresh_token_profile(server: OAuthServer) -> dict[str, Any]:
    return {
        "name": "Public client",
        "base_url": server.url,
        "auth": {
            "kind": "oauth2_refresh_token",
            "token_url": server.token_url,
            "client_id": server.client_id,
            "client_secret": SECRET,
            "refresh_token": "rt-Refresh-Token-4242",
        },
    }


def _stored_auth(profile_id: int) -> dict[str, Any]:
    with session_scope() as session:
        return profile_store.resolve_profile(session=session, profile_id=profile_id).auth


async def test_null_keeps_a_required_secret_and_masked_or_omitted_keep_any(
    clients: dict[str, httpx.AsyncClient], oauth: OAuthServer
) -> None:
    operator = clients["operator"]
    profile = (await operator.post("/profiles", json=_refresh_token_profile(oauth))).json()
    url = f"/profiles/{profile['id']}"
    body = _refresh_token_profile(oauth)

    masked = {**body, "auth": profile["auth"]}  # what GET gave, sent back
    omitted = {**body, "auth": {k: v for k, v in body["auth"].items()
                                if k not in ("client_secret", "refresh_token")}}
    null_required = {**body, "auth": {**profile["auth"], "refresh_token": None}}
    for sent in (masked, omitted, null_required):
        answer = await operator.put(url, json=sent)
        assert answer.status_code == 200, answer.text
        assert answer.json()["auth"]["client_secret"] == profile["auth"]["client_secret"]
        assert answer.json()["auth"]["refresh_token"] == profile["auth"]["refresh_token"]
    assert _stored_auth(profile["id"])["client_secret"] == SECRET


async def test_null_clears_an_optional_secret(
    clients: dict[str, httpx.AsyncClient], oauth: OAuthServer
) -> None:
    operator = clients["operator"]
    profile = (await operator.post("/profiles", json=_refresh_token_profile(oauth))).json()

    cleared = {**_refresh_token_profile(oauth), "auth": {**profile["auth"], "client_secret": None}}
    answer = await operator.put(f"/profiles/{profile['id']}", json=cleared)

    assert answer.status_code == 200, answer.text
    assert answer.json()["auth"]["client_secret"] is None
    assert answer.json()["auth"]["refresh_token"] == profile["auth"]["refresh_token"]
    assert _stored_auth(profile["id"])["client_secret"] is None
    assert _stored_auth(profile["id"])["refresh_token"] == "rt-Refresh-Token-4242"


async def test_an_edit_keeps_the_token_unless_the_auth_changed(
    clients: dict[str, httpx.AsyncClient], oauth: OAuthServer, worker: None
) -> None:
    """Editing the description must not throw the token away (the next call
    would wait for a new one, and a rotated refresh token kept only in Redis
    would be lost); a new client secret must not reuse the old token."""
    operator = clients["operator"]
    profile = (await operator.post("/profiles", json=_oauth_profile(oauth))).json()
    url = f"/profiles/{profile['id']}"

    async def test_ok() -> None:
        answer = await operator.post(f"{url}/test", json={"path": "/api/ping"})
        assert answer.status_code == 200 and answer.json()["ok"] is True, answer.text

    await test_ok()
    assert oauth.token_requests == 1
    described = {**_oauth_profile(oauth), "description": "Invoices and refunds",
                 "auth": profile["auth"]}
    assert (await operator.put(url, json=described)).status_code == 200
    await test_ok()
    assert oauth.token_requests == 1

    with oauth.lock:
        oauth.client_secret = "a-brand-new-client-secret"
    new_secret = {**described, "auth": {**profile["auth"],
                                        "client_secret": "a-brand-new-client-secret"}}
    assert (await operator.put(url, json=new_secret)).status_code == 200
    await test_ok()
    assert oauth.token_requests == 2
