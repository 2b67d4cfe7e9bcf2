"""What counts as an email address (no database, no imports of other
services: users and the audit log both use it)."""

from __future__ import annotations

import re
import unicodedata

from app.models.users import MAX_EMAIL_CHARS

MAX_EMAIL_LOCAL_CHARS = 64
EMAIL_HINT = "Enter an email address like name@example.com"

# Characters never allowed in the local part (unquoted addresses only).
_LOCAL_FORBIDDEN = set('"(),:;<>[\\]@')
# One domain label: letters (any script) or digits, inner hyphens, <= 63 chars.
_DOMAIN_LABEL = re.compile(r"^(?!-)[^\W_](?:[^\W_]|-){0,62}(?<!-)$")


def _has_control_or_space(value: str) -> bool:
    return any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in value)


def email_problem(email: str) -> str | None:
    """Why a (stripped, lowercased) email is not acceptable, or None."""
    if not email:
        return "Enter an email address"
    if len(email) > MAX_EMAIL_CHARS:
        return f"Use at most {MAX_EMAIL_CHARS} characters"
    if email.count("@") != 1:
        return EMAIL_HINT
    local, domain = email.split("@")
    if (
        not local
        or len(local) > MAX_EMAIL_LOCAL_CHARS
        or _has_control_or_space(local)
        or any(ch in _LOCAL_FORBIDDEN for ch in local)
        or local.startswith(".")
        or local.endswith(".")
        or ".." in local
    ):
        return EMAIL_HINT
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        return EMAIL_HINT
    return None
