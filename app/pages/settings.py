"""/settings — my account and API tokens for everyone; users and the audit
log for admins."""

from __future__ import annotations

import reflex as rx

from app.components.forms import field
from app.components.layout import page_shell
from app.components.panel import panel
from app.services import audit
from app.services import profiles as profile_store
from app.services import runs as run_store
from state.account import PASSWORD_FORM_ID, AccountState
from state.audit import AuditRow, AuditState
from state.auth import AuthState
from state.tokens import EXPIRY_CHOICES, NEW_TOKEN_FIELD, TokenRow, TokensState
from state.users import UserRow, UsersState

ROLES = ["admin", "operator", "viewer"]
AUDIT_ACTIONS = ["all", *audit.ACTIONS, *profile_store.AUDIT_ACTIONS, *run_store.AUDIT_ACTIONS]


def _account() -> rx.Component:
    errors = AccountState.field_errors
    return rx.vstack(
        panel(
            "Change password",
            rx.form(
                rx.vstack(
                    field(
                        "Current password",
                        "current_password",
                        type="password",
                        autocomplete="current-password",
                        error=errors.get("current_password", ""),
                    ),
                    field(
                        "New password (at least 12 characters)",
                        "new_password",
                        type="password",
                        autocomplete="new-password",
                        error=errors.get("new_password", ""),
                    ),
                    field(
                        "Repeat the new password",
                        "confirm_password",
                        type="password",
                        autocomplete="new-password",
                        error=errors.get("confirm_password", ""),
                    ),
                    rx.button("Change password", type="submit"),
                    spacing="3",
                    max_width="24rem",
                ),
                id=PASSWORD_FORM_ID,
                on_submit=AccountState.change_password,
            ),
        ),
        panel(
            "Sessions",
            rx.hstack(
                rx.button("Sign out", variant="soft", on_click=AuthState.sign_out),
                rx.alert_dialog.root(
                    rx.alert_dialog.trigger(
                        rx.button("Sign out everywhere", color_scheme="red", variant="soft")
                    ),
                    rx.alert_dialog.content(
                        rx.alert_dialog.title("Sign out everywhere?"),
                        rx.alert_dialog.description(
                            "Every browser and phone signed in as you, this one included, "
                            "is signed out at once."
                        ),
                        rx.hstack(
                            rx.alert_dialog.cancel(rx.button("Cancel", variant="soft")),
                            rx.alert_dialog.action(
                                rx.button(
                                    "Sign out everywhere",
                                    color_scheme="red",
                                    on_click=AuthState.sign_out_everywhere,
                                )
                            ),
                            justify="end",
                            margin_top="1rem",
                        ),
                    ),
                ),
                wrap="wrap",
            ),
        ),
        width="100%",
        spacing="4",
    )


def _token_row(row: TokenRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(row.name),
        rx.table.cell(rx.code(row.prefix)),
        rx.table.cell(row.owner_email),
        rx.table.cell(row.last_used),
        rx.table.cell(row.expires),
        rx.table.cell(
            rx.cond(
                row.revoked,
                rx.badge("revoked", color_scheme="gray"),
                rx.button(
                    "Revoke",
                    size="1",
                    color_scheme="red",
                    variant="soft",
                    on_click=TokensState.revoke_token(row.id),
                    aria_label="Revoke token " + row.name,
                ),
            )
        ),
    )


