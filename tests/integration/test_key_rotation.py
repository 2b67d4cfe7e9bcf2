"""Rotating TASKDECK_SECRET_KEY against the real SQLite file: with the old
key in TASKDECK_OLD_SECRET_KEYS everything stays readable and
`rotate_credentials` moves it onto the new key, after which the old key can
go; without it, credentials are unreadable with a clear error that names the
profile and shows no secret, and re-entering them repairs the profile."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from app.db import get_engine, session_scope
from app.errors import SecretUnreadable
from app.models.profiles import SECRET_FIELDS, AuthKind, Profile, ProfileInput
from app.models.users import AuditEvent
from app.services import profiles as store
from app.settings import get_settings

pytestmark = pytest.mark.integration

KEY_A = "rotation-key-A-" + "a" * 40
KEY_B = "rotation-key-B-" + "b" * 40
TOKEN_URL = "https://auth.example.com/token"
PLAIN: dict[AuthKind, dict[str, Any]] = {
    AuthKind.NONE: {},
    AuthKind.BEARER: {},
    AuthKind.BASIC: {"username": "alice"},
    AuthKind.API_KEY: {"param": "api_key"},
    AuthKind.OAUTH2_CLIENT_CREDENTIALS: {"token_url": TOKEN_URL, "client_id": "cc"},
    AuthKind.OAUTH2_REFRESH_TOKEN: {"token_url": TOKEN_URL, "client_id": "rt"},
}

KeySetter = Callable[..., None]


@pytest.fixture
def keys(taskdeck: Path, monkeypatch: pytest.MonkeyPatch) -> KeySetter:
    """Sets the current and old keys as an operator would, then reloads settings."""

    def use(current: str, *old: str) -> None:
        monkeypatch.setenv("TASKDECK_SECRET_KEY", current)
        if old:
            monkeypatch.setenv("TASKDECK_OLD_SECRET_KEYS", ",".join(old))
        else:
            monkeypatch.delenv("TASKDECK_OLD_SECRET_KEYS", raising=False)
        get_settings.cache_clear()

    return use


def _secret(kind: AuthKind, field: str) -> str:
    return f"s3cr3t-UNIQUE-{kind.value}-{field}"


def _create_all() -> dict[int, dict[str, Any]]:
    """One profile per kind; profile id -> its resolved auth."""
    created: dict[int, dict[str, Any]] = {}
    with session_scope() as session:
        for kind in AuthKind:
            secrets = {field: _secret(kind, field) for field in SECRET_FIELDS[kind]}
            profile = store.create_profile(
                session=session,
                data=ProfileInput(
                    name=f"Rotation {kind.value}",
                    base_url="https://api.example.com",
                    auth={"kind": kind.value, **PLAIN[kind], **secrets},
                ),
                actor=None,
            )
            created[profile.id] = store.resolve_profile(session=session, profile_id=profile.id).auth
    return created


def _resolve_all(ids: list[int]) -> dict[int, dict[str, Any]]:
    with session_scope() as session:
        return {pid: store.resolve_profile(session=session, profile_id=pid).auth for pid in ids}


def _ciphertexts() -> dict[int, str | None]:
    with Session(get_engine()) as session:
        return {p.id: p.secrets_ciphertext for p in session.exec(select(Profile)).all() if p.id}


def test_rotate_with_the_old_key_then_retire_it(keys: KeySetter) -> None:
    keys(KEY_A)
    originals = _create_all()
    ids = sorted(originals)
    assert originals[ids[1]] == {"token": _secret(AuthKind.BEARER, "token")}

    keys(KEY_B, KEY_A)
    assert _resolve_all(ids) == originals  # readable through the old key
    before = _ciphertexts()
    with session_scope() as session:
        count = store.rotate_credentials(session=session)
    assert count == 5  # every kind but none has secrets
    after = _ciphertexts()
    assert all(after[pid] != before[pid] for pid in ids if before[pid] is not None)

    keys(KEY_B)
    assert _resolve_all(ids) == originals
    with Session(get_engine()) as session:
        (event,) = session.exec(
            select(AuditEvent).where(AuditEvent.action == store.PROFILE_CREDENTIALS_ROTATED)
        ).all()
        assert event.details == {"count": 5}


def test_without_the_old_key_credentials_are_unreadable(keys: KeySetter) -> None:
    keys(KEY_A)
    originals = _create_all()
    bearer_id = sorted(originals)[1]
    before = _ciphertexts()

    keys(KEY_B)
    with session_scope() as session, pytest.raises(SecretUnreadable) as caught:
        store.resolve_profile(session=session, profile_id=bearer_id)
    assert caught.value.details == {"profile_id": bearer_id}
    assert str(bearer_id) in caught.value.message
    assert caught.value.http_status == 500
    with session_scope() as session, pytest.raises(SecretUnreadable) as rotation:
        store.rotate_credentials(session=session)
    assert rotation.value.details["profile_ids"] == [pid for pid in sorted(originals)[1:]]
    for error in (caught.value, rotation.value):
        text = f"{error.message} {error.details}"
        assert "s3cr3t" not in text
        assert not any(c and c in text for c in before.values())
    assert _ciphertexts() == before  # nothing half-rotated

    # Masked views still work: hints need no key.
    with session_scope() as session:
        listed = store.list_profiles(session=session)
    assert len(listed) == 6

    # Back to the right key: everything is there.
    keys(KEY_A)
    assert _resolve_all(sorted(originals)) == originals


def test_reentering_unreadable_credentials_repairs_the_profile(keys: KeySetter) -> None:
    keys(KEY_A)
    originals = _create_all()
    bearer_id = sorted(originals)[1]
    keys(KEY_B)
    with session_scope() as session:
        profile = store.get_profile(session=session, profile_id=bearer_id)
    fields = profile.model_dump(include={"name", "base_url", "auth"})

    with session_scope() as session, pytest.raises(SecretUnreadable):
        # Keeping the masked token needs its stored value.
        store.update_profile(
            session=session,
            profile_id=bearer_id,
            data=ProfileInput(**fields | {"description": "x"}),
            actor=None,
        )
    with session_scope() as session:
        store.update_profile(
            session=session,
            profile_id=bearer_id,
            data=ProfileInput(**fields | {"auth": {"kind": "bearer", "token": "re-entered-1"}}),
            actor=None,
        )

    assert _resolve_all([bearer_id]) == {bearer_id: {"token": "re-entered-1"}}
