"""A real OAuth2 authorization server and protected API on 127.0.0.1, for the
integration tests of app.services.oauth2 and app.services.outbound (a helper
module, not tests).

Runs `http.server.ThreadingHTTPServer` in a background thread on a free
port. Everything it does is configurable and observable from the test:

    POST /token            client_credentials and refresh_token grants;
                           client authentication by header or body; tokens
                           are random strings kept with their expiry;
                           optional refresh-token rotation; failure modes
    GET  /api/ping         200 JSON with a currently valid bearer token, 401
                           otherwise (`revoke_all()` forces the 401 path)
    *    /flaky            503 + Retry-After for the first `flaky_failures`
                           calls, then 200
    *    /slow             sleeps `slow_s` before answering 200
    *    anything else     200 JSON echo of method, path and query

Every request is recorded in `requests` (method, path, query, headers,
form); token requests are also counted in `token_requests`.
"""

from __future__ import annotations

from collections.abc import Collection

import base64
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from app.models.profiles import TokenStatus


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)
    status: int = 0


def free_port() -> int:
    """A port nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OAuthServer:
    """The configuration and state; attributes may be changed by tests at any
    time (reads and writes go through `lock`)."""

    def __init__(
        self,
        *,
        client_id: str = "taskdeck-client",
        client_secret: str = "s3cret-client-secret",
        client_auth: str = "any",  # "header", "body" or "any"
        expires_in: float | int | str | None = 30,
        rotate_refresh_tokens: bool = False,
    ) -> None:
        self.lock = threading.Lock()
        self.client_id = client_id
        self.client_secret = client_secret
        self.client_auth = client_auth
        self.expires_in = expires_in
        self.rotate_refresh_tokens = rotate_refresh_tokens
        # None, "html", "invalid_json", "no_expires_in", "invalid_client"
        self.failure: str | None = None
        self.fail_next_500 = 0
        self.token_delay_s = 0.0
        self.flaky_failures = 0
        self.slow_s = 2.0
        self.tokens: dict[str, float] = {}  # access token -> expiry (monotonic)
        self.refresh_tokens: set[str] = set()
        self.requests: list[Seen] = []
        self.token_requests = 0
        self.unauthorized = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- life -----

    def start(self) -> OAuthServer:
        server = self

        class Handler(_Handler):
            oauth = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    # ----- helpers for tests -----

    def issue_refresh_token(self) -> str:
        token = "rt-" + secrets.token_urlsafe(16)
        with self.lock:
            self.refresh_tokens.add(token)
        return token

    def issue_access_token(self, expires_in: float = 60) -> str:
        token = "at-" + secrets.token_urlsafe(16)
        with self.lock:
            self.tokens[token] = time.monotonic() + expires_in
        return token

    def revoke_all(self) -> None:
        """Every access token issued so far answers 401 from now on."""
        with self.lock:
            self.tokens.clear()

    def seen(self, path: str) -> list[Seen]:
        with self.lock:
            return [request for request in self.requests if request.path == path]

    # ----- behaviour -----

    def _client_ok(self, headers: dict[str, str], form: dict[str, str]) -> bool:
        by_header = by_body = False
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode()
            except ValueError:
                return False
            client_id, _, client_secret = decoded.partition(":")
            by_header = (client_id, client_secret) == (self.client_id, self.client_secret)
        if "client_id" in form or "client_secret" in form:
            by_body = (form.get("client_id"), form.get("client_secret")) == (
                self.client_id,
                self.client_secret,
            )
        if self.client_auth == "header":
            return by_header
        if self.client_auth == "body":
            return by_body
        return by_header or by_body

    def token_response(
        self, headers: dict[str, str], form: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of a token request; called under `lock`."""
        self.token_requests += 1
        if self.fail_next_500 > 0:
            self.fail_next_500 -= 1
            return _json(500, {"error": "server_error"})
        if self.failure == "html":
            html = b"<html><body>Sign in</body></html>"
            return 200, {"Content-Type": "text/html; charset=utf-8"}, html
        if self.failure == "invalid_json":
            return 200, {"Content-Type": "application/json"}, b'{"access_token": "x", '
        if self.failure == "invalid_client" or not self._client_ok(headers, form):
            return _json(
                401,
                {"error": "invalid_client", "error_description": "Client authentication failed"},
            )
        grant = form.get("grant_type")
        new_refresh: str | None = None
        if grant == "refresh_token":
            presented = form.get("refresh_token", "")
            if presented not in self.refresh_tokens:
                return _json(
                    400, {"error": "invalid_grant", "error_description": "Unknown refresh token"}
                )
            if self.rotate_refresh_tokens:
                self.refresh_tokens.discard(presented)
                new_refresh = "rt-" + secrets.token_urlsafe(16)
                self.refresh_tokens.add(new_refresh)
        elif grant != "client_credentials":
            return _json(400, {"error": "unsupported_grant_type"})
        access = "at-" + secrets.token_urlsafe(16)
        lifetime = float(self.expires_in) if isinstance(self.expires_in, (int, float)) else 30.0
        self.tokens[access] = time.monotonic() + lifetime
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer"}
        if self.failure != "no_expires_in" and self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if new_refresh is not None:
            body["refresh_token"] = new_refresh
        return _json(200, body)

    def token_valid(self, headers: dict[str, str]) -> bool:
        authorization = headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            return False
        expiry = self.tokens.get(authorization[7:])
        return expiry is not None and time.monotonic() < expiry


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