def _new_token_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.trigger(rx.button(rx.icon("plus", size=16), "New token")),
        rx.dialog.content(
            rx.dialog.title("New API token"),
            rx.cond(
                TokensState.just_created,
                rx.vstack(
                    rx.callout(
                        "Copy the token now: it is shown only this once.",
                        icon="key-round",
                        color_scheme="amber",
                        width="100%",
                    ),
                    rx.el.label(
                        "New token", html_for=NEW_TOKEN_FIELD, class_name="rt-Text rt-r-size-2"
                    ),
                    rx.input(
                        id=NEW_TOKEN_FIELD, read_only=True, width="100%", font_family="monospace"
                    ),
                    rx.dialog.close(rx.button("Done", on_click=TokensState.set_create_open(False))),
                    spacing="3",
                    width="100%",
                ),
                rx.form(
                    rx.vstack(
                        field(
                            "Name",
                            "name",
                            error=TokensState.name_error,
                            placeholder="e.g. deploy script",
                        ),
                        rx.el.label(
                            "Expires",
                            html_for="field-expiry",
                            class_name="rt-Text rt-r-size-2 rt-r-weight-medium",
                        ),
                        rx.select(
                            list(EXPIRY_CHOICES),
                            name="expiry",
                            default_value="90 days",
                            id="field-expiry",
                        ),
                        rx.hstack(
                            rx.dialog.close(rx.button("Cancel", variant="soft", type="button")),
                            rx.button("Create token", type="submit"),
                            justify="end",
                        ),
                        spacing="3",
                        width="100%",
                    ),
                    on_submit=TokensState.create_token,
                ),
            ),
        ),
        open=TokensState.create_open,
        on_open_change=TokensState.set_create_open,
    )


def _tokens() -> rx.Component:
    return panel(
        "API tokens",
        rx.text(
            "Scripts call the REST API with Authorization: Bearer <token>; a token acts "
            "with its owner's role.",
            size="2",
            color_scheme="gray",
        ),
        rx.box(_new_token_dialog(), margin_y="0.75rem"),
        rx.cond(
            TokensState.rows.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *(
                            rx.table.column_header_cell(h)
                            for h in ("Name", "Token", "Owner", "Last used", "Expires", "")
                        )
                    )
                ),
                rx.table.body(rx.foreach(TokensState.rows, _token_row)),
                width="100%",
            ),
            rx.text("No API tokens yet.", color_scheme="gray"),
        ),
        overflow_x="auto",
    )


def _user_row(row: UserRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(row.email),
        rx.table.cell(row.display_name),
        rx.table.cell(
            # The trigger is the element a screen reader lands on: it gets the name.
            rx.select.root(
                rx.select.trigger(aria_label="Role of " + row.email),
                rx.select.content(*(rx.select.item(role, value=role) for role in ROLES)),
                value=row.role,
                size="1",
                on_change=lambda role: UsersState.change_role(row.id, role),
            )
        ),
        rx.table.cell(rx.cond(row.is_active, "active", "deactivated")),
        rx.table.cell(row.last_login),
        rx.table.cell(
            rx.cond(
                row.is_active,
                rx.button(
                    "Deactivate",
                    size="1",
                    color_scheme="red",
                    variant="soft",
                    on_click=UsersState.set_active(row.id, False),
                    aria_label="Deactivate " + row.email,
                ),
                rx.button(
                    "Reactivate",
                    size="1",
                    variant="soft",
                    on_click=UsersState.set_active(row.id, True),
                    aria_label="Reactivate " + row.email,
                ),
            )
        ),
    )


def _new_user_dialog() -> rx.Component:
    errors = UsersState.field_errors
    return rx.dialog.root(
        rx.dialog.trigger(rx.button(rx.icon("user-plus", size=16), "New user")),
        rx.dialog.content(
            rx.dialog.title("New user"),
            rx.dialog.description(
                "Give them the password through a safe channel; they can "
                "change it under My account.",
                size="2",
            ),
            rx.form(
                rx.vstack(
                    field("Email", "email", type="email", error=errors.get("email", "")),
                    field("Display name", "display_name", error=errors.get("display_name", "")),
                    field(
                        "First password (at least 12 characters)",
                        "password",
                        type="password",
                        autocomplete="new-password",
                        error=errors.get("password", ""),
                    ),
                    rx.el.label(
                        "Role",
                        html_for="field-role",
                        class_name="rt-Text rt-r-size-2 rt-r-weight-medium",
                    ),
                    rx.select(ROLES, name="role", default_value="viewer", id="field-role"),
                    rx.cond(
                        errors.get("role", "") != "",
                        rx.text(errors.get("role", ""), color_scheme="red", size="1"),
                    ),
                    rx.hstack(
                        rx.dialog.close(rx.button("Cancel", variant="soft", type="button")),
                        rx.button("Create user", type="submit"),
                        justify="end",
                    ),
                    spacing="3",
                    width="100%",
                ),
                on_submit=UsersState.create_user,
            ),
        ),
        open=UsersState.create_open,
        on_open_change=UsersState.set_create_open,
    )


