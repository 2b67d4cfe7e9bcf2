"""The rules a profile must follow, checked all at once: one ValidationFailed
whose details name every field that is wrong ({"fields": {"name": ...,
"headers.X-Bad Name": ..., "auth.token_url": ...}}), so a form can show them
together.

`validate_profile` also sorts the secrets of the input: new values to store,
fields whose stored value is kept (absent, empty, or sent back as its masked
hint), and optional fields whose stored value is cleared (sent as None).
A required secret sent as None is kept, as it always was: it cannot be
cleared, only replaced.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from app.errors import ValidationFailed
from app.models.profiles import (
    MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
    MAX_URL_CHARS,
    PLAIN_FIELDS,
    SECRET_FIELDS,
    AuthKind,
    ProfileInput,
)

MAX_HEADERS = 100
MAX_HEADER_NAME_CHARS = 200
MAX_HEADER_VALUE_CHARS = 4000
MIN_TIMEOUT_S = 0.1
MAX_TIMEOUT_S = 600.0
MAX_TAGS = 20
MAX_TAG_CHARS = 40
MAX_SECRET_CHARS = 16_000
MAX_TEXT_CHARS = 1000  # user names, client ids, query parameter names
MAX_SCOPES = 100
MAX_SCOPE_CHARS = 200
CLIENT_AUTH_MODES = ("header", "body")

URL_HINT = "Use an http:// or https:// URL"
AUTHORIZATION_HINT = "Set credentials with the auth kind, not as a default header"
# Default headers are stored in clear and shown to viewers: names that carry
# credentials are refused (the api_key kind encrypts such a header's value).
_CREDENTIAL_HEADER = re.compile(
    r"^(authorization|proxy-authorization|cookie)$|api[-_]?key|token|secret|passw", re.IGNORECASE
)

# RFC 7230 token: what a header name may be made of.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_TAG = re.compile(r"^[a-z0-9_.-]+$")
_HOST = re.compile(r"^[\w.-]+$")  # names, IDN labels and IPv4
_IPV6 = re.compile(r"^[0-9a-f:.]+(%[\w.-]+)?$")
# A masked hint as ProfilePublic shows it: never a secret worth storing.
_MASKED = re.compile(r"^\*{4}.{0,4}$", re.DOTALL)

# What each kind needs (beyond its secrets in REQUIRED_SECRETS).
REQUIRED_PLAIN: dict[AuthKind, tuple[str, ...]] = {
    AuthKind.BASIC: ("username",),
    AuthKind.OAUTH2_CLIENT_CREDENTIALS: ("token_url", "client_id"),
    AuthKind.OAUTH2_REFRESH_TOKEN: ("token_url", "client_id"),
}
REQUIRED_SECRETS: dict[AuthKind, tuple[str, ...]] = {
    AuthKind.BEARER: ("token",),
    AuthKind.BASIC: ("password",),
    AuthKind.API_KEY: ("value",),
    AuthKind.OAUTH2_CLIENT_CREDENTIALS: ("client_secret",),
    AuthKind.OAUTH2_REFRESH_TOKEN: ("refresh_token",),
}
# The secrets a kind works without, which may be cleared once stored.
OPTIONAL_SECRETS: dict[AuthKind, tuple[str, ...]] = {
    kind: tuple(name for name in names if name not in REQUIRED_SECRETS.get(kind, ()))
    for kind, names in SECRET_FIELDS.items()
}


@dataclass(frozen=True)
class CleanProfile:
    """A profile input that follows every rule, normalised for storing.

    `auth_config` has every plain field of the kind (None when not set);
    `new_secrets` the secret fields given a new value; `kept_secrets` the
    secret fields whose stored value stays; `cleared_secrets` the optional
    secret fields whose stored value goes."""

    name: str
    description: str
    base_url: str
    headers: dict[str, str]
    timeout_s: float
    verify_tls: bool
    tags: list[str]
    auth_kind: AuthKind
    auth_config: dict[str, Any]
    new_secrets: dict[str, str] = field(repr=False)
    kept_secrets: frozenset[str]
    cleared_secrets: frozenset[str] = frozenset()


class _Problems:
    """Collects field -> problem; the first problem of a field wins."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}

    def add(self, name: str, problem: str) -> None:
        self.fields.setdefault(name, problem)

    def has(self, *names: str) -> bool:
        return any(name in self.fields for name in names)

    def raise_if_any(self) -> None:
        if self.fields:
            names = ", ".join(sorted(self.fields))
            raise ValidationFailed(f"Please correct: {names}", details={"fields": self.fields})


# ----- single values -----


def _has_control(value: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in value)


