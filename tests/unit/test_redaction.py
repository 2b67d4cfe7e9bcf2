"""Secrets stay out of log lines.

`structlog.testing.capture_logs` would bypass the processor chain, so these
tests configure the real logging (`configure_logging(log_format="json")`),
capture what its stderr handler writes and parse the JSON lines.
"""

from __future__ import annotations

import html
import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import pytest
import structlog

import app.logging as app_logging
from app.logging import configure_logging
from app.models.profiles import ALL_SECRET_FIELDS, PLAIN_FIELDS, SECRET_FIELDS, AuthKind
from app.redaction import (
    REDACTED,
    basic_credential,
    redact_event,
    redact_text,
    redact_url,
    scrub_secrets,
    secrets_pattern,
)

# The root logger and the library loggers configure_logging() takes over.
_CONFIGURED_LOGGERS = ("", "arq", "granian", "_granian", "alembic", "httpx")


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Configure JSON logging onto a private stderr; restore logging after.

    `configure_logging` binds its handler to `sys.stderr` as it is at call
    time, so a StringIO stands in for it then (capsys swaps its stream between
    test phases). Returns a function that gives the JSON lines logged so far.
    """
    loggers = [logging.getLogger(name) for name in _CONFIGURED_LOGGERS]
    saved = [(logger, logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    saved_structlog = structlog.get_config()
    stream = io.StringIO()
    # Force a reconfiguration even if another test configured JSON already.
    monkeypatch.setattr(app_logging, "_configured", None)
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", stream)
        configure_logging(level="INFO", log_format="json")

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line]

    yield lines

    for logger, handlers, level, propagate in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
    structlog.configure(**saved_structlog)


def test_secret_values_are_masked_and_facts_kept(json_logs: Any) -> None:
    """The canonical line: a password and a URL password go, state and ids stay."""
    structlog.get_logger("test").info(
        "x", password="hunter2", url="redis://:pw123@host:1/0", token_state="valid", run_id=5
    )

    lines = json_logs()
    assert len(lines) == 1
    line = lines[0]
    raw = json.dumps(line)
    assert "hunter2" not in raw
    assert "pw123" not in raw
    assert line["password"] == REDACTED
    assert line["url"] == f"redis://{REDACTED}@host:1/0"
    assert line["token_state"] == "valid"
    assert line["run_id"] == 5
    assert line["event"] == "x"


def test_nested_dicts_and_the_event_text_are_redacted(json_logs: Any) -> None:
    """Profiles are logged as dicts; messages sometimes carry a URL."""
    structlog.get_logger("test").info(
        "connecting to postgresql://app:dbpw1@db:5432/taskdeck",
        auth={"kind": "bearer", "token": "tok-abc", "expires_at": "2026-01-01"},
        headers={"Authorization": "Bearer tok-def"},
        client_secret="cs-ghi",
    )

    line = json_logs()[0]
    raw = json.dumps(line)
    for secret in ("dbpw1", "tok-abc", "tok-def", "cs-ghi"):
        assert secret not in raw
    assert line["auth"]["kind"] == "bearer"
    assert line["auth"]["expires_at"] == "2026-01-01"
    assert line["event"].startswith("connecting to postgresql://")


def test_stdlib_loggers_go_through_the_same_redaction(json_logs: Any) -> None:
    """arq, alembic and friends log through the stdlib: no bypass there either."""
    logging.getLogger("some.library").warning(
        "cannot reach %s", "redis://:libpw@127.0.0.1:6379/0"
    )

    line = json_logs()[0]
    assert "libpw" not in json.dumps(line)
    assert line["level"] == "warning"


def test_api_key_header_value_is_masked(json_logs: Any) -> None:
    """Header names use hyphens; the api_key auth kind sends `X-API-Key`."""
    structlog.get_logger("test").info("request", headers={"X-API-Key": "key-12345"})

    assert "key-12345" not in json.dumps(json_logs()[0])


def test_secrets_inside_lists_are_masked(json_logs: Any) -> None:
    """Lists of URLs (e.g. Redis sentinels) or header pairs are common fields."""
    structlog.get_logger("test").info(
        "x", urls=["redis://:listpw@a:1/0"], profiles=[{"password": "listpw2"}]
    )

    raw = json.dumps(json_logs()[0])
    assert "listpw" not in raw


def test_exception_text_is_redacted(json_logs: Any) -> None:
    """`log.exception` in the API error handler logs the message of whatever broke."""
    try:
        raise ConnectionError("cannot connect to redis://:excpw@10.0.0.1:6379/0")
    except ConnectionError:
        structlog.get_logger("test").exception("api_unexpected_error")

    line = json_logs()[0]
    assert "ConnectionError" in json.dumps(line)
    assert "excpw" not in json.dumps(line)


def test_redact_url_masks_every_url_and_keeps_the_rest() -> None:
    """Pure function: user-info of each URL goes; hosts and paths stay for debugging."""
    text = "a redis://:p1@h1:6379/0 b postgresql+psycopg://u:p2@h2/db c https://h3/x"
    out = redact_url(text)

    assert "p1" not in out and "p2" not in out
    assert "h1:6379/0" in out and "h2/db" in out and "https://h3/x" in out
    assert out.count(REDACTED) == 2


def test_redact_event_keeps_empty_and_non_secret_values() -> None:
    """An empty password is not a secret, and masking it would hide a bug."""
    out = redact_event(None, "info", {"password": "", "token_count": 3, "secret": None})

    assert out == {"password": "", "token_count": 3, "secret": None}


@pytest.mark.parametrize("kind", [kind for kind in AuthKind if SECRET_FIELDS[kind]])
def test_every_secret_field_of_an_auth_mapping_is_masked(kind: AuthKind) -> None:
    """ProfileInput.auth as a form sends it: the secret fields go, whatever
    they are called (the api_key kind's is plain `value`), the plain ones stay."""
    auth = {"kind": kind.value, **{name: f"plain-{name}" for name in PLAIN_FIELDS[kind]}}
    auth |= {name: f"sk-live-{name}" for name in SECRET_FIELDS[kind]}

    out = redact_event(None, "info", {"event": "profile_saved", "auth": auth})

    assert "sk-live" not in repr(out)
    assert out["auth"] == {
        key: REDACTED if key in ALL_SECRET_FIELDS else value for key, value in auth.items()
    }


def test_auth_mappings_are_found_at_any_depth_and_in_lists() -> None:
    out = redact_event(
        None,
        "info",
        {
            "event": "x",
            "profile": {"name": "api", "auth": {"kind": "api_key", "value": "sk-live-1"}},
            "profiles": [{"AUTH": {"value": "sk-live-2"}}],
            "auth": [{"value": "sk-live-3"}],
        },
    )

    assert "sk-live" not in repr(out)
    assert out["profile"]["name"] == "api"


def test_a_value_key_outside_an_auth_mapping_is_kept() -> None:
    """`value`, `token` as a count... common keys stay unless a credentials
    mapping holds them."""
    event = {"event": "x", "value": "42", "setting": {"value": "dark"}, "auth_kind": "api_key"}

    assert redact_event(None, "info", event) == event


def test_header_names_that_carry_a_key_are_masked_in_a_headers_mapping() -> None:
    """The api_key kind sends the key under a header name the user chose."""
    headers = {
        "Ocp-Apim-Subscription-Key": "k1",
        "X-Auth": "k2",
        "X-Session": "k3",
        "Idempotency-Key": "run-42",
        "WWW-Authenticate": 'Bearer error="invalid_token"',
        "Accept": "application/json",
    }

    out = redact_event(None, "info", {"event": "x", "headers": headers})

    assert out["headers"] == {
        "Ocp-Apim-Subscription-Key": REDACTED,
        "X-Auth": REDACTED,
        "X-Session": REDACTED,
        "Idempotency-Key": "run-42",
        "WWW-Authenticate": 'Bearer error="invalid_token"',
        "Accept": "application/json",
    }
    # Outside a headers mapping, a key named like that is nothing special.
    assert redact_event(None, "info", {"session": 3}) == {"session": 3}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET https://h/x?api_key=K1&page=2&key=K2 failed",
            f"GET https://h/x?api_key={REDACTED}&page=2&key={REDACTED} failed",
        ),
        (
            "body grant_type=refresh_token&refresh_token=rt-9&client_secret=cs-1&client_id=c",
            f"body grant_type=refresh_token&refresh_token={REDACTED}"
            f"&client_secret={REDACTED}&client_id=c",
        ),
        ("password=hunter2 token_count=3", f"password={REDACTED} token_count=3"),
        ("sent Authorization: Basic dXNlcjpwYXNz,", f"sent Authorization: Basic {REDACTED},"),
        ("{'authorization': 'Bearer abc'}", f"{{'authorization': 'Bearer {REDACTED}'}}"),
        ("with Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", f"with Bearer {REDACTED}"),
        ("Bearer token expired; authorization failed", None),
        ("redis://:pw@h:1/0", f"redis://{REDACTED}@h:1/0"),
    ],
    ids=["query", "form", "message", "header-line", "header-repr", "bearer", "prose", "url"],
)
def test_redact_text_masks_secrets_written_into_text(text: str, expected: str | None) -> None:
    assert redact_text(text) == (text if expected is None else expected)


