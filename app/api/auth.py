"""Who is calling the API: `Authorization: Bearer <api token>` on every
/api/v1 path but health and the OpenAPI document; 401 without a valid
token (before routing, so unknown paths do not leak), 403 for a role that
may not do what it asks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import error_response
from app.errors import TaskdeckError
from app.models.users import Principal
from app.services.auth import principal_for_api_token
from app.services.permissions import Permission, require

PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect"})


def _bearer_token(scope: Scope) -> str | None:
    header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class BearerAuthMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].removeprefix(scope.get("root_path", "")) or "/"
        if path not in PUBLIC_PATHS:
            token = _bearer_token(scope)
            try:
                principal = (
                    await asyncio.to_thread(principal_for_api_token, token) if token else None
                )
            except TaskdeckError as error:  # e.g. the database is down: 503, not 401
                response = error_response(
                    Request(scope),
                    status=error.http_status,
                    error=error.code,
                    message=error.message,
                    details=error.details,
                )
                await response(scope, receive, send)
                return
            if principal is None:
                response = error_response(
                    Request(scope),
                    status=401,
                    error="Unauthenticated",
                    message="A valid API token is required: Authorization: Bearer <token>",
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
            scope.setdefault("state", {})["principal"] = principal
            structlog.contextvars.bind_contextvars(user_id=principal.user_id)
        await self.app(scope, receive, send)


def current_principal(request: Request) -> Principal:
    principal = request.scope.get("state", {}).get("principal")
    return require(principal, Permission.READ)


def allowed(permission: Permission) -> Callable[..., Principal]:
    """A dependency: the caller, if their role grants `permission` (else 403)."""

    def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        return require(principal, permission)

    return dependency
