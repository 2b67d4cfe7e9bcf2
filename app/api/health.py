"""GET /health: 200 when ok or degraded, 503 when down. Needs no token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.queue import get_queue_or_none
from app.services.health import check_health

router = APIRouter(tags=["health"])


@router.get("/health", summary="Health of the database, Redis and workers")
async def health() -> JSONResponse:
    report: dict[str, Any] = await check_health(await get_queue_or_none())
    return JSONResponse(report, status_code=503 if report["status"] == "down" else 200)
