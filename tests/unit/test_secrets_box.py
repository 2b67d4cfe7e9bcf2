"""Credentials at rest: encryption round trip, masked hints, damaged or
foreign ciphertext refused without echoing it, and key rotation through
TASKDECK_OLD_SECRET_KEYS (read from the real environment)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app.crypto import derive_key, fernet_for, multi_fernet_for
from app.errors import SecretUnreadable
from app.services.secrets_box import (
    PURPOSE,
    decrypt_secrets,
    encrypt_secrets,
    hint,
    rotate_ciphertext,
)
from app.settings import get_settings, load_settings

KEY_A = "key-A-" + "a" * 40
KEY_B = "key-B-" + "b" * 40
KEY_C = "key-C-" + "c" * 40
KeySetter = Callable[..., None]
SECRETS = {"client_secret": "s3cr3t-UNIQUE-123", "refresh_token": "rt-UNIQUE-456"}


@pytest.fixture
def keys(isolated_settings: Path, monkeypatch: pytest.MonkeyPatch) -> KeySetter:
    """Sets the current and old keys, as an operator would, and reloads the settings."""
    monkeypatch.delenv("TASKDECK_OLD_SECRET_KEYS", raising=False)

    def use(current: str, *old: str) -> None:
        monkeypatch.setenv("TASKDECK_SECRET_KEY", current)
        if old:
            monkeypatch.setenv("TASKDECK_OLD_SECRET_KEYS", ",".join(old))
        else:
            monkeypatch.delenv("TASKDECK_OLD_SECRET_KEYS", raising=False)
        get_settings.cache_clear()

    return use


def test_round_trip(keys: KeySetter) -> None:
    keys(KEY_A)
    ciphertext = encrypt_secrets(SECRETS)

    assert decrypt_secrets(ciphertext) == SECRETS
    for value in SECRETS.values():
        assert value not in ciphertext


def test_nothing_stored_is_nothing_to_decrypt(keys: KeySetter) -> None:
    keys(KEY_A)

    assert decrypt_secrets(None) == {}
    assert decrypt_secrets("") == {}


def test_each_encryption_differs(keys: KeySetter) -> None:
    keys(KEY_A)

    assert encrypt_secrets(SECRETS) != encrypt_secrets(SECRETS)


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("s3cr3t-UNIQUE-123", "****-123"),
        ("12345678", "****5678"),
        ("1234567", "****"),
        ("", "****"),
    ],
)
def test_hint_shows_at_most_the_last_four(secret: str, expected: str) -> None:
    assert hint(secret) == expected


def test_tampered_ciphertext_is_unreadable_and_not_echoed(keys: KeySetter) -> None:
    keys(KEY_A)
    ciphertext = encrypt_secrets(SECRETS)
    middle = len(ciphertext) // 2
    flipped = "A" if ciphertext[middle] != "A" else "B"
    tampered = ciphertext[:middle] + flipped + ciphertext[middle + 1 :]

    for bad in (tampered, "not a token", ciphertext[:-5]):
        with pytest.raises(SecretUnreadable) as caught:
            decrypt_secrets(bad)
        assert bad not in str(caught.value)
        assert bad not in str(caught.value.details)
        assert caught.value.http_status == 500


def test_another_purpose_key_cannot_read_credentials(keys: KeySetter) -> None:
    """A sign-in ticket key (same secret, other purpose) opens nothing here."""
    keys(KEY_A)
    foreign = fernet_for("sign-in-ticket").encrypt(json.dumps(SECRETS).encode()).decode()

    with pytest.raises(SecretUnreadable):
        decrypt_secrets(foreign)


def test_valid_token_with_a_wrong_payload_is_unreadable(keys: KeySetter) -> None:
    keys(KEY_A)
    for payload in (b"not json", b"[1, 2]", b'{"token": 5}'):
        with pytest.raises(SecretUnreadable):
            decrypt_secrets(multi_fernet_for(PURPOSE).encrypt(payload).decode())


def test_key_change_without_old_keys_is_unreadable(keys: KeySetter) -> None:
    keys(KEY_A)
    ciphertext = encrypt_secrets(SECRETS)
    keys(KEY_B)

    with pytest.raises(SecretUnreadable):
        decrypt_secrets(ciphertext)
    with pytest.raises(SecretUnreadable):
        rotate_ciphertext(ciphertext)


def test_old_keys_read_and_rotation_moves_to_the_current_key(keys: KeySetter) -> None:
    keys(KEY_A)
    under_a = encrypt_secrets(SECRETS)
    keys(KEY_C)
    under_c = encrypt_secrets({"token": "under-C"})

    keys(KEY_B, KEY_C, KEY_A)  # B current; C then A before it
    assert decrypt_secrets(under_a) == SECRETS
    assert decrypt_secrets(under_c) == {"token": "under-C"}
    rotated_a = rotate_ciphertext(under_a)
    rotated_c = rotate_ciphertext(under_c)
    new = encrypt_secrets({"token": "new"})

    keys(KEY_B)  # old keys retired
    assert decrypt_secrets(rotated_a) == SECRETS
    assert decrypt_secrets(rotated_c) == {"token": "under-C"}
    assert decrypt_secrets(new) == {"token": "new"}
    only_b = Fernet(base64.urlsafe_b64encode(derive_key(KEY_B, PURPOSE)))
    assert json.loads(only_b.decrypt(rotated_a.encode())) == SECRETS


def test_old_keys_setting_is_a_comma_separated_list(
    isolated_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKDECK_OLD_SECRET_KEYS", f" {KEY_A} ,, {KEY_C},")

    settings = load_settings()

    assert [key.get_secret_value() for key in settings.old_secret_keys] == [KEY_A, KEY_C]
    assert KEY_A not in repr(settings)
    assert KEY_A not in str(settings.model_dump())


def test_old_keys_default_to_none(isolated_settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKDECK_OLD_SECRET_KEYS", raising=False)

    assert load_settings().old_secret_keys == []
