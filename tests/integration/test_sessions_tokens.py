"""Sign-in sessions and API tokens against the real SQLite file: expiry,
revocation, deactivated owners, who may revoke, and that no plaintext token
ever reaches the database file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col

from app.db import get_engine, session_scope
from app.errors import Forbidden, TokenNotFound, ValidationFailed
from app.models.common import utc_now
from app.models.users import ApiToken, CreatedToken, Principal, Role, UserPublic, UserSession
from app.services import api_tokens
from app.services import sessions as session_store
from app.services import users as user_store
from app.services.auth import principal_for_api_token, principal_for_session
from tests.principals import AUDITOR

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"



def _create(email: str, role: Role) -> UserPublic:
    with session_scope() as session:
        return user_store.create_user(
            session=session,
            email=email,
            display_name=email.split("@")[0],
            password=PASSWORD,
            role=role,
            actor=None,
        )


def _principal(user: UserPublic) -> Principal:
    return Principal(
        user_id=user.id, email=user.email, display_name=user.display_name, role=user.role
    )


@pytest.fixture
def people(taskdeck: Path) -> dict[str, UserPublic]:
    return {
        "admin": _create("admin@example.com", Role.ADMIN),
        "op": _create("op@example.com", Role.OPERATOR),
        "viewer": _create("viewer@example.com", Role.VIEWER),
    }


# ----- sessions -----


def _open(user_id: int, ttl_s: int = session_store.SESSION_TTL_S) -> tuple[str, int]:
    with session_scope() as session:
        return session_store.create_session(
            session=session, user_id=user_id, ip="192.0.2.1", user_agent="pytest", ttl_s=ttl_s
        )


def _end(token: str | None) -> int | None:
    with session_scope() as session:
        return session_store.end_session(session=session, token=token)


def test_a_session_resolves_to_its_user(people: dict[str, UserPublic]) -> None:
    op = people["op"]
    token, session_id = _open(op.id)

    principal = principal_for_session(token)

    assert principal == Principal(
        user_id=op.id,
        email="op@example.com",
        display_name="op",
        role=Role.OPERATOR,
        session_id=session_id,
    )
    assert len(token) >= 43
    with session_scope() as session:
        row = session.get(UserSession, session_id)
        assert row is not None
        assert row.token_hash == session_store.hash_token(token) != token
        assert row.expires_at - row.created_at == timedelta(seconds=session_store.SESSION_TTL_S)


@pytest.mark.parametrize("token", [None, "", "nope", "x" * 5000])
def test_missing_or_unknown_tokens_resolve_to_nobody(
    people: dict[str, UserPublic], token: str | None
) -> None:
    assert principal_for_session(token) is None
    assert _end(token) is None


def test_expired_sessions_resolve_to_nobody(people: dict[str, UserPublic]) -> None:
    short_token, _ = _open(people["op"].id, ttl_s=0)
    token, session_id = _open(people["op"].id)
    assert principal_for_session(token) is not None

    with session_scope() as session:
        session.execute(
            update(UserSession)
            .where(col(UserSession.id) == session_id)
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )

    assert principal_for_session(short_token) is None
    assert principal_for_session(token) is None
    assert _end(token) is None  # nothing live to end


def test_ending_a_session_twice(people: dict[str, UserPublic]) -> None:
    token, session_id = _open(people["viewer"].id)
    other_token, _ = _open(people["viewer"].id)

    assert _end(token) == session_id
    assert _end(token) is None
    assert principal_for_session(token) is None
    assert principal_for_session(other_token) is not None


def test_end_user_sessions_spares_the_one_named(people: dict[str, UserPublic]) -> None:
    op = people["op"]
    tokens = [_open(op.id) for _ in range(3)]
    admin_token, _ = _open(people["admin"].id)

    with session_scope() as session:
        ended = session_store.end_user_sessions(
            session=session, user_id=op.id, except_session_id=tokens[0][1]
        )

    assert ended == [tokens[1][1], tokens[2][1]]
    assert principal_for_session(tokens[0][0]) is not None
    assert principal_for_session(tokens[1][0]) is None
    assert principal_for_session(admin_token) is not None


def test_last_seen_is_written_at_most_once_a_minute(people: dict[str, UserPublic]) -> None:
    token, session_id = _open(people["op"].id)
    long_ago = utc_now() - timedelta(minutes=5)
    with session_scope() as session:
        session.execute(
            update(UserSession)
            .where(col(UserSession.id) == session_id)
            .values(last_seen_at=long_ago)
        )

    principal_for_session(token)
    with session_scope() as session:
        row = session.get(UserSession, session_id)
        assert row is not None
        first_seen = row.last_seen_at
    principal_for_session(token)
    with session_scope() as session:
        row = session.get(UserSession, session_id)
        assert row is not None
        assert first_seen > long_ago
        assert row.last_seen_at == first_seen


# ----- API tokens -----


def _token(
    owner: UserPublic, actor: UserPublic | None = None, name: str = "ci", **kwargs: object
) -> CreatedToken:
    with session_scope() as session:
        return api_tokens.create_token(
            session=session,
            owner_id=owner.id,
            name=name,
            expires_at=kwargs.get("expires_at"),  # type: ignore[arg-type]
            actor=_principal(actor) if actor else None,
        )


def _revoke(token_id: int, actor: UserPublic) -> object:
    with session_scope() as session:
        return api_tokens.revoke_token(session=session, token_id=token_id, actor=_principal(actor))


def test_a_token_is_shown_once_and_stored_only_as_a_hash(
    people: dict[str, UserPublic], taskdeck: Path
) -> None:
    created = _token(people["op"], name="  deploy bot ")

    assert created.token.startswith(api_tokens.TOKEN_PREFIX)
    assert created.info.token_prefix == created.token[3:11]
    assert created.info.name == "deploy bot"
    assert created.info.owner_email == "op@example.com"
    assert "token" not in created.info.model_dump()
    digest = session_store.hash_token(created.token)
    # Session tokens too: the cookie's value must not reach the file either.
    session_token, _ = _open(people["op"].id)

    get_engine().dispose()  # nothing cached in connections; the bytes are on disk
    files = [taskdeck / "taskdeck.db", taskdeck / "taskdeck.db-wal"]
    data = b"".join(path.read_bytes() for path in files if path.exists())
    assert digest.encode() in data  # we are looking at the right bytes
    assert created.token.encode() not in data
    assert created.token[3:].encode() not in data
    assert session_token.encode() not in data


def test_a_token_acts_as_its_owner(people: dict[str, UserPublic]) -> None:
    created = _token(people["viewer"])

    principal = principal_for_api_token(created.token)

    assert principal is not None
    assert principal.user_id == people["viewer"].id
    assert principal.role is Role.VIEWER
    assert principal.token_id == created.info.id
    assert principal.session_id is None
    with session_scope() as session:
        assert api_tokens.get_token(session=session, token_id=created.info.id).last_used_at


@pytest.mark.parametrize(
    "token", [None, "", "td_", "td_nope", "abc", "td_" + "x" * 500, "Bearer td_x"]
)
def test_malformed_or_unknown_tokens_are_refused(
    people: dict[str, UserPublic], token: str | None
) -> None:
    _token(people["op"])

    assert principal_for_api_token(token) is None


def test_a_token_without_its_prefix_is_refused(people: dict[str, UserPublic]) -> None:
    created = _token(people["op"])

    assert principal_for_api_token(created.token[3:]) is None
    assert principal_for_api_token(created.token + "x") is None


def test_expired_tokens_are_refused(people: dict[str, UserPublic]) -> None:
    created = _token(people["op"], expires_at=utc_now() + timedelta(hours=1))
    assert principal_for_api_token(created.token) is not None

    with session_scope() as session:
        session.execute(
            update(ApiToken)
            .where(col(ApiToken.id) == created.info.id)
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )

    assert principal_for_api_token(created.token) is None


@pytest.mark.parametrize(
    ("name", "expires_in", "field"),
    [
        ("", None, "name"),
        ("   ", None, "name"),
        ("x" * 101, None, "name"),
        ("ci", timedelta(seconds=-1), "expires_at"),
        ("ci", timedelta(0), "expires_at"),
    ],
)
def test_bad_token_fields_are_refused(
    people: dict[str, UserPublic], name: str, expires_in: timedelta | None, field: str
) -> None:
    expires_at = utc_now() + expires_in if expires_in is not None else None
    with pytest.raises(ValidationFailed) as raised:
        _token(people["op"], name=name, expires_at=expires_at)

    assert set(raised.value.details["fields"]) == {field}
    with session_scope() as session:
        assert api_tokens.list_tokens(session=session, actor=AUDITOR, owner_id=None) == []


def test_naive_expiry_is_refused(people: dict[str, UserPublic]) -> None:
    with pytest.raises(ValidationFailed):
        _token(people["op"], expires_at=(utc_now() + timedelta(days=1)).replace(tzinfo=None))


def test_tokens_of_others_need_manage_tokens(people: dict[str, UserPublic]) -> None:
    with pytest.raises(Forbidden):
        _token(people["viewer"], actor=people["op"])

    own = _token(people["op"], actor=people["op"])
    for_someone = _token(people["viewer"], actor=people["admin"])
    assert own.info.owner_id == people["op"].id
    assert for_someone.info.owner_id == people["viewer"].id


def test_owner_and_admin_may_revoke_others_may_not(people: dict[str, UserPublic]) -> None:
    by_owner = _token(people["op"], name="one")
    by_admin = _token(people["op"], name="two")

    with pytest.raises(Forbidden):
        _revoke(by_owner.info.id, people["viewer"])
    assert principal_for_api_token(by_owner.token) is not None

    revoked = _revoke(by_owner.info.id, people["op"])
    again = _revoke(by_owner.info.id, people["op"])
    assert revoked == again
    assert revoked.revoked_at is not None  # type: ignore[attr-defined]
    assert principal_for_api_token(by_owner.token) is None

    _revoke(by_admin.info.id, people["admin"])
    assert principal_for_api_token(by_admin.token) is None

    with pytest.raises(TokenNotFound):
        _revoke(by_admin.info.id + 100, people["admin"])


def test_a_deactivated_owners_tokens_are_refused(people: dict[str, UserPublic]) -> None:
    created = _token(people["op"])
    admin = _principal(people["admin"])

    with session_scope() as session:
        user_store.set_active(session=session, user_id=people["op"].id, active=False, actor=admin)
    assert principal_for_api_token(created.token) is None
    with pytest.raises(ValidationFailed):
        _token(people["op"])

    with session_scope() as session:
        user_store.set_active(session=session, user_id=people["op"].id, active=True, actor=admin)
    assert principal_for_api_token(created.token) is not None


def test_a_token_carries_its_owners_current_role(people: dict[str, UserPublic]) -> None:
    created = _token(people["op"])
    with session_scope() as session:
        user_store.set_role(
            session=session,
            user_id=people["op"].id,
            role=Role.VIEWER,
            actor=_principal(people["admin"]),
        )

    principal = principal_for_api_token(created.token)
    assert principal is not None and principal.role is Role.VIEWER


def test_list_tokens_newest_first_with_owner_filter(people: dict[str, UserPublic]) -> None:
    first = _token(people["op"], name="first")
    second = _token(people["viewer"], name="second")
    third = _token(people["op"], name="third")

    with session_scope() as session:
        everyone = api_tokens.list_tokens(session=session, actor=AUDITOR, owner_id=None)
        ops = api_tokens.list_tokens(session=session, actor=AUDITOR, owner_id=people["op"].id)
        nobody = api_tokens.list_tokens(session=session, actor=AUDITOR, owner_id=people["admin"].id)

    assert [t.id for t in everyone] == [third.info.id, second.info.id, first.info.id]
    assert [t.name for t in ops] == ["third", "first"]
    assert {t.owner_email for t in ops} == {"op@example.com"}
    assert nobody == []
    assert '"created_at":"' in everyone[0].model_dump_json()
