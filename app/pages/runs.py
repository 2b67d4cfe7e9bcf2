"""/runs — the newest runs, live."""

from __future__ import annotations

import reflex as rx

from app.components.banners import status_banners
from app.components.layout import page_shell
from app.components.panel import panel
from app.components.runs import run_list
from state.runs import RunsState


def runs_page() -> rx.Component:
    return page_shell(
        "Runs",
        panel(
            "Newest runs",
            run_list(RunsState.runs, loading=RunsState.loading, empty_text="No runs yet."),
        ),
        banner=status_banners(live=RunsState.live, load_error=RunsState.load_error),
    )
