"""Turns the profile form's fields into a ProfileInput and a profile back
into the form's starting values. Secret inputs are read from the submitted
form only; they are never kept in a state var. A secret left empty keeps
its stored value; its "clear" checkbox (`clear_secret_<field>`) removes it,
which only an optional secret allows."""

from __future__ import annotations

from typing import Any

from app.errors import TaskdeckError, ValidationFailed
from app.models.profiles import (
    ALL_SECRET_FIELDS,
    PLAIN_FIELDS,
    SECRET_FIELDS,
    AuthKind,
    ProfileInput,
    ProfilePublic,
)
from app.services.profile_validation import clear_problem

SECRET_PREFIX = "secret_"
CLEAR_PREFIX = "clear_secret_"
# The key of an error about the whole form (no field named).
FORM_ERROR = "form"
CHECKED = (True, "on", "true", "1")
MAX_FIELD_CHARS = 8000


def _text(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value[:MAX_FIELD_CHARS].strip() if isinstance(value, str) else ""


def parse_headers(text: str) -> dict[str, str]:
    """One `Name: value` a line; blank lines are skipped. A line without a
    colon becomes a header with an empty name so validation names it."""
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        headers[name.strip() if sep else line.strip() + " (no colon)"] = value.strip()
    return headers


def format_headers(headers: dict[str, str]) -> str:
    return "\n".join(f"{name}: {value}" for name, value in headers.items())


def parse_tags(text: str) -> list[str]:
    return [tag.strip() for tag in text.replace(",", " ").split() if tag.strip()]


def to_input(form: dict[str, Any], kind: str) -> ProfileInput:
    """The submitted form as a ProfileInput; `timeout_s` that is not a
    number is passed on as -1 so that validation names the field. A secret
    to clear goes as None (a typed value wins over the checkbox);
    ValidationFailed when the secret is one the kind requires."""
    try:
        timeout_s = float(_text(form, "timeout_s") or 30)
    except ValueError:
        timeout_s = -1.0
    auth: dict[str, Any] = {"kind": kind}
    try:
        auth_kind = AuthKind(kind)
    except ValueError:
        auth_kind = None
    if auth_kind is not None:
        for field in PLAIN_FIELDS.get(auth_kind, ()):
            value = _text(form, field)
            if value:
                auth[field] = value
        refused: dict[str, str] = {}
        for field in SECRET_FIELDS.get(auth_kind, ()):
            value = _text(form, SECRET_PREFIX + field)
            if value:
                auth[field] = value
            elif form.get(CLEAR_PREFIX + field) in CHECKED:
                if problem := clear_problem(auth_kind, field):
                    refused[f"auth.{field}"] = problem
                else:
                    auth[field] = None
        if refused:
            raise ValidationFailed("Please correct: " + ", ".join(refused), details={"fields": refused})
    return ProfileInput(
        name=_text(form, "name"),
        description=_text(form, "description"),
        base_url=_text(form, "base_url"),
        headers=parse_headers(
            form.get("headers", "") if isinstance(form.get("headers"), str) else ""
        ),
        timeout_s=timeout_s,
        verify_tls=form.get("verify_tls") in CHECKED,
        tags=parse_tags(_text(form, "tags")),
        auth=auth,
    )


def form_values(profile: ProfilePublic) -> dict[str, str]:
    """Starting values of the plain fields (never a secret: those show hints)."""
    values = {
        "name": profile.name,
        "description": profile.description,
        "base_url": profile.base_url,
        "headers": format_headers(profile.headers),
        "timeout_s": f"{profile.timeout_s:g}",
        "tags": ", ".join(profile.tags),
    }
    kind = AuthKind(profile.auth.get("kind", "none"))
    for field in PLAIN_FIELDS.get(kind, ()):
        value = profile.auth.get(field)
        values[field] = " ".join(value) if isinstance(value, list) else (value or "")
    return values


def secret_hints(profile: ProfilePublic) -> dict[str, str]:
    kind = AuthKind(profile.auth.get("kind", "none"))
    return {field: profile.auth.get(field) or "" for field in SECRET_FIELDS.get(kind, ())}


def form_errors(error: TaskdeckError) -> dict[str, str]:
    """The error on its fields, or under FORM_ERROR when it names none."""
    return field_errors(error.details) or {FORM_ERROR: error.message}


def field_errors(details: dict[str, Any]) -> dict[str, str]:
    """Service field names (`auth.token_url`, `headers.X y`) → form names."""
    errors: dict[str, str] = {}
    for name, message in (details.get("fields") or {}).items():
        key = str(name)
        if key.startswith("headers"):
            key = "headers"
        elif key.startswith("auth."):
            field = key.removeprefix("auth.").split(".")[0]
            key = SECRET_PREFIX + field if field in ALL_SECRET_FIELDS else field
        errors.setdefault(key, str(message))
    return errors
