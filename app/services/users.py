"""Users: validation of their fields, creation (and the first admin of
/setup), roles, deactivation, password changes and the password check of a
sign-in.

Every change is written to the audit log in the caller's transaction. Two
rules hold against concurrent requests too: there is at most one first admin,
and there is always at least one active admin. Both are checked after the
write (SQLite serialises writers; on PostgreSQL the users table is locked for
the rest of the transaction), so the loser raises and its transaction rolls
back.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from sqlalchemy import func, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.errors import (
    InvalidCredentials,
    LastAdmin,
    SetupAlreadyDone,
    UserExists,
    UserNotFound,
    ValidationFailed,
)
from app.models.common import utc_now
from app.models.users import (
    MAX_DISPLAY_NAME_CHARS,
    Principal,
    Role,
    User,
    UserPublic,
)
from app.services import audit
from app.services.emails import email_problem
from app.services.passwords import (
    MAX_PASSWORD_CHARS,
    burn_verify,
    check_password_rules,
    hash_password,
    needs_rehash,
    password_rule_error,
    verify_password,
)
from app.services.permissions import Permission, require
from app.services.sessions import end_user_sessions

T = TypeVar("T")

log = structlog.get_logger(__name__)


# ----- field rules -----


def _invalid(field: str, problem: str, message: str | None = None) -> ValidationFailed:
    return ValidationFailed(message or problem, details={"fields": {field: problem}})


def normalize_email(email: str) -> str:
    """The stored form of an email: stripped and lowercase.
    ValidationFailed (details.fields.email) when it is not an address."""
    value = email.strip().lower() if isinstance(email, str) else ""
    problem = email_problem(value)
    if problem is not None:
        raise _invalid("email", problem, f"Invalid email address: {problem.lower()}")
    return value


def check_display_name(name: str) -> str:
    """The display name, stripped; 1 to 100 characters, no control characters."""
    value = name.strip() if isinstance(name, str) else ""
    if not value:
        raise _invalid("display_name", "Enter a name")
    if len(value) > MAX_DISPLAY_NAME_CHARS:
        raise _invalid("display_name", f"Use at most {MAX_DISPLAY_NAME_CHARS} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise _invalid("display_name", "Remove the control characters")
    return value


def parse_role(value: str | Role) -> Role:
    """The role named by `value` (case-insensitive); ValidationFailed listing
    the roles otherwise."""
    try:
        return Role(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(role.value for role in Role)
        raise _invalid("role", f"Choose one of: {allowed}") from None


# ----- reading -----


def to_public(user: User) -> UserPublic:
    assert user.id is not None
    return UserPublic(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=Role(user.role),
        is_active=user.is_active,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


def principal_of(user: User) -> Principal:
    """A principal for `user` acting without a session or token (self-service, CLI)."""
    assert user.id is not None
    return Principal(
        user_id=user.id, email=user.email, display_name=user.display_name, role=Role(user.role)
    )


def count_users(*, session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(User)).one())


def _get(session: Session, user_id: int) -> User:
    user = session.get(User, user_id, populate_existing=True)
    if user is None:
        raise UserNotFound(f"User {user_id} does not exist", details={"user_id": user_id})
    return user


def get_user(*, session: Session, user_id: int) -> UserPublic:
    return to_public(_get(session, user_id))


def find_user_by_email(*, session: Session, email: str) -> UserPublic | None:
    """The user with that email (any case), or None, also for a malformed one."""
    try:
        key = normalize_email(email)
    except ValidationFailed:
        return None
    user = session.exec(select(User).where(User.email == key)).first()
    return to_public(user) if user is not None else None


def list_users(
    *,
    session: Session,
    actor: Principal | None,
    after_email: str | None = None,
    limit: int | None = None,
) -> list[UserPublic]:
    """Users ordered by email (stored normalised, so unique); `after_email`
    and `limit` page through them. Admins only."""
    require(actor, Permission.MANAGE_USERS)
    query = select(User)
    if after_email is not None:
        query = query.where(col(User.email) > after_email)
    query = query.order_by(col(User.email))
    if limit is not None:
        query = query.limit(limit)
    return [to_public(u) for u in session.exec(query).all()]


# ----- creating -----


def _lock_users(session: Session) -> None:
    """Serialise the writers that check a rule over all users (PostgreSQL;
    SQLite has one writer at a time anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE"))


def _validated_fields(
    email: str, display_name: str, password: str, role: Role | str
) -> tuple[str, str, Role]:
    """All fields checked at once, so that a form shows every problem together."""
    problems: dict[str, str] = {}

    def checked(check: Callable[[Any], T], value: Any) -> T | None:
        try:
            return check(value)
        except ValidationFailed as error:
            problems.update(error.details["fields"])
            return None

    clean_email = checked(normalize_email, email)
    clean_name = checked(check_display_name, display_name)
    clean_role = checked(parse_role, role)
    password_problem = password_rule_error(password)
    if password_problem is not None:
        problems["password"] = password_problem
    if problems or clean_email is None or clean_name is None or clean_role is None:
        names = ", ".join(sorted(problems))
        raise ValidationFailed(f"Please correct: {names}", details={"fields": problems})
    return clean_email, clean_name, clean_role


def _insert_user(
    session: Session, *, email: str, display_name: str, password: str, role: Role
) -> User:
    user = User(
        email=email,
        display_name=display_name,
        role=role,
        password_hash=hash_password(password),
    )
    session.add(user)
    session.flush()
    return user


def create_user(
    *,
    session: Session,
    email: str,
    display_name: str,
    password: str,
    role: Role | str,
    actor: Principal | None,
    ip: str | None = None,
) -> UserPublic:
    """Add a user. `actor` None is the CLI (trusted); otherwise it needs
    MANAGE_USERS. UserExists when the email is taken (in any case)."""
    if actor is not None:
        require(actor, Permission.MANAGE_USERS)
    email, display_name, role = _validated_fields(email, display_name, password, role)
    if session.exec(select(User.id).where(User.email == email)).first() is not None:
        raise UserExists(f"A user with the email {email} exists already", details={"email": email})
    try:
        user = _insert_user(
            session, email=email, display_name=display_name, password=password, role=role
        )
    except IntegrityError:  # created by someone else since the check
        raise UserExists(
            f"A user with the email {email} exists already", details={"email": email}
        ) from None
    audit.record(
        session=session,
        action=audit.USER_CREATE,
        actor=actor,
        object_type="user",
        object_id=user.id,
        details={"email": email, "role": role.value},
        ip=ip,
    )
    log.info("user_created", user_id=user.id, role=role.value)
    return to_public(user)


def create_first_admin(
    *,
    session: Session,
    email: str,
    display_name: str,
    password: str,
    ip: str | None = None,
) -> UserPublic:
    """The admin of /setup; SetupAlreadyDone once any user exists, also when
    two setups race (the second raises, and its transaction rolls back)."""
    already = SetupAlreadyDone("Setup is done: sign in instead")
    if count_users(session=session) > 0:
        raise already
    email, display_name, role = _validated_fields(email, display_name, password, Role.ADMIN)
    _lock_users(session)
    try:
        user = _insert_user(
            session, email=email, display_name=display_name, password=password, role=role
        )
    except IntegrityError:
        raise already from None
    if count_users(session=session) > 1:  # another setup won the race
        session.delete(user)
        session.flush()
        raise already
    audit.record(
        session=session,
        action=audit.SETUP_ADMIN_CREATED,
        actor=principal_of(user),
        object_type="user",
        object_id=user.id,
        details={"email": email, "role": role.value},
        ip=ip,
    )
    log.info("first_admin_created", user_id=user.id)
    return to_public(user)


# ----- changing -----


def _count_active_admins(session: Session) -> int:
    return int(
        session.exec(
            select(func.count())
            .select_from(User)
            .where(User.role == Role.ADMIN.value, col(User.is_active).is_(True))
        ).one()
    )


def _last_admin(what: str) -> LastAdmin:
    return LastAdmin(f"{what}: Taskdeck needs at least one active admin")


def set_role(
    *,
    session: Session,
    user_id: int,
    role: Role | str,
    actor: Principal,
    ip: str | None = None,
) -> UserPublic:
    """Give the user another role (needs MANAGE_USERS); LastAdmin if that
    would leave no active admin."""
    require(actor, Permission.MANAGE_USERS)
    new_role = parse_role(role)
    _lock_users(session)
    user = _get(session, user_id)
    old_role = Role(user.role)
    if old_role == new_role:
        return to_public(user)
    last_admin = _last_admin("This is the last admin")
    if old_role == Role.ADMIN and user.is_active and _count_active_admins(session) <= 1:
        raise last_admin
    user.role = new_role
    session.add(user)
    session.flush()
    if old_role == Role.ADMIN and _count_active_admins(session) == 0:  # lost a race
        user.role = old_role
        session.flush()
        raise last_admin
    audit.record(
        session=session,
        action=audit.USER_ROLE_CHANGE,
        actor=actor,
        object_type="user",
        object_id=user_id,
        details={"email": user.email, "from": old_role.value, "to": new_role.value},
        ip=ip,
    )
    log.info("user_role_changed", user_id=user_id, to=new_role.value, by=actor.user_id)
    return to_public(user)


def set_active(
    *,
    session: Session,
    user_id: int,
    active: bool,
    actor: Principal,
    ip: str | None = None,
) -> tuple[UserPublic, list[int]]:
    """Deactivate or reactivate a user (needs MANAGE_USERS). Deactivating
    ends every session of the user; the ended session ids are returned so the
    caller can tell the open tabs. Their API tokens stop working while the
    user is inactive (and work again on reactivation unless revoked)."""
    require(actor, Permission.MANAGE_USERS)
    _lock_users(session)
    user = _get(session, user_id)
    if user.is_active == active:
        return to_public(user), []
    is_admin = user.role == Role.ADMIN
    last_admin = _last_admin("This is the last active admin")
    if not active and is_admin and _count_active_admins(session) <= 1:
        raise last_admin
    user.is_active = active
    session.add(user)
    session.flush()
    ended: list[int] = []
    if not active:
        if is_admin and _count_active_admins(session) == 0:  # lost a race
            user.is_active = True
            session.flush()
            raise last_admin
        ended = end_user_sessions(session=session, user_id=user_id)
    audit.record(
        session=session,
        action=audit.USER_ACTIVATE if active else audit.USER_DEACTIVATE,
        actor=actor,
        object_type="user",
        object_id=user_id,
        details={"email": user.email, "sessions_ended": len(ended)},
        ip=ip,
    )
    log.info("user_activated" if active else "user_deactivated", user_id=user_id)
    return to_public(user), ended


def change_password(
    *,
    session: Session,
    user_id: int,
    current_password: str,
    new_password: str,
    keep_session_id: int | None,
    ip: str | None = None,
) -> list[int]:
    """The user changes their own password. ValidationFailed with
    fields.current_password when the current one is wrong, fields.new_password
    when the new one breaks a rule. Ends the user's other sessions (all but
    `keep_session_id`) and returns their ids."""
    user = _get(session, user_id)
    if not verify_password(user.password_hash, current_password):
        raise _invalid("current_password", "Current password is wrong")
    check_password_rules(new_password, field="new_password")
    now = utc_now()
    user.password_hash = hash_password(new_password)
    user.password_changed_at = now
    session.add(user)
    session.flush()
    ended = end_user_sessions(session=session, user_id=user_id, except_session_id=keep_session_id)
    audit.record(
        session=session,
        action=audit.USER_PASSWORD_CHANGE,
        actor=principal_of(user),
        object_type="user",
        object_id=user_id,
        details={"sessions_ended": len(ended)},
        ip=ip,
    )
    log.info("user_password_changed", user_id=user_id)
    return ended


def authenticate(*, session: Session, email: str, password: str) -> UserPublic:
    """The user whose email and password these are. InvalidCredentials, with
    the same message and about the same work, for an unknown or malformed
    email, a wrong password or a deactivated user. Sets last_login_at and
    upgrades an outdated hash."""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
        raise InvalidCredentials()  # can never match; not worth hashing
    try:
        key = normalize_email(email)
    except ValidationFailed:
        burn_verify(password)
        raise InvalidCredentials() from None
    user = session.exec(select(User).where(User.email == key)).first()
    if user is None:
        burn_verify(password)
        raise InvalidCredentials()
    if not verify_password(user.password_hash, password) or not user.is_active:
        raise InvalidCredentials()
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utc_now()
    session.add(user)
    session.flush()
    return to_public(user)
