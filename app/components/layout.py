"""The page frame: navigation (a sidebar on wide screens, a menu on phones),
the theme switch and the banner that says when live updates are paused."""

from __future__ import annotations

import reflex as rx

from app.session_cookie import post_form_script
from state.auth import AuthState

NAV_ITEMS: list[tuple[str, str, str]] = [
    ("Dashboard", "/", "layout-dashboard"),
    ("Tasks", "/tasks", "list-checks"),
    ("Runs", "/runs", "activity"),
    ("Profiles", "/profiles", "plug"),
    ("Alerts", "/alerts", "bell"),
    ("Settings", "/settings", "settings"),
]


def _nav_link(label: str, href: str, icon: str) -> rx.Component:
    return rx.link(
        rx.hstack(rx.icon(icon, size=18), rx.text(label), align="center", spacing="2"),
        href=href,
        underline="none",
        padding="0.5rem 0.75rem",
        border_radius="var(--radius-2)",
        width="100%",
        _hover={"background": "var(--gray-a3)"},
    )


def theme_toggle() -> rx.Component:
    return rx.icon_button(
        rx.color_mode_cond(light=rx.icon("moon", size=18), dark=rx.icon("sun", size=18)),
        on_click=rx.toggle_color_mode,
        variant="ghost",
        aria_label="Toggle theme",
    )


def user_menu() -> rx.Component:
    return rx.menu.root(
        rx.menu.trigger(
            rx.icon_button(rx.icon("circle-user", size=20), variant="ghost", aria_label="Account")
        ),
        rx.menu.content(
            rx.box(
                rx.text(AuthState.user_name, weight="bold", size="2"),
                rx.text(
                    AuthState.user_email + " · " + AuthState.user_role,
                    size="1",
                    color_scheme="gray",
                ),
                padding="0.25rem 0.75rem 0.5rem",
            ),
            rx.menu.separator(),
            rx.menu.item("Account settings", on_click=rx.redirect("/settings")),
            rx.menu.item("Sign out", on_click=AuthState.sign_out),
        ),
    )


def _session_watch() -> rx.Component:
    """When this tab's session ends elsewhere, go to the sign-in page."""
    return rx.cond(
        AuthState.session_ended,
        rx.box(on_mount=rx.call_script(post_form_script("/auth/signed-out", {}))),
    )


def _brand() -> rx.Component:
    return rx.link(
        rx.hstack(
            rx.icon("gauge", size=22), rx.text("Taskdeck", size="5", weight="bold"), align="center"
        ),
        href="/",
        underline="none",
        color="inherit",
    )


def _sidebar() -> rx.Component:
    return rx.el.nav(
        rx.vstack(
            _brand(),
            rx.vstack(*(_nav_link(*item) for item in NAV_ITEMS), spacing="1", width="100%"),
            rx.spacer(),
            rx.hstack(user_menu(), theme_toggle(), spacing="3"),
            height="100%",
            padding="1rem",
            spacing="5",
        ),
        aria_label="Main",
        display=["none", "none", "block"],
        width="14rem",
        min_height="100vh",
        border_right="1px solid var(--gray-a5)",
        flex_shrink="0",
    )


def _topbar() -> rx.Component:
    return rx.hstack(
        rx.menu.root(
            rx.menu.trigger(rx.icon_button(rx.icon("menu"), variant="ghost", aria_label="Menu")),
            rx.menu.content(
                *(rx.menu.item(label, on_click=rx.redirect(href)) for label, href, _ in NAV_ITEMS)
            ),
        ),
        _brand(),
        rx.spacer(),
        user_menu(),
        theme_toggle(),
        display=["flex", "flex", "none"],
        align="center",
        padding="0.75rem 1rem",
        border_bottom="1px solid var(--gray-a5)",
        width="100%",
    )


def page_shell(title: str, *children: rx.Component, banner: rx.Component | None = None):
    """Frame `children` with navigation; `banner` sits above the title."""
    return rx.flex(
        _session_watch(),
        _sidebar(),
        rx.box(
            _topbar(),
            rx.el.main(
                rx.vstack(
                    banner if banner is not None else rx.fragment(),
                    rx.heading(title, size="7", as_="h1"),
                    *children,
                    spacing="5",
                    width="100%",
                    max_width="72rem",
                ),
                padding=["1rem", "1rem", "2rem"],
            ),
            flex="1",
            min_width="0",
        ),
        width="100%",
    )
