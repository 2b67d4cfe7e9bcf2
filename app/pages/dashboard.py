"""/ — the dashboard: live run counts, Run demo and the newest runs."""

from __future__ import annotations

import reflex as rx

from app.components.banners import status_banners
from app.components.layout import page_shell
from app.components.panel import panel
from app.components.runs import run_list
from state.auth import AuthState
from state.runs import RunsState

COUNTED = ["queued", "running", "succeeded", "failed"]


def _count(status: str) -> rx.Component:
    return rx.card(
        rx.text(status, size="2", color_scheme="gray"),
        rx.heading(RunsState.counts.get(status, 0), size="6", class_name=f"count-{status}"),
        min_width="8rem",
        flex="1",
    )


def _run_demo_bar() -> rx.Component:
    return rx.hstack(
        rx.button(
            rx.icon("play", size=16),
            "Run demo",
            on_click=RunsState.run_demo,
            loading=RunsState.launching,
        ),
        rx.text(
            "Starts the built-in demo task: ten steps with live progress.",
            size="2",
            color_scheme="gray",
        ),
        align="center",
        wrap="wrap",
        margin_bottom="0.5rem",
    )


def dashboard() -> rx.Component:
    return page_shell(
        "Dashboard",
        panel("Run counts", rx.flex(*(_count(s) for s in COUNTED), spacing="3", wrap="wrap")),
        panel(
            "Recent runs",
            # Hidden for viewers as a courtesy; the server refuses them anyway.
            rx.cond(AuthState.can_run, _run_demo_bar()),
            run_list(
                RunsState.runs,
                loading=RunsState.loading,
                empty_text="No runs yet.",
            ),
        ),
        banner=status_banners(live=RunsState.live, load_error=RunsState.load_error),
    )
