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

from app.api.main import create_api
from app.db import session_scope
from app.services import api_tokens
from app.services import users as user_store
from jobs.worker import create_worker
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
