"""Profiles: create, read, list, update, clone and delete them; resolve one
(secrets decrypted) for the outbound client; keep the token state the OAuth2
token manager reports; re-encrypt every credential under a new secret key.

Functions take a `session` and never commit: the caller's transaction holds
the change and its audit event together. Audit details and log lines name
fields, never secret values. `actor` None is the CLI or the system
(trusted); a principal needs the EDIT permission to change profiles.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import structlog
from sqlalchemy import String, and_, cast, or_
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.db import session_scope
from app.errors import (
    ProfileInUse,
    ProfileNameTaken,
    ProfileNotFound,
    SecretUnreadable,
    ValidationFailed,
)
from app.models.common import utc_now
from app.models.profiles import (
    MAX_NAME_CHARS,
    MAX_TOKEN_ERROR_CHARS,
    OAUTH2_KINDS,
    PLAIN_FIELDS,
    SECRET_FIELDS,
    AuthKind,
    Profile,
    ProfileInput,
    ProfilePublic,
    ResolvedProfile,
    TokenState,
    TokenStatus,
    initial_token_status,
)
from app.models.users import Principal
from app.redaction import redact_url
from app.services import audit
from app.services.permissions import Permission, require
from app.services.profile_validation import (
    CleanProfile,
    check_name,
    name_key,
    normalize_tag,
    tag_problem,
    validate_profile,
)
from app.services.secrets_box import decrypt_secrets, encrypt_secrets, hint, rotate_ciphertext

PROFILE_CREATE = "profile.create"
PROFILE_UPDATE = "profile.update"
PROFILE_CLONE = "profile.clone"
PROFILE_DELETE = "profile.delete"
PROFILE_REFRESH_TOKEN_ROTATED = "profile.refresh_token_rotated"
PROFILE_CREDENTIALS_ROTATED = "profile.credentials_rotated"
AUDIT_ACTIONS = (
    PROFILE_CREATE, PROFILE_UPDATE, PROFILE_CLONE, PROFILE_DELETE,
    PROFILE_REFRESH_TOKEN_ROTATED, PROFILE_CREDENTIALS_ROTATED,
)

MAX_COPY_NUMBER = 1000

log = structlog.get_logger(__name__)

# How many tasks use a profile. The tasks feature replaces this hook; until
# then no task exists, so every profile may be deleted.
profile_users: Callable[[Session, int], int] = lambda session, profile_id: 0  # noqa: E731


# ----- helpers -----


def to_public(profile: Profile) -> ProfilePublic:
    assert profile.id is not None
    kind = AuthKind(profile.auth_kind)
    auth: dict[str, Any] = {"kind": kind.value}
    for name in PLAIN_FIELDS[kind]:
        auth[name] = copy.deepcopy(profile.auth_config.get(name))
    for name in SECRET_FIELDS[kind]:
        auth[name] = profile.secret_hints.get(name)
    return ProfilePublic(
        id=profile.id,
        name=profile.name,
        description=profile.description,
        base_url=profile.base_url,
        headers=dict(profile.headers),
        timeout_s=profile.timeout_s,
        verify_tls=profile.verify_tls,
        tags=list(profile.tags),
        auth=auth,
        token_state=TokenState(
            status=TokenStatus(profile.token_status),
            expires_at=profile.token_expires_at,
            error=profile.token_error,
        ),
        created_at=profile.created_at,
        updated_at=profile.updated_at,
    )


def _get(session: Session, profile_id: int, *, for_update: bool = False) -> Profile:
    """The row, fresh from the database; locked until the end of the
    transaction with `for_update` (PostgreSQL; SQLite has one writer)."""
    profile = session.get(
        Profile, profile_id, populate_existing=True, with_for_update=for_update or None
    )
    if profile is None:
        raise ProfileNotFound(
            f"Profile {profile_id} does not exist", details={"profile_id": profile_id}
        )
    return profile


def _require_edit(actor: Principal | None) -> None:
    if actor is not None:
        require(actor, Permission.EDIT)


def _name_taken(session: Session, key: str, *, except_id: int | None = None) -> bool:
    query = select(Profile.id).where(Profile.name_key == key)
    if except_id is not None:
        query = query.where(col(Profile.id) != except_id)
    return session.exec(query).first() is not None


def _taken(name: str) -> ProfileNameTaken:
    return ProfileNameTaken(
        f"A profile named {name} exists already",
        details={"fields": {"name": "Another profile has this name (names ignore case)"}},
    )


def _flush(session: Session, name: str) -> None:
    try:
        session.flush()
    except IntegrityError:  # the name was taken by someone else since the check
        raise _taken(name) from None


def _seal(values: dict[str, str]) -> tuple[str | None, dict[str, str]]:
    """(ciphertext, hints) to store for `values`; (None, {}) when empty."""
    if not values:
        return None, {}
    return encrypt_secrets(values), {name: hint(value) for name, value in values.items()}


def _secrets_of(profile: Profile) -> dict[str, str]:
    try:
        return decrypt_secrets(profile.secrets_ciphertext)
    except SecretUnreadable:
        raise SecretUnreadable(
            f"The credentials of profile {profile.id} cannot be decrypted with the "
            "configured secret key: set the old key in TASKDECK_OLD_SECRET_KEYS, "
            "or enter the credentials again",
            details={"profile_id": profile.id},
        ) from None


def _reset_token_state(profile: Profile, kind: AuthKind) -> None:
    profile.token_status = initial_token_status(kind)
    profile.token_expires_at = None
    profile.token_error = None
    profile.token_refreshed_at = None


# ----- reading -----


def get_profile(*, session: Session, profile_id: int) -> ProfilePublic:
    """The profile, secrets masked; ProfileNotFound when there is none."""
    return to_public(_get(session, profile_id))


def list_profiles(
    *,
    session: Session,
    search: str | None = None,
    tag: str | None = None,
    after: tuple[str, int] | None = None,
    limit: int | None = None,
) -> list[ProfilePublic]:
    """Profiles ordered by name. `search` matches the name, description or
    base URL (ignoring case); `tag` keeps the profiles that carry it; `after`
    (a `list_key`) and `limit` page through them."""
    query = select(Profile)
    if after is not None:
        after_key, after_id = after
        query = query.where(
            or_(
                col(Profile.name_key) > after_key,
                and_(col(Profile.name_key) == after_key, col(Profile.id) > after_id),
            )
        )
    term = (search or "").strip()
    if term:
        query = query.where(
            or_(
                col(Profile.name).icontains(term, autoescape=True),
                col(Profile.description).icontains(term, autoescape=True),
                col(Profile.base_url).icontains(term, autoescape=True),
            )
        )
    if tag is not None and tag.strip():
        wanted = normalize_tag(tag)
        if tag_problem(wanted) is not None:
            return []  # no stored tag can look like that
        # Tags are stored as a JSON list of [a-z0-9_.-] words: '"tag"' in its
        # text is an exact match, on SQLite and PostgreSQL alike.
        tags_text = cast(col(Profile.tags), String)
        query = query.where(tags_text.contains(f'"{wanted}"', autoescape=True))
    query = query.order_by(col(Profile.name_key), col(Profile.id))
    if limit is not None:
        query = query.limit(limit)
    return [to_public(profile) for profile in session.exec(query).all()]


def profile_tags(*, session: Session) -> list[str]:
    """Every tag some profile carries, sorted (for the list's tag filter)."""
    return sorted({tag for tags in session.exec(select(Profile.tags)).all() for tag in tags})


def list_key(profile: ProfilePublic) -> tuple[str, int]:
    """Where a profile sorts in `list_profiles`."""
    return (name_key(profile.name), profile.id)


def resolve_profile(*, session: Session, profile_id: int) -> ResolvedProfile:
    """The profile with its secrets decrypted, for the outbound client only.
    ProfileNotFound, or SecretUnreadable when no configured key opens them."""
    profile = _get(session, profile_id)
    assert profile.id is not None
    kind = AuthKind(profile.auth_kind)
    secrets = _secrets_of(profile)
    auth: dict[str, Any] = {
        name: copy.deepcopy(profile.auth_config.get(name)) for name in PLAIN_FIELDS[kind]
    }
    auth.update({name: secrets.get(name) for name in SECRET_FIELDS[kind]})
    return ResolvedProfile(
        id=profile.id,
        name=profile.name,
        base_url=profile.base_url,
        headers=dict(profile.headers),
        timeout_s=profile.timeout_s,
        verify_tls=profile.verify_tls,
        auth_kind=kind,
        auth=auth,
    )


def oauth2_profile_ids(*, session: Session) -> list[int]:
    """Ids of the profiles of an OAuth2 kind, whose tokens the manager keeps fresh."""
    kinds = [kind.value for kind in OAUTH2_KINDS]
    query = select(Profile.id).where(col(Profile.auth_kind).in_(kinds)).order_by(col(Profile.id))
    return [profile_id for profile_id in session.exec(query).all() if profile_id is not None]


# ----- creating and changing -----


def create_profile(
    *,
    session: Session,
    data: ProfileInput,
    actor: Principal | None,
    ip: str | None = None,
) -> ProfilePublic:
    """Add a profile. ValidationFailed naming every wrong field;
    ProfileNameTaken when another profile has the name in any case."""
    _require_edit(actor)
    clean = validate_profile(data)
    key = name_key(clean.name)
    if _name_taken(session, key):
        raise _taken(clean.name)
    ciphertext, hints = _seal(clean.new_secrets)
    profile = Profile(
        name=clean.name,
        name_key=key,
        description=clean.description,
        base_url=clean.base_url,
        headers=clean.headers,
        timeout_s=clean.timeout_s,
        verify_tls=clean.verify_tls,
        tags=clean.tags,
        auth_kind=clean.auth_kind,
        auth_config=clean.auth_config,
        secrets_ciphertext=ciphertext,
        secret_hints=hints,
        token_status=initial_token_status(clean.auth_kind),
    )
    session.add(profile)
    _flush(session, clean.name)
    audit.record(
        session=session,
        action=PROFILE_CREATE,
        actor=actor,
        object_type="profile",
        object_id=profile.id,
        details={"name": clean.name, "auth_kind": clean.auth_kind.value},
        ip=ip,
    )
    log.info("profile_created", profile_id=profile.id, auth_kind=clean.auth_kind.value)
    return to_public(profile)


def _origin(url: str | None) -> tuple[str, str]:
    parts = urlsplit(url or "")
    return parts.scheme.lower(), parts.netloc.lower()


def _refuse_kept_secrets_for_a_new_address(profile: Profile, clean: CleanProfile) -> None:
    """Stored credentials go only where they were entered for: pointing the
    base URL or the token URL at another host needs them typed again, or an
    editor could send them to a host of their own and read them there."""
    moved = _origin(profile.base_url) != _origin(clean.base_url) or _origin(
        profile.auth_config.get("token_url")
    ) != _origin(clean.auth_config.get("token_url"))
    if not moved or not clean.kept_secrets or clean.auth_kind != AuthKind(profile.auth_kind):
        return
    raise ValidationFailed(
        "The address changed: enter the credentials again",
        details={
            "fields": {
                f"auth.{name}": "Enter this again: the address changed"
                for name in sorted(clean.kept_secrets)
            }
        },
    )


def update_profile(
    *,
    session: Session,
    profile_id: int,
    data: ProfileInput,
    actor: Principal | None,
    ip: str | None = None,
) -> ProfilePublic:
    """Replace the profile's fields with `data`. A secret left out, empty
    or sent back as its hint keeps its stored value (so does a required one
    sent as None); an optional one sent as None is cleared; a new value
    replaces it; a new auth kind drops the old secrets. A changed OAuth2
    configuration or secret resets the token state (no token yet).
    The audit event lists the changed field names, never values."""
    _require_edit(actor)
    profile = _get(session, profile_id, for_update=True)
    old_kind = AuthKind(profile.auth_kind)
    clean = validate_profile(data, current_kind=old_kind, current_hints=profile.secret_hints)
    key = name_key(clean.name)
    if key != profile.name_key and _name_taken(session, key, except_id=profile_id):
        raise _taken(clean.name)
    _refuse_kept_secrets_for_a_new_address(profile, clean)

    changed: list[str] = []
    for attr in ("name", "description", "base_url", "headers", "timeout_s", "verify_tls", "tags"):
        if getattr(profile, attr) != getattr(clean, attr):
            changed.append(attr)
            setattr(profile, attr, getattr(clean, attr))
    profile.name_key = key

    kind_changed = clean.auth_kind != old_kind
    old_config = {} if kind_changed else profile.auth_config
    config_changed = [
        f"auth.{name}"
        for name in sorted(set(old_config) | set(clean.auth_config))
        if old_config.get(name) != clean.auth_config.get(name)
    ]
    if kind_changed:
        dropped_or_set = {*profile.secret_hints, *clean.new_secrets}
        secrets_changed = sorted(f"auth.{name}" for name in dropped_or_set)
        final = dict(clean.new_secrets)
    else:
        # The stored values are needed to keep some, or to tell a re-entered
        # value from a new one; none are needed when every secret is new
        # (re-entering them is how unreadable credentials are repaired).
        stored = _secrets_of(profile) if clean.kept_secrets else _readable_secrets(profile)
        missing = clean.kept_secrets - set(stored)
        if missing:
            raise SecretUnreadable(
                f"The credentials of profile {profile_id} are incomplete: enter them again",
                details={"profile_id": profile_id},
            )
        final = {name: stored[name] for name in clean.kept_secrets} | clean.new_secrets
        secrets_changed = sorted(
            {f"auth.{name}" for name, value in clean.new_secrets.items() if stored.get(name) != value}
            | {f"auth.{name}" for name in clean.cleared_secrets}
        )

    if kind_changed:
        changed.append("auth.kind")
        profile.auth_kind = clean.auth_kind
    if config_changed or kind_changed:
        changed.extend(config_changed)
        profile.auth_config = clean.auth_config
    if secrets_changed or kind_changed:
        changed.extend(secrets_changed)
        profile.secrets_ciphertext, profile.secret_hints = _seal(final)
    if kind_changed or (
        clean.auth_kind in OAUTH2_KINDS and (config_changed or secrets_changed)
    ):
        _reset_token_state(profile, clean.auth_kind)

    if not changed:
        return to_public(profile)
    profile.updated_at = utc_now()
    session.add(profile)
    _flush(session, clean.name)
    audit.record(
        session=session,
        action=PROFILE_UPDATE,
        actor=actor,
        object_type="profile",
        object_id=profile_id,
        details={"name": clean.name, "changed": changed},
        ip=ip,
    )
    log.info("profile_updated", profile_id=profile_id, changed=changed)
    return to_public(profile)


def _readable_secrets(profile: Profile) -> dict[str, str]:
    """The stored secrets, or {} when they cannot be read."""
    try:
        return decrypt_secrets(profile.secrets_ciphertext)
    except SecretUnreadable:
        return {}


def _copy_name(session: Session, name: str) -> str:
    """"<name> (copy)", else "<name> (copy 2)", ... the first one free,
    the name shortened so that it fits."""
    for number in range(1, MAX_COPY_NUMBER + 1):
        suffix = " (copy)" if number == 1 else f" (copy {number})"
        candidate = name[: MAX_NAME_CHARS - len(suffix)].rstrip() + suffix
        if not _name_taken(session, name_key(candidate)):
            return candidate
    raise ValidationFailed(
        "Too many copies of this profile: choose a name",
        details={"fields": {"name": "Choose a name for the copy"}},
    )


def clone_profile(
    *,
    session: Session,
    profile_id: int,
    new_name: str | None,
    actor: Principal | None,
    ip: str | None = None,
) -> ProfilePublic:
    """A copy of the profile, credentials included (still encrypted), with a
    fresh token state. Without `new_name`, "<name> (copy)", "(copy 2)", ..."""
    _require_edit(actor)
    source = _get(session, profile_id)
    if new_name is None:
        name = _copy_name(session, source.name)
    else:
        name = check_name(new_name)
        if _name_taken(session, name_key(name)):
            raise _taken(name)
    kind = AuthKind(source.auth_kind)
    clone = Profile(
        name=name,
        name_key=name_key(name),
        description=source.description,
        base_url=source.base_url,
        headers=dict(source.headers),
        timeout_s=source.timeout_s,
        verify_tls=source.verify_tls,
        tags=list(source.tags),
        auth_kind=kind,
        auth_config=copy.deepcopy(source.auth_config),
        secrets_ciphertext=source.secrets_ciphertext,
        secret_hints=dict(source.secret_hints),
        token_status=initial_token_status(kind),
    )
    session.add(clone)
    _flush(session, name)
    audit.record(
        session=session,
        action=PROFILE_CLONE,
        actor=actor,
        object_type="profile",
        object_id=clone.id,
        details={"name": name, "from_id": profile_id, "from_name": source.name},
        ip=ip,
    )
    log.info("profile_cloned", profile_id=clone.id, from_id=profile_id)
    return to_public(clone)


def delete_profile(
    *,
    session: Session,
    profile_id: int,
    actor: Principal | None,
    ip: str | None = None,
    force: bool = False,
) -> None:
    """Remove the profile. ProfileInUse (details.tasks) when tasks use it,
    unless `force`."""
    _require_edit(actor)
    profile = _get(session, profile_id, for_update=True)
    users = profile_users(session, profile_id)
    if users > 0 and not force:
        raise ProfileInUse(
            f"{users} task{'s' if users != 1 else ''} use{'' if users != 1 else 's'} "
            f"the profile {profile.name}",
            details={"tasks": users},
        )
    name = profile.name
    session.delete(profile)
    session.flush()
    audit.record(
        session=session,
        action=PROFILE_DELETE,
        actor=actor,
        object_type="profile",
        object_id=profile_id,
        details={"name": name, "tasks": users, "force": force},
        ip=ip,
    )
    log.info("profile_deleted", profile_id=profile_id, tasks=users, force=force)


# ----- token state (the OAuth2 token manager's store) -----


def record_token_state(
    *,
    session: Session,
    profile_id: int,
    status: TokenStatus,
    expires_at: datetime | None,
    error: str | None,
) -> ProfilePublic:
    """Keep what the token manager knows of the profile's access token.
    A profile that is no longer of an OAuth2 kind is left as it is."""
    profile = _get(session, profile_id, for_update=True)
    if AuthKind(profile.auth_kind) not in OAUTH2_KINDS:
        return to_public(profile)
    status = TokenStatus(status)
    profile.token_status = status
    profile.token_expires_at = expires_at
    profile.token_error = redact_url(error)[:MAX_TOKEN_ERROR_CHARS] if error else None
    if status == TokenStatus.VALID:
        profile.token_refreshed_at = utc_now()
    session.add(profile)
    session.flush()
    return to_public(profile)


def store_rotated_refresh_token(
    *,
    session: Session,
    profile_id: int,
    refresh_token: str,
    replaces_sha256: Collection[str] | None = None,
) -> bool:
    """Keep the new refresh token the authorization server handed out (the
    old one may stop working). Ignored for a profile no longer of the
    refresh-token kind. With `replaces_sha256` (SHA-256 hex digests of the
    tokens this one replaces, the one sent among them) a compare-and-set:
    kept only while the stored token is one of them, because a refresh in
    flight must not overwrite a token a user pasted meanwhile. Returns
    whether it was kept."""
    if not isinstance(refresh_token, str) or not refresh_token.strip():
        raise ValidationFailed(
            "The new refresh token is empty",
            details={"fields": {"auth.refresh_token": "Required for oauth2_refresh_token"}},
        )
    profile = _get(session, profile_id, for_update=True)
    if AuthKind(profile.auth_kind) != AuthKind.OAUTH2_REFRESH_TOKEN:
        log.info("rotated_refresh_token_ignored", profile_id=profile_id)
        return False
    stored = _secrets_of(profile)
    if replaces_sha256 is not None:
        current = stored.get("refresh_token")
        if current is None or hashlib.sha256(current.encode()).hexdigest() not in replaces_sha256:
            log.info("rotated_refresh_token_not_kept", profile_id=profile_id, why="replaced")
            return False
    values = stored | {"refresh_token": refresh_token.strip()}
    profile.secrets_ciphertext, profile.secret_hints = _seal(values)
    session.add(profile)
    session.flush()
    audit.record(
        session=session,
        action=PROFILE_REFRESH_TOKEN_ROTATED,
        object_type="profile",
        object_id=profile_id,
        details={"name": profile.name, "changed": ["auth.refresh_token"]},
    )
    log.info("refresh_token_rotated", profile_id=profile_id)
    return True


class DbTokenStateStore:
    """The token manager's store, backed by the database: each call runs in
    a worker thread with its own committed transaction."""

    def __init__(self, engine: Engine | None = None) -> None:
        self._engine = engine

    async def record(
        self,
        profile_id: int,
        status: TokenStatus,
        expires_at: datetime | None,
        error: str | None,
    ) -> ProfilePublic:
        return await asyncio.to_thread(self._record, profile_id, status, expires_at, error)

    async def store_refresh_token(
        self,
        profile_id: int,
        refresh_token: str,
        *,
        replaces_sha256: Collection[str] | None = None,
    ) -> None:
        """See `store_rotated_refresh_token` (a compare-and-set with `replaces_sha256`)."""
        await asyncio.to_thread(
            self._store_refresh_token, profile_id, refresh_token, replaces_sha256
        )

    def _record(
        self,
        profile_id: int,
        status: TokenStatus,
        expires_at: datetime | None,
        error: str | None,
    ) -> ProfilePublic:
        with session_scope(self._engine) as session:
            return record_token_state(
                session=session,
                profile_id=profile_id,
                status=status,
                expires_at=expires_at,
                error=error,
            )

    def _store_refresh_token(
        self, profile_id: int, refresh_token: str, replaces_sha256: Collection[str] | None
    ) -> None:
        with session_scope(self._engine) as session:
            store_rotated_refresh_token(
                session=session,
                profile_id=profile_id,
                refresh_token=refresh_token,
                replaces_sha256=replaces_sha256,
            )


# ----- key rotation -----


def rotate_credentials(*, session: Session, actor: Principal | None = None) -> int:
    """Re-encrypt every profile's credentials under the current secret key
    (readable under it or a key in TASKDECK_OLD_SECRET_KEYS); returns how
    many were re-encrypted. SecretUnreadable naming the profiles none of the
    keys opens, and nothing changed, when there are any."""
    query = (
        select(Profile)
        .where(col(Profile.secrets_ciphertext).is_not(None))
        .order_by(col(Profile.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    profiles = session.exec(query).all()
    rotated: list[tuple[Profile, str]] = []
    unreadable: list[int] = []
    for profile in profiles:
        assert profile.id is not None and profile.secrets_ciphertext is not None
        try:
            rotated.append((profile, rotate_ciphertext(profile.secrets_ciphertext)))
        except SecretUnreadable:
            unreadable.append(profile.id)
    if unreadable:
        ids = ", ".join(str(profile_id) for profile_id in unreadable)
        raise SecretUnreadable(
            f"The credentials of profile {ids} cannot be decrypted with the configured "
            "secret key or TASKDECK_OLD_SECRET_KEYS; nothing was re-encrypted",
            details={"profile_id": unreadable[0], "profile_ids": unreadable},
        )
    for profile, ciphertext in rotated:
        profile.secrets_ciphertext = ciphertext
        session.add(profile)
    session.flush()
    audit.record(
        session=session,
        action=PROFILE_CREDENTIALS_ROTATED,
        actor=actor,
        object_type="profile",
        details={"count": len(rotated)},
    )
    log.info("profile_credentials_rotated", count=len(rotated))
    return len(rotated)
