"""Where a request comes from: the page (origin) that may open Taskdeck's
websocket, and the client's address behind reverse proxies.

The session cookie is SameSite=Lax: a browser sends it with a websocket
opened by any page of the same *site*, and another program on the same host
(another port) is the same site. Reflex's default `cors_allowed_origins="*"`
turns engineio's Origin check off, so such a page could act as whoever is
signed in. Allowed: the origin the browser reached Taskdeck at (the Host
header, or X-Forwarded-Host from a proxy) and those in
TASKDECK_ALLOWED_ORIGINS. A request without an Origin header is not from a
browser page and needs no check (engineio skips it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def host_and_port(netloc: str, scheme: str = "http") -> str:
    """`example.com:3000`, lower-cased, the scheme's default port left out."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return ""
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return host
    return f"{host}:{port}"


def origin_key(origin: str) -> str:
    """`host[:port]` of an Origin header value, "" when it is not one."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return host_and_port(parts.netloc, parts.scheme)


def _scheme_and_key(origin: str) -> tuple[str, str]:
    return urlsplit(origin.strip()).scheme, origin_key(origin)


def is_allowed_origin(origin: str | None, headers: Mapping[str, str], extra: Iterable[str]) -> bool:
    """Whether a page at `origin` may talk to this server, reached with
    these request `headers` (lower-case names). The scheme is compared
    when a proxy says which one the browser used (X-Forwarded-Proto);
    without one Taskdeck serves plain http, perhaps behind a TLS proxy that
    does not say so."""
    if not origin:
        return True
    scheme, key = _scheme_and_key(origin)
    if not key:
        return False
    if (scheme, key) in {_scheme_and_key(item) for item in extra}:
        return True
    proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if proto and scheme != proto:
        return False
    reached = {
        host_and_port(value.split(",")[0].strip(), proto or "http")
        for value in (headers.get("host", ""), headers.get("x-forwarded-host", ""))
        if value
    }
    return key in reached


def engineio_origin_check(extra: Iterable[str]) -> Callable[[str | None, Mapping[str, Any]], bool]:
    """The callable engineio accepts as `cors_allowed_origins` (WSGI environ)."""
    allowed = tuple(extra)

    def check(origin: str | None, environ: Mapping[str, Any]) -> bool:
        headers = {
            "host": str(environ.get("HTTP_HOST", "")),
            "x-forwarded-host": str(environ.get("HTTP_X_FORWARDED_HOST", "")),
            "x-forwarded-proto": str(environ.get("HTTP_X_FORWARDED_PROTO", "")),
        }
        return is_allowed_origin(origin, headers, allowed)

    return check


def client_address(request: Any, trusted_proxy_hops: int) -> str | None:
    """The client's address of a Starlette request, by Reflex's rule for the
    websocket: X-Forwarded-For is believed only through that many proxies."""
    address = request.client.host if request.client else None
    if trusted_proxy_hops:
        forwarded = [ip.strip() for ip in request.headers.get("x-forwarded-for", "").split(",")]
        forwarded = [ip for ip in forwarded if ip]
        if len(forwarded) >= trusted_proxy_hops:
            address = forwarded[-trusted_proxy_hops]
    return address
