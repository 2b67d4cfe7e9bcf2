"""Labelled form fields with their inline error, and a centered form card."""

from __future__ import annotations

import reflex as rx


def field(
    label: str,
    name: str,
    *,
    error: rx.Var | str = "",
    type: str = "text",
    autocomplete: str = "off",
    required: bool = True,
    **props: object,
) -> rx.Component:
    field_id = f"field-{name}"
    error_var = rx.Var.create(error)
    return rx.vstack(
        rx.el.label(label, html_for=field_id, class_name="rt-Text rt-r-size-2 rt-r-weight-medium"),
        rx.input(
            id=field_id,
            name=name,
            type=type,
            auto_complete=autocomplete,
            required=required,
            width="100%",
            **props,
        ),
        rx.cond(
            error_var != "",
            rx.text(error_var, color_scheme="red", size="1", role="alert"),
        ),
        spacing="1",
        width="100%",
    )


def centered_card(title: str, *children: rx.Component) -> rx.Component:
    return rx.center(
        rx.card(
            rx.vstack(
                rx.hstack(
                    rx.icon("gauge", size=24),
                    rx.text("Taskdeck", size="5", weight="bold"),
                    align="center",
                ),
                rx.heading(title, size="6", as_="h1"),
                *children,
                spacing="4",
                width="100%",
            ),
            width="100%",
            max_width="24rem",
            padding="1.5rem",
        ),
        min_height="100vh",
        padding="1rem",
    )
