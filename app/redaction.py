"""Keeps secrets out of what people see: a structlog processor that masks
values whose keys name a secret and credentials inside URLs, and
`scrub_secrets` for text a server sent back (an error description, a
response body), which may echo a secret raw, URL-encoded, JSON-escaped or
inside a base64 Basic credential."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
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


# ----- secrets a server echoes back -----

# Shorter values are not masked: they would mask ordinary words.
MIN_SECRET_CHARS = 4
_HTML_NAMED = {"&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "(?:apos|#39)"}
_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f",
               "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def basic_credential(username: str, password: str) -> str:
    """The token of `Authorization: Basic <token>` as httpx builds it: a
    server echoing the header shows the password base64-encoded, so this
    is masked next to the password itself."""
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def _hex_ci(value: int, width: int) -> str:
    """`value` in hex, either case (servers differ: %2B or %2b, \\u00E9 or \\u00e9)."""
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{value:0{width}X}")


def _json_unicode(code: int) -> str:
    if code <= 0xFFFF:
        return r"\\u" + _hex_ci(code, 4)
    code -= 0x10000
    return r"\\u" + _hex_ci(0xD800 + (code >> 10), 4) + r"\\u" + _hex_ci(0xDC00 + (code & 0x3FF), 4)


def _char_pattern(char: str) -> str:
    """Every way one character of a secret may come back: as is, percent-
    encoded (quote, quote_plus: + for a space), JSON-escaped (\\" \\\\ \\/
    \\uXXXX) or as an HTML entity. Whitespace matches any run of it, so
    collapsing whitespace later cannot reassemble a masked secret."""
    code = ord(char)
    forms = [
        re.escape(char),
        "".join("%" + _hex_ci(byte, 2) for byte in char.encode()),
        _json_unicode(code),
        f"&#0*{code};",
        "&#[xX]0*" + _hex_ci(code, 1).lstrip("0") + ";",
    ]
    if char in _JSON_SHORT:
        forms.append(re.escape(_JSON_SHORT[char]))
    if char in _HTML_NAMED:
        forms.append(f"&{_HTML_NAMED[char]};")
    if char == " ":
        forms.append(r"\+")
    if char.isspace():
        forms.append(r"\s+")
    return "(?:" + "|".join(forms) + ")"


def _base64_cores(secret: str) -> list[str]:
    """The part of base64(anything + secret + anything) that depends on the
    secret alone, at each of the three byte alignments, in both alphabets:
    finds the secret inside any base64 blob (a Basic header whose user name
    we do not know, a JWT, ...)."""
    data = secret.encode()
    cores: list[str] = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode()
        start = -(-8 * offset // 6)  # the first character made of secret bits only
        end = 8 * (offset + len(data)) // 6
        core = encoded[start:end]
        if len(core) >= MIN_SECRET_CHARS:
            cores += [core, core.replace("+", "-").replace("/", "_")]
    return cores


def secrets_pattern(secrets: Iterable[str | None]) -> re.Pattern[str] | None:
    """One regex matching every secret (of at least MIN_SECRET_CHARS) in
    each form `_char_pattern` and `_base64_cores` describe; None when there
    is nothing to mask. Longest first, so a longer form wins over its part."""
    needles: set[str] = set()
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= MIN_SECRET_CHARS:
            needles.add(secret)
            needles.update(_base64_cores(secret))
    if not needles:
        return None
    ordered = sorted(needles, key=len, reverse=True)
    return re.compile("|".join("".join(map(_char_pattern, needle)) for needle in ordered))


def scrub_secrets(text: str, secrets: Iterable[str | None], *, limit: int | None = None) -> str:
    """`text` with every secret masked in every form a server may echo it in,
    THEN cut to `limit` characters. Masking must see the whole text: after a
    cut, a secret crossing it would no longer match and its prefix would
    stay."""
    pattern = secrets_pattern(secrets)
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return text if limit is None else text[:limit]
