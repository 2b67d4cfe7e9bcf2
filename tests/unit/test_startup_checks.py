"""The checks `taskdeck web|worker|run` make before starting anything, each
telling one cause from the others: real sockets and real files, nothing mocked."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from app.db import make_engine
from app.embedded_redis import redis_address
from app.errors import SettingsError
from app.runtime import ensure_port_free


def test_a_port_in_use_says_so() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(SettingsError, match="another program uses that port") as caught:
            ensure_port_free("127.0.0.1", port)

    assert "TASKDECK_PORT" in caught.value.message


@pytest.mark.parametrize("host", ["999.1.1.1", "no-such-host.invalid", "192.0.2.1"])
def test_a_host_that_is_not_ours_is_not_a_port_in_use(host: str) -> None:
    with pytest.raises(SettingsError) as caught:
        ensure_port_free(host, 3000)

    message = caught.value.message
    assert message.startswith(f"cannot bind TASKDECK_HOST={host}: not an address of this machine")
    assert "port" not in message.split(";")[0]


def test_a_free_port_passes() -> None:
    ensure_port_free("127.0.0.1", 0)


@pytest.mark.parametrize("depth", ["x.db", "sub/x.db", "sub/deeper/x.db"])
def test_a_sqlite_file_under_a_regular_file_names_the_setting_and_the_file(
    tmp_path: Path, depth: str
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("I am a file")

    with pytest.raises(SettingsError) as caught:
        make_engine(f"sqlite:///{a_file}/{depth}", setting="TASKDECK_DATA_DIR")

    assert caught.value.message == (
        f"TASKDECK_DATA_DIR: cannot create the database's folder ({a_file} is a file, not a folder)"
    )
    assert a_file.read_text() == "I am a file"


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("redis://:hunter2@127.0.0.1:1/0", "127.0.0.1:1"),
        ("rediss://user:hunter2@redis.example.com/2", "redis.example.com:6379"),
        ("redis://:hunter2@[::1]:6380", "[::1]:6380"),
        ("unix:///run/redis.sock?password=hunter2", "/run/redis.sock"),
    ],
)
def test_redis_address_never_holds_the_password(url: str, address: str) -> None:
    assert redis_address(url) == address
