"""Run pieces: status badge, progress bar and the recent-runs list."""

from __future__ import annotations

import reflex as rx

STATUS_COLORS = {
    "queued": "gray",
    "running": "blue",
    "retrying": "amber",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "gray",
    "timed_out": "orange",
}


def status_badge(status: rx.Var[str]) -> rx.Component:
    return rx.badge(
        status,
        color_scheme=rx.match(status, *STATUS_COLORS.items(), "gray"),
        variant="soft",
        class_name="run-status",
    )


def run_row(row: rx.Var) -> rx.Component:  # row: Var[RunRow]
    return rx.box(
        rx.hstack(
            rx.text("#", row.id, weight="bold"),
            rx.text(row.kind),
            status_badge(row.status),
            rx.spacer(),
            rx.text(row.created_at, size="1", color_scheme="gray"),
            align="center",
            wrap="wrap",
            width="100%",
        ),
        rx.hstack(
            rx.progress(
                value=row.percent.to(int),
                max=100,
                aria_label="Run #" + row.id.to_string() + " progress",
                flex="1",
            ),
            rx.text(row.percent.to(int).to_string() + " %", size="1", class_name="run-percent"),
            align="center",
            width="100%",
            margin_top="0.4rem",
        ),
        rx.cond(
            row.error != "",
            rx.text(row.error, color_scheme="red", size="2"),
            rx.text(row.message, size="2", color_scheme="gray"),
        ),
        id="run-" + row.id.to_string(),
        class_name="run-row",
        padding="0.75rem 0",
        border_bottom="1px solid var(--gray-a4)",
        width="100%",
    )


def run_list(rows: rx.Var, *, loading: rx.Var[bool], empty_text: str) -> rx.Component:
    return rx.cond(
        loading,
        rx.vstack(rx.skeleton(height="3rem"), rx.skeleton(height="3rem"), width="100%"),
        rx.cond(
            rows.length() > 0,  # type: ignore[attr-defined]
            rx.vstack(rx.foreach(rows, run_row), spacing="0", width="100%"),
            rx.text(empty_text, color_scheme="gray"),
        ),
    )
