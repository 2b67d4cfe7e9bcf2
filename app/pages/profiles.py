"""/profiles (list, search, tags, create) and /profiles/[profile_id] (edit,
token state, test connection, clone, delete)."""

from __future__ import annotations

import reflex as rx

from app.components.banners import status_banners
from app.components.layout import page_shell
from app.components.panel import panel
from app.components.profiles import (
    auth_fields,
    every,
    form_error,
    profile_fields,
    profile_skeleton,
    token_badge,
)
from state.auth import AuthState
from state.profiles import (
    AUTH_KINDS,
    EXPIRY_REFRESH_S,
    ProfileRow,
    ProfilesState,
    ProfileState,
)


def _kind_select(value: rx.Var[str], on_change: object) -> rx.Component:
    return rx.vstack(
        rx.el.label(
            "Authentication",
            html_for="field-auth-kind",
            class_name="rt-Text rt-r-size-2 rt-r-weight-medium",
        ),
        rx.select(AUTH_KINDS, value=value, on_change=on_change, id="field-auth-kind"),
        spacing="1",
    )


def _profile_card(row: ProfileRow) -> rx.Component:
    return rx.link(
        rx.card(
            rx.hstack(
                rx.text(row.name, weight="bold"),
                rx.badge(row.auth_kind, variant="outline"),
                token_badge(row.token_status),
                rx.spacer(),
                rx.foreach(row.tags, lambda tag: rx.badge(tag, color_scheme="gray")),
                wrap="wrap",
                align="center",
                width="100%",
            ),
            rx.text(row.base_url, size="2", color_scheme="gray", word_break="break-all"),
            rx.cond(
                row.expiry_note != "", rx.text(row.expiry_note, size="1", class_name="token-detail")
            ),
            width="100%",
        ),
        href="/profiles/" + row.id.to_string(),
        underline="none",
        color="inherit",
        width="100%",
        id="profile-" + row.id.to_string(),
        class_name="profile-card",
    )


def _create_dialog() -> rx.Component:
    errors = ProfilesState.create_errors
    return rx.dialog.root(
        rx.dialog.trigger(rx.button(rx.icon("plus", size=16), "New profile")),
        rx.dialog.content(
            rx.dialog.title("New profile"),
            rx.form(
                rx.vstack(
                    profile_fields({}, errors, True),  # type: ignore[arg-type]
                    _kind_select(ProfilesState.create_kind, ProfilesState.set_create_kind),
                    auth_fields(ProfilesState.create_kind, {}, {}, errors),  # type: ignore[arg-type]
                    form_error(errors),
                    rx.hstack(
                        rx.dialog.close(rx.button("Cancel", variant="soft", type="button")),
                        rx.button("Create profile", type="submit"),
                        justify="end",
                        width="100%",
                    ),
                    spacing="3",
                    width="100%",
                ),
                on_submit=ProfilesState.create_profile,
            ),
            max_width="36rem",
        ),
        open=ProfilesState.create_open,
        on_open_change=ProfilesState.set_create_open,
    )


def profiles_page() -> rx.Component:
    return page_shell(
        "Profiles",
        rx.hstack(
            rx.input(
                placeholder="Search name, description or URL",
                # Uncontrolled: live updates re-render the page while the user types.
                default_value=ProfilesState.search,
                on_change=ProfilesState.set_search.debounce(300),
                aria_label="Search profiles",
                flex="1",
                min_width="12rem",
            ),
            rx.select.root(
                rx.select.trigger(aria_label="Filter by tag"),
                rx.select.content(
                    rx.select.item("all tags", value="all tags"),
                    rx.foreach(ProfilesState.all_tags, lambda t: rx.select.item(t, value=t)),
                ),
                value=rx.cond(ProfilesState.tag != "", ProfilesState.tag, "all tags"),
                on_change=ProfilesState.set_tag,
            ),
            rx.cond(AuthState.can_run, _create_dialog()),
            width="100%",
            wrap="wrap",
        ),
        panel(
            "API connections",
            rx.cond(
                ProfilesState.loading,
                rx.skeleton(height="4rem"),
                rx.cond(
                    ProfilesState.profiles.length() > 0,
                    rx.vstack(rx.foreach(ProfilesState.profiles, _profile_card), width="100%"),
                    rx.text(
                        rx.cond(
                            ProfilesState.search != "",
                            "No profile matches the search.",
                            "No profiles yet. A profile is how Taskdeck talks to one API: "
                            "its base URL and credentials.",
                        ),
                        color_scheme="gray",
                    ),
                ),
            ),
        ),
        every(EXPIRY_REFRESH_S, ProfilesState.refresh_expiry_notes, "profiles"),
        banner=status_banners(live=ProfilesState.live, load_error=ProfilesState.load_error),
    )