def test_a_query_key_in_an_exception_is_masked(json_logs: Any) -> None:
    """A library error may carry the full URL, query string and all."""
    try:
        raise ValueError("bad answer for https://api.example.com/x?api_key=sk-live-exc")
    except ValueError:
        structlog.get_logger("test").exception("outbound_unexpected")

    line = json_logs()[0]
    assert "sk-live-exc" not in json.dumps(line)
    assert "https://api.example.com/x?api_key=" in line["exception"]


def test_an_api_key_profile_logged_whole_is_masked(json_logs: Any) -> None:
    """Through the real chain: the api_key kind's `value` was printed as is."""
    structlog.get_logger("test").info(
        "profile_saved",
        auth={"kind": "api_key", "header": "X-Key", "param": None, "value": "sk-live-xyz"},
        value="unrelated",
    )

    line = json_logs()[0]
    assert "sk-live-xyz" not in json.dumps(line)
    assert line["auth"] == {"kind": "api_key", "header": "X-Key", "param": None, "value": REDACTED}
    assert line["value"] == "unrelated"


# ----- secrets a server echoes back -----

ECHOED = 'S3cr+t/Va lue"q\\x-é'


@pytest.mark.parametrize(
    "form",
    [
        ECHOED,
        quote(ECHOED),
        quote(ECHOED, safe=""),
        quote_plus(ECHOED),
        re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote_plus(ECHOED)),
        json.dumps(ECHOED),
        json.dumps(ECHOED, ensure_ascii=False),
        json.dumps(ECHOED).replace("/", "\\/"),
        html.escape(ECHOED),
        json.dumps(urlencode({"client_secret": ECHOED})),
    ],
    ids=["raw", "quote", "quote-all", "quote_plus", "lower-hex", "json", "json-utf8",
         "json-slash", "html", "json-of-form"],
)
def test_scrub_secrets_masks_every_encoding_a_server_may_echo(form: str) -> None:
    """A token endpoint echoing the form body shows `client_secret=S3cr%2Bt...`;
    a JSON error escapes the quote and backslash: all of them go."""
    out = scrub_secrets(f"invalid_request: got {form} here", [ECHOED])

    assert REDACTED in out
    assert "S3cr" not in out and "%2Bt" not in out.upper()
    assert out.startswith("invalid_request: got ") and out.endswith(" here")


