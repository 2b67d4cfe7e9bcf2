"""Profile rules: each bad input names its field, good inputs pass
normalised, every problem is reported at once, and the secrets of an update
are sorted into new values, kept ones and cleared ones."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import ValidationFailed
from app.models.profiles import AuthKind, ProfileInput
from app.services.profile_validation import clear_problem, validate_profile

BASE: dict[str, Any] = {"name": "Example API", "base_url": "https://api.example.com"}
OAUTH_CC = {
    "kind": "oauth2_client_credentials",
    "token_url": "https://auth.example.com/token",
    "client_id": "client-1",
    "client_secret": "cs-secret-value",
}
OAUTH_RT = {
    "kind": "oauth2_refresh_token",
    "token_url": "https://auth.example.com/token",
    "client_id": "client-1",
    "refresh_token": "rt-secret-value",
}


def _input(**changes: Any) -> ProfileInput:
    return ProfileInput(**(BASE | changes))


def _problems(data: ProfileInput, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        validate_profile(data, **kwargs)
    return caught.value.details["fields"]


# ----- good inputs -----


@pytest.mark.parametrize(
    "auth",
    [
        {"kind": "none"},
        {"kind": "bearer", "token": "abc.def.ghi"},
        {"kind": "basic", "username": "alice", "password": "pw"},
        {"kind": "api_key", "header": "X-API-Key", "value": "k-1"},
        {"kind": "api_key", "param": "api_key", "value": "k-1"},
        OAUTH_CC,
        OAUTH_CC | {"scopes": ["read", "write"], "audience": "https://api", "client_auth": "body"},
        OAUTH_RT,
        OAUTH_RT | {"client_secret": "cs", "scopes": "read write"},
    ],
)
def test_every_kind_with_its_required_fields_passes(auth: dict[str, Any]) -> None:
    clean = validate_profile(_input(auth=auth))

    assert clean.auth_kind == AuthKind(auth["kind"])
    secrets = {k: v for k, v in auth.items() if k in {"token", "password", "value",
                                                     "client_secret", "refresh_token"}}
    assert clean.new_secrets == secrets
    assert not set(clean.auth_config) & set(secrets)  # secrets never in the plain part


def test_values_are_normalised() -> None:
    clean = validate_profile(
        _input(
            name="  Spaced  ",
            base_url=" https://api.example.com/v1 ",
            headers={"Accept": " application/json "},
            tags=["Prod", "prod", " billing "],
            auth=OAUTH_RT | {"kind": " OAUTH2_Refresh_Token ", "scopes": "read  write read"},
        )
    )

    assert clean.name == "Spaced"
    assert clean.base_url == "https://api.example.com/v1"
    assert clean.headers == {"Accept": "application/json"}
    assert clean.tags == ["prod", "billing"]
    assert clean.auth_kind == AuthKind.OAUTH2_REFRESH_TOKEN
    assert clean.auth_config == {
        "token_url": "https://auth.example.com/token",
        "client_id": "client-1",
        "scopes": ["read", "write"],
        "client_auth": "header",
    }


def test_api_key_config_names_both_places() -> None:
    clean = validate_profile(_input(auth={"kind": "api_key", "param": "key", "value": "v"}))

    assert clean.auth_config == {"header": None, "param": "key"}


def test_blank_fields_of_another_kind_are_ignored() -> None:
    """A form switching kinds may send the other kind's fields empty."""
    clean = validate_profile(_input(auth={"kind": "bearer", "token": "t", "username": ""}))

    assert clean.auth_kind == AuthKind.BEARER


# ----- bad inputs, one field each -----


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "bad\x07name"}, "name"),
        ({"description": "d" * 1001}, "description"),
        ({"base_url": ""}, "base_url"),
        ({"base_url": "ftp://files.example.com"}, "base_url"),
        ({"base_url": "javascript:alert(1)"}, "base_url"),
        ({"base_url": "file:///etc/passwd"}, "base_url"),
        ({"base_url": "/v1/relative"}, "base_url"),
        ({"base_url": "api.example.com"}, "base_url"),
        ({"base_url": "https://api.example.com/a path"}, "base_url"),
        ({"base_url": "https://user:pw@api.example.com"}, "base_url"),
        ({"base_url": "https://"}, "base_url"),
        ({"base_url": "https://api.example.com:99999"}, "base_url"),
        ({"base_url": "https://" + "a" * 2000 + ".com"}, "base_url"),
        ({"headers": {"X-Bad Name": "v"}}, "headers.X-Bad Name"),
        ({"headers": {"X-Line": "a\r\nInjected: yes"}}, "headers.X-Line"),
        ({"headers": {"X-Nul": "a\x00b"}}, "headers.X-Nul"),
        ({"headers": {"X-Long": "v" * 4001}}, "headers.X-Long"),
        ({"headers": {"X-Euro": "10 €"}}, "headers.X-Euro"),
        ({"headers": {"Authorization": "Bearer abc"}}, "headers.Authorization"),
        ({"headers": {"authorization": "Bearer abc"}}, "headers.authorization"),
        ({"headers": {f"X-{i}": "v" for i in range(101)}}, "headers"),
        ({"timeout_s": 0.05}, "timeout_s"),
        ({"timeout_s": 601}, "timeout_s"),
        ({"timeout_s": float("nan")}, "timeout_s"),
        ({"tags": ["has space"]}, "tags"),
        ({"tags": [""]}, "tags"),
        ({"tags": ["t" * 41]}, "tags"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
    ],
)
def test_bad_field_is_named(changes: dict[str, Any], field: str) -> None:
    assert field in _problems(_input(**changes))


