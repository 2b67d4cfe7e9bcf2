"""Profiles: connections to HTTP APIs with their credentials. The table, the
input and public shapes, and the `ResolvedProfile` the outbound client uses.

Credentials are split in two. The plain part of an auth kind (user name,
header name, token URL, client id, scopes, ...) is stored as JSON in
`auth_config`; the secret part (token, password, key value, client secret,
refresh token) is stored only as one Fernet token in `secrets_ciphertext`,
next to masked hints (`****abcd`) for showing. No public shape has a field
that can hold a secret in clear; `ResolvedProfile` holds them, server-side
only, and hides them from `repr`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Column, String, Text
from sqlmodel import Field, SQLModel

from app.models.common import PublicModel, UTCDateTime, utc_now

MAX_NAME_CHARS = 100
# name_key is the casefolded name; casefolding may lengthen it (ß -> ss).
MAX_NAME_KEY_CHARS = 4 * MAX_NAME_CHARS
MAX_DESCRIPTION_CHARS = 1000
MAX_URL_CHARS = 2000
MAX_TOKEN_ERROR_CHARS = 2000
DEFAULT_TIMEOUT_S = 30.0
MASK = "****"


class AuthKind(StrEnum):
    NONE = "none"
    BEARER = "bearer"
    BASIC = "basic"
    API_KEY = "api_key"
    OAUTH2_CLIENT_CREDENTIALS = "oauth2_client_credentials"
    OAUTH2_REFRESH_TOKEN = "oauth2_refresh_token"


class TokenStatus(StrEnum):
    """State of an OAuth2 access token. A profile of an OAuth2 kind with
    status `expiring`, no expiry and no error has no token yet: the token
    manager fetches one before it is needed."""

    VALID = "valid"
    EXPIRING = "expiring"
    REFRESHING = "refreshing"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"


OAUTH2_KINDS = frozenset({AuthKind.OAUTH2_CLIENT_CREDENTIALS, AuthKind.OAUTH2_REFRESH_TOKEN})

# Fields of each kind that are encrypted at rest and only ever shown masked.
SECRET_FIELDS: dict[AuthKind, tuple[str, ...]] = {
    AuthKind.NONE: (),
    AuthKind.BEARER: ("token",),
    AuthKind.BASIC: ("password",),
    AuthKind.API_KEY: ("value",),
    AuthKind.OAUTH2_CLIENT_CREDENTIALS: ("client_secret",),
    AuthKind.OAUTH2_REFRESH_TOKEN: ("client_secret", "refresh_token"),
}

# Fields of each kind stored in clear (auth_config).
PLAIN_FIELDS: dict[AuthKind, tuple[str, ...]] = {
    AuthKind.NONE: (),
    AuthKind.BEARER: (),
    AuthKind.BASIC: ("username",),
    AuthKind.API_KEY: ("header", "param"),
    AuthKind.OAUTH2_CLIENT_CREDENTIALS: (
        "token_url",
        "client_id",
        "scopes",
        "audience",
        "client_auth",
    ),
    AuthKind.OAUTH2_REFRESH_TOKEN: ("token_url", "client_id", "scopes", "client_auth"),
}

# Every field name that is a secret in some kind: masked in reprs whatever the kind.
ALL_SECRET_FIELDS = frozenset(name for names in SECRET_FIELDS.values() for name in names)


def initial_token_status(kind: AuthKind) -> TokenStatus:
    """`expiring` (no token yet) for OAuth2 kinds, `not_applicable` otherwise."""
    return TokenStatus.EXPIRING if kind in OAUTH2_KINDS else TokenStatus.NOT_APPLICABLE


class Profile(SQLModel, table=True):
    __tablename__ = "profiles"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=MAX_NAME_CHARS)
    # The casefolded name: its unique index makes names unique regardless of
    # case on every database.
    name_key: str = Field(max_length=MAX_NAME_KEY_CHARS, unique=True, index=True)
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    base_url: str = Field(max_length=MAX_URL_CHARS)
    headers: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    timeout_s: float = DEFAULT_TIMEOUT_S
    verify_tls: bool = True
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # A plain string, not a database enum, like RunStatus.
    auth_kind: AuthKind = Field(default=AuthKind.NONE, sa_type=String(40))
    # The PLAIN_FIELDS of the kind only; never a secret.
    auth_config: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    # Fernet token (app.services.secrets_box) of a JSON object holding the
    # SECRET_FIELDS that are set; None when the kind has none set.
    secrets_ciphertext: str | None = Field(default=None, sa_type=Text)
    # field -> masked hint ("****abcd"), for the fields that are set.
    secret_hints: dict[str, str] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    token_status: TokenStatus = Field(default=TokenStatus.NOT_APPLICABLE, sa_type=String(20))
    token_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    token_error: str | None = Field(default=None, max_length=MAX_TOKEN_ERROR_CHARS)
    token_refreshed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


# ----- input and public shapes -----


def _masked_auth(auth: dict[str, Any]) -> dict[str, Any]:
    return {
        key: (MASK if key in ALL_SECRET_FIELDS and value not in (None, "") else value)
        for key, value in auth.items()
    }


class ProfileInput(BaseModel):
    """A profile as a form or the API sends it, for create and update.

    `auth` holds the kind and its fields, secrets in clear. On update a
    secret that is absent, None, empty or equal to its masked hint keeps the
    stored value; any other value replaces it.
    """

    name: str
    description: str = ""
    base_url: str
    headers: dict[str, str] = {}
    timeout_s: float = DEFAULT_TIMEOUT_S
    verify_tls: bool = True
    tags: list[str] = []
    auth: dict[str, Any] = {"kind": AuthKind.NONE.value}

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            yield key, (_masked_auth(value) if key == "auth" else value)


class TokenState(PublicModel):
    status: TokenStatus
    expires_at: datetime | None
    error: str | None


class ProfilePublic(PublicModel):
    """A profile as clients see it. `auth` is {"kind", the plain fields of
    the kind, each secret field of the kind as its hint or None}."""

    id: int
    name: str
    description: str
    base_url: str
    headers: dict[str, str]
    timeout_s: float
    verify_tls: bool
    tags: list[str]
    auth: dict[str, Any]
    token_state: TokenState
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, repr=False)
class ResolvedProfile:
    """What the outbound client needs to call the API: server-side only,
    never serialized to a client. `auth` holds every PLAIN_FIELDS and
    SECRET_FIELDS name of the kind (None when not set), secrets decrypted."""

    id: int
    name: str
    base_url: str
    headers: dict[str, str]
    timeout_s: float
    verify_tls: bool
    auth_kind: AuthKind
    auth: dict[str, Any]

    def __repr__(self) -> str:
        return (
            f"ResolvedProfile(id={self.id!r}, name={self.name!r}, base_url={self.base_url!r}, "
            f"headers={self.headers!r}, timeout_s={self.timeout_s!r}, "
            f"verify_tls={self.verify_tls!r}, auth_kind={self.auth_kind.value!r}, "
            f"auth={_masked_auth(self.auth)!r})"
        )
