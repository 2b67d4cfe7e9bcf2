"""The REST API, a FastAPI app mounted by Reflex's backend under /api/v1."""

from __future__ import annotations

from fastapi import FastAPI

from app.api import health, profiles, runs, users
from app.api.auth import BearerAuthMiddleware
from app.api.errors import install_error_handlers
from app.api.request_id import RequestIdMiddleware

API_PREFIX = "/api/v1"


def create_api() -> FastAPI:
    api = FastAPI(
        title="Taskdeck API",
        version="1",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        servers=[{"url": API_PREFIX}],
    )
    install_error_handlers(api)
    # Added last = outermost: every response, 401s included, has a request id.
    api.add_middleware(BearerAuthMiddleware)
    api.add_middleware(RequestIdMiddleware)
    api.include_router(health.router)
    api.include_router(users.router)
    api.include_router(runs.router)
    api.include_router(profiles.router)
    return api
