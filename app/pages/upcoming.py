"""Sections whose issues are still open: the route exists so navigation and
bookmarks work, and the page says plainly what is not there yet."""

from __future__ import annotations

from collections.abc import Callable

import reflex as rx

from app.components.layout import page_shell

UPCOMING: dict[str, tuple[str, str]] = {
    "/tasks": ("Tasks", "Defining tasks and schedules is not available in this version yet."),
    "/alerts": ("Alerts", "Alerts are not available in this version yet."),
}


def upcoming_page(title: str, text: str) -> Callable[[], rx.Component]:
    def page() -> rx.Component:
        return page_shell(
            title,
            rx.callout(text, icon="info", width="100%"),
            rx.link("Back to the dashboard", href="/"),
        )

    page.__name__ = f"{title.lower()}_page"
    return page
