"""Sign-in, roles and API tokens as people and scripts meet them."""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.error
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect
from reflex.utils.format import format_event_handler

from state.runs import RunsState
from tests.e2e.conftest import (
    ADMIN,
    Account,
    FirstRun,
    RunningApp,
    sign_in,
    taskdeck_cli,
)

pytestmark = pytest.mark.e2e


def _api(base_url: str, path: str, token: str | None = None, method: str = "GET") -> tuple[int, Any]:
    request = urllib.request.Request(f"{base_url}/api/v1{path}", method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _run_count(app: RunningApp) -> int:
    with sqlite3.connect(app.data_dir / "taskdeck.db") as db:
        return int(db.execute("SELECT count(*) FROM runs").fetchone()[0])


def test_first_run_creates_the_admin_once(
    first_run: FirstRun, page: Page, base_url: str
) -> None:
    assert first_run.redirected_to.endswith("/setup")
    assert first_run.dashboard_after
    page.goto(f"{base_url}/setup")
    expect(page).to_have_url(re.compile(r"/login"))  # the set-up page is gone for good


def test_pages_need_a_session(page: Page, base_url: str, accounts: dict[str, Account]) -> None:
    page.goto(f"{base_url}/runs")
    expect(page).to_have_url(re.compile(r"/login\?next=/runs"))
    page.get_by_label("Email").fill(ADMIN.email)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")
    page.get_by_label("Password").fill(ADMIN.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile("^" + re.escape(base_url) + r"/runs/?$"))
    cookie = next(c for c in page.context.cookies() if c["name"] == "taskdeck_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"


def test_sign_out_in_one_tab_signs_out_the_other(
    admin_page: Page, base_url: str
) -> None:
    other = admin_page.context.new_page()
    other.goto(f"{base_url}/runs")
    expect(other.get_by_role("heading", name="Runs", exact=True)).to_be_visible()

    admin_page.get_by_role("button", name="Account").first.click()
    admin_page.get_by_role("menuitem", name="Sign out").click()
    expect(admin_page).to_have_url(re.compile(r"/login"))
    # The other tab is told live and leaves, without anybody touching it.
    expect(other).to_have_url(re.compile(r"/login"), timeout=15_000)
    other.goto(f"{base_url}/")
    expect(other).to_have_url(re.compile(r"/login"))


def test_viewer_sees_no_run_button_and_a_crafted_event_is_refused(
    page: Page, base_url: str, accounts: dict[str, Account], taskdeck_app: RunningApp
) -> None:
    # Each websocket of the page: its connection to the server and what the
    # page sent on it.
    sockets: list[tuple[WebSocketRoute, list[str]]] = []

    def relay(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        sent: list[str] = []
        sockets.append((server, sent))

        def to_server(message: str | bytes) -> None:
            if isinstance(message, str):
                sent.append(message)
            server.send(message)

        ws.on_message(to_server)
        server.on_message(ws.send)

    page.route_web_socket(re.compile(r".*/_event.*"), relay)
    sign_in(page, base_url, accounts["viewer"])
    expect(page.get_by_role("heading", name="Recent runs")).to_be_visible()
    expect(page.get_by_role("button", name="Run demo")).to_have_count(0)
    before = _run_count(taskdeck_app)

    def dashboard_connect() -> str | None:
        server, sent = sockets[-1]
        return next((f for f in sent if f.startswith("40/_event,")), None)

    for _ in range(100):  # the dashboard's socket may still be connecting
        if sockets and dashboard_connect():
            break
        page.wait_for_timeout(100)
    connect = dashboard_connect()
    assert connect is not None
    # Craft what a hand-made client would send: this page's own connect event,
    # renamed to the run handler the viewer has no button for.
    event = json.loads(connect.removeprefix("40/_event,"))["event"]
    event.update(name=format_event_handler(RunsState.run_demo), payload={})
    sockets[-1][0].send("42/_event," + json.dumps(["event", event]))

    expect(page.get_by_text("Your role (viewer) may not do this")).to_be_visible()
    page.wait_for_timeout(1000)
    assert _run_count(taskdeck_app) == before


def test_api_tokens_act_with_their_owners_role(
    base_url: str, accounts: dict[str, Account], taskdeck_app: RunningApp
) -> None:
    tokens = {}
    for role in ("admin", "operator", "viewer"):
        made = taskdeck_cli(taskdeck_app, "tokens", "create", "--email", accounts[role].email)
        assert made.returncode == 0, made.stderr
        tokens[role] = made.stdout.strip()
        assert tokens[role].startswith("td_")

    status, body = _api(base_url, "/me")
    assert status == 401 and body["error"] == "Unauthenticated" and body["request_id"]
    assert _api(base_url, "/no-such-thing")[0] == 401  # no hint what exists
    assert _api(base_url, "/me", "td_not-a-real-token")[0] == 401
    status, body = _api(base_url, "/me", tokens["viewer"])
    assert status == 200 and body["role"] == "viewer" and body["email"] == "viewer@example.com"
    assert _api(base_url, "/users", tokens["operator"])[0] == 403
    status, body = _api(base_url, "/users", tokens["admin"])
    assert status == 200 and {u["email"] for u in body["items"]} >= {ADMIN.email}
    assert all("password" not in json.dumps(u) for u in body["items"])
    assert _api(base_url, "/health")[0] == 200  # health needs no token

    # A viewer may read a run but not cancel it; an operator may.
    with sqlite3.connect(taskdeck_app.data_dir / "taskdeck.db") as db:
        db.execute(
            "INSERT INTO runs (kind, params, status, trigger, progress_percent, progress_message,"
            " attempt_count, max_attempts, created_at) VALUES ('demo', '{}', 'queued', 'api', 0,"
            " '', 0, 1, '2026-12-03 18:00:00.000000')"
        )
        run_id = db.execute("SELECT max(id) FROM runs").fetchone()[0]
    assert _api(base_url, f"/runs/{run_id}", tokens["viewer"])[0] == 200
    status, body = _api(base_url, f"/runs/{run_id}/cancel", tokens["viewer"], method="POST")
    assert status == 403 and body["error"] == "Forbidden"
    status, body = _api(base_url, f"/runs/{run_id}/cancel", tokens["operator"], method="POST")
    assert status == 200 and body["status"] == "cancelled"
    status, body = _api(base_url, "/runs/999999", tokens["viewer"])
    assert status == 404 and body["error"] == "RunNotFound"


def test_expired_and_revoked_tokens_are_refused(
    admin_page: Page, base_url: str
) -> None:
    page = admin_page
    page.goto(f"{base_url}/settings")
    page.get_by_role("tab", name="API tokens").click()
    page.get_by_role("button", name="New token").click()
    page.get_by_label("Name").fill("e2e script")
    page.get_by_role("button", name="Create token").click()
    token_field = page.get_by_label("New token", exact=True)
    expect(token_field).to_have_value(re.compile(r"^td_"))
    token = token_field.input_value()
    assert _api(base_url, "/me", token)[0] == 200
    page.get_by_role("button", name="Done").click()

    page.get_by_role("button", name="Revoke token e2e script").click()
    expect(page.get_by_text("Token revoked")).to_be_visible()
    status, body = _api(base_url, "/me", token)
    assert status == 401 and body["error"] == "Unauthenticated"


def test_an_expired_token_is_refused(
    base_url: str, accounts: dict[str, Account], taskdeck_app: RunningApp
) -> None:
    made = taskdeck_cli(taskdeck_app, "tokens", "create", "--email", accounts["operator"].email,
                        "--name", "short-lived", "--expires-days", "1")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert _api(base_url, "/me", token)[0] == 200
    # A day passes (for this token only).
    with sqlite3.connect(taskdeck_app.data_dir / "taskdeck.db") as db:
        changed = db.execute(
            "UPDATE api_tokens SET expires_at = '2000-01-01 00:00:00.000000'"
            " WHERE name = 'short-lived'"
        ).rowcount
    assert changed == 1
    status, body = _api(base_url, "/me", token)
    assert status == 401 and body["error"] == "Unauthenticated"


def test_deactivating_a_user_ends_their_open_session_at_once(
    admin_page: Page, browser, base_url: str, taskdeck_app: RunningApp  # type: ignore[no-untyped-def]
) -> None:
    leaving = Account("leaver@example.com", "leaver password 123", "operator")
    made = taskdeck_cli(taskdeck_app, "users", "create", "--email", leaving.email, "--role",
                        "operator", "--password-stdin", stdin=leaving.password + "\n")
    assert made.returncode == 0, made.stderr
    their_context = browser.new_context()
    theirs = their_context.new_page()
    sign_in(theirs, base_url, leaving)

    admin_page.goto(f"{base_url}/settings")
    admin_page.get_by_role("tab", name="Users").click()
    admin_page.get_by_role("button", name=f"Deactivate {leaving.email}").click()
    expect(admin_page.get_by_text(f"{leaving.email} deactivated")).to_be_visible()

    expect(theirs).to_have_url(re.compile(r"/login"), timeout=15_000)
    theirs.get_by_label("Email").fill(leaving.email)
    theirs.get_by_label("Password").fill(leaving.password)
    theirs.get_by_role("button", name="Sign in").click()
    expect(theirs.get_by_role("alert")).to_contain_text("Wrong email or password")
    their_context.close()


def test_no_password_or_token_reaches_the_logs(
    accounts: dict[str, Account], taskdeck_app: RunningApp, admin_page: Page, browser,  # type: ignore[no-untyped-def]
    base_url: str,
) -> None:
    """Everything secret that crossed the wire in this test: a used API
    token, the session cookie, a wrong password and the right ones."""
    made = taskdeck_cli(taskdeck_app, "tokens", "create", "--email", accounts["viewer"].email)
    token = made.stdout.strip()
    assert _api(base_url, "/me", token)[0] == 200
    assert _api(base_url, "/users", token)[0] == 403
    assert _api(base_url, "/me", token + "x")[0] == 401
    wrong = "not the password 4711"
    context = browser.new_context()
    other = context.new_page()
    other.goto(f"{base_url}/login")
    other.get_by_label("Email").fill(accounts["viewer"].email)
    other.get_by_label("Password").fill(wrong)
    other.get_by_role("button", name="Sign in").click()
    expect(other.get_by_role("alert")).to_contain_text("Wrong email or password")
    context.close()
    cookies = [c["value"] for c in admin_page.context.cookies(base_url) if c["httpOnly"]]
    assert cookies

    log = taskdeck_app.log_path.read_text(errors="replace")
    assert "sign_in_failed" in log  # the log is the app's, and saw this test
    for secret in [account.password for account in accounts.values()] + [token, wrong, *cookies]:
        assert secret not in log


def test_an_admin_invites_people_in_the_ui_and_each_may_do_what_the_role_allows(
    admin_page: Page, browser, base_url: str  # type: ignore[no-untyped-def]
) -> None:
    invited = Account("invited@example.com", "invited password 123", "operator")
    admin = admin_page
    admin.goto(f"{base_url}/settings")
    admin.get_by_role("tab", name="Users").click()
    admin.get_by_role("button", name="New user").click()
    dialog = admin.get_by_role("dialog", name="New user")
    dialog.get_by_label("Email").fill(invited.email)
    dialog.get_by_label("Display name").fill("Ivy Invited")
    dialog.get_by_label("First password (at least 12 characters)").fill("too short")
    dialog.get_by_label("Role").click()
    admin.get_by_role("option", name="operator").click()
    dialog.get_by_role("button", name="Create user").click()
    expect(dialog.get_by_text("at least 12 characters", exact=False).last).to_be_visible()
    dialog.get_by_label("First password (at least 12 characters)").fill(invited.password)
    dialog.get_by_role("button", name="Create user").click()
    expect(admin.get_by_text(f"Created {invited.email} (operator)")).to_be_visible()

    # They sign in: an operator may run, and sees no admin tabs.
    context = browser.new_context()
    theirs = context.new_page()
    sign_in(theirs, base_url, invited)
    expect(theirs.get_by_role("button", name="Run demo")).to_be_visible()
    theirs.evaluate("window.__no_reload = true")

    # Made a viewer: their open tab loses the button at once, by itself.
    admin.get_by_role("combobox", name=f"Role of {invited.email}").click()
    admin.get_by_role("option", name="viewer").click()
    expect(admin.get_by_text(f"{invited.email} is now viewer")).to_be_visible()
    expect(theirs.get_by_role("button", name="Run demo")).to_have_count(0, timeout=15_000)
    assert theirs.evaluate("window.__no_reload") is True

    # My account: a new password, then out everywhere; the new one works.
    new_password = "a brand new password 456"
    theirs.goto(f"{base_url}/settings")
    expect(theirs.get_by_role("tab", name="Users")).to_have_count(0)
    theirs.get_by_label("Current password").fill(invited.password)
    theirs.get_by_label("New password (at least 12 characters)").fill(new_password)
    theirs.get_by_label("Repeat the new password").fill(new_password)
    theirs.get_by_role("button", name="Change password").click()
    expect(theirs.get_by_text("Password changed")).to_be_visible()
    theirs.get_by_role("button", name="Sign out everywhere").click()
    theirs.get_by_role("alertdialog").get_by_role("button", name="Sign out everywhere").click()
    expect(theirs).to_have_url(re.compile(r"/login"), timeout=15_000)
    sign_in(theirs, base_url, Account(invited.email, new_password, "viewer"))
    expect(theirs.get_by_role("heading", name="Recent runs")).to_be_visible()
    context.close()
