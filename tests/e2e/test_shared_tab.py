"""One browser tab, two people: what the first one loaded never reaches the
second (Reflex keeps state per tab on the server, so a sign-out must leave
that state behind)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Account, sign_in

pytestmark = pytest.mark.e2e

TOKEN = "window.sessionStorage.getItem('token')"


def test_the_next_person_in_a_tab_gets_a_fresh_state(
    admin_page: Page, base_url: str, accounts: dict[str, Account]
) -> None:
    page = admin_page
    page.goto(f"{base_url}/settings")
    page.get_by_role("tab", name="Users").click()
    expect(page.get_by_text(accounts["operator"].email).first).to_be_visible()
    admin_token = page.evaluate(TOKEN)
    assert admin_token

    page.get_by_role("button", name="Account").first.click()
    page.get_by_role("menuitem", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login"))

    received: list[str] = []
    page.on(
        "websocket", lambda ws: ws.on("framereceived", lambda data: received.append(str(data)))
    )
    sign_in(page, base_url, accounts["viewer"])
    expect(page.get_by_role("heading", name="Recent runs")).to_be_visible()
    page.goto(f"{base_url}/settings")
    expect(page.get_by_role("tab", name="My account")).to_be_visible()
    expect(page.get_by_role("tab", name="Users")).to_have_count(0)

    assert received, "the page's websocket frames were not captured"
    assert not any(accounts["operator"].email in frame for frame in received)
    assert page.evaluate(TOKEN) not in (None, admin_token)

