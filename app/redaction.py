"""Keeps secrets out of log lines: a structlog processor that masks values
whose keys name a secret, and credentials inside URLs."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"pass(word)?|secret|token|api[_-]?key|authorization|cookie|credential", re.IGNORECASE
)
# Keys that mention a secret but hold facts about it, not the secret itself.
_NOT_SECRET = re.compile(r"(_id|_at|_state|_status|_count|_hint|expires\w*)$", re.IGNORECASE)
# user:password@ in URLs such as redis://:pw@host or postgresql://u:pw@host
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/@\s]*)@")


def redact_url(text: str) -> str:
    """Replace the user-info part of every URL in `text`."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)


def _redact(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key) and not _NOT_SECRET.search(key) and value not in (None, "", False):
        return REDACTED
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, dict):
        return {k: _redact(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redact(key, item) for item in value)
    return value


def redact_event(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask secrets before anything renders the line."""
    return {key: _redact(key, value) for key, value in event_dict.items()}
