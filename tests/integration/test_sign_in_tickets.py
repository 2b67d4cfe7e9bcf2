"""The one-time hand-over of a new session to the browser: the /auth/ticket
route with the real Redis and a real session behind the ticket."""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx
import pytest

from app.api.browser_session import create_browser_session_app
from app.queue import close_queue
from app.services.sign_in_tickets import issue_ticket
from app.session_cookie import SESSION_COOKIE

pytestmark = pytest.mark.integration


def _destination(page: httpx.Response) -> str:
    """Where the page sends the browser, after dropping the client token."""
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert 'sessionStorage.removeItem("token")' in page.text
    found = re.search(r'<a id="next" href="([^"]*)">', page.text)
    assert found is not None
    return html.unescape(found.group(1))


async def _follow(client: httpx.AsyncClient, ticket: str, next_path: str = "/runs") -> httpx.Response:
    return await client.get("/ticket", params={"t": ticket, "next": next_path})


async def test_a_ticket_sets_the_cookie_once(taskdeck: Path) -> None:
    transport = httpx.ASGITransport(app=create_browser_session_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://taskdeck") as client:
        ticket = issue_ticket("session-token-abc")
        first = await _follow(client, ticket)
        assert _destination(first) == "/runs"
        cookie = first.headers["set-cookie"]
        assert f"{SESSION_COOKIE}=session-token-abc" in cookie
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie

        replay = await _follow(client, ticket)
        assert _destination(replay) == "/login?expired=1"
        assert "set-cookie" not in replay.headers

        forged = await _follow(client, "not-a-ticket")
        assert _destination(forged) == "/login?expired=1"

        elsewhere = await _follow(client, issue_ticket("t2"), next_path="//evil.example")
        assert _destination(elsewhere) == "/"

        # A next path cannot break out of the page's script or link.
        tricky = await _follow(client, issue_ticket("t3"), next_path='/runs?q="</script><b>')
        assert "</script><b>" not in tricky.text and "<b>" not in tricky.text
        assert _destination(tricky).startswith("/runs")
    await close_queue()


async def test_cookie_is_secure_behind_an_https_proxy(taskdeck: Path) -> None:
    transport = httpx.ASGITransport(app=create_browser_session_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://taskdeck") as client:
        answer = await client.get(
            "/ticket", params={"t": issue_ticket("tok")}, headers={"X-Forwarded-Proto": "https"}
        )
        assert "Secure" in answer.headers["set-cookie"]
    await close_queue()


async def test_signing_out_forgets_the_cookie_and_the_client_token(taskdeck: Path) -> None:
    transport = httpx.ASGITransport(app=create_browser_session_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://taskdeck") as client:
        page = await client.get("/signed-out")
        assert _destination(page) == "/login"
        assert f'{SESSION_COOKIE}=""' in page.headers["set-cookie"]
        assert "Max-Age=0" in page.headers["set-cookie"]


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
async def test_another_sites_link_neither_signs_in_nor_out(taskdeck: Path, site: str) -> None:
    """Login CSRF: a link to the attacker's own ticket must not sign the
    victim into the attacker's account; nor may a link sign anyone out."""
    transport = httpx.ASGITransport(app=create_browser_session_app())
    headers = {"Sec-Fetch-Site": site}
    async with httpx.AsyncClient(transport=transport, base_url="http://taskdeck") as client:
        ticket = issue_ticket("attackers-session")
        refused = await client.get("/ticket", params={"t": ticket}, headers=headers)
        assert _destination(refused) == "/login"
        assert "set-cookie" not in refused.headers
        kept = await client.get("/signed-out", headers=headers)
        assert _destination(kept) == "/"
        assert "set-cookie" not in kept.headers

        # Typed into the address bar, or followed from our own page: works,
        # and the refused try did not use the ticket up.
        for own in ("none", "same-origin"):
            answer = await client.get(
                "/ticket", params={"t": issue_ticket(f"own-{own}")},
                headers={"Sec-Fetch-Site": own},
            )
            assert f"{SESSION_COOKIE}=own-{own}" in answer.headers["set-cookie"]
        later = await client.get("/ticket", params={"t": ticket})
        assert f"{SESSION_COOKIE}=attackers-session" in later.headers["set-cookie"]
    await close_queue()
