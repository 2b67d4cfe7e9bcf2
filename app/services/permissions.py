"""What each role may do. The API, the UI and the CLI all ask `require()`.

    viewer    read everything the app shows (secrets only ever masked)
    operator  + run, cancel and retry runs; edit tasks and profiles
    admin     + manage users, anyone's API tokens, channels and flags

Nobody reads a secret in clear through the app, so there is no permission
for it.
"""

from __future__ import annotations

from enum import StrEnum

from app.errors import Forbidden, Unauthenticated
from app.models.users import Principal, Role


class Permission(StrEnum):
    READ = "read"
    RUN = "run"  # run now, cancel, retry
    EDIT = "edit"  # tasks and profiles
    MANAGE_USERS = "manage_users"
    MANAGE_TOKENS = "manage_tokens"  # anyone's tokens; one's own need no permission
    MANAGE_CHANNELS = "manage_channels"
    MANAGE_FLAGS = "manage_flags"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.RUN, Permission.EDIT}),
    Role.ADMIN: frozenset(Permission),
}


def can(principal: Principal | None, permission: Permission) -> bool:
    if principal is None:
        return False
    return permission in ROLE_PERMISSIONS.get(Role(principal.role), frozenset())


def require(principal: Principal | None, permission: Permission) -> Principal:
    """The principal, if it may do `permission`; Unauthenticated or Forbidden if not."""
    if principal is None:
        raise Unauthenticated("Sign in to continue")
    if not can(principal, permission):
        role = Role(principal.role).value
        raise Forbidden(
            f"Your role ({role}) may not do this",
            details={"role": role, "permission": permission.value},
        )
    return principal
