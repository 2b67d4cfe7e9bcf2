"""/profiles: list, create, read, update, delete, clone and test connection.

Every change is announced on `profile:<id>` (created, updated, deleted),
like the same change made in the UI, so that open views follow it live.
Secrets on update: left out, empty or sent back masked keeps the stored
value; null clears an optional one (oauth2_refresh_token's client_secret)
and keeps a required one, which can only be replaced.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from app.api.auth import allowed, current_principal
from app.api.pagination import PageRequest, page_of, page_params
from app.db import in_session
from app.models.profiles import ProfileInput, ProfilePublic
from app.models.users import Principal
from app.origins import client_address
from app.queue import get_queue_or_none
from app.services import profiles as profile_store
from app.services.connection_tests import run_connection_test
from app.services.events import publish_quietly
from app.services.permissions import Permission
from app.services.token_states import forget_cached_token, profile_event, retry_token_soon
from app.settings import get_settings

router = APIRouter(tags=["profiles"])


class CloneRequest(BaseModel):
    name: str | None = Field(
        default=None, description="Name of the copy (default: '<name> (copy)')"
    )


class TestRequest(BaseModel):
    path: str = Field(default="", max_length=2000, description="Path under the base URL to call")


def _ip(request: Request) -> str | None:
    return client_address(request, get_settings().trusted_proxy_hops)


async def _announce(profile: ProfilePublic, event_type: str) -> None:
    """Tell open views, as the UI's handlers do (best effort: the change is committed)."""
    await publish_quietly(await get_queue_or_none(), profile_event(profile, event_type))


def _delete(*, session: Any, profile_id: int, **kwargs: Any) -> ProfilePublic:
    """Delete, and give what was deleted (masked) for the event."""
    profile = profile_store.get_profile(session=session, profile_id=profile_id)
    profile_store.delete_profile(session=session, profile_id=profile_id, **kwargs)
    return profile


@router.get("/profiles", summary="Profiles, filtered by a search text or a tag")
async def list_profiles(
    search: str | None = Query(default=None, max_length=200),
    tag: str | None = Query(default=None, max_length=40),
    _: Principal = Depends(current_principal),
    page: PageRequest = Depends(page_params(str, int)),
) -> dict[str, Any]:
    rows = await in_session(
        profile_store.list_profiles,
        search=search,
        tag=tag,
        after=page.after,
        limit=page.limit + 1,
    )
    items, next_cursor = page_of(rows, page.limit, profile_store.list_key)
    return {"items": items, "next_cursor": next_cursor}


@router.post("/profiles", status_code=201, summary="Create a profile")
async def create_profile(
    data: ProfileInput, request: Request, principal: Principal = Depends(allowed(Permission.EDIT))
) -> ProfilePublic:
    profile: ProfilePublic = await in_session(
        profile_store.create_profile, data=data, actor=principal, ip=_ip(request)
    )
    await _announce(profile, "created")
    return profile


@router.get("/profiles/{profile_id}", summary="One profile (secrets masked)")
async def get_profile(profile_id: int, _: Principal = Depends(current_principal)) -> ProfilePublic:
    return await in_session(profile_store.get_profile, profile_id=profile_id)


@router.put(
    "/profiles/{profile_id}",
    summary="Replace a profile; omitted or masked secrets are kept, null clears an optional one",
)
async def update_profile(
    profile_id: int,
    data: ProfileInput,
    request: Request,
    principal: Principal = Depends(allowed(Permission.EDIT)),
) -> ProfilePublic:
    profile: ProfilePublic = await in_session(
        profile_store.update_profile, profile_id=profile_id, data=data, actor=principal,
        ip=_ip(request),
    )
    await retry_token_soon(await get_queue_or_none(), profile_id)
    await _announce(profile, "updated")
    return profile


@router.delete("/profiles/{profile_id}", status_code=204, summary="Delete a profile")
async def delete_profile(
    profile_id: int,
    request: Request,
    force: bool = Query(default=False, description="Delete even while tasks use it"),
    principal: Principal = Depends(allowed(Permission.EDIT)),
) -> Response:
    deleted: ProfilePublic = await in_session(
        _delete, profile_id=profile_id, actor=principal, ip=_ip(request), force=force
    )
    await forget_cached_token(await get_queue_or_none(), profile_id)
    await _announce(deleted, "deleted")
    return Response(status_code=204)


@router.post("/profiles/{profile_id}/clone", status_code=201, summary="Copy a profile")
async def clone_profile(
    profile_id: int,
    request: Request,
    body: CloneRequest | None = None,
    principal: Principal = Depends(allowed(Permission.EDIT)),
) -> ProfilePublic:
    copy: ProfilePublic = await in_session(
        profile_store.clone_profile,
        profile_id=profile_id,
        new_name=body.name if body else None,
        actor=principal,
        ip=_ip(request),
    )
    await _announce(copy, "created")
    return copy


@router.post("/profiles/{profile_id}/test", summary="Call the API once and report what happened")
async def test_profile(
    profile_id: int,
    body: TestRequest | None = None,
    _: Principal = Depends(allowed(Permission.RUN)),
) -> dict[str, Any]:
    await in_session(profile_store.get_profile, profile_id=profile_id)  # ProfileNotFound first
    return await run_connection_test(
        await get_queue_or_none(), profile_id=profile_id, path=body.path if body else ""
    )
