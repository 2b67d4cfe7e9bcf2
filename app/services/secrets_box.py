"""Credentials at rest: a dict of secrets in, one Fernet token out, and back.

The key is derived from TASKDECK_SECRET_KEY for this purpose only
(app.crypto); tokens made under a key listed in TASKDECK_OLD_SECRET_KEYS stay
readable, and `rotate_ciphertext` moves one onto the current key. Nothing
here logs, and no error message carries a secret or a ciphertext.
"""

from __future__ import annotations

import json

from cryptography.fernet import InvalidToken

from app.crypto import multi_fernet_for
from app.errors import SecretUnreadable
from app.models.profiles import MASK

PURPOSE = "profile-credentials"
# Secrets shorter than this show no characters at all in their hint.
MIN_HINTED_CHARS = 8
HINT_CHARS = 4


def encrypt_secrets(values: dict[str, str]) -> str:
    """One Fernet token (text) holding `values` as a JSON object."""
    plaintext = json.dumps(values, separators=(",", ":"), sort_keys=True).encode()
    return multi_fernet_for(PURPOSE).encrypt(plaintext).decode()


def decrypt_secrets(ciphertext: str | None) -> dict[str, str]:
    """The secrets inside `ciphertext` ({} for None or empty).
    SecretUnreadable when no configured key opens it or it is damaged."""
    if not ciphertext:
        return {}
    try:
        plaintext = multi_fernet_for(PURPOSE).decrypt(ciphertext.encode())
        values = json.loads(plaintext)
    except (InvalidToken, ValueError, UnicodeError):
        raise SecretUnreadable() from None
    if not isinstance(values, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in values.items()
    ):
        raise SecretUnreadable()
    return values


def rotate_ciphertext(ciphertext: str) -> str:
    """The same secrets re-encrypted under the current key (the original
    timestamp is kept). SecretUnreadable when no configured key opens it."""
    try:
        return multi_fernet_for(PURPOSE).rotate(ciphertext.encode()).decode()
    except (InvalidToken, ValueError, UnicodeError):
        raise SecretUnreadable() from None


def hint(secret: str) -> str:
    """What may be shown of a secret: `****` and its last 4 characters, or
    only `****` when it is shorter than 8 characters."""
    if len(secret) < MIN_HINTED_CHARS:
        return MASK
    return MASK + secret[-HINT_CHARS:]