def name_key(name: str) -> str:
    """How names are compared for uniqueness: stripped and casefolded."""
    return name.strip().casefold()


def name_problem(name: str) -> str | None:
    """Why a (stripped) profile name is not acceptable, or None."""
    if not name:
        return "Enter a name"
    if len(name) > MAX_NAME_CHARS:
        return f"Use at most {MAX_NAME_CHARS} characters"
    if _has_control(name):
        return "Remove the control characters"
    return None


def check_name(name: Any) -> str:
    """The name, stripped; ValidationFailed with fields.name otherwise."""
    value = name.strip() if isinstance(name, str) else ""
    problem = name_problem(value)
    if problem is not None:
        raise ValidationFailed(
            f"Invalid name: {problem.lower()}", details={"fields": {"name": problem}}
        )
    return value


def url_problem(url: str) -> str | None:
    """Why `url` (stripped) is not an absolute http(s) URL we may call, or None."""
    if not url:
        return "Enter a URL, e.g. https://api.example.com"
    if len(url) > MAX_URL_CHARS:
        return f"Use at most {MAX_URL_CHARS} characters"
    if any(ch.isspace() for ch in url) or _has_control(url):
        return "Remove the spaces and line breaks (write a space as %20)"
    try:
        parts = urlsplit(url)
    except ValueError:
        return URL_HINT
    if parts.scheme.lower() not in {"http", "https"}:
        if not parts.scheme:
            return f"{URL_HINT} (a full address, e.g. https://api.example.com)"
        return URL_HINT
    if not parts.netloc:
        return "Add the host name, e.g. https://api.example.com"
    if "@" in parts.netloc:
        return "Remove the user name and password from the URL: enter them in the auth fields"
    host = parts.hostname or ""
    if not host or not (_HOST.match(host) or ("[" in parts.netloc and _IPV6.match(host))):
        return "Add a valid host name, e.g. https://api.example.com"
    try:
        parts.port  # noqa: B018 - raises ValueError when the port is not a number in range
    except ValueError:
        return "Use a port number between 1 and 65535"
    if parts.port == 0:
        return "Use a port number between 1 and 65535"
    return None


def header_name_problem(name: str) -> str | None:
    if not name or not _HEADER_NAME.match(name):
        return "Use a header name of letters, digits and !#$%&'*+.^_`|~- (no spaces)"
    if len(name) > MAX_HEADER_NAME_CHARS:
        return f"Use at most {MAX_HEADER_NAME_CHARS} characters"
    return None


def _line_problem(value: str) -> str | None:
    if any(ch in value for ch in "\r\n\x00"):
        return "Remove line breaks and NUL characters"
    return None


def header_value_problem(value: str) -> str | None:
    """Header values go out as ASCII (httpx encodes them so): printable
    characters and tabs only."""
    if problem := _line_problem(value):
        return problem
    if len(value) > MAX_HEADER_VALUE_CHARS:
        return f"Use at most {MAX_HEADER_VALUE_CHARS} characters"
    if any(not (" " <= ch <= "~" or ch == "\t") for ch in value):
        return "Use printable ASCII characters only"
    return None


def normalize_tag(tag: str) -> str:
    return tag.strip().lower()


def tag_problem(tag: str) -> str | None:
    """Why a normalised tag is not acceptable, or None."""
    if not tag or len(tag) > MAX_TAG_CHARS or not _TAG.match(tag):
        return f"Tags are 1 to {MAX_TAG_CHARS} letters, digits, '_', '.' or '-' (got {tag!r})"
    return None


# ----- groups -----


def _check_headers(headers: Mapping[str, str], problems: _Problems) -> dict[str, str]:
    clean: dict[str, str] = {}
    if len(headers) > MAX_HEADERS:
        problems.add("headers", f"Use at most {MAX_HEADERS} headers")
    seen: set[str] = set()
    for name, raw in headers.items():
        key = f"headers.{name}"
        value = raw.strip() if isinstance(raw, str) else raw
        if problem := header_name_problem(name):
            problems.add(key, problem)
        elif _CREDENTIAL_HEADER.search(name):
            problems.add(key, f"{AUTHORIZATION_HINT} (api_key keeps a header's value encrypted)")
        elif name.lower() in seen:
            problems.add(key, "Given twice (header names ignore case)")
        elif not isinstance(value, str):
            problems.add(key, "Enter text")
        elif problem := header_value_problem(value):
            problems.add(key, problem)
        else:
            clean[name] = value
        seen.add(name.lower())
    return clean


