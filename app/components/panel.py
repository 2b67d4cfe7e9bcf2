"""A titled card in its own error boundary: if its content fails to render,
the card says so and offers a retry while the rest of the page lives on."""

from __future__ import annotations

import reflex as rx
from reflex.components.base.error_boundary import error_boundary
from reflex.vars.base import Var


def _fallback(title: str) -> rx.Component:
    return rx.callout(
        rx.hstack(
            rx.text(f"{title} could not be shown."),
            rx.el.button(
                "Retry",
                # react-error-boundary passes resetErrorBoundary to the fallback.
                custom_attrs={"onClick": Var(_js_expr="event_args.resetErrorBoundary")},
                class_name="rt-reset rt-BaseButton rt-Button rt-r-size-1 rt-variant-soft",
                aria_label=f"Retry {title}",
            ),
            align="center",
            spacing="3",
        ),
        icon="triangle_alert",
        color_scheme="red",
        role="alert",
    )


def panel(title: str, *children: rx.Component, **props: object) -> rx.Component:
    return rx.card(
        rx.heading(title, size="3", as_="h2", margin_bottom="0.75rem"),
        error_boundary(rx.box(*children), fallback_render=_fallback(title)),
        width="100%",
        **props,
    )
