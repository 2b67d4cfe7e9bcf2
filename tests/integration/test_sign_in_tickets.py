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


# What a browser sends with the form one of Taskdeck's pages (at
# http://taskdeck) posts.
OUR_PAGE = {"Origin": "http://taskdeck"}


async def _follow(
    client: httpx.AsyncClient, ticket: str, next_path: str = "/runs",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(
        "/ticket", data={"t": ticket, "next": next_path}, headers=headers or OUR_PAGE
    )


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
        answer = await _follow(
            client, issue_ticket("tok"),
            headers={"Origin": "https://taskdeck", "X-Forwarded-Proto": "https",
                     "Sec-Fetch-Site": "same-origin"},
        )
        assert "Secure" in answer.headers["set-cookie"]
    await close_queue()


async def test_signing_out_forgets_the_cookie_and_the_client_token(taskdeck: Path) -> None:
    transport = httpx.ASGITransport(app=create_browser_session_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://taskdeck") as client:
        page = await client.post("/signed-out", headers=OUR_PAGE)
        assert _destination(page) == "/login"
        assert f'{SESSION_COOKIE}=""' in page.headers["set-cookie"]
        assert "Max-Age=0" in page.headers["set-cookie"]


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no Origin: not a form of a browser page
        {"Origin": "http://evil.example"},  # plain http (a LAN phone): no Sec-Fetch-Site
        {"Origin": "http://taskdeck:8080"},  # another program on this host
        {"Origin": "null"},
        {"Origin": "http://taskdeck", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-site"},
    ],
)
async def test_another_sites_form_or_link_neither_signs_in_nor_out(
    taskdeck: Path, headers: dict[str, str]
) -> None:
    """Login CSRF: another site posting (or linking to) the attacker's own
    ticket must not sign the victim into the attacker's account; nor may it
    sign anyone out."""
    transport = httpx.ASGITransport(app=create_browser_session_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://taskdeck") as client:
        ticket = issue_ticket("attackers-session")
        refused = await _follow(client, ticket, headers=headers or {"X-Nothing": "1"})
        assert _destination(refused) == "/login"
        assert "set-cookie" not in refused.headers
        linked = await client.get("/ticket", params={"t": ticket}, headers=OUR_PAGE)
        assert _destination(linked) == "/login" and "set-cookie" not in linked.headers
        for kept in (
            await client.post("/signed-out", headers=headers or {"X-Nothing": "1"}),
            await client.get("/signed-out", headers=OUR_PAGE),
        ):
            assert _destination(kept) == "/"
            assert "set-cookie" not in kept.headers

        # Posted by our own page: works, and the refused tries did not use
        # the ticket up.
        later = await _follow(client, ticket)
        assert f"{SESSION_COOKIE}=attackers-session" in later.headers["set-cookie"]
    await close_queue()
