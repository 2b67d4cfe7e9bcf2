"""/me and /users: who the token belongs to, and (admins) everyone."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from app.api.auth import allowed, current_principal
from app.db import session_scope
from app.models.users import Principal, UserPublic
from app.services import users as user_store
from app.services.permissions import Permission

router = APIRouter(tags=["users"])


def _read_user(user_id: int) -> UserPublic:
    with session_scope() as session:
        return user_store.get_user(session=session, user_id=user_id)


def _read_users() -> list[UserPublic]:
    with session_scope() as session:
        return user_store.list_users(session=session)


@router.get("/me", summary="The user the API token acts as")
async def me(principal: Principal = Depends(current_principal)) -> UserPublic:
    return await asyncio.to_thread(_read_user, principal.user_id)


@router.get("/users", summary="Every user (admins only)")
async def users(
    _: Principal = Depends(allowed(Permission.MANAGE_USERS)),
) -> dict[str, list[UserPublic]]:
    return {"items": await asyncio.to_thread(_read_users)}
