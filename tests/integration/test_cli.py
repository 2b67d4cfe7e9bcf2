"""The real `taskdeck` console script in subprocesses: what an operator sees
when a setting is wrong, when the port is taken or when the data folder is
unusable. One clear `taskdeck: error:` line, the documented exit code, no
trace, and nothing left running."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from app.migrate import head_revision

pytestmark = pytest.mark.integration

TASKDECK = Path(sys.executable).with_name("taskdeck")
# Generous: these commands fail before starting anything, in about a second.
COMMAND_TIMEOUT_S = 60
ERROR_PREFIX = "taskdeck: error: "


def _env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """The parent's environment without any TASKDECK_* variable, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKDECK_")}
    env["TASKDECK_DATA_DIR"] = str(data_dir)
    env.update(overrides)
    return env


def _taskdeck(
    *args: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TASKDECK), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _assert_one_error_line(stderr: str, starts_with: str = ERROR_PREFIX) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith(starts_with), stderr
    return lines[0]


def _processes_mentioning(marker: str) -> list[str]:
    """Live processes (other than this one) whose cmdline or env names `marker`."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        if process.pid == os.getpid() or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            environ = process.environ() if marker not in cmdline else {}
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if marker in cmdline or any(marker in value for value in environ.values()):
            found.append(f"{process.pid}: {cmdline}")
    return found


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """An empty cwd (so no project .env is read) with the data folder inside."""
    yield tmp_path
    leftovers = _processes_mentioning(str(tmp_path))
    assert leftovers == [], f"processes left running: {leftovers}"


def test_console_script_is_installed() -> None:
    assert TASKDECK.is_file() and os.access(TASKDECK, os.X_OK)


def test_bad_port_is_one_error_line_and_exit_2(workdir: Path) -> None:
    result = _taskdeck(
        "web", cwd=workdir, env=_env(workdir / "data", TASKDECK_PORT="abc")
    )

    assert result.returncode == 2
    _assert_one_error_line(result.stderr, starts_with=f"{ERROR_PREFIX}TASKDECK_PORT")
    assert result.stdout == ""


def test_bad_database_url_does_not_print_the_password(workdir: Path) -> None:
    result = _taskdeck(
        "migrate",
        cwd=workdir,
        env=_env(workdir / "data", TASKDECK_DATABASE_URL="mysql://app:hunter2@db/x"),
    )

    assert result.returncode == 2
    line = _assert_one_error_line(result.stderr, f"{ERROR_PREFIX}TASKDECK_DATABASE_URL")
    assert "hunter2" not in line and "hunter2" not in result.stdout


def test_migrate_prints_the_revision_and_exits_0(workdir: Path) -> None:
    result = _taskdeck("migrate", cwd=workdir, env=_env(workdir / "data"))

    head = head_revision()
    assert head is not None
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith(head)
    assert (workdir / "data" / "taskdeck.db").is_file()


def test_worker_without_redis_url_exits_2_with_a_clear_line(workdir: Path) -> None:
    result = _taskdeck("worker", cwd=workdir, env=_env(workdir / "data"))

    assert result.returncode == 2
    line = _assert_one_error_line(result.stderr)
    assert "TASKDECK_REDIS_URL" in line


def test_run_on_a_taken_port_exits_1_and_starts_nothing(workdir: Path) -> None:
    """A second `taskdeck run` must say the port is taken, not half-start."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = _taskdeck(
            "run",
            cwd=workdir,
            env=_env(workdir / "data", TASKDECK_PORT=str(port), TASKDECK_HOST="127.0.0.1"),
        )

    assert result.returncode == 1, result.stderr
    line = _assert_one_error_line(result.stderr)
    assert str(port) in line
    assert "TASKDECK_PORT" in line, "the message says how to fix it"
    assert _processes_mentioning(str(workdir)) == []


def test_web_with_a_file_as_data_dir_and_a_given_key_fails_cleanly(workdir: Path) -> None:
    not_a_dir = workdir / "data"
    not_a_dir.write_text("I am a file")
    env = _env(not_a_dir, TASKDECK_PORT=str(_free_port()), TASKDECK_SECRET_KEY="k" * 40)

    result = _taskdeck("web", cwd=workdir, env=env)

    assert result.returncode != 0
    _assert_one_error_line(result.stderr)
    assert not_a_dir.read_text() == "I am a file"


def test_web_with_a_file_as_data_dir_fails_with_one_line(workdir: Path) -> None:
    """The default setup (no key given) must fail as cleanly as any other."""
    not_a_dir = workdir / "data"
    not_a_dir.write_text("I am a file")
    env = _env(not_a_dir, TASKDECK_PORT=str(_free_port()))

    result = _taskdeck("web", cwd=workdir, env=env)

    assert result.returncode != 0
    _assert_one_error_line(result.stderr)


