"""e2e fixtures: Taskdeck started the way `taskdeck run` starts it (embedded
Redis, a worker, the production web server) on a free port with its own data
folder, and Debian's Chromium driven by pytest-playwright."""

from __future__ import annotations

import os
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


def stop_app(app: RunningApp, timeout_s: float = 30) -> int:
    if app.process.poll() is None:
        app.process.send_signal(signal.SIGTERM)
    try:
        return app.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        for child in app.descendants():
            child.kill()
        app.process.kill()
        return app.process.wait()


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
