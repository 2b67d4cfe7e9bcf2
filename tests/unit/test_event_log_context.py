"""Log lines written while a guarded Reflex event runs name its user."""

from __future__ import annotations

import structlog

from app.models.users import Principal, Role
from state.auth import _log_context


def test_the_user_is_bound_while_the_handler_runs_and_unbound_after() -> None:
    structlog.contextvars.clear_contextvars()
    ada = Principal(user_id=42, email="ada@example.com", display_name="Ada", role=Role.VIEWER)
    with _log_context(ada):
        assert structlog.contextvars.get_contextvars()["user_id"] == 42
    assert "user_id" not in structlog.contextvars.get_contextvars()