def test_keys_rotate_moves_credentials_to_the_new_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encrypted under key A; after `keys rotate` with B (and A as old),
    key B alone reads them, and a wrong key is one clear error line."""
    from app.db import get_engine, session_scope
    from app.migrate import upgrade_to_head
    from app.models.profiles import ProfileInput
    from app.services import profiles as profile_store
    from app.settings import get_settings

    data_dir = tmp_path / "data"
    key_a, key_b = "a" * 40, "b" * 40

    def use(**env: str) -> None:
        for name in ("TASKDECK_SECRET_KEY", "TASKDECK_OLD_SECRET_KEYS"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("TASKDECK_DATA_DIR", str(data_dir))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        get_engine.cache_clear()

    use(TASKDECK_SECRET_KEY=key_a)
    upgrade_to_head()
    with session_scope() as session:
        profile = profile_store.create_profile(
            session=session,
            data=ProfileInput(
                name="p", base_url="https://api.example.com",
                auth={"kind": "bearer", "token": "tok-rotate-me-123"},
            ),
            actor=None,
        )

    wrong = _taskdeck("keys", "rotate", cwd=tmp_path, env=_env(
        data_dir, TASKDECK_SECRET_KEY=key_b, TASKDECK_LOG_LEVEL="ERROR"))
    assert wrong.returncode == 1
    assert "cannot be decrypted" in _assert_one_error_line(wrong.stderr)

    done = _taskdeck("keys", "rotate", cwd=tmp_path, env=_env(
        data_dir, TASKDECK_SECRET_KEY=key_b, TASKDECK_OLD_SECRET_KEYS=key_a,
        TASKDECK_LOG_LEVEL="WARNING"))
    assert done.returncode == 0, done.stderr
    assert "1 profile" in done.stdout

    use(TASKDECK_SECRET_KEY=key_b)
    with session_scope() as session:
        resolved = profile_store.resolve_profile(session=session, profile_id=profile.id)
    assert resolved.auth["token"] == "tok-rotate-me-123"
    get_settings.cache_clear()
    get_engine.cache_clear()


def _cli_with_stdin(
    *args: str, cwd: Path, env: dict[str, str], stdin: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TASKDECK), *args], cwd=cwd, env=env, input=stdin, capture_output=True,
        text=True, timeout=COMMAND_TIMEOUT_S,
    )


def _error_line(stderr: str) -> str:
    """The one error line among the log lines (the first start migrates)."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith(ERROR_PREFIX)]
    assert len(errors) == 1, stderr
    return errors[0]


def test_users_create_refuses_bad_input_with_one_line_and_creates_nothing(
    workdir: Path,
) -> None:
    env = _env(workdir / "data")

    def create(*args: str, password: str = "a good long passphrase") -> subprocess.CompletedProcess[str]:
        return _cli_with_stdin("users", "create", *args, "--password-stdin", cwd=workdir,
                               env=env, stdin=password + "\n")

    first_viewer = create("--email", "v@example.com", "--role", "viewer")
    assert first_viewer.returncode == 1
    assert "first user must be an admin" in _error_line(first_viewer.stderr)

    for args, password, names in [
        (("--email", "not-an-email", "--role", "admin"), "a good long passphrase", "email"),
        (("--email", "a@example.com", "--role", "boss"), "a good long passphrase", "role"),
        (("--email", "a@example.com", "--role", "admin"), "short", "password"),
    ]:
        refused = create(*args, password=password)
        assert refused.returncode == 1, refused.stdout
        line = _error_line(refused.stderr)
        assert names in line and password not in line

    admin = create("--email", "Admin@Example.com", "--role", "admin")
    assert admin.returncode == 0, admin.stderr
    assert admin.stdout.startswith("created admin admin@example.com")
    again = create("--email", "admin@example.com", "--role", "admin")
    assert again.returncode == 1 and "exists already" in _error_line(again.stderr)
    viewer = create("--email", "v@example.com", "--role", "viewer")  # not the first any more
    assert viewer.returncode == 0, viewer.stderr


def test_tokens_create_prints_the_token_once_for_an_active_user_only(workdir: Path) -> None:
    env = _env(workdir / "data")
    made = _cli_with_stdin("users", "create", "--email", "a@example.com", "--role", "admin",
                           "--password-stdin", cwd=workdir, env=env,
                           stdin="a good long passphrase\n")
    assert made.returncode == 0, made.stderr

    token = _taskdeck("tokens", "create", "--email", "A@example.com", cwd=workdir, env=env)
    assert token.returncode == 0, token.stderr
    assert re.fullmatch(r"td_\S{20,}", token.stdout.strip())
    unknown = _taskdeck("tokens", "create", "--email", "ghost@example.com", cwd=workdir, env=env)
    assert unknown.returncode == 1
    assert "no active user" in _error_line(unknown.stderr)
    bad_days = _taskdeck("tokens", "create", "--email", "a@example.com", "--expires-days", "0",
                         cwd=workdir, env=env)
    assert bad_days.returncode == 2 and "expires-days" in bad_days.stderr


def _closed_port_url(password: str) -> tuple[str, int]:
    """A Redis URL with a password, at a loopback port nothing listens on."""
    port = _free_port()
    return f"redis://:{password}@127.0.0.1:{port}/0", port


