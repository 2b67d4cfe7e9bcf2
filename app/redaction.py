"""Keeps secrets out of what people see.

`redact_event`, a structlog processor (also applied to audit details),
masks by NAME, at any depth of dicts and lists:
- values whose key names a secret (password, client_secret, X-Api-Key, ...),
  unless the key names a fact about one (token_status, secret_hint, ...);
- in a mapping under an `auth` key (a profile's, a form's), every secret
  field of a profile auth kind (ALL_SECRET_FIELDS), also `value`, which
  names nothing alone (the api_key kind's key); mappings under
  `credentials` or `secrets` go whole, by the rule above;
- in a `headers` mapping, names that carry a credential whatever they are
  called (X-Auth, Subscription-Key: the api_key kind's header is the user's
  choice), Idempotency-Key excepted;
and, in every string (the event text, a rendered traceback), the user-info
of URLs, `name=value` pairs whose name is a secret one (?api_key=..., a
form body's client_secret=...), an `Authorization: <scheme> <credential>`
and a long `Bearer <token>`. A secret under a harmless name in free text is
beyond it: only `scrub_secrets` finds secrets by value.

`scrub_secrets` is for text a server sent back (an error description, a
response body), which may echo a secret raw, URL-encoded, JSON-escaped or
inside a base64 Basic credential."""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable
from typing import Any

from app.models.profiles import ALL_SECRET_FIELDS

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"pass(word)?|secret|token|api[_-]?key|authorization|cookie|credential", re.IGNORECASE
)
# Keys that mention a secret but hold facts about it, not the secret itself
# (a `*_url` such as token_url is a URL: its user-info and query are masked).
_NOT_SECRET = re.compile(
    r"(_id|_at|_state|_status|_count|_hint|_url|expires\w*)$", re.IGNORECASE
)
# Keys whose mapping holds one set of credentials, such as ProfileInput.auth.
_CREDENTIAL_MAPPINGS = frozenset({"auth", "credentials", "secrets"})
# In a `headers` mapping only: header names that carry a credential.
_SECRET_HEADER = re.compile(r"(^|[-_])(auth|key|session|signature)([-_]|$)", re.IGNORECASE)
_NOT_SECRET_HEADERS = frozenset({"idempotency-key"})
# Query and form parameters that hold a key although their names say little.
_SECRET_PARAM = re.compile(r"key|sig|signature", re.IGNORECASE)
# user:password@ in URLs such as redis://:pw@host or postgresql://u:pw@host
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/@\s]*)@")
# name=value in a query string, a form body or a message.
_ASSIGNMENT = re.compile(r"(?<![\w.-])(?P<name>[A-Za-z][\w.-]*)=(?P<value>[^&\s#;,'\"]+)")
# An Authorization header written out, with or without its scheme.
_AUTHORIZATION = re.compile(
    r"(?P<head>\b(?:proxy-)?authorization[\"']?\s*:\s*[\"']?(?:[a-z]+\s+(?=[^\s\"',;]))?)"
    r"[^\s\"',;]+",
    re.IGNORECASE,
)
# A bearer token in text: 16 characters at least, so that prose stays.
_BEARER = re.compile(r"\b(?P<head>bearer\s+)[\w.~+/-]{16,}=*", re.IGNORECASE)


def redact_url(text: str) -> str:
    """Replace the user-info part of every URL in `text`."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)


def _secret_name(name: str) -> bool:
    return bool(_SECRET_KEY.search(name)) and not _NOT_SECRET.search(name)


def _mask_assignment(match: re.Match[str]) -> str:
    name = match["name"]
    if _secret_name(name) or _SECRET_PARAM.fullmatch(name):
        return f"{name}={REDACTED}"
    return match.group()


def redact_text(text: str) -> str:
    """`text` without URL user-info, secret `name=value` pairs, written-out
    Authorization headers and bearer tokens."""
    text = redact_url(text)
    if "=" in text:
        text = _ASSIGNMENT.sub(_mask_assignment, text)
    text = _AUTHORIZATION.sub(lambda m: f"{m['head']}{REDACTED}", text)
    return _BEARER.sub(lambda m: f"{m['head']}{REDACTED}", text)


def _secret_key(key: str, parent: str) -> bool:
    if _secret_name(key):
        return True
    parent = parent.lower()
    if parent in _CREDENTIAL_MAPPINGS:
        return key.lower() in ALL_SECRET_FIELDS
    if parent == "headers":
        return bool(_SECRET_HEADER.search(key)) and key.lower() not in _NOT_SECRET_HEADERS
    return False


def _redact(key: str, value: Any, parent: str = "") -> Any:
    """`value` found under `key` in a mapping found under `parent`."""
    if value not in (None, "", False) and _secret_key(key, parent):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact(str(k), v, key) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        # A list's items stand where the list does: credentials=[{...}, ...].
        return type(value)(_redact(key, item, parent) for item in value)
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
    usable = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_CHARS}
    return _compiled_pattern(tuple(sorted(usable))) if usable else None


# Cached: "test connection" and token errors mask the same profile's secrets
# call after call, and building the pattern costs about 2 ms (30 ms when
# re's own cache has dropped it). The cache holds the secrets it is keyed on
# in memory (as re's cache holds the pattern text), hence small: 64 sets.
@functools.lru_cache(maxsize=64)
def _compiled_pattern(secrets: tuple[str, ...]) -> re.Pattern[str]:
    needles: set[str] = set()
    for secret in secrets:
        needles.add(secret)
        needles.update(_base64_cores(secret))
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
