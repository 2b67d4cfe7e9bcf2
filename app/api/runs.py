"""/runs/{id} and /runs/{id}/cancel."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from app.api.auth import allowed, current_principal
from app.db import session_scope
from app.models.runs import RunPublic
from app.models.users import Principal
from app.queue import get_queue_or_none
from app.services import runs as run_store
from app.services.dispatch import run_event
from app.services.events import publish_quietly
from app.services.permissions import Permission

router = APIRouter(tags=["runs"])


def _read_run(run_id: int) -> RunPublic:
    with session_scope() as session:
        return run_store.get_run(session=session, run_id=run_id)


def _cancel(run_id: int, principal: Principal) -> RunPublic:
    with session_scope() as session:
        return run_store.cancel_run(session=session, run_id=run_id, actor=principal)


@router.get("/runs/{run_id}", summary="One run with its attempts")
async def get_run(run_id: int, _: Principal = Depends(current_principal)) -> RunPublic:
    return await asyncio.to_thread(_read_run, run_id)


@router.post("/runs/{run_id}/cancel", summary="Cancel a run that has not finished")
async def cancel_run(
    run_id: int, principal: Principal = Depends(allowed(Permission.RUN))
) -> RunPublic:
    run = await asyncio.to_thread(_cancel, run_id, principal)
    await publish_quietly(await get_queue_or_none(), run_event(run, "status"))
    return run