@pytest.mark.parametrize("command", ["worker", "run"])
def test_unreachable_redis_is_one_line_exit_1_and_starts_nothing(
    workdir: Path, command: str
) -> None:
    """Not a trace (worker), not "Taskdeck is running" and a death a minute
    later (run): one line naming the setting and the address, never the password."""
    url, port = _closed_port_url("hunter2")
    env = _env(workdir / "data", TASKDECK_REDIS_URL=url, TASKDECK_PORT=str(_free_port()))

    result = _taskdeck(command, cwd=workdir, env=env)

    assert result.returncode == 1, result.stderr
    line = _assert_one_error_line(result.stderr)
    assert line == (
        f"{ERROR_PREFIX}TASKDECK_REDIS_URL: cannot reach Redis at 127.0.0.1:{port} "
        "(ConnectionRefusedError)"
    )
    assert "hunter2" not in result.stderr + result.stdout
    assert "Taskdeck is running" not in result.stdout
    assert not (workdir / "data" / "taskdeck.db").exists(), "checked before migrating"
    assert _processes_mentioning(str(workdir)) == []


def test_worker_with_a_wrong_redis_password_fails_at_once(workdir: Path, redis_url: str) -> None:
    wrong = re.sub(r"//:[^@]*@", "//:not-the-password@", redis_url)
    started_s = time.monotonic()

    result = _taskdeck("worker", cwd=workdir, env=_env(workdir / "data", TASKDECK_REDIS_URL=wrong))

    assert result.returncode == 1, result.stderr
    line = _assert_one_error_line(result.stderr)
    assert line.startswith(f"{ERROR_PREFIX}TASKDECK_REDIS_URL: Redis at 127.0.0.1:")
    assert line.endswith("rejected the password")
    assert "not-the-password" not in result.stderr
    assert time.monotonic() - started_s < 5, "a refused password is not retried"


@pytest.mark.parametrize("host", ["999.1.1.1", "no-such-host.invalid", "192.0.2.1"])
def test_web_on_a_host_that_is_not_ours_says_so(workdir: Path, host: str) -> None:
    """A name that does not resolve, or an address of another machine
    (192.0.2.1 is reserved for documentation), is not a port in use."""
    env = _env(workdir / "data", TASKDECK_HOST=host, TASKDECK_PORT=str(_free_port()))

    result = _taskdeck("web", cwd=workdir, env=env)

    assert result.returncode == 1, result.stderr
    line = _assert_one_error_line(result.stderr)
    assert line.startswith(
        f"{ERROR_PREFIX}cannot bind TASKDECK_HOST={host}: not an address of this machine"
    )
    assert "another program" not in line


def test_database_under_a_regular_file_names_the_setting(workdir: Path) -> None:
    a_file = workdir / "notes.txt"
    a_file.write_text("I am a file")
    env = _env(workdir / "data", TASKDECK_DATABASE_URL=f"sqlite:///{a_file}/taskdeck.db")

    result = _taskdeck("migrate", cwd=workdir, env=env)

    assert result.returncode == 1, result.stderr
    line = _assert_one_error_line(result.stderr)
    assert line.startswith(f"{ERROR_PREFIX}TASKDECK_DATABASE_URL: ")
    assert f"{a_file} is a file, not a folder" in line
    assert "FileExistsError" not in line and "NotADirectoryError" not in line
    assert a_file.read_text() == "I am a file"


def test_data_dir_under_a_regular_file_names_the_setting(workdir: Path) -> None:
    """With a given key nothing else touches the data folder first: the
    database is what finds the file in the way."""
    a_file = workdir / "notes.txt"
    a_file.write_text("I am a file")
    env = _env(a_file / "data", TASKDECK_SECRET_KEY="k" * 40, TASKDECK_PORT=str(_free_port()))

    result = _taskdeck("web", cwd=workdir, env=env)

    assert result.returncode == 1, result.stderr
    line = _assert_one_error_line(result.stderr)
    assert line.startswith(f"{ERROR_PREFIX}TASKDECK_DATA_DIR: ")
    assert f"{a_file} is a file, not a folder" in line


def test_web_warns_about_an_unreachable_redis_and_goes_on(workdir: Path) -> None:
    """The web server works without Redis (pages from the database, runs kept
    queued), so an unreachable one is a warning, not a refusal. A database
    under a file stops it right after, before Reflex starts: the error line
    shows that it went on past the Redis check."""
    url, port = _closed_port_url("hunter2")
    a_file = workdir / "notes.txt"
    a_file.write_text("I am a file")
    env = _env(
        workdir / "data", TASKDECK_REDIS_URL=url, TASKDECK_PORT=str(_free_port()),
        TASKDECK_DATABASE_URL=f"sqlite:///{a_file}/taskdeck.db",
    )

    result = _taskdeck("web", cwd=workdir, env=env)

    assert "Traceback" not in result.stderr
    warning, error = [line for line in result.stderr.splitlines() if line.strip()]
    assert warning.startswith(
        f"taskdeck: warning: TASKDECK_REDIS_URL: cannot reach Redis at 127.0.0.1:{port} "
        "(ConnectionRefusedError); starting anyway"
    )
    assert error.startswith(f"{ERROR_PREFIX}TASKDECK_DATABASE_URL: ")
    assert result.returncode == 1
    assert "hunter2" not in result.stderr + result.stdout