def _check_tags(tags: list[str], problems: _Problems) -> list[str]:
    clean: list[str] = []
    for raw in tags:
        tag = normalize_tag(raw) if isinstance(raw, str) else ""
        if problem := tag_problem(tag):
            problems.add("tags", problem)
        elif tag not in clean:
            clean.append(tag)
    if len(clean) > MAX_TAGS:
        problems.add("tags", f"Use at most {MAX_TAGS} tags")
    return clean


def _parse_kind(value: Any) -> AuthKind | None:
    try:
        return AuthKind(value.strip().lower()) if isinstance(value, str) else None
    except ValueError:
        return None


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _plain_text(
    auth: Mapping[str, Any], name: str, problems: _Problems, *, max_chars: int = MAX_TEXT_CHARS
) -> str | None:
    """A stripped text field, or None when blank or wrong (problem noted)."""
    value = auth.get(name)
    if _is_blank(value):
        return None
    if not isinstance(value, str):
        problems.add(f"auth.{name}", "Enter text")
        return None
    value = value.strip()
    if len(value) > max_chars:
        problems.add(f"auth.{name}", f"Use at most {max_chars} characters")
        return None
    if _has_control(value):
        problems.add(f"auth.{name}", "Remove the control characters")
        return None
    return value


def _scopes(value: Any, problems: _Problems) -> list[str]:
    if _is_blank(value):
        return []
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        problems.add(
            "auth.scopes", "Give the scopes as a list of words (or one space-separated text)"
        )
        return []
    clean: list[str] = []
    for item in items:
        scope = item.strip()
        if not scope or any(ch.isspace() for ch in scope) or _has_control(scope):
            problems.add("auth.scopes", "Each scope is one word: no spaces, not empty")
        elif len(scope) > MAX_SCOPE_CHARS:
            problems.add("auth.scopes", f"Use at most {MAX_SCOPE_CHARS} characters per scope")
        elif scope not in clean:
            clean.append(scope)
    if len(clean) > MAX_SCOPES:
        problems.add("auth.scopes", f"Use at most {MAX_SCOPES} scopes")
    return clean


def _plain_fields(kind: AuthKind, auth: Mapping[str, Any], problems: _Problems) -> dict[str, Any]:
    """The plain part of the kind, every field present (None when not set)."""
    config: dict[str, Any] = {name: None for name in PLAIN_FIELDS[kind]}
    if kind == AuthKind.BASIC:
        username = _plain_text(auth, "username", problems)
        if username is not None and ":" in username:
            problems.add("auth.username", "A user name for basic auth cannot contain ':'")
        config["username"] = username
    elif kind == AuthKind.API_KEY:
        header = _plain_text(auth, "header", problems, max_chars=MAX_HEADER_NAME_CHARS)
        if header is not None and (problem := header_name_problem(header)):
            problems.add("auth.header", problem)
        param = _plain_text(auth, "param", problems, max_chars=MAX_HEADER_NAME_CHARS)
        if param is not None and any(ch.isspace() for ch in param):
            problems.add("auth.param", "Remove the spaces")
        if header is not None and param is not None:
            problems.add("auth.param", "Give either a header or a query parameter, not both")
        elif header is None and param is None and not problems.has("auth.header", "auth.param"):
            problems.add(
                "auth.header",
                "Required for api_key: a header name (or a query parameter in auth.param)",
            )
        config.update(header=header, param=param)
    elif kind in (AuthKind.OAUTH2_CLIENT_CREDENTIALS, AuthKind.OAUTH2_REFRESH_TOKEN):
        token_url = _plain_text(auth, "token_url", problems, max_chars=MAX_URL_CHARS)
        if token_url is not None and (problem := url_problem(token_url)):
            problems.add("auth.token_url", problem)
        config["token_url"] = token_url
        config["client_id"] = _plain_text(auth, "client_id", problems)
        config["scopes"] = _scopes(auth.get("scopes"), problems)
        client_auth = auth.get("client_auth")
        if _is_blank(client_auth):
            client_auth = "header"
        elif (
            not isinstance(client_auth, str)
            or client_auth.strip().lower() not in CLIENT_AUTH_MODES
        ):
            problems.add("auth.client_auth", "Choose header (HTTP Basic) or body")
        else:
            client_auth = client_auth.strip().lower()
        config["client_auth"] = client_auth
        if kind == AuthKind.OAUTH2_CLIENT_CREDENTIALS:
            config["audience"] = _plain_text(auth, "audience", problems, max_chars=MAX_URL_CHARS)
    for name in REQUIRED_PLAIN.get(kind, ()):
        if config.get(name) is None:
            problems.add(f"auth.{name}", f"Required for {kind.value}")
    return config


