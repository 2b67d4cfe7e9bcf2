"""Principals for tests that read what only some roles may read. The
services check the role, not a user row, so no user needs to exist."""

from __future__ import annotations

from app.models.users import Principal, Role

AUDITOR = Principal(
    user_id=-1, email="auditor@example.com", display_name="Auditor", role=Role.ADMIN
)
