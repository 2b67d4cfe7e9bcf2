"""Profile pieces: token-state badge, the auth-kind-specific form fields,
a page timer and the loading skeleton of one profile."""

from __future__ import annotations

import json

import reflex as rx
from reflex.utils.format import format_queue_events

from app.components.forms import field
from state.profile_form import FORM_ERROR

TOKEN_COLORS = {
    "valid": "green",
    "expiring": "amber",
    "refreshing": "blue",
    "failed": "red",
    "not_applicable": "gray",
}
TOKEN_WORDS = {
    "valid": "token valid",
    "expiring": "token expiring",
    "refreshing": "refreshing token",
    "failed": "token failed",
    "not_applicable": "no token needed",
}


def token_badge(status: rx.Var[str]) -> rx.Component:
    return rx.badge(
        rx.match(status, *TOKEN_WORDS.items(), status),
        color_scheme=rx.match(status, *TOKEN_COLORS.items(), "gray"),
        variant="soft",
        class_name="token-status",
    )


def every(seconds: int, event: rx.EventHandler, timer: str) -> rx.Component:
    """A hidden element that sends `event` every `seconds` while it is on the
    page (a browser timer, started on mount and stopped on unmount; one per
    `timer` name, so a remount never doubles it)."""
    key = json.dumps(timer)
    tick = format_queue_events(event)
    start = rx.Var(
        f"(() => {{ const timers = (window.__taskdeckTimers ??= {{}}); "
        f"clearInterval(timers[{key}]); timers[{key}] = setInterval({tick}, {seconds * 1000}); }})",
        _var_data=tick._get_all_var_data(),
    )
    stop = rx.Var(f"(() => clearInterval(window.__taskdeckTimers?.[{key}]))")
    return rx.el.div(
        on_mount=rx.call_function(start),
        on_unmount=rx.call_function(stop),
        hidden=True,
        aria_hidden="true",
    )


def form_error(errors: rx.Var) -> rx.Component:
    """An error about the whole form (it names no field), above its button."""
    message = errors.get(FORM_ERROR, "")
    return rx.cond(
        message != "",
        rx.callout(message, icon="triangle_alert", color_scheme="red", role="alert", width="100%"),
    )


def profile_skeleton() -> rx.Component:
    """What the profile page shows until the profile is loaded."""
    return rx.vstack(
        rx.hstack(
            rx.skeleton(rx.heading("Loading profile", size="5", as_="h2")),
            rx.skeleton(rx.badge("token state")),
            align="center",
        ),
        rx.skeleton(height="4rem", width="100%"),
        rx.skeleton(height="16rem", width="100%"),
        width="100%",
        spacing="4",
        aria_busy="true",
        class_name="profile-loading",
    )


def secret_field(
    label: str,
    name: str,
    hint: rx.Var | str,
    error: rx.Var | str,
    *,
    clearable: bool = False,
) -> rx.Component:
    """A secret input: never filled from state; shows the stored hint and
    keeps the stored secret when left empty. A `clearable` (optional) secret
    that is stored gets a checkbox that removes it on save."""
    hint_var = rx.Var.create(hint)
    return rx.vstack(
        field(
            label,
            f"secret_{name}",
            type="password",
            autocomplete="new-password",
            required=False,
            error=error,
            placeholder=rx.cond(hint_var != "", "stored " + hint_var + " (type to replace)", ""),
        ),
        rx.cond(
            hint_var != "",
            rx.el.label(
                rx.hstack(
                    rx.checkbox(name=f"clear_secret_{name}", default_checked=False),
                    rx.text(f"Remove the stored {label.split(' (')[0].lower()}", size="2"),
                    align="center",
                ),
            ),
        )
        if clearable
        else rx.fragment(),
        width="100%",
        spacing="1",
    )


