"""Banners that say what is degraded, so stale data is never silently shown."""

from __future__ import annotations

import reflex as rx


def status_banners(*, live: rx.Var[bool], load_error: rx.Var[str]) -> rx.Component:
    return rx.vstack(
        rx.cond(
            load_error != "",
            rx.callout(load_error, icon="database", color_scheme="red", role="alert", width="100%"),
        ),
        rx.cond(
            live,
            rx.fragment(),
            rx.callout(
                "Live updates paused: Redis is unreachable. Showing what the database has; "
                "this page catches up by itself when Redis is back.",
                icon="wifi-off",
                color_scheme="amber",
                role="status",
                width="100%",
            ),
        ),
        width="100%",
        spacing="2",
    )
