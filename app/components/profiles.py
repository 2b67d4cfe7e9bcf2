"""Profile pieces: token-state badge and the auth-kind-specific form fields."""

from __future__ import annotations

import reflex as rx

from app.components.forms import field

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


def secret_field(label: str, name: str, hint: rx.Var | str, error: rx.Var | str) -> rx.Component:
    """A secret input: never filled from state; shows the stored hint and
    keeps the stored secret when left empty."""
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

    def secret(label: str, name: str) -> rx.Component:
        return secret_field(label, name, hints.get(name, ""), errors.get(f"secret_{name}", ""))

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
                secret("Client secret (if the client has one)", "client_secret"),
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