def _users() -> rx.Component:
    return panel(
        "Users",
        rx.box(_new_user_dialog(), margin_bottom="0.75rem"),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *(
                        rx.table.column_header_cell(h)
                        for h in ("Email", "Name", "Role", "Status", "Last sign-in", "")
                    )
                )
            ),
            rx.table.body(rx.foreach(UsersState.users, _user_row)),
            width="100%",
        ),
        overflow_x="auto",
    )


def _audit_row(row: AuditRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(row.at, white_space="nowrap"),
        rx.table.cell(row.actor),
        rx.table.cell(rx.code(row.action)),
        rx.table.cell(row.target),
        rx.table.cell(rx.text(row.details, size="1")),
        rx.table.cell(row.ip),
    )


def _labelled_select(label: str, name: str, items: list[str]) -> rx.Component:
    field_id = f"audit-{name}"
    return rx.vstack(
        rx.el.label(label, html_for=field_id, class_name="rt-Text rt-r-size-2 rt-r-weight-medium"),
        rx.select(items, default_value="all", name=name, id=field_id),
        spacing="1",
    )


def _audit_filters() -> rx.Component:
    errors = AuditState.filter_errors
    return rx.form(
        rx.flex(
            _labelled_select("Action", "action", AUDIT_ACTIONS),
            rx.box(field("Who (email)", "actor_email", required=False, type="email"),
                   min_width="14rem"),
            _labelled_select("Object", "object_type", ["all", *audit.OBJECT_TYPES]),
            rx.box(field("From day (UTC)", "from_day", type="date", required=False,
                         error=errors.get("from_day", "")), min_width="10rem"),
            rx.box(field("To day (UTC)", "to_day", type="date", required=False,
                         error=errors.get("to_day", "")), min_width="10rem"),
            rx.button("Filter", type="submit", variant="soft", loading=AuditState.loading),
            gap="0.75rem",
            wrap="wrap",
            align="end",
        ),
        on_submit=AuditState.apply_filters,
        margin_bottom="0.75rem",
        aria_label="Audit log filters",
    )


def _audit() -> rx.Component:
    return panel(
        "Audit log",
        _audit_filters(),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *(
                        rx.table.column_header_cell(h)
                        for h in ("When", "Who", "Action", "Object", "Details", "Address")
                    )
                )
            ),
            rx.table.body(rx.foreach(AuditState.events, _audit_row)),
            width="100%",
        ),
        rx.cond(
            (AuditState.events.length() == 0) & ~AuditState.loading,
            rx.text("No entries match these filters.", color_scheme="gray", size="2",
                    margin_top="0.75rem"),
        ),
        rx.cond(
            AuditState.has_more,
            rx.button(
                "Older entries",
                variant="soft",
                on_click=AuditState.load_older,
                margin_top="0.75rem",
            ),
        ),
        overflow_x="auto",
    )


def settings_page() -> rx.Component:
    return page_shell(
        "Settings",
        rx.tabs.root(
            rx.tabs.list(
                rx.tabs.trigger("My account", value="account"),
                rx.tabs.trigger("API tokens", value="tokens"),
                rx.cond(AuthState.is_admin, rx.tabs.trigger("Users", value="users")),
                rx.cond(AuthState.is_admin, rx.tabs.trigger("Audit log", value="audit")),
            ),
            rx.tabs.content(_account(), value="account", padding_top="1rem"),
            rx.tabs.content(_tokens(), value="tokens", padding_top="1rem"),
            rx.tabs.content(
                rx.cond(AuthState.is_admin, _users()), value="users", padding_top="1rem"
            ),
            rx.tabs.content(
                rx.cond(AuthState.is_admin, _audit()), value="audit", padding_top="1rem"
            ),
            default_value="account",
            width="100%",
        ),
    )
