"""/me and /users: who the token belongs to, and (admins) everyone."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends

from app.api.auth import allowed, current_principal
from app.api.pagination import PageRequest, page_of, page_params
from app.db import session_scope
from app.models.users import Principal, UserPublic
from app.services import users as user_store
from app.services.permissions import Permission

router = APIRouter(tags=["users"])


def _read_user(user_id: int) -> UserPublic:
    with session_scope() as session:
        return user_store.get_user(session=session, user_id=user_id)


def _read_users(actor: Principal, after_email: str | None, limit: int) -> list[UserPublic]:
    with session_scope() as session:
        return user_store.list_users(
            session=session, actor=actor, after_email=after_email, limit=limit
        )


@router.get("/me", summary="The user the API token acts as")
async def me(principal: Principal = Depends(current_principal)) -> UserPublic:
    return await asyncio.to_thread(_read_user, principal.user_id)


@router.get("/users", summary="Every user, by email (admins only)")
async def users(
    principal: Principal = Depends(allowed(Permission.MANAGE_USERS)),
    page: PageRequest = Depends(page_params(str)),
) -> dict[str, Any]:
    after_email = page.after[0] if page.after else None
    rows = await asyncio.to_thread(_read_users, principal, after_email, page.limit + 1)
    items, next_cursor = page_of(rows, page.limit, lambda user: (user.email,))
    return {"items": items, "next_cursor": next_cursor}