def clear_problem(kind: AuthKind, name: str) -> str | None:
    """Why the secret `name` of `kind` cannot be cleared, or None."""
    if name in REQUIRED_SECRETS.get(kind, ()):
        return f"Required for {kind.value}: it cannot be cleared, only replaced"
    if name not in SECRET_FIELDS[kind]:
        return f"Not used by {kind.value}"
    return None


def _secret_fields(
    kind: AuthKind,
    auth: Mapping[str, Any],
    config: Mapping[str, Any],
    current_hints: Mapping[str, str],
    problems: _Problems,
) -> tuple[dict[str, str], frozenset[str], frozenset[str]]:
    """(new values, kept fields, cleared fields) of the kind's secrets."""
    new: dict[str, str] = {}
    kept: set[str] = set()
    cleared: set[str] = set()
    for name in SECRET_FIELDS[kind]:
        key = f"auth.{name}"
        value = auth.get(name)
        if isinstance(value, str):
            value = value.strip()
        if value is None and name in auth and clear_problem(kind, name) is None:
            if name in current_hints:  # sent as None: an optional secret goes
                cleared.add(name)
            continue
        if _is_blank(value) or (name in current_hints and value == current_hints[name]):
            if name in current_hints:
                kept.add(name)
            elif name in REQUIRED_SECRETS.get(kind, ()):
                problems.add(key, f"Required for {kind.value}")
            continue
        if not isinstance(value, str):
            problems.add(key, "Enter text")
        elif _MASKED.match(value):
            problems.add(key, "Enter the secret itself, not its masked form")
        elif len(value) > MAX_SECRET_CHARS:
            problems.add(key, f"Use at most {MAX_SECRET_CHARS} characters")
        elif problem := _line_problem(value):
            problems.add(key, problem)
        elif (
            name == "token" or (name == "value" and config.get("header") is not None)
        ) and (problem := header_value_problem(value)):
            problems.add(key, problem)  # sent as a header value
        else:
            new[name] = value
    return new, frozenset(kept), frozenset(cleared)


# ----- the whole profile -----


def validate_profile(
    data: ProfileInput,
    *,
    current_kind: AuthKind | None = None,
    current_hints: Mapping[str, str] | None = None,
) -> CleanProfile:
    """`data` checked and normalised, or ValidationFailed naming every wrong
    field. On update, pass the stored kind and secret hints: when the kind
    stays, a secret left out (or sent back as its hint) keeps its stored
    value, and an optional secret sent as None is cleared (a required one
    sent as None is kept); when the kind changes, the old secrets are
    dropped."""
    problems = _Problems()

    name = data.name.strip()
    if problem := name_problem(name):
        problems.add("name", problem)
    description = data.description.strip()
    if len(description) > MAX_DESCRIPTION_CHARS:
        problems.add("description", f"Use at most {MAX_DESCRIPTION_CHARS} characters")
    base_url = data.base_url.strip()
    if problem := url_problem(base_url):
        problems.add("base_url", problem)
    headers = _check_headers(data.headers, problems)
    if not MIN_TIMEOUT_S <= data.timeout_s <= MAX_TIMEOUT_S:  # also refuses NaN
        problems.add("timeout_s", f"Choose between {MIN_TIMEOUT_S:g} and {MAX_TIMEOUT_S:g} seconds")
    tags = _check_tags(data.tags, problems)

    auth = data.auth
    kind = _parse_kind(auth.get("kind"))
    config: dict[str, Any] = {}
    new_secrets: dict[str, str] = {}
    kept: frozenset[str] = frozenset()
    cleared: frozenset[str] = frozenset()
    if kind is None:
        kinds = ", ".join(k.value for k in AuthKind)
        problems.add("auth.kind", f"Choose one of: {kinds}")
    else:
        known = {"kind", *PLAIN_FIELDS[kind], *SECRET_FIELDS[kind]}
        for extra in sorted(set(auth) - known):
            if not _is_blank(auth[extra]):
                problems.add(f"auth.{extra}", f"Not used by {kind.value}")
        config = _plain_fields(kind, auth, problems)
        hints = (current_hints or {}) if kind == current_kind else {}
        new_secrets, kept, cleared = _secret_fields(kind, auth, config, hints, problems)

    problems.raise_if_any()
    assert kind is not None
    return CleanProfile(
        name=name,
        description=description,
        base_url=base_url,
        headers=headers,
        timeout_s=float(data.timeout_s),
        verify_tls=data.verify_tls,
        tags=tags,
        auth_kind=kind,
        auth_config=config,
        new_secrets=new_secrets,
        kept_secrets=kept,
        cleared_secrets=cleared,
    )
