"""Another program on the same host (a different port is the same *site*, so
the browser sends the SameSite=Lax session cookie) must not be able to open
Taskdeck's websocket as the signed-in user."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page

from app.embedded_redis import free_port

pytestmark = pytest.mark.e2e

# What a page does to reach Taskdeck's socket: "open" or "refused".
OPEN_SOCKET_JS = """async (url) => await new Promise((resolve) => {
  const socket = new WebSocket(url);
  socket.onopen = () => { socket.close(); resolve("open"); };
  socket.onerror = () => resolve("refused");
  setTimeout(() => resolve("no answer"), 10000);
})"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        body = b"<!doctype html><title>Another app</title><p>Another app on this host"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def other_app_on_this_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _socket_url(base_url: str) -> str:
    return f"ws://{urlsplit(base_url).netloc}/_event/?EIO=4&transport=websocket"


def test_a_page_of_another_origin_cannot_open_the_websocket(
    admin_page: Page, base_url: str, other_app_on_this_host: str
) -> None:
    # Taskdeck's own page may (the control: the same script, another origin).
    assert admin_page.evaluate(OPEN_SOCKET_JS, _socket_url(base_url)) == "open"

    admin_page.goto(other_app_on_this_host)
    cookies = admin_page.context.cookies(base_url)
    assert any(cookie["httpOnly"] for cookie in cookies)  # still signed in: it would be sent
    assert admin_page.evaluate(OPEN_SOCKET_JS, _socket_url(base_url)) == "refused"
