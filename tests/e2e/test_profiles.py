"""Profiles as a new user meets them: an OAuth2 profile against a real token
server keeps a valid token by itself, its state changes live on the page,
"Test connection" reaches the API, and the secret never reaches the
browser, the database file or the logs; a double-clicked Clone makes one
copy."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import RunningApp
from tests.integration.oauth_server import OAuthServer

pytestmark = pytest.mark.e2e

CLIENT_SECRET = "e2e-Client-Secret-7Qz"
TOKEN_LIFETIME_S = 4


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    server = OAuthServer(client_secret=CLIENT_SECRET, expires_in=TOKEN_LIFETIME_S).start()
    yield server
    server.stop()


def _database_bytes(app: RunningApp) -> bytes:
    return b"".join(
        path.read_bytes() for path in app.data_dir.glob("taskdeck.db*") if path.is_file()
    )


def test_oauth2_profile_keeps_a_valid_token_live_and_its_secret_private(
    admin_page: Page, base_url: str, taskdeck_app: RunningApp, oauth: OAuthServer
) -> None:
    page = admin_page
    received: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda data: received.append(str(data))))
    page.goto(f"{base_url}/profiles")
    expect(page.get_by_role("heading", name="Profiles", exact=True)).to_be_visible()
    # A slow token endpoint: the page must first show the token being
    # fetched, then valid, by itself.
    oauth.token_delay_s = 3

    page.get_by_role("button", name="New profile").click()
    dialog = page.get_by_role("dialog", name="New profile")
    dialog.get_by_label("Name", exact=True).fill("Billing API")
    dialog.get_by_label("Base URL").fill(oauth.url)
    dialog.get_by_label("Tags (comma-separated)").fill("billing, prod")
    dialog.get_by_label("Authentication").click()
    page.get_by_role("option", name="oauth2_client_credentials").click()
    dialog.get_by_label("Token URL").fill(oauth.token_url)
    dialog.get_by_label("Client ID").fill(oauth.client_id)
    dialog.get_by_label("Client secret").fill(CLIENT_SECRET)
    dialog.get_by_label("Scopes (space-separated)").fill("read write")
    dialog.get_by_role("button", name="Create profile").click()
    expect(page).to_have_url(re.compile(r"/profiles/\d+/?$"))
    page.evaluate("window.__no_reload = true")  # a reload would wipe it

    # The worker fetches a token by itself; the badge changes without a reload.
    badge = page.locator(".token-status").first
    expect(badge).to_have_text("refreshing token", timeout=10_000)
    expect(badge).to_have_text("token valid", timeout=20_000)
    assert page.evaluate("window.__no_reload") is True
    oauth.token_delay_s = 0
    # Relative to now, not a timestamp.
    expect(page.locator(".token-detail").first).to_have_text("expires in under a minute")
    first_requests = oauth.token_requests
    time.sleep(2.5 * TOKEN_LIFETIME_S)
    assert oauth.token_requests >= first_requests + 2, "tokens must be refreshed before expiry"
    expect(badge).to_have_text("token valid")

    page.get_by_label("Path to call").fill("/api/ping")
    page.get_by_role("button", name="Test connection").click()
    result = page.locator(".test-result")
    expect(result).to_contain_text("reachable", timeout=30_000)
    expect(result).to_contain_text("status 200")
    assert oauth.unauthorized == 0, "no request may meet an expired token"

    # The secret went in once (typed by the user) and never comes back out.
    expect(page.get_by_label("Client secret")).to_have_value("")
    assert received, "the page's websocket frames were not captured"
    assert not [frame for frame in received if CLIENT_SECRET in frame]
    assert CLIENT_SECRET.encode() not in _database_bytes(taskdeck_app)
    assert CLIENT_SECRET not in taskdeck_app.log_path.read_text(errors="replace")


def test_bad_profile_input_shows_field_errors_and_saves_nothing(
    admin_page: Page, base_url: str
) -> None:
    page = admin_page
    page.goto(f"{base_url}/profiles")
    page.get_by_role("button", name="New profile").click()
    dialog = page.get_by_role("dialog", name="New profile")
    dialog.get_by_label("Name", exact=True).fill("Broken")
    dialog.get_by_label("Base URL").fill("ftp://files.example.com")
    dialog.get_by_label("Default headers (one `Name: value` a line)").fill("Bad Header: x")
    dialog.get_by_role("button", name="Create profile").click()
    expect(dialog.get_by_text(re.compile("http:// or https://"))).to_be_visible()
    expect(dialog.get_by_role("alert").filter(has_text=re.compile("header", re.I))).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.get_by_label("Search profiles").fill("Broken")
    expect(page.get_by_text("No profile matches the search.")).to_be_visible()


def test_a_double_clicked_clone_makes_one_copy(admin_page: Page, base_url: str) -> None:
    page = admin_page
    page.goto(f"{base_url}/profiles")
    page.get_by_role("button", name="New profile").click()
    dialog = page.get_by_role("dialog", name="New profile")
    dialog.get_by_label("Name", exact=True).fill("Twice Clicked")
    dialog.get_by_label("Base URL").fill("https://api.example.com")
    dialog.get_by_role("button", name="Create profile").click()
    expect(page).to_have_url(re.compile(r"/profiles/\d+/?$"))
    original = page.url
    expect(page.get_by_role("heading", name="Twice Clicked", exact=True)).to_be_visible()

    page.get_by_role("button", name="Clone").dblclick()
    expect(page).not_to_have_url(original, timeout=20_000)
    expect(page.get_by_role("heading", name="Twice Clicked (copy)")).to_be_visible()

    page.goto(f"{base_url}/profiles")
    page.get_by_label("Search profiles").fill("Twice Clicked")
    expect(page.locator(".profile-card")).to_have_count(2)
    expect(page.get_by_text("Twice Clicked (copy 2)")).to_have_count(0)
