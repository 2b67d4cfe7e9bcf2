"""The profile form's "remove the stored secret" checkbox: it sends the
secret as None, which clears an optional one; a required one is refused
with its field named, and a typed value wins over the checkbox."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import SecretUnreadable, ValidationFailed
from state.profile_form import FORM_ERROR, field_errors, form_errors, to_input

FORM: dict[str, Any] = {
    "name": "Billing",
    "base_url": "https://api.example.com",
    "token_url": "https://auth.example.com/token",
    "client_id": "client-1",
}


def test_the_clear_checkbox_sends_an_optional_secret_as_none() -> None:
    data = to_input(FORM | {"clear_secret_client_secret": "on"}, "oauth2_refresh_token")

    assert "client_secret" in data.auth and data.auth["client_secret"] is None
    assert "refresh_token" not in data.auth  # left empty: kept


def test_without_the_checkbox_an_empty_secret_is_left_out() -> None:
    data = to_input(FORM | {"secret_client_secret": "  "}, "oauth2_refresh_token")

    assert "client_secret" not in data.auth


def test_a_typed_secret_wins_over_the_checkbox() -> None:
    form = FORM | {"clear_secret_client_secret": "on", "secret_client_secret": "new-cs-1"}

    assert to_input(form, "oauth2_refresh_token").auth["client_secret"] == "new-cs-1"


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("oauth2_refresh_token", "refresh_token"),
        ("oauth2_client_credentials", "client_secret"),
        ("bearer", "token"),
    ],
)
def test_a_required_secret_cannot_be_cleared(kind: str, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        to_input(FORM | {f"clear_secret_{field}": "on"}, kind)

    errors = field_errors(caught.value.details)
    assert "cannot be cleared" in errors[f"secret_{field}"]


def test_an_error_naming_no_field_is_an_error_of_the_form() -> None:
    unreadable = SecretUnreadable("The credentials cannot be read", details={"profile_id": 3})
    assert form_errors(unreadable) == {FORM_ERROR: "The credentials cannot be read"}
    named = ValidationFailed("Please correct: name", details={"fields": {"name": "Too long"}})
    assert form_errors(named) == {"name": "Too long"}
