"""Password hashing (argon2id) and the length rules."""

from __future__ import annotations

import pytest

from app.errors import ValidationFailed
from app.services.passwords import (
    MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS,
    check_password_rules,
    hash_password,
    needs_rehash,
    verify_password,
)


def test_hash_round_trip() -> None:
    password = "correct horse battery"
    password_hash = hash_password(password)

    assert password_hash.startswith("$argon2id$")
    assert password not in password_hash
    assert verify_password(password_hash, password) is True
    assert needs_rehash(password_hash) is False


def test_same_password_hashes_differently() -> None:
    assert hash_password("correct horse battery") != hash_password("correct horse battery")


def test_wrong_password_is_false() -> None:
    password_hash = hash_password("correct horse battery")

    assert verify_password(password_hash, "correct horse batterY") is False
    assert verify_password(password_hash, "") is False


@pytest.mark.parametrize(
    "bad_hash",
    ["", "not a hash", "$argon2id$v=19$m=65536,t=3,p=4$zzz$zzz", "$2b$12$abcdefghijklmnopqrstuv"],
)
def test_malformed_hash_is_false_not_an_error(bad_hash: str) -> None:
    assert verify_password(bad_hash, "correct horse battery") is False
    assert needs_rehash(bad_hash) is True


def test_weaker_parameters_need_rehash() -> None:
    from argon2 import PasswordHasher

    old = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("correct horse")

    assert verify_password(old, "correct horse") is True
    assert needs_rehash(old) is True


def test_limits() -> None:
    assert (MIN_PASSWORD_CHARS, MAX_PASSWORD_CHARS) == (12, 1024)


@pytest.mark.parametrize("password", ["x" * 12, "x" * 1024, "ünïcödé pass", "            "])
def test_acceptable_passwords(password: str) -> None:
    check_password_rules(password)


@pytest.mark.parametrize("password", ["", "x" * 11, "x" * 1025])
def test_refused_passwords_name_the_field(password: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        check_password_rules(password)

    assert set(raised.value.details["fields"]) == {"password"}
    assert password not in raised.value.message or password == ""


def test_rule_error_can_name_another_field() -> None:
    with pytest.raises(ValidationFailed) as raised:
        check_password_rules("short", field="new_password")

    assert set(raised.value.details["fields"]) == {"new_password"}
