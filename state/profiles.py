"""Profiles: the live list (/profiles) and one profile (/profiles/[profile_id])
with its edit form, token state, test connection, clone and delete."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import reflex as rx
import structlog

from app.db import session_scope
from app.errors import TaskdeckError, ValidationFailed
from app.models.profiles import AuthKind, ProfilePublic, TokenStatus
from app.queue import get_queue_or_none
from app.services import profiles as profile_store
from app.services.connection_tests import run_connection_test
from app.services.events import Event, publish_quietly
from app.services.permissions import Permission
from app.services.token_states import forget_cached_token, profile_event, profile_topic
from state.auth import acting_principal, requires
from state.live import hub
from state.profile_form import field_errors, form_values, secret_hints, to_input

AUTH_KINDS = [kind.value for kind in AuthKind]

log = structlog.get_logger(__name__)


@dataclasses.dataclass
class ProfileRow:
    """What the list shows of a profile (no secrets, no hints)."""

    id: int
    name: str
    description: str
    base_url: str
    auth_kind: str
    tags: list[str]
    token_status: str
    expiry_note: str


def expiry_note(profile: ProfilePublic) -> str:
    state = profile.token_state
    if state.status is TokenStatus.FAILED:
        return state.error or "refresh failed"
    if state.expires_at is not None:
        return "expires " + state.expires_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    if state.status is TokenStatus.NOT_APPLICABLE:
        return ""
    return "no token yet"


def to_row(profile: ProfilePublic) -> ProfileRow:
    return ProfileRow(
        id=profile.id,
        name=profile.name,
        description=profile.description,
        base_url=profile.base_url,
        auth_kind=str(profile.auth.get("kind", "none")),
        tags=list(profile.tags),
        token_status=profile.token_state.status.value,
        expiry_note=expiry_note(profile),
    )


def _in_session(function: Any, /, **kwargs: Any) -> Any:
    with session_scope() as session:
        return function(session=session, **kwargs)


def _call(function: Any, /, **kwargs: Any) -> Any:
    return asyncio.to_thread(_in_session, function, **kwargs)


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

    @rx.var
    def all_tags(self) -> list[str]:
        return sorted({tag for row in self.profiles for tag in row.tags})

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
        data = to_input(form, self.create_kind)
        try:
            profile = await _call(
                profile_store.create_profile, data=data, actor=acting_principal(),
                ip=self.router.session.client_ip,
            )
        except ValidationFailed as error:
            self.create_errors = field_errors(error.details) or {"name": error.message}
            return None
        except TaskdeckError as error:
            self.create_errors = field_errors(error.details) or {"name": error.message}
            return None
        self.create_open = False
        self.create_errors = {}
        await announce(profile, profile.id, "created")
        return rx.redirect(f"/profiles/{profile.id}")

    async def _reload(self) -> None:
        try:
            found = await _call(
                profile_store.list_profiles, search=self.search or None, tag=self.tag or None
            )
        except TaskdeckError as error:
            self.load_error = error.message
        else:
            self.profiles = [to_row(p) for p in found]
            self.load_error = ""
        self.loading = False

    async def _apply_live_events(self, events: Sequence[Event]) -> None:
        rows = {row.id: row for row in self.profiles}
        reload = False
        for event in events:
            profile_data = event.data.get("profile")
            if event.type == "token_state" and profile_data and int(event.id) in rows:
                rows[int(event.id)] = to_row(ProfilePublic.model_validate(profile_data))
            else:  # created, updated, deleted: membership may change
                reload = True
        if reload:
            await self._reload()
        else:
            self.profiles = [rows[row.id] for row in self.profiles]

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
    test_result: dict[str, str] = {}
    _profile_id: int = 0

    @rx.event
    @requires(Permission.READ)
    async def load_profile(self) -> None:
        raw = str(self.router.page.params.get("profile_id", ""))
        token = self.router.session.client_token
        hub.unwatch(token, [profile_topic(self._profile_id)])
        self._profile_id = int(raw) if raw.isdigit() else 0
        self.test_result = {}
        self.errors = {}
        hub.watch(token, [profile_topic(self._profile_id)], ProfileState)
        await self._reload()

    async def _reload(self) -> None:
        try:
            profile = await _call(profile_store.get_profile, profile_id=self._profile_id)
        except TaskdeckError:
            self.found = False
            self.loading = False
            return
        self._show(profile)

    def _show(self, profile: ProfilePublic) -> None:
        self.found = True
        self.loading = False
        self.row = to_row(profile)
        self.values = form_values(profile)
        self.hints = secret_hints(profile)
        self.kind = str(profile.auth.get("kind", "none"))
        self.verify_tls = profile.verify_tls
        self.form_key += 1

    @rx.event
    def set_kind(self, value: str) -> None:
        self.kind = value

    @rx.event
    @requires(Permission.EDIT)
    async def save_profile(self, form: dict[str, Any]) -> Any:
        data = to_input(form, self.kind)
        try:
            profile = await _call(
                profile_store.update_profile, profile_id=self._profile_id, data=data,
                actor=acting_principal(), ip=self.router.session.client_ip,
            )
        except TaskdeckError as error:
            self.errors = field_errors(error.details) or {"name": error.message}
            return None
        self.errors = {}
        self._show(profile)
        await forget_cached_token(await get_queue_or_none(), profile.id)
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

    @rx.event
    @requires(Permission.EDIT)
    async def clone_profile(self) -> Any:
        try:
            copy = await _call(
                profile_store.clone_profile, profile_id=self._profile_id, new_name=None,
                actor=acting_principal(), ip=self.router.session.client_ip,
            )
        except TaskdeckError as error:
            return rx.toast.error(error.message)
        await announce(copy, copy.id, "created")
        return [rx.toast.success(f"Cloned as {copy.name}"), rx.redirect(f"/profiles/{copy.id}")]

    @rx.event
    @requires(Permission.EDIT)
    async def delete_profile(self) -> Any:
        profile_id = self._profile_id
        try:
            await _call(
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
            data = event.data.get("profile")
            # Not the form: another tab's edit must not clobber this one's.
            if event.type in ("token_state", "updated") and data:
                self.row = to_row(ProfilePublic.model_validate(data))
            elif event.type == "deleted":
                self.found = False

    async def _on_live_status(self, connected: bool) -> None:
        if connected:
            await self._reload()