def _test_panel() -> rx.Component:
    result = ProfileState.test_result
    return panel(
        "Test connection",
        rx.form(
            rx.hstack(
                rx.input(
                    name="path",
                    placeholder="path under the base URL (optional)",
                    aria_label="Path to call",
                    flex="1",
                ),
                rx.button("Test connection", type="submit", loading=ProfileState.testing),
                width="100%",
            ),
            on_submit=ProfileState.test_connection,
        ),
        rx.cond(
            result.get("ok", "") != "",
            rx.vstack(
                rx.hstack(
                    rx.badge(
                        rx.cond(result["ok"] == "yes", "reachable", "failed"),
                        color_scheme=rx.cond(result["ok"] == "yes", "green", "red"),
                    ),
                    rx.text("status " + result["status_code"], size="2"),
                    rx.text(result["latency_ms"], size="2"),
                    class_name="test-result",
                ),
                rx.cond(
                    result["error"] != "", rx.text(result["error"], color_scheme="red", size="2")
                ),
                rx.cond(
                    result["excerpt"] != "",
                    rx.code_block(result["excerpt"], width="100%", wrap_long_lines=True),
                ),
                margin_top="0.75rem",
                width="100%",
            ),
        ),
    )


def _danger_zone() -> rx.Component:
    return rx.hstack(
        rx.button(
            "Clone",
            variant="soft",
            on_click=ProfileState.clone_profile,
            loading=ProfileState.cloning,
            disabled=ProfileState.cloning,
        ),
        rx.alert_dialog.root(
            rx.alert_dialog.trigger(rx.button("Delete", color_scheme="red", variant="soft")),
            rx.alert_dialog.content(
                rx.alert_dialog.title("Delete " + ProfileState.row.name + "?"),
                rx.alert_dialog.description(
                    "The profile and its stored credentials are deleted. This cannot be undone."
                ),
                rx.hstack(
                    rx.alert_dialog.cancel(rx.button("Cancel", variant="soft")),
                    rx.alert_dialog.action(
                        rx.button(
                            "Delete profile",
                            color_scheme="red",
                            on_click=ProfileState.delete_profile,
                        )
                    ),
                    justify="end",
                    margin_top="1rem",
                ),
            ),
        ),
    )


def _edit_form() -> rx.Component:
    return panel(
        "Settings",
        rx.form(
            rx.vstack(
                profile_fields(ProfileState.values, ProfileState.errors, ProfileState.verify_tls),
                _kind_select(ProfileState.kind, ProfileState.set_kind),
                auth_fields(
                    ProfileState.kind, ProfileState.values, ProfileState.hints, ProfileState.errors
                ),
                form_error(ProfileState.errors),
                rx.cond(
                    AuthState.can_run,
                    rx.button(
                        "Save",
                        type="submit",
                        loading=ProfileState.saving,
                        disabled=ProfileState.saving,
                    ),
                ),
                spacing="3",
                width="100%",
                max_width="36rem",
            ),
            on_submit=ProfileState.save_profile,
            key=ProfileState.form_key.to_string(),
        ),
    )


def profile_page() -> rx.Component:
    return page_shell(
        "Profile",
        rx.cond(
            ProfileState.loading,
            profile_skeleton(),
            rx.cond(
                ProfileState.found,
                rx.vstack(
                    rx.hstack(
                        rx.heading(ProfileState.row.name, size="5", as_="h2"),
                        token_badge(ProfileState.row.token_status),
                        rx.text(ProfileState.row.expiry_note, size="2", class_name="token-detail"),
                        rx.spacer(),
                        rx.cond(AuthState.can_run, _danger_zone()),
                        wrap="wrap",
                        align="center",
                        width="100%",
                    ),
                    rx.cond(AuthState.can_run, _test_panel()),
                    _edit_form(),
                    width="100%",
                    spacing="4",
                ),
                rx.callout("No such profile.", icon="info", width="100%"),
            ),
        ),
        rx.link("All profiles", href="/profiles"),
        every(EXPIRY_REFRESH_S, ProfileState.refresh_expiry_notes, "profile"),
    )