def auth_fields(kind: rx.Var[str], values: rx.Var, hints: rx.Var, errors: rx.Var) -> rx.Component:
    """The fields of the chosen auth kind (`values`, `hints`, `errors` are dict vars)."""

    def plain(label: str, name: str, placeholder: str = "", required: bool = True) -> rx.Component:
        return field(
            label,
            name,
            error=errors.get(name, ""),
            required=required,
            default_value=values.get(name, ""),
            placeholder=placeholder,
        )

    def secret(label: str, name: str, clearable: bool = False) -> rx.Component:
        return secret_field(
            label, name, hints.get(name, ""), errors.get(f"secret_{name}", ""),
            clearable=clearable,
        )

    def client_auth() -> rx.Component:
        return rx.vstack(
            rx.el.label(
                "Send client credentials",
                html_for="field-client_auth",
                class_name="rt-Text rt-r-size-2 rt-r-weight-medium",
            ),
            rx.select(
                ["header", "body"],
                name="client_auth",
                id="field-client_auth",
                default_value=rx.cond(
                    values.get("client_auth", "") != "", values.get("client_auth", ""), "header"
                ),
            ),
            spacing="1",
        )

    return rx.match(
        kind,
        ("bearer", secret("Token", "token")),
        (
            "basic",
            rx.vstack(plain("Username", "username"), secret("Password", "password"), width="100%"),
        ),
        (
            "api_key",
            rx.vstack(
                plain(
                    "Header name (or leave empty and give a query parameter)",
                    "header",
                    "X-API-Key",
                    required=False,
                ),
                plain("Query parameter name", "param", "api_key", required=False),
                secret("API key", "value"),
                width="100%",
            ),
        ),
        (
            "oauth2_client_credentials",
            rx.vstack(
                plain("Token URL", "token_url", "https://auth.example.com/oauth/token"),
                plain("Client ID", "client_id"),
                secret("Client secret", "client_secret"),
                plain("Scopes (space-separated)", "scopes", required=False),
                plain("Audience", "audience", required=False),
                client_auth(),
                width="100%",
            ),
        ),
        (
            "oauth2_refresh_token",
            rx.vstack(
                plain("Token URL", "token_url", "https://auth.example.com/oauth/token"),
                plain("Client ID", "client_id"),
                secret("Client secret (if the client has one)", "client_secret", clearable=True),
                secret("Refresh token", "refresh_token"),
                plain("Scopes (space-separated)", "scopes", required=False),
                client_auth(),
                width="100%",
            ),
        ),
        rx.text("No authentication: requests go out as they are.", size="2", color_scheme="gray"),
    )


def profile_fields(values: rx.Var, errors: rx.Var, verify_tls: rx.Var[bool] | bool) -> rx.Component:
    """The connection fields shared by create and edit."""
    return rx.vstack(
        field("Name", "name", error=errors.get("name", ""), default_value=values.get("name", "")),
        field(
            "Base URL",
            "base_url",
            error=errors.get("base_url", ""),
            type="url",
            default_value=values.get("base_url", ""),
            placeholder="https://api.example.com/v1",
        ),
        field(
            "Description",
            "description",
            error=errors.get("description", ""),
            required=False,
            default_value=values.get("description", ""),
        ),
        rx.vstack(
            rx.el.label(
                "Default headers (one `Name: value` a line)",
                html_for="field-headers",
                class_name="rt-Text rt-r-size-2 rt-r-weight-medium",
            ),
            rx.text_area(
                name="headers",
                id="field-headers",
                default_value=values.get("headers", ""),
                placeholder="Accept: application/json",
                width="100%",
                rows="3",
            ),
            rx.cond(
                errors.get("headers", "") != "",
                rx.text(errors.get("headers", ""), color_scheme="red", size="1", role="alert"),
            ),
            spacing="1",
            width="100%",
        ),
        rx.hstack(
            field(
                "Timeout (seconds)",
                "timeout_s",
                error=errors.get("timeout_s", ""),
                default_value=values.get("timeout_s", "30"),
                input_mode="decimal",
            ),
            field(
                "Tags (comma-separated)",
                "tags",
                error=errors.get("tags", ""),
                required=False,
                default_value=values.get("tags", ""),
            ),
            width="100%",
            wrap="wrap",
        ),
        rx.el.label(
            rx.hstack(
                rx.checkbox(name="verify_tls", default_checked=verify_tls),
                rx.text("Verify TLS certificates", size="2"),
                align="center",
            ),
        ),
        spacing="3",
        width="100%",
    )
