"""/login and /setup (first run only)."""

from __future__ import annotations

import reflex as rx

from app.components.forms import centered_card, field
from state.sign_in import SetupState, SignInState


def login_page() -> rx.Component:
    return centered_card(
        "Sign in",
        rx.cond(
            SignInState.expired_ticket,
            rx.callout("That sign-in link expired; sign in again.", icon="info", width="100%"),
        ),
        rx.form(
            rx.vstack(
                field("Email", "email", type="email", autocomplete="username"),
                field("Password", "password", type="password", autocomplete="current-password"),
                rx.cond(
                    SignInState.error != "",
                    rx.callout(
                        SignInState.error,
                        icon="triangle_alert",
                        color_scheme="red",
                        role="alert",
                        width="100%",
                    ),
                ),
                rx.button("Sign in", type="submit", loading=SignInState.submitting, width="100%"),
                spacing="3",
                width="100%",
            ),
            on_submit=SignInState.sign_in,
            width="100%",
        ),
    )


def setup_page() -> rx.Component:
    errors = SetupState.field_errors
    return centered_card(
        "Create the admin account",
        rx.text(
            "Nobody has an account yet. The first account is the administrator; "
            "this page goes away once it exists.",
            size="2",
            color_scheme="gray",
        ),
        rx.form(
            rx.vstack(
                field(
                    "Email",
                    "email",
                    type="email",
                    autocomplete="username",
                    error=errors.get("email", ""),
                ),
                field(
                    "Display name",
                    "display_name",
                    autocomplete="name",
                    error=errors.get("display_name", ""),
                ),
                field(
                    "Password (at least 12 characters)",
                    "password",
                    type="password",
                    autocomplete="new-password",
                    error=errors.get("password", ""),
                ),
                field(
                    "Repeat the password",
                    "confirm_password",
                    type="password",
                    autocomplete="new-password",
                    error=errors.get("confirm_password", ""),
                ),
                rx.cond(
                    SetupState.error != "",
                    rx.callout(
                        SetupState.error,
                        icon="triangle_alert",
                        color_scheme="red",
                        role="alert",
                        width="100%",
                    ),
                ),
                rx.button(
                    "Create the admin account",
                    type="submit",
                    loading=SetupState.submitting,
                    width="100%",
                ),
                spacing="3",
                width="100%",
            ),
            on_submit=SetupState.create_admin,
            width="100%",
        ),
    )