def test_authorization_header_points_to_the_auth_kind() -> None:
    problems = _problems(_input(headers={"Authorization": "Bearer abc"}))

    assert "auth kind" in problems["headers.Authorization"]


def test_url_messages_say_what_to_do() -> None:
    assert "http:// or https://" in _problems(_input(base_url="ftp://x.example.com"))["base_url"]
    assert "auth fields" in _problems(_input(base_url="https://u:p@x.example.com"))["base_url"]


@pytest.mark.parametrize(
    ("auth", "field"),
    [
        ({"kind": "kerberos"}, "auth.kind"),
        ({}, "auth.kind"),
        ({"kind": 3}, "auth.kind"),
        ({"kind": "bearer"}, "auth.token"),
        ({"kind": "bearer", "token": "   "}, "auth.token"),
        ({"kind": "bearer", "token": "a\nb"}, "auth.token"),
        ({"kind": "bearer", "token": "****abcd"}, "auth.token"),
        ({"kind": "bearer", "token": 123}, "auth.token"),
        ({"kind": "bearer", "token": "t", "password": "p"}, "auth.password"),
        ({"kind": "bearer", "token": "t", "extra": "x"}, "auth.extra"),
        ({"kind": "basic", "password": "p"}, "auth.username"),
        ({"kind": "basic", "username": "u"}, "auth.password"),
        ({"kind": "basic", "username": "u:x", "password": "p"}, "auth.username"),
        ({"kind": "api_key", "header": "X-Key"}, "auth.value"),
        ({"kind": "api_key", "value": "v"}, "auth.header"),
        ({"kind": "api_key", "header": "X-Key", "param": "key", "value": "v"}, "auth.param"),
        ({"kind": "api_key", "header": "Bad Header", "value": "v"}, "auth.header"),
        ({"kind": "api_key", "param": "a key", "value": "v"}, "auth.param"),
        (OAUTH_CC | {"token_url": None}, "auth.token_url"),
        (OAUTH_CC | {"token_url": "ftp://auth.example.com/token"}, "auth.token_url"),
        (OAUTH_CC | {"token_url": "https://id:secret@auth.example.com/token"}, "auth.token_url"),
        (OAUTH_CC | {"client_id": ""}, "auth.client_id"),
        (OAUTH_CC | {"client_secret": None}, "auth.client_secret"),
        (OAUTH_CC | {"scopes": ["read", "has space"]}, "auth.scopes"),
        (OAUTH_CC | {"scopes": ["read", ""]}, "auth.scopes"),
        (OAUTH_CC | {"scopes": 5}, "auth.scopes"),
        (OAUTH_CC | {"client_auth": "query"}, "auth.client_auth"),
        (OAUTH_RT | {"refresh_token": None}, "auth.refresh_token"),
        (OAUTH_RT | {"audience": "https://api"}, "auth.audience"),
    ],
)
def test_bad_auth_field_is_named(auth: dict[str, Any], field: str) -> None:
    assert field in _problems(_input(auth=auth))


def test_missing_field_says_required_for_the_kind() -> None:
    problems = _problems(_input(auth={"kind": "oauth2_client_credentials"}))

    assert problems["auth.token_url"] == "Required for oauth2_client_credentials"
    assert problems["auth.client_id"] == "Required for oauth2_client_credentials"
    assert problems["auth.client_secret"] == "Required for oauth2_client_credentials"


def test_unknown_kind_lists_the_kinds() -> None:
    problem = _problems(_input(auth={"kind": "kerberos"}))["auth.kind"]

    for kind in AuthKind:
        assert kind.value in problem


def test_refresh_token_kind_needs_no_client_secret() -> None:
    """Public clients have none."""
    clean = validate_profile(_input(auth=OAUTH_RT))

    assert "client_secret" not in clean.new_secrets


def test_every_problem_is_reported_at_once() -> None:
    problems = _problems(
        ProfileInput(
            name="",
            base_url="ftp://x",
            headers={"X-Bad Name": "v", "Authorization": "x"},
            timeout_s=0,
            tags=["bad tag"],
            auth={"kind": "oauth2_client_credentials", "token_url": "nope", "scopes": 1},
        )
    )

    assert set(problems) >= {
        "name",
        "base_url",
        "headers.X-Bad Name",
        "headers.Authorization",
        "timeout_s",
        "tags",
        "auth.token_url",
        "auth.client_id",
        "auth.client_secret",
        "auth.scopes",
    }


def test_error_message_names_fields_but_no_secret() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_profile(_input(name="", auth={"kind": "bearer", "token": "sec\nret-TOKEN"}))

    assert "name" in caught.value.message
    assert "ret-TOKEN" not in str(caught.value.details)
    assert "ret-TOKEN" not in caught.value.message


