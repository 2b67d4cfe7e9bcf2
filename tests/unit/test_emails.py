"""Email normalization: what is accepted (and how it is stored) and what is not."""

from __future__ import annotations

import pytest

from app.errors import ValidationFailed
from app.models.users import Role
from app.services.users import check_display_name, normalize_email, parse_role


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("ada@example.com", "ada@example.com"),
        ("  Ada.Lovelace@Example.COM \n", "ada.lovelace@example.com"),
        ("first+tag@sub.example.co.uk", "first+tag@sub.example.co.uk"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("user_name-1@my-host.example", "user_name-1@my-host.example"),
        ("x@a.io", "x@a.io"),
        ("jörg@bücher.de", "jörg@bücher.de"),
        ("a@xn--bcher-kva.example", "a@xn--bcher-kva.example"),
        ("a" * 64 + "@example.com", "a" * 64 + "@example.com"),
        ("a@" + ("b" * 61 + ".") * 4 + "cccc", "a@" + ("b" * 61 + ".") * 4 + "cccc"),  # 254
    ],
)
def test_valid_emails_are_stripped_and_lowercased(given: str, stored: str) -> None:
    assert normalize_email(given) == stored


@pytest.mark.parametrize(
    "given",
    [
        "",
        "   ",
        "ada",
        "ada@",
        "@example.com",
        "ada@@example.com",
        "ada@bob@example.com",
        "ada@localhost",
        "ada@example",
        "ada@exa mple.com",
        "ada @example.com",
        "ada@example.com.",
        "ada@.example.com",
        "ada@example..com",
        "ada@-example.com",
        "ada@example-.com",
        "ada@exa_mple.com",
        "ada@exa!mple.com",
        "ada@exa/mple.com",
        "ada@[127.0.0.1]",
        '"ada"@example.com',
        "ada,b@example.com",
        ".ada@example.com",
        "ada.@example.com",
        "a..da@example.com",
        "ada\t@example.com",
        "a" * 65 + "@example.com",
        "a@" + "b" * 64 + ".com",
        "a@" + ("b" * 61 + ".") * 4 + "ccccc",  # 255 characters
    ],
)
def test_invalid_emails_are_refused_on_the_email_field(given: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        normalize_email(given)

    assert set(raised.value.details["fields"]) == {"email"}


def test_display_name_is_stripped_and_bounded() -> None:
    assert check_display_name("  Ada Lovelace ") == "Ada Lovelace"
    assert check_display_name("x" * 100) == "x" * 100
    for bad in ("", "   ", "x" * 101, "Ada\x00"):
        with pytest.raises(ValidationFailed) as raised:
            check_display_name(bad)
        assert set(raised.value.details["fields"]) == {"display_name"}


def test_roles_parse_case_insensitively_and_unknown_ones_list_the_choices() -> None:
    assert parse_role("Admin") is Role.ADMIN
    assert parse_role(Role.VIEWER) is Role.VIEWER
    with pytest.raises(ValidationFailed) as raised:
        parse_role("superuser")
    problem = raised.value.details["fields"]["role"]
    assert all(role.value in problem for role in Role)
