"""e2e fixtures: Taskdeck started the way `taskdeck run` starts it (embedded
Redis, a worker, the production web server) on a free port with its own data
folder, and Debian's Chromium driven by pytest-playwright."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from app.embedded_redis import free_port

STARTUP_TIMEOUT_S = 600  # the first start builds the frontend
CHROMIUM = os.environ.get("TASKDECK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _wait_until_served(app: RunningApp) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise RuntimeError(f"taskdeck run exited early:\n{app.log_tail()}")
        try:
            with urllib.request.urlopen(f"{app.url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"taskdeck run did not serve {app.url} in time:\n{app.log_tail()}")


def start_app(data_dir: Path, log_path: Path) -> RunningApp:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TASKDECK_")},
        "TASKDECK_PORT": str(port),
        "TASKDECK_DATA_DIR": str(data_dir),
        "TASKDECK_LOG_FORMAT": "json",
    }
    taskdeck = Path(sys.executable).with_name("taskdeck")
    log_file = open(log_path, "wb")  # noqa: SIM115  closed with the process
    process = subprocess.Popen(
        [sys.executable, str(taskdeck), "run"],
        cwd=data_dir.parent,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    app = RunningApp(f"http://localhost:{port}", process, data_dir, log_path)
    try:
        _wait_until_served(app)
    except Exception:
        stop_app(app)
        raise
    return app


def stop_app(app: RunningApp, timeout_s: float = 30, grace_s: float = 5) -> int:
    """SIGTERM `taskdeck run` as an operator would, then check that it exited
    with 0 and took every process it started with it. Whatever is left is
    killed first, and only then does the test fail: a broken stop never
    leaks processes into the next test or onto the machine."""
    # Collected before the signal: once the supervisor is gone, an orphan is
    # no longer its descendant and would not be found.
    children = app.descendants()
    problems: list[str] = []
    returncode = app.process.poll()
    if returncode is not None:
        problems.append(f"taskdeck run had exited by itself with code {returncode}")
    else:
        app.process.send_signal(signal.SIGTERM)
        try:
            returncode = app.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            app.process.kill()
            returncode = app.process.wait()
            problems.append(f"taskdeck run did not stop within {timeout_s:g}s of SIGTERM")
        else:
            if returncode != 0:
                problems.append(f"taskdeck run exited with {returncode} on SIGTERM, not 0")

    def alive(process: psutil.Process) -> bool:
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    # A SIGKILLed grandchild may take a moment to go; a zombie is gone already.
    deadline = time.monotonic() + grace_s
    while (survivors := [child for child in children if alive(child)]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
    if survivors:
        described = []
        for survivor in survivors:
            try:
                described.append(f"{survivor.pid} {' '.join(survivor.cmdline())}")
                survivor.kill()
            except psutil.NoSuchProcess:
                pass
        problems.append(f"processes outlived taskdeck run (now killed): {described}")
    if problems:
        raise AssertionError("; ".join(problems) + "\n" + app.log_tail())
    return returncode


@pytest.fixture(scope="session")
def taskdeck_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    root = tmp_path_factory.mktemp("taskdeck-e2e")
    app = start_app(root / "data", root / "taskdeck.log")
    yield app
    stop_app(app)


@pytest.fixture(scope="session")
def base_url(taskdeck_app: RunningApp) -> str:
    return taskdeck_app.url


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    role: str


ADMIN = Account("admin@example.com", "correct horse battery staple", "admin")


def taskdeck_cli(app: RunningApp, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run the real `taskdeck` command against the running app's data."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TASKDECK_")},
        "TASKDECK_DATA_DIR": str(app.data_dir),
    }
    taskdeck = Path(sys.executable).with_name("taskdeck")
    return subprocess.run(
        [sys.executable, str(taskdeck), *args], input=stdin, env=env, capture_output=True,
        text=True, timeout=60,
    )


def sign_in(page, base_url: str, account: Account, next_path: str = "/") -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page.goto(f"{base_url}/login?next={next_path}")
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile("^" + re.escape(base_url + next_path.rstrip("/")) + "/?$"),
                             timeout=20_000)


@dataclass
class FirstRun:
    """What the first visit saw while creating the admin account."""

    redirected_to: str
    dashboard_after: bool


@pytest.fixture(scope="session")
def first_run(taskdeck_app: RunningApp, browser) -> FirstRun:  # type: ignore[no-untyped-def]
    """Create the admin through the one-time set-up page, as a new user would."""
    from playwright.sync_api import expect

    context = browser.new_context()
    page = context.new_page()
    page.goto(taskdeck_app.url)
    page.wait_for_url("**/setup", timeout=20_000)
    redirected_to = page.url
    page.get_by_label("Email").fill(ADMIN.email)
    page.get_by_label("Display name").fill("Ada Admin")
    page.get_by_label("Password (at least 12 characters)").fill(ADMIN.password)
    page.get_by_label("Repeat the password").fill(ADMIN.password)
    page.get_by_role("button", name="Create the admin account").click()
    page.wait_for_url(f"{taskdeck_app.url}/", timeout=20_000)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    context.close()
    return FirstRun(redirected_to=redirected_to, dashboard_after=True)


@pytest.fixture(scope="session")
def accounts(taskdeck_app: RunningApp, first_run: FirstRun) -> dict[str, Account]:
    """The admin, plus an operator and a viewer made with `taskdeck users create`."""
    made = {"admin": ADMIN}
    for role in ("operator", "viewer"):
        account = Account(f"{role}@example.com", f"{role} password 123", role)
        result = taskdeck_cli(
            taskdeck_app, "users", "create", "--email", account.email, "--role", role,
            "--password-stdin", stdin=account.password + "\n",
        )
        assert result.returncode == 0, result.stderr
        made[role] = account
    return made


@pytest.fixture
def admin_page(page, base_url: str, accounts: dict[str, Account]):  # type: ignore[no-untyped-def]
    sign_in(page, base_url, accounts["admin"])
    return page
