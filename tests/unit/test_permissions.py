"""The permission matrix: every role against every permission."""

from __future__ import annotations

import pytest

from app.errors import Forbidden, Unauthenticated
from app.models.users import Principal, Role
from app.services.permissions import ROLE_PERMISSIONS, Permission, can, require

P = Permission
EXPECTED = {
    Role.VIEWER: {P.READ},
    Role.OPERATOR: {P.READ, P.RUN, P.EDIT},
    Role.ADMIN: {
        P.READ,
        P.RUN,
        P.EDIT,
        P.MANAGE_USERS,
        P.MANAGE_TOKENS,
        P.MANAGE_CHANNELS,
        P.MANAGE_FLAGS,
    },
}


def _principal(role: Role) -> Principal:
    return Principal(user_id=1, email="a@example.com", display_name="A", role=role)


def test_the_permissions_are_these() -> None:
    assert {p.value for p in Permission} == {
        "read", "run", "edit", "manage_users", "manage_tokens", "manage_channels", "manage_flags"
    }
    assert "read_secrets" not in {p.value for p in Permission}  # nobody reads secrets in clear


def test_every_role_has_an_entry() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_matrix(role: Role, permission: Permission) -> None:
    principal = _principal(role)
    allowed = permission in EXPECTED[role]

    assert can(principal, permission) is allowed
    if allowed:
        assert require(principal, permission) is principal
    else:
        with pytest.raises(Forbidden) as raised:
            require(principal, permission)
        assert raised.value.message == f"Your role ({role.value}) may not do this"
        assert raised.value.http_status == 403


@pytest.mark.parametrize("permission", list(Permission))
def test_nobody_signed_in(permission: Permission) -> None:
    assert can(None, permission) is False
    with pytest.raises(Unauthenticated) as raised:
        require(None, permission)
    assert raised.value.message == "Sign in to continue"
    assert raised.value.http_status == 401
