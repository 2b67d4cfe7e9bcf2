"""Profiles: the live list (/profiles) and one profile (/profiles/[profile_id])
with its edit form, token state, test connection, clone and delete.

The token state shown is derived from the stored one and the clock: the
note says "expires in 4 min", a token past its expiry shows as `expiring`
with "expired", and one past its refresh point as `expiring` when the page
knows when it was obtained (from the live event that announced it: the
stored state does not say). Pages call `refresh_expiry_notes` every
EXPIRY_REFRESH_S so that a row left open does not say "valid" after the
token expired; live events recompute it too."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import reflex as rx
import structlog

from app.db import in_session
from app.errors import TaskdeckError
from app.models.profiles import AuthKind, ProfilePublic, TokenStatus
from app.queue import get_queue_or_none
from app.services import profiles as profile_store
from app.services.connection_tests import run_connection_test
from app.services.events import Event, publish_quietly
from app.services.oauth2 import token_state
from app.services.permissions import Permission
from app.services.token_states import (
    forget_cached_token,
    profile_event,
    profile_topic,
    retry_token_soon,
)
from state.auth import acting_principal, requires
from state.live import hub
from state.profile_form import form_errors, form_values, secret_hints, to_input

AUTH_KINDS = [kind.value for kind in AuthKind]
# How often an open page recomputes "expires in ..." and the shown state.
EXPIRY_REFRESH_S = 30

log = structlog.get_logger(__name__)


@dataclasses.dataclass
class ProfileRow:
    """What the list shows of a profile (no secrets, no hints).

    `token_status` and `expiry_note` are what the page shows at the time of
    the last refresh; `stored_status`, `expires_at` and `obtained_at` (ISO
    8601, "" when unknown) are what they are computed from."""

    id: int
    name: str
    description: str
    base_url: str
    auth_kind: str
    tags: list[str]
    token_status: str
    expiry_note: str
    stored_status: str = TokenStatus.NOT_APPLICABLE.value
    expires_at: str = ""
    obtained_at: str = ""


def expires_in_text(left_s: float) -> str:
    """"expires in 4 min" for a token with `left_s` seconds left; "expired"."""
    if left_s <= 0:
        return "expired"
    if left_s < 60:
        return "expires in under a minute"
    if left_s < 3600:
        return f"expires in {int(left_s // 60)} min"
    if left_s < 2 * 86400:
        return f"expires in {int(left_s // 3600)} h"
    return f"expires in {int(left_s // 86400)} days"


def shown_token_state(
    status: TokenStatus,
    expires_at: datetime | None,
    error: str | None,
    *,
    now: datetime,
    obtained_at: datetime | None = None,
) -> tuple[TokenStatus, str]:
    """(status, note) to show at `now`. A stored `valid` becomes `expiring`
    past the refresh point (when the token's start is known: the token
    manager's own rule) or past its expiry; the note is relative to now."""
    if status is TokenStatus.FAILED:
        return status, error or "refresh failed"
    if status is TokenStatus.NOT_APPLICABLE:
        return status, ""
    if expires_at is None:
        return status, "no token yet" if status is TokenStatus.EXPIRING else ""
    left_s = (expires_at - now).total_seconds()
    if status is TokenStatus.VALID:
        if left_s <= 0:
            status = TokenStatus.EXPIRING
        elif obtained_at is not None:
            status = token_state(obtained_at=obtained_at, expires_at=expires_at, now=now)
    return status, expires_in_text(left_s)


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value is not None else ""


def _with_state_at(row: ProfileRow, now: datetime, error: str | None = None) -> ProfileRow:
    status, note = shown_token_state(
        TokenStatus(row.stored_status),
        _parse_time(row.expires_at),
        error,
        now=now,
        obtained_at=_parse_time(row.obtained_at),
    )
    return dataclasses.replace(row, token_status=status.value, expiry_note=note)


def to_row(
    profile: ProfilePublic, *, now: datetime | None = None, obtained_at: datetime | None = None
) -> ProfileRow:
    state = profile.token_state
    row = ProfileRow(
        id=profile.id,
        name=profile.name,
        description=profile.description,
        base_url=profile.base_url,
        auth_kind=str(profile.auth.get("kind", "none")),
        tags=list(profile.tags),
        token_status=state.status.value,
        expiry_note="",
        stored_status=state.status.value,
        expires_at=_iso(state.expires_at),
        obtained_at=_iso(obtained_at) if state.expires_at is not None else "",
    )
    return _with_state_at(row, now or datetime.now(UTC), state.error)


def refreshed(row: ProfileRow, now: datetime) -> ProfileRow:
    """The row's shown state at `now` (a failed row keeps its error note)."""
    if row.stored_status == TokenStatus.FAILED.value or not row.expires_at:
        return row
    return _with_state_at(row, now)


def _known_start(previous: ProfileRow | None, profile: ProfilePublic) -> datetime | None:
    """When the profile's token was obtained, if a row that showed the same
    token knew it (the stored state does not say)."""
    if (
        previous is not None
        and previous.id == profile.id
        and previous.expires_at == _iso(profile.token_state.expires_at)
    ):
        return _parse_time(previous.obtained_at)
    return None


def _event_row(event: Event, previous: ProfileRow | None) -> ProfileRow | None:
    """The row an event's profile shows; a newly valid token was obtained
    about when the event was made."""
    data = event.data.get("profile")
    if not data:
        return None
    profile = ProfilePublic.model_validate(data)
    obtained_at = _known_start(previous, profile)
    if (
        obtained_at is None
        and event.type == "token_state"
        and profile.token_state.status is TokenStatus.VALID
    ):
        obtained_at = _parse_time(event.at)
    return to_row(profile, obtained_at=obtained_at)


async def announce(profile: ProfilePublic | None, profile_id: int, event_type: str) -> None:
    redis = await get_queue_or_none()
    if profile is not None:
        await publish_quietly(redis, profile_event(profile, event_type))
    else:
        event = Event(topic=profile_topic(profile_id), type=event_type, id=str(profile_id), data={})
        await publish_quietly(redis, event)


class ProfilesState(rx.State):
    profiles: list[ProfileRow] = []
    search: str = ""
    tag: str = ""
    loading: bool = True
    load_error: str = ""
    live: bool = True
    create_open: bool = False
    create_kind: str = "none"
    create_errors: dict[str, str] = {}

    # Every tag in use, whatever the filter shows.
    all_tags: list[str] = []

    @rx.event
    @requires(Permission.READ)
    async def load_profiles(self) -> None:
        hub.watch(self.router.session.client_token, ["profile:*"], ProfilesState)
        self.live = hub.connected
        await self._reload()

    @rx.event
    @requires(Permission.READ)
    async def set_search(self, value: str) -> None:
        self.search = value[:200]
        await self._reload()

    @rx.event
    @requires(Permission.READ)
    async def set_tag(self, value: str) -> None:
        self.tag = "" if value == "all tags" else value
        await self._reload()

    @rx.event
    @requires(Permission.READ)
    async def refresh_expiry_notes(self) -> None:
        """The page's timer: token states and "expires in" as of now."""
        now = datetime.now(UTC)
        self.profiles = [refreshed(row, now) for row in self.profiles]

    @rx.event
    def set_create_open(self, value: bool) -> None:
        self.create_open = value
        self.create_errors = {}
        self.create_kind = "none"

    @rx.event
    def set_create_kind(self, value: str) -> None:
        self.create_kind = value

    @rx.event
    @requires(Permission.EDIT)
    async def create_profile(self, form: dict[str, Any]) -> Any:
        try:
            data = to_input(form, self.create_kind)
            profile = await in_session(
                profile_store.create_profile, data=data, actor=acting_principal(),
                ip=self.router.session.client_ip,
            )
        except TaskdeckError as error:
            self.create_errors = form_errors(error)
            return None
        self.create_open = False
        self.create_errors = {}
        await announce(profile, profile.id, "created")
        return rx.redirect(f"/profiles/{profile.id}")

    async def _reload(self) -> None:
        try:
            found = await in_session(
                profile_store.list_profiles, search=self.search or None, tag=self.tag or None
            )
            self.all_tags = await in_session(profile_store.profile_tags)
        except TaskdeckError as error:
            self.load_error = error.message
        else:
            now = datetime.now(UTC)
            known = {row.id: row for row in self.profiles}
            self.profiles = [
                to_row(p, now=now, obtained_at=_known_start(known.get(p.id), p)) for p in found
            ]
            self.load_error = ""
        self.loading = False

    async def _apply_live_events(self, events: Sequence[Event]) -> None:
        rows = {row.id: row for row in self.profiles}
        reload = False
        for event in events:
            row_id = int(event.id)
            if event.type == "token_state" and row_id in rows:
                rows[row_id] = _event_row(event, rows[row_id]) or rows[row_id]
            else:  # created, updated, deleted: membership may change
                reload = True
        if reload:
            await self._reload()
        else:
            now = datetime.now(UTC)
            self.profiles = [refreshed(rows[row.id], now) for row in self.profiles]

    async def _on_live_status(self, connected: bool) -> None:
        self.live = connected
        if connected:
            await self._reload()


class ProfileState(rx.State):
    """One profile: /profiles/[profile_id]."""

    found: bool = True
    loading: bool = True
    row: ProfileRow = ProfileRow(0, "", "", "", "none", [], "not_applicable", "")
    values: dict[str, str] = {}
    hints: dict[str, str] = {}
    kind: str = "none"
    verify_tls: bool = True
    errors: dict[str, str] = {}
    # Changes when a profile is (re)loaded, to remount the form's inputs.
    form_key: int = 0
    testing: bool = False
    # A save or a clone in progress: its button is disabled and spins, and
    # the handler refuses a second one.
    saving: bool = False
    cloning: bool = False
    test_result: dict[str, str] = {}
    _profile_id: int = 0

    @rx.event
    @requires(Permission.READ)
    async def load_profile(self) -> Any:
        raw = str(self.router.page.params.get("profile_id", ""))
        token = self.router.session.client_token
        hub.unwatch(token, [profile_topic(self._profile_id)])
        self._profile_id = int(raw) if raw.isdigit() else 0
        self.test_result = {}
        self.errors = {}
        self.cloning = False  # a clone keeps it until the copy's page loads
        self.loading = True
        hub.watch(token, [profile_topic(self._profile_id)], ProfileState)
        yield  # the skeleton, not the previous profile, while this one loads
        await self._reload()

    @rx.event
    @requires(Permission.READ)
    async def refresh_expiry_notes(self) -> None:
        """The page's timer: the token state and "expires in" as of now."""
        self.row = refreshed(self.row, datetime.now(UTC))

    async def _reload(self) -> None:
        try:
            profile = await in_session(profile_store.get_profile, profile_id=self._profile_id)
        except TaskdeckError:
            self.found = False
            self.loading = False
            return
        self._show(profile, _known_start(self.row, profile))

    def _show(self, profile: ProfilePublic, obtained_at: datetime | None = None) -> None:
        self.found = True
        self.loading = False
        self.row = to_row(profile, obtained_at=obtained_at)
        self.values = form_values(profile)
        self.hints = secret_hints(profile)
        self.kind = str(profile.auth.get("kind", "none"))
        self.verify_tls = profile.verify_tls
        self.form_key += 1

    @rx.event
    def set_kind(self, value: str) -> None:
        self.kind = value

    @rx.event(background=True)
    @requires(Permission.EDIT)
    async def save_profile(self, form: dict[str, Any]) -> Any:
        async with self:
            if self.saving:
                return None  # a second click while the first save runs
            self.saving = True
            kind, profile_id, ip = self.kind, self._profile_id, self.router.session.client_ip
        try:
            profile = await in_session(
                profile_store.update_profile, profile_id=profile_id, data=to_input(form, kind),
                actor=acting_principal(), ip=ip,
            )
        except TaskdeckError as error:
            async with self:
                self.saving = False
                self.errors = form_errors(error)
            return None
        except Exception as error:  # the button must never stay stuck
            log.exception("profile_save_failed", profile_id=profile_id)
            async with self:
                self.saving = False
            return rx.toast.error(f"The profile could not be saved ({type(error).__name__})")
        async with self:
            self.saving = False
            if self._profile_id == profile_id:  # still on this profile's page
                self.errors = {}
                self._show(profile)
        await retry_token_soon(await get_queue_or_none(), profile.id)
        await announce(profile, profile.id, "updated")
        return rx.toast.success("Profile saved")

    @rx.event(background=True)
    @requires(Permission.RUN)
    async def test_connection(self, form: dict[str, Any]) -> Any:
        async with self:
            if self.testing:
                return None
            self.testing = True
            self.test_result = {}
            profile_id = self._profile_id
        path = str(form.get("path", ""))[:2000].strip()
        try:
            result = await run_connection_test(
                await get_queue_or_none(), profile_id=profile_id, path=path
            )
        except TaskdeckError as error:
            result = {"ok": False, "error": error.message}
        except Exception as error:  # the button must never stay stuck
            log.exception("connection_test_failed", profile_id=profile_id)
            result = {"ok": False, "error": f"The test could not finish ({type(error).__name__})"}
        async with self:
            self.testing = False
            self.test_result = {
                "ok": "yes" if result.get("ok") else "no",
                "status_code": str(result.get("status_code") or "—"),
                "latency_ms": f"{result['latency_ms']:.0f} ms" if result.get("latency_ms") else "—",
                "excerpt": str(result.get("excerpt") or ""),
                "error": str(result.get("error") or ""),
            }
        return None

    @rx.event(background=True)
    @requires(Permission.EDIT)
    async def clone_profile(self) -> Any:
        async with self:
            if self.cloning:
                return None  # a second click: one copy per click that got through
            self.cloning = True
            profile_id, ip = self._profile_id, self.router.session.client_ip
        try:
            copy = await in_session(
                profile_store.clone_profile, profile_id=profile_id, new_name=None,
                actor=acting_principal(), ip=ip,
            )
        except TaskdeckError as error:
            async with self:
                self.cloning = False
            return rx.toast.error(error.message)
        except Exception as error:  # the button must never stay stuck
            log.exception("profile_clone_failed", profile_id=profile_id)
            async with self:
                self.cloning = False
            return rx.toast.error(f"The profile could not be cloned ({type(error).__name__})")
        await announce(copy, copy.id, "created")
        # `cloning` stays set until the copy's page loads (load_profile), so
        # that a click before the redirect lands makes no second copy.
        return [rx.toast.success(f"Cloned as {copy.name}"), rx.redirect(f"/profiles/{copy.id}")]

    @rx.event
    @requires(Permission.EDIT)
    async def delete_profile(self) -> Any:
        profile_id = self._profile_id
        try:
            await in_session(
                profile_store.delete_profile, profile_id=profile_id, actor=acting_principal(),
                ip=self.router.session.client_ip,
            )
        except TaskdeckError as error:
            return rx.toast.error(error.message)
        await forget_cached_token(await get_queue_or_none(), profile_id)
        await announce(None, profile_id, "deleted")
        return [rx.toast.success("Profile deleted"), rx.redirect("/profiles")]

    async def _apply_live_events(self, events: Sequence[Event]) -> None:
        for event in events:
            if int(event.id) != self._profile_id:
                continue  # an event for the profile this tab showed before
            # Not the form: another tab's edit must not clobber this one's.
            if event.type in ("token_state", "updated"):
                self.row = _event_row(event, self.row) or self.row
            elif event.type == "deleted":
                self.found = False
        self.row = refreshed(self.row, datetime.now(UTC))

    async def _on_live_status(self, connected: bool) -> None:
        if connected:
            await self._reload()