def test_scrub_secrets_masks_basic_credentials_whoever_the_user_is() -> None:
    """The Basic header carries base64(client_id:secret): masked exactly when
    the caller names it, and by the secret's own base64 core otherwise."""
    credential = basic_credential("client-7", ECHOED)

    assert scrub_secrets(f"Authorization: Basic {credential}", [credential]) == (
        f"Authorization: Basic {REDACTED}"
    )
    for user in ("a", "ab", "abc", "a-much-longer-client-id"):
        out = scrub_secrets(basic_credential(user, ECHOED), [ECHOED])
        assert REDACTED in out
        assert len(out.replace(REDACTED, "")) <= len(basic_credential(user, "")) + 4


def test_scrub_secrets_masks_before_it_cuts() -> None:
    """A secret crossing the cut must not leave its prefix behind."""
    secret = "prefix-of-a-secret-1234"
    text = "x" * 290 + secret + " tail"

    out = scrub_secrets(text, [secret], limit=300)

    assert len(out) == 300
    assert "prefix" not in out
    assert out == ("x" * 290 + REDACTED)[:300]


def test_scrub_secrets_ignores_short_and_missing_values() -> None:
    assert scrub_secrets("abc None", ["ab", "", None]) == "abc None"
    assert scrub_secrets("a b", [], limit=1) == "a"


def test_scrub_secrets_survives_collapsed_whitespace() -> None:
    """Callers collapse whitespace after masking: a secret with a space,
    echoed with a newline, is masked all the same."""
    assert scrub_secrets("got two\n  words!", ["two words"]) == f"got {REDACTED}!"


def test_the_pattern_of_a_set_of_secrets_is_built_once() -> None:
    """The same secrets, in any order and with values too short to mask,
    give the same compiled pattern: it is cached, not rebuilt per call."""
    first = secrets_pattern(["secret-one", "secret-two", None, "ab"])

    assert first is not None
    assert secrets_pattern(["secret-two", "secret-one", "secret-one"]) is first
    assert secrets_pattern(["secret-one"]) is not first
    assert secrets_pattern([None, "", "ab"]) is None
