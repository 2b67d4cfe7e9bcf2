"""Users against the real SQLite file: creation and its checks, the first
admin (once, also when racing), the last active admin, deactivation, password
changes and the password check of a sign-in."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from argon2 import PasswordHasher
from sqlmodel import select

from app.db import session_scope
from app.errors import (
    Forbidden,
    InvalidCredentials,
    LastAdmin,
    SetupAlreadyDone,
    UserExists,
    UserNotFound,
    ValidationFailed,
)
from app.models.users import Principal, Role, User, UserPublic
from app.services import passwords
from app.services import users as user_store
from app.services.sessions import create_session, resolve_session
from tests.principals import AUDITOR

pytestmark = pytest.mark.integration

T = TypeVar("T")
PASSWORD = "correct horse battery"



def _create(email: str, role: Role | str = Role.OPERATOR, password: str = PASSWORD) -> UserPublic:
    with session_scope() as session:
        return user_store.create_user(
            session=session,
            email=email,
            display_name=email.split("@")[0].title(),
            password=password,
            role=role,
            actor=None,
        )


def _principal(user: UserPublic) -> Principal:
    return Principal(
        user_id=user.id, email=user.email, display_name=user.display_name, role=user.role
    )


def _count() -> int:
    with session_scope() as session:
        return user_store.count_users(session=session)


def _race(calls: list[Callable[[], T]]) -> list[T | BaseException]:
    """Run each call in its own thread, released at the same moment."""
    barrier = threading.Barrier(len(calls))
    results: list[T | BaseException] = [RuntimeError("not run")] * len(calls)

    def run(index: int, call: Callable[[], T]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except BaseException as error:  # noqa: BLE001 - collected for the test
            results[index] = error

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


# ----- creation -----


def test_create_user_stores_a_normalized_email_and_a_hash(taskdeck: Path) -> None:
    user = _create("  Ada@Example.COM ", role="Viewer")

    assert user.email == "ada@example.com"
    assert user.role is Role.VIEWER
    assert user.is_active is True
    assert user.last_login_at is None
    with session_scope() as session:
        row = session.exec(select(User).where(User.id == user.id)).one()
        assert row.password_hash.startswith("$argon2id$")
        assert PASSWORD not in row.password_hash
        assert user_store.find_user_by_email(session=session, email="ADA@example.com") == user
        assert user_store.find_user_by_email(session=session, email="nobody@example.com") is None
        assert user_store.find_user_by_email(session=session, email="not an email") is None
    assert '"created_at":"' in user.model_dump_json() and 'Z"' in user.model_dump_json()


def test_duplicate_email_is_refused_whatever_the_case(taskdeck: Path) -> None:
    _create("ada@example.com")

    with pytest.raises(UserExists):
        _create("ADA@Example.com")
    assert _count() == 1


def test_bad_fields_are_all_reported_and_nothing_is_stored(taskdeck: Path) -> None:
    with pytest.raises(ValidationFailed) as raised, session_scope() as session:
        user_store.create_user(
            session=session,
            email="not-an-email",
            display_name="   ",
            password="short",
            role="superuser",
            actor=None,
        )

    assert set(raised.value.details["fields"]) == {"email", "display_name", "password", "role"}
    assert "short" not in str(raised.value.details)
    assert _count() == 0


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("email", {"email": "ada@localhost"}),
        ("display_name", {"display_name": "x" * 101}),
        ("password", {"password": "x" * 11}),
        ("role", {"role": "owner"}),
    ],
)
def test_each_bad_field_alone_is_refused(
    taskdeck: Path, field: str, overrides: dict[str, str]
) -> None:
    values = {"email": "ada@example.com", "display_name": "Ada", "password": PASSWORD}
    values["role"] = "operator"
    values.update(overrides)
    with pytest.raises(ValidationFailed) as raised, session_scope() as session:
        user_store.create_user(session=session, actor=None, **values)  # type: ignore[arg-type]

    assert set(raised.value.details["fields"]) == {field}
    assert _count() == 0


def test_only_user_managers_create_users(taskdeck: Path) -> None:
    operator = _create("op@example.com", role=Role.OPERATOR)

    with pytest.raises(Forbidden), session_scope() as session:
        user_store.create_user(
            session=session,
            email="new@example.com",
            display_name="New",
            password=PASSWORD,
            role=Role.VIEWER,
            actor=_principal(operator),
        )
    assert _count() == 1


def test_get_and_list_users(taskdeck: Path) -> None:
    carol = _create("carol@example.com")
    alice = _create("alice@example.com")
    bob = _create("bob@example.com")

    with session_scope() as session:
        assert [u.email for u in user_store.list_users(session=session, actor=AUDITOR)] == [
            "alice@example.com",
            "bob@example.com",
            "carol@example.com",
        ]
        assert user_store.get_user(session=session, user_id=bob.id) == bob
        with pytest.raises(UserNotFound):
            user_store.get_user(session=session, user_id=carol.id + alice.id + 100)


# ----- first admin -----


def _first_admin(email: str) -> UserPublic:
    with session_scope() as session:
        return user_store.create_first_admin(
            session=session, email=email, display_name="Admin", password=PASSWORD, ip="10.0.0.1"
        )


def test_first_admin_only_once(taskdeck: Path) -> None:
    admin = _first_admin("root@example.com")

    assert admin.role is Role.ADMIN
    with pytest.raises(SetupAlreadyDone):
        _first_admin("other@example.com")
    with pytest.raises(SetupAlreadyDone):
        _first_admin("root@example.com")
    assert _count() == 1


def test_no_first_admin_once_any_user_exists(taskdeck: Path) -> None:
    _create("viewer@example.com", role=Role.VIEWER)

    with pytest.raises(SetupAlreadyDone):
        _first_admin("root@example.com")


@pytest.mark.parametrize("same_email", [False, True])
def test_racing_setups_make_exactly_one_admin(taskdeck: Path, same_email: bool) -> None:
    calls = [
        (lambda i=i: _first_admin("root@example.com" if same_email else f"root{i}@example.com"))
        for i in range(4)
    ]

    results = _race(calls)

    created = [r for r in results if isinstance(r, UserPublic)]
    refused = [r for r in results if isinstance(r, SetupAlreadyDone)]
    assert len(created) == 1, results
    assert len(refused) == 3, results
    with session_scope() as session:
        users = user_store.list_users(session=session, actor=AUDITOR)
    assert [u.id for u in users] == [created[0].id]
    assert users[0].role is Role.ADMIN


# ----- last admin -----


def _set_role(user_id: int, role: Role | str, actor: UserPublic) -> UserPublic:
    with session_scope() as session:
        return user_store.set_role(
            session=session, user_id=user_id, role=role, actor=_principal(actor)
        )


def _set_active(user_id: int, active: bool, actor: UserPublic) -> tuple[UserPublic, list[int]]:
    with session_scope() as session:
        return user_store.set_active(
            session=session, user_id=user_id, active=active, actor=_principal(actor)
        )


def test_the_last_admin_cannot_be_demoted(taskdeck: Path) -> None:
    admin = _first_admin("root@example.com")

    with pytest.raises(LastAdmin):
        _set_role(admin.id, Role.OPERATOR, admin)

    second = _create("second@example.com", role=Role.ADMIN)
    assert _set_role(admin.id, "viewer", second).role is Role.VIEWER
    with pytest.raises(LastAdmin):
        _set_role(second.id, Role.OPERATOR, second)
    with session_scope() as session:
        assert user_store.get_user(session=session, user_id=second.id).role is Role.ADMIN


def test_the_last_active_admin_cannot_be_deactivated(taskdeck: Path) -> None:
    admin = _first_admin("root@example.com")
    second = _create("second@example.com", role=Role.ADMIN)

    _set_active(admin.id, False, second)
    with pytest.raises(LastAdmin):
        _set_active(second.id, False, second)

    with session_scope() as session:
        assert user_store.get_user(session=session, user_id=admin.id).is_active is False
        assert user_store.get_user(session=session, user_id=second.id).is_active is True
    # An inactive admin does not count: the active one can't be demoted either.
    with pytest.raises(LastAdmin):
        _set_role(second.id, Role.VIEWER, second)


def test_demoting_each_other_at_once_leaves_an_admin(taskdeck: Path) -> None:
    first = _first_admin("root@example.com")
    second = _create("second@example.com", role=Role.ADMIN)

    results = _race(
        [
            lambda: _set_role(second.id, Role.VIEWER, first),
            lambda: _set_role(first.id, Role.VIEWER, second),
        ]
    )

    assert sum(isinstance(r, LastAdmin) for r in results) == 1, results
    with session_scope() as session:
        admins = [u for u in user_store.list_users(session=session, actor=AUDITOR) if u.role is Role.ADMIN]
    assert len(admins) == 1


def test_only_user_managers_change_roles_and_activity(taskdeck: Path) -> None:
    _first_admin("root@example.com")
    operator = _create("op@example.com", role=Role.OPERATOR)
    viewer = _create("viewer@example.com", role=Role.VIEWER)

    with pytest.raises(Forbidden):
        _set_role(operator.id, Role.ADMIN, operator)
    with pytest.raises(Forbidden):
        _set_active(viewer.id, False, operator)


# ----- deactivation and passwords -----


def _open_session(user_id: int) -> tuple[str, int]:
    with session_scope() as session:
        return create_session(session=session, user_id=user_id, ip="10.0.0.2", user_agent="test")


def _resolve(token: str) -> Principal | None:
    with session_scope() as session:
        return resolve_session(session=session, token=token)


def test_deactivation_ends_sessions_and_refuses_sign_in(taskdeck: Path) -> None:
    admin = _first_admin("root@example.com")
    user = _create("ada@example.com")
    sessions = [_open_session(user.id) for _ in range(2)]
    admin_token, _ = _open_session(admin.id)

    updated, ended = _set_active(user.id, False, admin)

    assert updated.is_active is False
    assert ended == sorted(session_id for _, session_id in sessions)
    assert all(_resolve(token) is None for token, _ in sessions)
    assert _resolve(admin_token) is not None
    with pytest.raises(InvalidCredentials), session_scope() as session:
        user_store.authenticate(session=session, email="ada@example.com", password=PASSWORD)

    # Deactivating twice changes nothing; reactivating does not revive sessions.
    assert _set_active(user.id, False, admin)[1] == []
    reactivated, ended = _set_active(user.id, True, admin)
    assert reactivated.is_active is True and ended == []
    assert all(_resolve(token) is None for token, _ in sessions)
    with session_scope() as session:
        user_store.authenticate(session=session, email="ada@example.com", password=PASSWORD)


def test_change_password_keeps_this_session_and_ends_the_others(taskdeck: Path) -> None:
    user = _create("ada@example.com")
    keep_token, keep_id = _open_session(user.id)
    others = [_open_session(user.id) for _ in range(2)]
    new_password = "a much better passphrase"

    with session_scope() as session:
        ended = user_store.change_password(
            session=session,
            user_id=user.id,
            current_password=PASSWORD,
            new_password=new_password,
            keep_session_id=keep_id,
        )

    assert ended == sorted(session_id for _, session_id in others)
    assert _resolve(keep_token) is not None
    assert all(_resolve(token) is None for token, _ in others)
    with session_scope() as session:
        with pytest.raises(InvalidCredentials):
            user_store.authenticate(session=session, email=user.email, password=PASSWORD)
        user_store.authenticate(session=session, email=user.email, password=new_password)


def test_change_password_checks_the_current_one_and_the_rules(taskdeck: Path) -> None:
    user = _create("ada@example.com")
    token, session_id = _open_session(user.id)

    with pytest.raises(ValidationFailed) as wrong, session_scope() as session:
        user_store.change_password(
            session=session,
            user_id=user.id,
            current_password="not the password",
            new_password="a much better passphrase",
            keep_session_id=None,
        )
    assert wrong.value.details == {"fields": {"current_password": "Current password is wrong"}}

    with pytest.raises(ValidationFailed) as weak, session_scope() as session:
        user_store.change_password(
            session=session,
            user_id=user.id,
            current_password=PASSWORD,
            new_password="short",
            keep_session_id=None,
        )
    assert set(weak.value.details["fields"]) == {"new_password"}
    # Nothing changed: the old password works and the session lives.
    assert _resolve(token) is not None
    with session_scope() as session:
        user_store.authenticate(session=session, email=user.email, password=PASSWORD)


# ----- authenticate -----


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("nobody@example.com", PASSWORD),
        ("ada@example.com", "not the password"),
        ("not an email", PASSWORD),
        ("ada@example.com", "x" * 5000),
        ("ada@example.com", ""),
    ],
)
def test_authenticate_refuses_with_one_message(taskdeck: Path, email: str, password: str) -> None:
    _create("ada@example.com")

    with pytest.raises(InvalidCredentials) as raised, session_scope() as session:
        user_store.authenticate(session=session, email=email, password=password)

    assert raised.value.message == "Wrong email or password"
    assert raised.value.http_status == 401
    assert raised.value.details == {}


def test_authenticate_sets_last_login_and_upgrades_old_hashes(taskdeck: Path) -> None:
    user = _create("ada@example.com")
    old_hash = PasswordHasher(time_cost=1, memory_cost=512, parallelism=1).hash(PASSWORD)
    with session_scope() as session:
        row = session.get(User, user.id)
        assert row is not None
        row.password_hash = old_hash
        session.add(row)

    with session_scope() as session:
        signed_in = user_store.authenticate(
            session=session, email=" ADA@example.com", password=PASSWORD
        )

    assert signed_in.id == user.id
    assert signed_in.last_login_at is not None
    with session_scope() as session:
        row = session.get(User, user.id)
        assert row is not None
        assert row.password_hash != old_hash
        assert passwords.needs_rehash(row.password_hash) is False
        assert passwords.verify_password(row.password_hash, PASSWORD)