class _Handler(BaseHTTPRequestHandler):
    oauth: OAuthServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _handle(self) -> None:
        server = self.oauth
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        form: dict[str, str] = {}
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = {key: values[-1] for key, values in parse_qs(raw.decode()).items()}
        seen = Seen(self.command, parts.path, parse_qs(parts.query), headers, form)
        with server.lock:
            server.requests.append(seen)
        if parts.path == "/token" and self.command == "POST":
            delay = server.token_delay_s
            if delay:
                time.sleep(delay)
            with server.lock:
                status, extra, body = server.token_response(headers, form)
        elif parts.path == "/api/ping":
            with server.lock:
                valid = server.token_valid(headers)
                if not valid:
                    server.unauthorized += 1
            if valid:
                status, extra, body = _json(200, {"ok": True, "pong": "pong"})
            else:
                status, extra, body = _json(401, {"error": "invalid_token"})
                extra["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        elif parts.path.endswith("/flaky"):
            with server.lock:
                failing = server.flaky_failures > 0
                if failing:
                    server.flaky_failures -= 1
            if failing:
                status, extra, body = _json(503, {"error": "busy"})
                extra["Retry-After"] = "1"
            else:
                status, extra, body = _json(200, {"ok": True})
        elif parts.path.endswith("/slow"):
            time.sleep(server.slow_s)
            status, extra, body = _json(200, {"ok": True})
        else:
            status, extra, body = _json(
                200, {"method": self.command, "path": parts.path, "query": parse_qs(parts.query)}
            )
        seen.status = status
        try:
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class MemoryTokenStore:
    """An in-memory TokenStateStore: the tests' collaborator standing in for
    the database."""

    def __init__(self) -> None:
        self.records: list[tuple[int, TokenStatus, datetime | None, str | None]] = []
        self.refresh_tokens: dict[int, list[str]] = {}

    async def record(
        self,
        profile_id: int,
        status: TokenStatus,
        expires_at: datetime | None,
        error: str | None,
    ) -> None:
        self.records.append((profile_id, status, expires_at, error))

    async def store_refresh_token(
        self, profile_id: int, refresh_token: str, *, replaces_sha256: Collection[str] = ()
    ) -> None:
        self.refresh_tokens.setdefault(profile_id, []).append(refresh_token)

    def statuses(self, profile_id: int) -> list[TokenStatus]:
        return [status for pid, status, _, _ in self.records if pid == profile_id]

    def last(self, profile_id: int) -> tuple[int, TokenStatus, datetime | None, str | None]:
        return [record for record in self.records if record[0] == profile_id][-1]
