"""The REST API's one error shape, request ids and health, through the real
FastAPI app from `create_api()` (TestClient, no server). Test-only routes are
added to that app to raise the errors the product routes will raise.

Every path but health and the OpenAPI document needs a token, so the client
carries a real API token of a viewer, made in the test's own SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from structlog.testing import capture_logs

from app.api.main import API_PREFIX, create_api
from app.db import session_scope
from app.errors import RunNotFound
from app.migrate import upgrade_to_head
from app.models.users import Role
from app.services import api_tokens
from app.services import users as user_store
from tests.conftest import _clear_caches

ERROR_KEYS = {"error", "message", "details", "request_id"}


class _Widget(BaseModel):
    name: str
    count: int


def _add_test_routes(api: FastAPI) -> None:
    @api.post("/_test/widgets")
    def create_widget(widget: _Widget) -> dict[str, str]:
        return {"name": widget.name}

    @api.get("/_test/boom")
    def boom() -> None:
        raise RuntimeError("boom with secret hunter2")

    @api.get("/_test/runs/{run_id}")
    def missing_run(run_id: int) -> None:
        raise RunNotFound(f"Run {run_id} does not exist", details={"run_id": run_id})


def _api_token() -> str:
    """A real token of a real viewer, through the services the CLI uses."""
    upgrade_to_head()
    with session_scope() as session:
        user = user_store.create_user(
            session=session,
            email="viewer@example.com",
            display_name="Viewer",
            password="correct horse battery staple",
            role=Role.VIEWER,
            actor=None,
        )
    with session_scope() as session:
        created = api_tokens.create_token(
            session=session, owner_id=user.id, name="tests", expires_at=None, actor=None
        )
    return created.token


@pytest.fixture
def client(isolated_settings: Path) -> Iterator[TestClient]:
    api = create_api()
    _add_test_routes(api)
    headers = {"Authorization": f"Bearer {_api_token()}"}
    with TestClient(api, raise_server_exceptions=False, headers=headers) as test_client:
        yield test_client


@pytest.fixture
def anonymous(isolated_settings: Path) -> Iterator[TestClient]:
    """A client without a token."""
    with TestClient(create_api(), raise_server_exceptions=False) as test_client:
        yield test_client


def _assert_error_shape(body: dict[str, object], error: str) -> None:
    assert set(body) == ERROR_KEYS
    assert body["error"] == error
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)
    assert isinstance(body["request_id"], str) and body["request_id"]


def test_unknown_path_is_404_in_the_error_shape(client: TestClient) -> None:
    """Clients parse one shape for every failure, even for typos in the path."""
    response = client.get("/no/such/path")

    assert response.status_code == 404
    _assert_error_shape(response.json(), "NotFound")
    assert "/no/such/path" in response.json()["message"]


def test_unknown_path_without_token_is_401_not_404(anonymous: TestClient) -> None:
    """Without a token nothing tells which paths exist; still the one shape."""
    response = anonymous.get("/no/such/path")

    assert response.status_code == 401
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["request_id"] == response.headers.get("x-request-id")


def test_wrong_method_is_405_in_the_error_shape(client: TestClient) -> None:
    response = client.post("/health")

    assert response.status_code == 405
    _assert_error_shape(response.json(), "MethodNotAllowed")
    assert "GET" in response.headers.get("allow", "")


def test_invalid_body_is_422_naming_the_field(client: TestClient) -> None:
    """A form can point at the wrong field only if details name it."""
    response = client.post("/_test/widgets", json={"name": "w", "count": "many"})

    assert response.status_code == 422
    body = response.json()
    _assert_error_shape(body, "ValidationFailed")
    fields = body["details"]["fields"]
    assert any(name.endswith("count") for name in fields), fields
    assert not any(name.endswith("name") for name in fields), "valid fields are not blamed"


def test_missing_body_field_is_422_naming_it(client: TestClient) -> None:
    response = client.post("/_test/widgets", json={"name": "w"})

    assert response.status_code == 422
    assert any(name.endswith("count") for name in response.json()["details"]["fields"])


def test_unexpected_error_is_500_without_trace_or_exception_text(client: TestClient) -> None:
    """Exception text may hold secrets; the client gets only a request id,
    and the trace goes to the log under that same id."""
    # capture_logs drops the configured processors: merge_contextvars (first
    # in app.logging) puts the bound request_id on the event as in production.
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logged:
        response = client.get("/_test/boom")

    assert response.status_code == 500
    body = response.json()
    _assert_error_shape(body, "InternalError")
    assert body["details"] == {}
    for leak in ("Traceback", "boom", "hunter2", "RuntimeError"):
        assert leak not in response.text
    errors = [entry for entry in logged if entry["event"] == "api_unexpected_error"]
    assert len(errors) == 1
    assert errors[0].get("exc_info"), "the trace must reach the log"
    assert errors[0].get("request_id") == body["request_id"], "the quoted id finds the trace"


def test_unexpected_error_response_carries_the_request_id_header(client: TestClient) -> None:
    """The id a user quotes from a 500 must match the one in the logs and proxies."""
    with capture_logs():  # skip rendering the trace on the console (slow)
        response = client.get("/_test/boom")

    assert response.status_code == 500
    assert response.headers.get("x-request-id") == response.json()["request_id"]


def test_taskdeck_error_keeps_its_code_status_and_details(client: TestClient) -> None:
    response = client.get("/_test/runs/42")

    assert response.status_code == 404
    body = response.json()
    _assert_error_shape(body, "RunNotFound")
    assert body["details"] == {"run_id": 42}
    assert "42" in body["message"]


@pytest.mark.parametrize("path", ["/no/such/path", "/_test/runs/7", "/health"])
def test_request_id_header_matches_the_body(client: TestClient, path: str) -> None:
    response = client.get(path)

    request_id = response.headers.get("x-request-id")
    assert request_id
    if response.status_code >= 400:
        assert response.json()["request_id"] == request_id


def test_each_request_gets_its_own_id(client: TestClient) -> None:
    first = client.get("/no/such/path").headers["x-request-id"]
    second = client.get("/no/such/path").headers["x-request-id"]

    assert first != second


def test_harmless_incoming_request_id_is_echoed(client: TestClient) -> None:
    """A proxy's id ties our logs to its logs."""
    incoming = "edge-7f3a.b_19"
    response = client.get("/no/such/path", headers={"X-Request-ID": incoming})

    assert response.headers["x-request-id"] == incoming
    assert response.json()["request_id"] == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        "abcdefgh\r\nSet-Cookie: session=evil",
        "a" * 200,
        "<script>alert(1)</script>",
        "short",
    ],
)
def test_unsafe_incoming_request_id_is_replaced(client: TestClient, incoming: str) -> None:
    """Header injection and log pollution stop at the edge."""
    response = client.get(
        "/no/such/path", headers={"X-Request-ID": incoming.encode("latin-1")}
    )

    echoed = response.headers["x-request-id"]
    assert echoed != incoming
    assert "\n" not in echoed and "<" not in echoed and len(echoed) <= 64
    assert response.json()["request_id"] == echoed
    assert "set-cookie" not in response.headers


def test_openapi_document_names_the_prefix_and_needs_no_token(anonymous: TestClient) -> None:
    """Generated clients read `servers` to build URLs under /api/v1."""
    response = anonymous.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["servers"] == [{"url": API_PREFIX}]
    assert API_PREFIX == "/api/v1"
    assert "/health" in document["paths"]


def test_health_without_redis_is_degraded_but_200(anonymous: TestClient) -> None:
    """Redis down must not take the web UI off a load balancer; no token needed."""
    response = anonymous.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "down"
    assert body["checks"]["workers"]["status"] == "down"
    assert body["checks"]["workers"]["count"] == 0


def test_health_with_unopenable_database_is_503_down(
    isolated_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing works without the database: health says so with a 503."""
    monkeypatch.setenv("TASKDECK_DATABASE_URL", "sqlite:////proc/nonexistent/x.db")
    _clear_caches()
    with TestClient(create_api(), raise_server_exceptions=False) as client:
        response = client.get("/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["checks"]["database"]["status"] == "down"
    assert "error" in body["checks"]["database"]
    assert "/proc/nonexistent" not in response.text, "paths stay in the logs"