# ----- secrets on update -----


def test_update_keeps_secrets_left_out_empty_or_sent_as_hint() -> None:
    hints = {"client_secret": "****9999", "refresh_token": "****8888"}
    auth = OAUTH_RT | {"client_secret": "****9999", "refresh_token": None}

    clean = validate_profile(
        _input(auth=auth), current_kind=AuthKind.OAUTH2_REFRESH_TOKEN, current_hints=hints
    )

    assert clean.new_secrets == {}
    assert clean.kept_secrets == {"client_secret", "refresh_token"}


def test_update_takes_a_new_value() -> None:
    clean = validate_profile(
        _input(auth={"kind": "bearer", "token": "brand-new-token"}),
        current_kind=AuthKind.BEARER,
        current_hints={"token": "****abcd"},
    )

    assert clean.new_secrets == {"token": "brand-new-token"}
    assert clean.kept_secrets == frozenset()


RT_HINTS = {"client_secret": "****9999", "refresh_token": "****8888"}


def test_update_clears_an_optional_secret_sent_as_none() -> None:
    clean = validate_profile(
        _input(auth=OAUTH_RT | {"client_secret": None, "refresh_token": "****8888"}),
        current_kind=AuthKind.OAUTH2_REFRESH_TOKEN,
        current_hints=RT_HINTS,
    )

    assert clean.cleared_secrets == {"client_secret"}
    assert clean.kept_secrets == {"refresh_token"}
    assert clean.new_secrets == {}


@pytest.mark.parametrize("sent", [{}, {"client_secret": ""}, {"client_secret": "****9999"}])
def test_left_out_empty_or_masked_optional_secret_is_kept_not_cleared(
    sent: dict[str, Any],
) -> None:
    auth = {k: v for k, v in OAUTH_RT.items() if k != "refresh_token"} | sent
    clean = validate_profile(
        _input(auth=auth), current_kind=AuthKind.OAUTH2_REFRESH_TOKEN, current_hints=RT_HINTS
    )

    assert clean.cleared_secrets == frozenset()
    assert clean.kept_secrets == {"client_secret", "refresh_token"}


def test_a_required_secret_sent_as_none_is_kept_never_cleared() -> None:
    """None always kept a secret: a required one cannot be cleared."""
    clean = validate_profile(
        _input(auth=OAUTH_RT | {"client_secret": None, "refresh_token": None}),
        current_kind=AuthKind.OAUTH2_REFRESH_TOKEN,
        current_hints=RT_HINTS,
    )

    assert "refresh_token" not in clean.cleared_secrets
    assert "refresh_token" in clean.kept_secrets


def test_clearing_on_a_new_kind_or_without_a_stored_value_clears_nothing() -> None:
    created = validate_profile(_input(auth=OAUTH_RT | {"client_secret": None}))
    moved = validate_profile(
        _input(auth=OAUTH_RT | {"client_secret": None}),
        current_kind=AuthKind.OAUTH2_CLIENT_CREDENTIALS,
        current_hints={"client_secret": "****9999"},
    )

    assert created.cleared_secrets == moved.cleared_secrets == frozenset()


def test_only_optional_secrets_may_be_cleared() -> None:
    assert clear_problem(AuthKind.OAUTH2_REFRESH_TOKEN, "client_secret") is None
    for kind, name in [
        (AuthKind.OAUTH2_REFRESH_TOKEN, "refresh_token"),
        (AuthKind.OAUTH2_CLIENT_CREDENTIALS, "client_secret"),
        (AuthKind.BEARER, "token"),
        (AuthKind.BASIC, "password"),
        (AuthKind.API_KEY, "value"),
    ]:
        assert "cannot be cleared" in (clear_problem(kind, name) or ""), (kind, name)


def test_new_kind_keeps_nothing_and_needs_its_secrets() -> None:
    problems = _problems(
        _input(auth={"kind": "basic", "username": "u", "password": "****abcd"}),
        current_kind=AuthKind.BEARER,
        current_hints={"password": "****abcd", "token": "****abcd"},
    )

    assert "auth.password" in problems


def test_input_repr_masks_secrets() -> None:
    data = _input(auth={"kind": "bearer", "token": "repr-SECRET-token"})

    assert "repr-SECRET-token" not in repr(data)
    assert "repr-SECRET-token" not in str(data)
    clean = validate_profile(data)
    assert "repr-SECRET-token" not in repr(clean)


@pytest.mark.parametrize(
    "name", ["Proxy-Authorization", "Cookie", "X-API-Key", "x-apikey", "X-Auth-Token", "Client-Secret"]
)
def test_headers_that_carry_credentials_are_refused(name: str) -> None:
    """Default headers are stored in clear and shown to viewers."""
    problems = _problems(_input(headers={name: "value-1234"}))

    assert "api_key" in problems[f"headers.{name}"]


def test_ordinary_headers_pass() -> None:
    clean = validate_profile(_input(headers={"Accept": "application/json", "X-Request-Source": "td"}))

    assert clean.headers == {"Accept": "application/json", "X-Request-Source": "td"}
