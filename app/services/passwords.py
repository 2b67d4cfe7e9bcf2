"""Password rules and hashing (argon2id through argon2-cffi).

Length is the only rule (NIST SP 800-63B): at least 12 characters, at most
1024 so that nobody can make the server hash megabytes. Hashes carry their
own parameters, so `needs_rehash` tells when the defaults have moved on.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error, InvalidHashError

from app.errors import ValidationFailed

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024

# argon2-cffi's defaults are RFC 9106's low-memory profile (argon2id).
_hasher = PasswordHasher()
# A hash of a random password, made on first use with the current hasher:
# unknown emails are verified against it so they cost as much as known ones.
_dummy: tuple[PasswordHasher, str] | None = None


def password_rule_error(password: str) -> str | None:
    """The message for a password that breaks a rule, or None if it is fine."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        return f"Use at least {MIN_PASSWORD_CHARS} characters"
    if len(password) > MAX_PASSWORD_CHARS:
        return f"Use at most {MAX_PASSWORD_CHARS} characters"
    return None


def check_password_rules(password: str, *, field: str = "password") -> None:
    """ValidationFailed (details.fields[field]) when the password breaks a rule."""
    problem = password_rule_error(password)
    if problem is not None:
        raise ValidationFailed(
            f"The password is not acceptable: {problem.lower()}",
            details={"fields": {field: problem}},
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches; False for a mismatch or a malformed hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (Argon2Error, ValueError, TypeError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than today's."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError, TypeError):
        return True


def burn_verify(password: str) -> None:
    """Verify `password` against a throwaway hash: as much work as a real
    check, for an email that has no account (no timing hint)."""
    global _dummy
    if _dummy is None or _dummy[0] is not _hasher:
        _dummy = (_hasher, _hasher.hash(secrets.token_urlsafe(16)))
    verify_password(_dummy[1], password)
