"""Which origins may use the websocket."""

from __future__ import annotations

import pytest

from types import SimpleNamespace

from app.origins import (
    client_address,
    engineio_origin_check,
    host_and_port,
    is_allowed_origin,
    origin_key,
)


@pytest.mark.parametrize(
    ("netloc", "scheme", "expected"),
    [
        ("Example.COM:3000", "http", "example.com:3000"),
        ("example.com:80", "http", "example.com"),
        ("example.com:443", "https", "example.com"),
        ("example.com:443", "http", "example.com:443"),
        ("[::1]:3000", "http", "[::1]:3000"),
        ("example.com:notaport", "http", ""),
    ],
)
def test_host_and_port(netloc: str, scheme: str, expected: str) -> None:
    assert host_and_port(netloc, scheme) == expected


def test_origin_key_refuses_what_is_not_an_origin() -> None:
    assert origin_key("https://ops.example.com") == "ops.example.com"
    assert origin_key("null") == ""
    assert origin_key("file:///etc/passwd") == ""
    assert origin_key("javascript:alert(1)") == ""


def test_the_origin_the_browser_reached_is_allowed() -> None:
    headers = {"host": "192.168.1.5:3000"}
    assert is_allowed_origin("http://192.168.1.5:3000", headers, [])
    assert not is_allowed_origin("http://192.168.1.5:8080", headers, [])  # same host, other app
    assert not is_allowed_origin("http://evil.example", headers, [])
    assert not is_allowed_origin("null", headers, [])


def test_no_origin_is_not_a_browser_page() -> None:
    assert is_allowed_origin(None, {"host": "a:1"}, [])
    assert is_allowed_origin("", {"host": "a:1"}, [])


def test_behind_a_proxy_the_forwarded_host_counts() -> None:
    headers = {
        "host": "127.0.0.1:3000",
        "x-forwarded-host": "ops.example.com",
        "x-forwarded-proto": "https",
    }
    assert is_allowed_origin("https://ops.example.com", headers, [])
    assert is_allowed_origin("https://ops.example.com:443", headers, [])
    assert not is_allowed_origin("https://other.example.com", headers, [])


def test_behind_a_tls_proxy_a_plain_http_page_of_the_same_name_is_refused() -> None:
    headers = {"host": "ops.example.com", "x-forwarded-proto": "https"}
    assert is_allowed_origin("https://ops.example.com", headers, [])
    assert not is_allowed_origin("http://ops.example.com", headers, [])
    # Without the header the scheme is unknown (a proxy that does not say).
    assert is_allowed_origin("https://ops.example.com", {"host": "ops.example.com"}, [])


def test_configured_origins_are_allowed_too() -> None:
    extra = ["https://dash.example.com"]
    assert is_allowed_origin("https://dash.example.com", {"host": "x:1"}, extra)
    assert not is_allowed_origin("https://dash.example.com.evil.example", {"host": "x:1"}, extra)
    assert not is_allowed_origin("http://dash.example.com", {"host": "x:1"}, extra)


def test_engineio_check_reads_the_wsgi_environ() -> None:
    check = engineio_origin_check([])
    environ = {"HTTP_HOST": "localhost:3000"}
    assert check("http://localhost:3000", environ)
    assert not check("http://localhost:3001", environ)


def _request(peer: str, forwarded: str | None = None) -> SimpleNamespace:
    headers = {"x-forwarded-for": forwarded} if forwarded is not None else {}
    return SimpleNamespace(client=SimpleNamespace(host=peer), headers=headers)


def test_client_address_believes_forwarded_for_only_through_trusted_proxies() -> None:
    spoofed = _request("10.0.0.2", "6.6.6.6, 203.0.113.9")
    assert client_address(spoofed, 0) == "10.0.0.2"  # no proxy: the header is the client's
    assert client_address(spoofed, 1) == "203.0.113.9"  # what our one proxy saw
    assert client_address(spoofed, 3) == "10.0.0.2"  # fewer hops than configured
    assert client_address(SimpleNamespace(client=None, headers={}), 1) is None
