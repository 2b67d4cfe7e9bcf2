"""Profiles against the real SQLite file: create, read, list, search, update
with replace semantics for secrets, clone, delete, token state, and proof
that no secret reaches the database files, the audit log, the logs or a
public shape in clear."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, select
from structlog.testing import capture_logs

from app.db import get_engine, session_scope
from app.errors import (
    Forbidden,
    ProfileInUse,
    ProfileNameTaken,
    ProfileNotFound,
    ValidationFailed,
)
from app.migrate import upgrade_to_head
from app.models.profiles import (
    SECRET_FIELDS,
    AuthKind,
    Profile,
    ProfileInput,
    ProfilePublic,
    TokenStatus,
)
from app.models.users import AuditEvent, Principal, Role
from app.services import audit
from app.services import profiles as store
from app.settings import get_settings
from tests.principals import AUDITOR

pytestmark = pytest.mark.integration

TOKEN_URL = "https://auth.example.com/oauth/token"


def _secret(kind: str, field: str, round_: int = 1) -> str:
    return f"s3cr3t-UNIQUE-{round_}-{kind}-{field}"


def _auth(kind: AuthKind, round_: int = 1) -> dict[str, Any]:
    """A complete auth config of `kind`, every secret field distinctive."""
    plain: dict[AuthKind, dict[str, Any]] = {
        AuthKind.NONE: {},
        AuthKind.BEARER: {},
        AuthKind.BASIC: {"username": "alice"},
        AuthKind.API_KEY: {"header": "X-API-Key"},
        AuthKind.OAUTH2_CLIENT_CREDENTIALS: {
            "token_url": TOKEN_URL,
            "client_id": "client-cc",
            "scopes": ["read", "write"],
            "audience": "https://api.example.com",
        },
        AuthKind.OAUTH2_REFRESH_TOKEN: {
            "token_url": TOKEN_URL,
            "client_id": "client-rt",
            "scopes": "read offline_access",
            "client_auth": "body",
        },
    }
    secrets = {field: _secret(kind.value, field, round_) for field in SECRET_FIELDS[kind]}
    return {"kind": kind.value, **plain[kind], **secrets}


def _all_secrets(round_: int = 1) -> list[str]:
    return [
        _secret(kind.value, field, round_) for kind in AuthKind for field in SECRET_FIELDS[kind]
    ]


def _data(name: str = "Example", **changes: Any) -> ProfileInput:
    return ProfileInput(**({"name": name, "base_url": "https://api.example.com"} | changes))


def _create(name: str = "Example", **changes: Any) -> ProfilePublic:
    with session_scope() as session:
        return store.create_profile(session=session, data=_data(name, **changes), actor=None)


def _update(profile: ProfilePublic, **changes: Any) -> ProfilePublic:
    """Send the profile back as a form would (masked secrets included), with changes."""
    fields = profile.model_dump(
        include={
            "name", "description", "base_url", "headers", "timeout_s", "verify_tls", "tags", "auth"
        }
    )
    with session_scope() as session:
        return store.update_profile(
            session=session,
            profile_id=profile.id,
            data=ProfileInput(**(fields | changes)),
            actor=None,
        )


def _resolved_auth(profile_id: int) -> dict[str, Any]:
    with session_scope() as session:
        return store.resolve_profile(session=session, profile_id=profile_id).auth


def _events(action: str) -> list[AuditEvent]:
    with Session(get_engine()) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def _count(session: Session, model: type[Any]) -> int:
    return int(session.exec(select(func.count()).select_from(model)).one())


def _principal(role: Role) -> Principal:
    return Principal(user_id=7, email=f"{role.value}@example.com", display_name="X", role=role)


# ----- create and read -----


def test_create_and_read_masks_every_secret(taskdeck: Path) -> None:
    created = _create(
        "GitHub",
        description="Source hosting",
        headers={"Accept": "application/vnd.github+json"},
        timeout_s=12.5,
        verify_tls=False,
        tags=["Dev", "git"],
        auth={"kind": "bearer", "token": "ghp_0123456789abcd"},
    )

    with session_scope() as session:
        read = store.get_profile(session=session, profile_id=created.id)
    assert read == created
    assert read.auth == {"kind": "bearer", "token": "****abcd"}
    assert read.tags == ["dev", "git"]
    assert read.timeout_s == 12.5 and read.verify_tls is False
    assert read.token_state.status == TokenStatus.NOT_APPLICABLE
    body = read.model_dump(mode="json")
    assert body["created_at"].endswith("Z")
    assert "ghp_0123456789abcd" not in read.model_dump_json()
    assert _resolved_auth(created.id) == {"token": "ghp_0123456789abcd"}


def test_oauth2_profile_starts_without_a_token(taskdeck: Path) -> None:
    public_client = _auth(AuthKind.OAUTH2_REFRESH_TOKEN) | {"client_secret": None}
    created = _create(auth=public_client)

    assert created.token_state.model_dump() == {
        "status": TokenStatus.EXPIRING,
        "expires_at": None,
        "error": None,
    }
    assert created.auth == {
        "kind": "oauth2_refresh_token",
        "token_url": TOKEN_URL,
        "client_id": "client-rt",
        "scopes": ["read", "offline_access"],
        "client_auth": "body",
        "client_secret": None,
        "refresh_token": "****oken",
    }


def test_unknown_profile_is_not_found(taskdeck: Path) -> None:
    with session_scope() as session, pytest.raises(ProfileNotFound) as caught:
        store.get_profile(session=session, profile_id=404)

    assert caught.value.http_status == 404


def test_resolve_gives_every_field_of_the_kind(taskdeck: Path) -> None:
    created = _create(auth=_auth(AuthKind.OAUTH2_CLIENT_CREDENTIALS), headers={"Accept": "a/b"})

    with session_scope() as session:
        resolved = store.resolve_profile(session=session, profile_id=created.id)

    assert resolved.auth_kind == AuthKind.OAUTH2_CLIENT_CREDENTIALS
    assert resolved.headers == {"Accept": "a/b"}
    assert resolved.auth == {
        "token_url": TOKEN_URL,
        "client_id": "client-cc",
        "scopes": ["read", "write"],
        "audience": "https://api.example.com",
        "client_auth": "header",
        "client_secret": _secret("oauth2_client_credentials", "client_secret"),
    }
    assert _secret("oauth2_client_credentials", "client_secret") not in repr(resolved)
    assert _secret("oauth2_client_credentials", "client_secret") not in str(resolved)


def test_viewer_may_not_change_profiles_operator_may(taskdeck: Path) -> None:
    with session_scope() as session, pytest.raises(Forbidden):
        store.create_profile(session=session, data=_data(), actor=_principal(Role.VIEWER))
    with session_scope() as session:
        created = store.create_profile(
            session=session, data=_data(), actor=_principal(Role.OPERATOR), ip="10.0.0.1"
        )
    (event,) = _events(store.PROFILE_CREATE)
    assert event.actor_id == 7 and event.ip == "10.0.0.1"
    assert event.object_id == str(created.id)
    assert event.details == {"name": "Example", "auth_kind": "none"}


# ----- names -----


def test_names_are_unique_ignoring_case(taskdeck: Path) -> None:
    first = _create("Billing API")

    with pytest.raises(ProfileNameTaken) as caught:
        _create("  BILLING api ")
    assert "name" in caught.value.details["fields"]
    assert caught.value.http_status == 409

    other = _create("Other")
    with pytest.raises(ProfileNameTaken):
        _update(other, name="billing API")
    renamed = _update(first, name="BILLING API")  # its own name in another case
    assert renamed.name == "BILLING API"


# ----- list, search, tags -----


def test_list_is_ordered_by_name_and_filters(taskdeck: Path) -> None:
    _create("zeta", tags=["prod"], base_url="https://zeta.example.org")
    _create("Alpha", tags=["prod", "billing"], description="Invoices 100% done")
    _create("beta_1", tags=["staging"])
    _create("beta-2", tags=["prod_eu"])

    with session_scope() as session:

        def names(**kwargs: Any) -> list[str]:
            return [p.name for p in store.list_profiles(session=session, **kwargs)]

        assert names() == ["Alpha", "beta-2", "beta_1", "zeta"]
        assert names(search="ALPHA") == ["Alpha"]
        assert names(search="invoices") == ["Alpha"]  # description
        assert names(search="EXAMPLE.ORG") == ["zeta"]  # base URL
        assert names(search="100%") == ["Alpha"]  # % is literal
        assert names(search="a_1") == ["beta_1"]  # _ is literal
        assert names(search="   ") == names()
        assert names(tag="prod") == ["Alpha", "zeta"]  # exact tag, not prod_eu
        assert names(tag=" PROD_EU ") == ["beta-2"]
        assert names(tag="prod", search="zet") == ["zeta"]
        assert names(tag='prod", "') == []
        assert names(search="nothing like it") == []


# ----- nothing half-saved -----


def test_bad_input_saves_nothing(taskdeck: Path) -> None:
    kept = _create("Kept", auth={"kind": "bearer", "token": "original-token-1"})

    with pytest.raises(ValidationFailed) as caught:
        _create("", base_url="ftp://x", auth={"kind": "bearer"})
    assert {"name", "base_url", "auth.token"} <= set(caught.value.details["fields"])
    with pytest.raises(ValidationFailed):
        _update(kept, name="Renamed", base_url="javascript:alert(1)")
    with pytest.raises(ProfileNameTaken):
        _create("kept")

    with session_scope() as session:
        assert _count(session, Profile) == 1
        assert store.get_profile(session=session, profile_id=kept.id) == kept
    assert len(_events(store.PROFILE_CREATE)) == 1
    assert _events(store.PROFILE_UPDATE) == []


# ----- update -----


def test_update_replace_semantics_for_secrets(taskdeck: Path) -> None:
    auth = _auth(AuthKind.OAUTH2_REFRESH_TOKEN) | {"client_secret": "cs-first-1234"}
    created = _create(auth=auth)
    assert created.auth["client_secret"] == "****1234"

    # Sent back masked: nothing changes, no audit event.
    same = _update(created)
    assert same == created
    assert _events(store.PROFILE_UPDATE) == []

    # A new refresh token replaces; the masked client secret stays.
    updated = _update(created, auth=created.auth | {"refresh_token": "rt-second-5678"})
    assert updated.auth["refresh_token"] == "****5678"
    assert updated.auth["client_secret"] == "****1234"
    assert _resolved_auth(created.id)["refresh_token"] == "rt-second-5678"
    assert _resolved_auth(created.id)["client_secret"] == "cs-first-1234"
    (event,) = _events(store.PROFILE_UPDATE)
    assert event.details["changed"] == ["auth.refresh_token"]

    # Left out or None: kept too.
    auth = {k: v for k, v in updated.auth.items() if k != "client_secret"} | {"refresh_token": None}
    _update(updated, auth=auth, description="still the same secrets")
    assert _resolved_auth(created.id)["client_secret"] == "cs-first-1234"
    assert _resolved_auth(created.id)["refresh_token"] == "rt-second-5678"


def test_changing_the_kind_drops_old_secrets(taskdeck: Path) -> None:
    created = _create(auth={"kind": "bearer", "token": "old-bearer-token"})

    with pytest.raises(ValidationFailed) as caught:  # the old token is no password
        _update(created, auth={"kind": "basic", "username": "bob", "token": "****oken"})
    assert "auth.password" in caught.value.details["fields"]

    changed = _update(created, auth={"kind": "basic", "username": "bob", "password": "pw-12345678"})

    assert changed.auth == {"kind": "basic", "username": "bob", "password": "****5678"}
    assert _resolved_auth(created.id) == {"username": "bob", "password": "pw-12345678"}
    with Session(get_engine()) as session:
        row = session.get(Profile, created.id)
        assert row is not None and set(row.secret_hints) == {"password"}
    (event,) = _events(store.PROFILE_UPDATE)
    assert event.details["changed"] == [
        "auth.kind",
        "auth.username",
        "auth.password",
        "auth.token",
    ]

    none = _update(changed, auth={"kind": "none"})
    assert none.auth == {"kind": "none"}
    with Session(get_engine()) as session:
        row = session.get(Profile, created.id)
        assert row is not None and row.secrets_ciphertext is None and row.secret_hints == {}


def test_update_lists_changed_fields_and_bumps_updated_at(taskdeck: Path) -> None:
    created = _create(tags=["a"], headers={"Accept": "x/y"})

    updated = _update(
        created, description="new", tags=["a", "b"], headers={"Accept": "x/y"}, timeout_s=5
    )

    assert updated.updated_at > created.updated_at
    assert updated.created_at == created.created_at
    (event,) = _events(store.PROFILE_UPDATE)
    assert event.details == {"name": "Example", "changed": ["description", "timeout_s", "tags"]}


def test_oauth2_changes_reset_the_token_state(taskdeck: Path) -> None:
    created = _create(auth=_auth(AuthKind.OAUTH2_CLIENT_CREDENTIALS))
    expires = datetime.now(UTC) + timedelta(hours=1)
    with session_scope() as session:
        valid = store.record_token_state(
            session=session,
            profile_id=created.id,
            status=TokenStatus.VALID,
            expires_at=expires,
            error=None,
        )
    assert valid.token_state.status == TokenStatus.VALID

    # Not about the token: the state stays.
    renamed = _update(valid, description="other words")
    assert renamed.token_state == valid.token_state

    for auth in (
        valid.auth | {"scopes": ["read"]},
        valid.auth | {"client_secret": "another-client-secret"},
    ):
        with session_scope() as session:
            store.record_token_state(
                session=session,
                profile_id=created.id,
                status=TokenStatus.VALID,
                expires_at=expires,
                error=None,
            )
        reset = _update(renamed, auth=auth)
        assert reset.token_state.status == TokenStatus.EXPIRING
        assert reset.token_state.expires_at is None and reset.token_state.error is None


def test_update_of_unknown_profile_is_not_found(taskdeck: Path) -> None:
    with session_scope() as session, pytest.raises(ProfileNotFound):
        store.update_profile(session=session, profile_id=99, data=_data(), actor=None)


# ----- clone -----


def test_clone_copies_credentials_with_free_names(taskdeck: Path) -> None:
    source = _create("Payments", tags=["prod"], auth=_auth(AuthKind.OAUTH2_REFRESH_TOKEN))
    with session_scope() as session:
        store.record_token_state(
            session=session,
            profile_id=source.id,
            status=TokenStatus.FAILED,
            expires_at=None,
            error="invalid_grant",
        )

    with session_scope() as session:
        first = store.clone_profile(
            session=session, profile_id=source.id, new_name=None, actor=None
        )
        second = store.clone_profile(
            session=session, profile_id=source.id, new_name=None, actor=None
        )
        named = store.clone_profile(
            session=session, profile_id=source.id, new_name=" Payments EU ", actor=None
        )

    assert [first.name, second.name, named.name] == [
        "Payments (copy)",
        "Payments (copy 2)",
        "Payments EU",
    ]
    for clone in (first, second, named):
        assert clone.auth == source.auth and clone.tags == ["prod"]
        assert clone.token_state.status == TokenStatus.EXPIRING
        assert clone.token_state.error is None
        assert _resolved_auth(clone.id) == _resolved_auth(source.id)
    with pytest.raises(ProfileNameTaken), session_scope() as session:
        store.clone_profile(session=session, profile_id=source.id, new_name="payments", actor=None)
    event = _events(store.PROFILE_CLONE)[0]
    assert event.details == {
        "name": "Payments (copy)",
        "from_id": source.id,
        "from_name": "Payments",
    }


def test_clone_of_a_long_name_fits(taskdeck: Path) -> None:
    source = _create("n" * 100)

    with session_scope() as session:
        clone = store.clone_profile(
            session=session, profile_id=source.id, new_name=None, actor=None
        )

    assert clone.name == "n" * 93 + " (copy)"


# ----- delete -----


def test_delete_refuses_a_profile_in_use_unless_forced(
    taskdeck: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = _create("Used")
    free = _create("Free")
    monkeypatch.setattr(
        store, "profile_users", lambda session, profile_id: 3 if profile_id == used.id else 0
    )

    with pytest.raises(ProfileInUse) as caught, session_scope() as session:
        store.delete_profile(session=session, profile_id=used.id, actor=None)
    assert caught.value.details == {"tasks": 3}
    assert caught.value.http_status == 409

    with session_scope() as session:
        store.delete_profile(session=session, profile_id=free.id, actor=None)
        store.delete_profile(session=session, profile_id=used.id, actor=None, force=True)
    with session_scope() as session:
        assert store.list_profiles(session=session) == []
        with pytest.raises(ProfileNotFound):
            store.delete_profile(session=session, profile_id=used.id, actor=None)
    details = sorted((e.details["name"], e.details["tasks"]) for e in _events(store.PROFILE_DELETE))
    assert details == [("Free", 0), ("Used", 3)]


# ----- token state -----


def test_record_token_state(taskdeck: Path) -> None:
    oauth = _create("OAuth", auth=_auth(AuthKind.OAUTH2_CLIENT_CREDENTIALS))
    bearer = _create("Bearer", auth=_auth(AuthKind.BEARER))
    expires = datetime(2030, 1, 1, 12, tzinfo=UTC)

    with session_scope() as session:
        failed = store.record_token_state(
            session=session,
            profile_id=oauth.id,
            status=TokenStatus.FAILED,
            expires_at=None,
            error="401 from https://id:pw@auth.example.com/token " + "x" * 3000,
        )
        ignored = store.record_token_state(
            session=session,
            profile_id=bearer.id,
            status=TokenStatus.VALID,
            expires_at=expires,
            error=None,
        )
    assert failed.token_state.status == TokenStatus.FAILED
    assert failed.token_state.error is not None and len(failed.token_state.error) == 2000
    assert "id:pw" not in failed.token_state.error
    assert ignored.token_state.status == TokenStatus.NOT_APPLICABLE

    with session_scope() as session:
        valid = store.record_token_state(
            session=session,
            profile_id=oauth.id,
            status=TokenStatus.VALID,
            expires_at=expires,
            error=None,
        )
        row = session.get(Profile, oauth.id)
        assert row is not None and row.token_refreshed_at is not None
    assert valid.token_state.model_dump(mode="json") == {
        "status": "valid",
        "expires_at": "2030-01-01T12:00:00Z",
        "error": None,
    }
    assert valid.updated_at == oauth.updated_at  # not a user's edit
    with session_scope() as session:
        assert store.oauth2_profile_ids(session=session) == [oauth.id]


def test_rotated_refresh_token_is_stored_encrypted(taskdeck: Path) -> None:
    profile = _create(auth=_auth(AuthKind.OAUTH2_REFRESH_TOKEN) | {"client_secret": "cs-kept-0000"})
    rotated = "rt-rotated-UNIQUE-9876"

    with session_scope() as session:
        store.store_rotated_refresh_token(
            session=session, profile_id=profile.id, refresh_token=rotated
        )

    assert _resolved_auth(profile.id)["refresh_token"] == rotated
    assert _resolved_auth(profile.id)["client_secret"] == "cs-kept-0000"
    with session_scope() as session:
        assert store.get_profile(session=session, profile_id=profile.id).auth["refresh_token"] == (
            "****9876"
        )
    (event,) = _events(store.PROFILE_REFRESH_TOKEN_ROTATED)
    assert rotated not in str(event.details)
    with pytest.raises(ValidationFailed), session_scope() as session:
        store.store_rotated_refresh_token(session=session, profile_id=profile.id, refresh_token=" ")


async def test_db_token_state_store(taskdeck: Path) -> None:
    profile = _create(auth=_auth(AuthKind.OAUTH2_REFRESH_TOKEN))
    token_store = store.DbTokenStateStore()
    expires = datetime.now(UTC) + timedelta(minutes=30)

    refreshing = await token_store.record(profile.id, TokenStatus.REFRESHING, None, None)
    valid = await token_store.record(profile.id, TokenStatus.VALID, expires, None)
    await token_store.store_refresh_token(profile.id, "rt-from-the-store-4242")

    assert refreshing.token_state.status == TokenStatus.REFRESHING
    assert valid.token_state.status == TokenStatus.VALID
    assert valid.token_state.expires_at == expires
    assert _resolved_auth(profile.id)["refresh_token"] == "rt-from-the-store-4242"
    with pytest.raises(ProfileNotFound):
        await token_store.record(999, TokenStatus.VALID, None, None)


# ----- no secret in clear anywhere -----


def _database_bytes(data_dir: Path) -> bytes:
    db = data_dir / "taskdeck.db"
    return b"".join(
        path.read_bytes() for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if path.exists()
    )


def test_no_secret_reaches_the_database_files_audit_logs_or_public_shapes(taskdeck: Path) -> None:
    with capture_logs() as logs:
        created = [_create(f"P-{kind.value}", auth=_auth(kind)) for kind in AuthKind]
        # Every secret replaced once (round 2), one profile cloned, one token rotated.
        updated = [
            _update(profile, auth=_auth(AuthKind(profile.auth["kind"]), round_=2))
            for profile in created
        ]
        with session_scope() as session:
            store.clone_profile(
                session=session, profile_id=created[-1].id, new_name=None, actor=None
            )
            store.store_rotated_refresh_token(
                session=session, profile_id=created[-1].id, refresh_token=_secret("x", "rt", 3)
            )
        with session_scope() as session:
            listed = store.list_profiles(session=session)
    secrets = _all_secrets(1) + _all_secrets(2) + [_secret("x", "rt", 3)]
    assert len(secrets) == 13  # six secret fields in all kinds, twice, and one rotated

    with Session(get_engine()) as session:
        audit_text = str([e.details for e in session.exec(select(AuditEvent)).all()])
        assert len(audit.list_events(session=session, actor=AUDITOR)) >= 12
    shapes = "".join(p.model_dump_json() for p in [*created, *updated, *listed])
    for secret in secrets:
        assert secret not in audit_text
        assert secret not in shapes
        assert secret not in str(logs)

    data_dir = taskdeck
    before_checkpoint = _database_bytes(data_dir)
    get_engine().dispose()
    with sqlite3.connect(data_dir / "taskdeck.db") as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    after_checkpoint = _database_bytes(data_dir)
    assert b"P-oauth2_refresh_token" in after_checkpoint  # the rows are there
    for secret in secrets:
        assert secret.encode() not in before_checkpoint
        assert secret.encode() not in after_checkpoint
    # The resolved profile still has them: they are encrypted, not lost.
    with session_scope() as session:
        assert store.resolve_profile(session=session, profile_id=created[1].id).auth == {
            "token": _secret("bearer", "token", 2)
        }
    with get_engine().connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"


# ----- PostgreSQL (when one is reachable) -----

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def postgres_taskdeck(isolated_settings: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A throwaway, migrated PostgreSQL database as the configured one."""
    admin = create_engine(
        POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means: no PostgreSQL here
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable: {type(error).__name__}")
    name = f"taskdeck_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("TASKDECK_DATABASE_URL", url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        upgrade_to_head()
        yield url
    finally:
        get_engine().dispose()
        get_engine.cache_clear()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_postgres_names_search_and_tags(postgres_taskdeck: str) -> None:
    """The JSON tag match and the case-insensitive search in PostgreSQL's SQL."""
    _create("Alpha", tags=["prod", "billing"], auth=_auth(AuthKind.BASIC))
    _create("beta_1", tags=["prod_eu"], description="100% ready")

    with session_scope() as session:

        def names(**kwargs: Any) -> list[str]:
            return [p.name for p in store.list_profiles(session=session, **kwargs)]

        assert names() == ["Alpha", "beta_1"]
        assert names(tag="prod") == ["Alpha"]
        assert names(tag="prod_eu") == ["beta_1"]
        assert names(search="ALPHA") == ["Alpha"]
        assert names(search="100%") == ["beta_1"]
    with pytest.raises(ProfileNameTaken):
        _create("ALPHA")
    with session_scope() as session:
        assert store.rotate_credentials(session=session) == 1


def test_profile_tags_lists_every_tag_whatever_the_filter(taskdeck: Path) -> None:
    _create("A", tags=["billing", "prod"])
    _create("B", tags=["prod", "crm"])
    _create("C")
    with session_scope() as session:
        assert store.profile_tags(session=session) == ["billing", "crm", "prod"]
