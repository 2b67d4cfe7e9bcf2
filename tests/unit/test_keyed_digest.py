"""keyed_digest: names a value without revealing it, even to someone who
can guess likely values, unless they hold the secret key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from app.crypto import keyed_digest
from app.services import audit
from app.settings import get_settings


def test_a_typed_password_is_not_a_plain_hash(
    isolated_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    typed = "my secret pass phrase"
    key = audit.email_key(typed)
    assert key.startswith(audit.NOT_AN_EMAIL_PREFIX)
    plain = hashlib.sha256(typed.encode()).hexdigest()
    assert plain[:24] not in key and plain[:32] not in key  # a dictionary finds nothing
    assert audit.email_key(f"  {typed.upper()} ") == key  # still one account for the limits
    assert audit.email_key(key) == key

    monkeypatch.setenv("TASKDECK_SECRET_KEY", "another-secret-key-" + "x" * 32)
    get_settings.cache_clear()
    assert audit.email_key(typed) != key  # bound to the secret key


def test_purposes_do_not_share_digests(isolated_settings: Path) -> None:
    assert keyed_digest("a", "same text") != keyed_digest("b", "same text")
    assert keyed_digest("a", "same text") == keyed_digest("a", "same text")
