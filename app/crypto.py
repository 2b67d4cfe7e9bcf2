"""Keys derived from TASKDECK_SECRET_KEY, one per purpose, so that a key
used for one thing (sign-in tickets, credentials at rest) never serves
another. HKDF-SHA256 turns the configured secret into Fernet keys.

For data kept at rest, `multi_fernet_for` also reads what was encrypted
under the keys in TASKDECK_OLD_SECRET_KEYS, and encrypts under the current
key only, so that a key can be rotated without losing anything."""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.settings import get_settings


def derive_key(secret: str, purpose: str) -> bytes:
    """32 bytes bound to `purpose`, derived from `secret`."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"taskdeck", info=purpose.encode()
    ).derive(secret.encode())


@lru_cache(maxsize=16)
def _purpose_key(secret: str, purpose: str) -> bytes:
    return derive_key(secret, purpose)


def keyed_digest(purpose: str, data: str) -> str:
    """HMAC-SHA256 (hex) of `data` under the key of `purpose`: names a value
    without revealing it, and unlike a plain hash cannot be reversed by
    trying likely values without the secret key."""
    key = get_settings().secret_key
    assert key is not None  # load_settings always fills it
    digest = hmac.new(_purpose_key(key.get_secret_value(), purpose), data.encode(), hashlib.sha256)
    return digest.hexdigest()


@lru_cache(maxsize=16)
def _fernet(secret: str, purpose: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive_key(secret, purpose)))


def fernet_for(purpose: str) -> Fernet:
    """A Fernet for `purpose` under the configured secret key."""
    key = get_settings().secret_key
    assert key is not None  # load_settings always fills it
    return _fernet(key.get_secret_value(), purpose)


def multi_fernet_for(purpose: str) -> MultiFernet:
    """A MultiFernet for `purpose`: encrypts under the current secret key,
    decrypts under it or any of the old keys (TASKDECK_OLD_SECRET_KEYS), and
    `rotate()`s tokens onto the current key."""
    settings = get_settings()
    assert settings.secret_key is not None  # load_settings always fills it
    secrets = [settings.secret_key, *settings.old_secret_keys]
    return MultiFernet([_fernet(secret.get_secret_value(), purpose) for secret in secrets])
