"""The supervisor against real child processes (small Python scripts).

Nothing is mocked: children, grandchildren, signals and process groups are
real, and every test checks that no process it started outlives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.supervisor import ChildSpec, Supervisor

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc, uses PR_SET_PDEATHSIG"
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# Writes its pid to argv[1] (atomically), then sleeps.
SLEEPER = """
import os, sys, time
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write(str(os.getpid()))
os.replace(tmp, sys.argv[1])
time.sleep(60)
"""

# Like SLEEPER, but ignores SIGTERM: only SIGKILL ends it.
STUBBORN = SLEEPER.replace(
    "import os, sys, time",
    "import os, signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)",
)

# Spawns a STUBBORN grandchild (pid in argv[2]), writes its own pid to argv[1].
FAMILY = """
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[3], sys.argv[2]])
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(60)
"""

# Appends a line to argv[1] on every start; dies on its first two starts.
CRASH_TWICE = """
import sys, time
with open(sys.argv[1], "a") as f:
    f.write("start\\n")
with open(sys.argv[1]) as f:
    starts = len(f.read().splitlines())
if starts <= 2:
    sys.exit(1)
time.sleep(60)
"""

# Runs a supervisor over one FAMILY child, exits with run()'s return code.
DRIVER = """
import sys
from app.supervisor import ChildSpec, Supervisor
family, stubborn, child_pid, grandchild_pid = sys.argv[1:5]
spec = ChildSpec("family", [sys.executable, "-c", family, child_pid, grandchild_pid, stubborn])
sys.exit(Supervisor([spec], stop_timeout_s=2.0, on_event=print).run())
"""


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(0.02)


def read_pid(path: Path, timeout_s: float = 10.0) -> int:
    wait_until(path.exists, timeout_s)
    return int(path.read_text())


def is_alive(pid: int) -> bool:
    """True unless the process is gone or a zombie (PID 1 here may not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def sleeper(name: str, pid_file: Path) -> ChildSpec:
    """A SLEEPER child, ready once it has written its pid."""
    argv = [sys.executable, "-c", SLEEPER, str(pid_file)]
    return ChildSpec(name, argv, ready=lambda: wait_until(pid_file.exists))


def family(name: str, child_pid: Path, grandchild_pid: Path) -> ChildSpec:
    argv = [sys.executable, "-c", FAMILY, str(child_pid), str(grandchild_pid), STUBBORN]
    return ChildSpec(name, argv)


class Running:
    """A supervisor whose run() executes in a background thread."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.returncode: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.returncode = self.supervisor.run()

    def join(self, timeout_s: float = 15.0) -> int:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "run() did not return"
        assert self.returncode is not None
        return self.returncode


@pytest.fixture
def events() -> list[str]:
    return []


@pytest.fixture
def start(events: list[str]) -> Iterator[Callable[..., Running]]:
    """Start a supervisor in a thread; always stopped at teardown."""
    started: list[Running] = []

    def _start(children: list[ChildSpec], **options: object) -> Running:
        options.setdefault("on_event", events.append)
        running = Running(Supervisor(children, **options))  # type: ignore[arg-type]
        started.append(running)
        return running

    yield _start
    for running in started:
        running.supervisor.stop()
        running.thread.join(15.0)


def test_stop_ends_children_and_grandchildren(
    tmp_path: Path, start: Callable[..., Running], events: list[str]
) -> None:
    running = start(
        [sleeper("first", tmp_path / "first"),
         family("second", tmp_path / "second", tmp_path / "grandchild")],
        stop_timeout_s=2.0,
    )
    pids = [read_pid(tmp_path / name) for name in ("first", "second", "grandchild")]
    assert all(is_alive(pid) for pid in pids)

    running.supervisor.stop()

    assert running.join() == 0
    # SIGKILL is delivered at once but a process takes a moment to die.
    wait_until(lambda: not [pid for pid in pids if is_alive(pid)], timeout_s=5)
    assert events[-1] == "stopping Taskdeck (stop requested)"


def test_child_ignoring_sigterm_is_killed_after_stop_timeout(
    tmp_path: Path, start: Callable[..., Running]
) -> None:
    spec = ChildSpec("stubborn", [sys.executable, "-c", STUBBORN, str(tmp_path / "pid")])
    running = start([spec], stop_timeout_s=0.3)
    pid = read_pid(tmp_path / "pid")

    started_s = time.monotonic()
    running.supervisor.stop()
    assert running.join() == 0
    assert 0.3 <= time.monotonic() - started_s < 5.0
    assert not is_alive(pid)


def test_crashing_child_is_restarted_with_backoff(
    tmp_path: Path, start: Callable[..., Running], events: list[str]
) -> None:
    starts = tmp_path / "starts"
    spec = ChildSpec("worker", [sys.executable, "-c", CRASH_TWICE, str(starts)])
    running = start([spec], backoff_initial_s=0.05, max_restarts=5)

    wait_until(lambda: starts.exists() and len(starts.read_text().splitlines()) == 3)
    time.sleep(0.3)  # the third start stays up: no further restarts
    assert len(starts.read_text().splitlines()) == 3
    assert running.thread.is_alive()
    running.supervisor.stop()

    assert running.join() == 0
    assert events[:2] == [
        "worker exited with code 1; restarting in 0.05s",
        "worker exited with code 1; restarting in 0.1s",
    ]


def test_child_that_keeps_dying_stops_everything(
    tmp_path: Path, start: Callable[..., Running], events: list[str]
) -> None:
    dying = ChildSpec("worker", [sys.executable, "-c", "import sys; sys.exit(3)"])
    running = start(
        [sleeper("redis", tmp_path / "redis"), dying],
        max_restarts=2, restart_window_s=5.0, backoff_initial_s=0.05,
    )
    redis_pid = read_pid(tmp_path / "redis")

    assert running.join(timeout_s=5.0) == 1
    assert events[-1] == "worker keeps dying (3 exits in 5s); stopping Taskdeck"
    assert not is_alive(redis_pid)


def test_failed_ready_check_stops_earlier_children(
    tmp_path: Path, start: Callable[..., Running], events: list[str]
) -> None:
    def never_ready() -> None:
        raise RuntimeError("no answer on port 6399")

    children = [
        sleeper("redis", tmp_path / "redis"),
        ChildSpec("worker", [sys.executable, "-c", SLEEPER, str(tmp_path / "worker")],
                  ready=never_ready),
        sleeper("web", tmp_path / "web"),
    ]
    running = start(children)

    assert running.join() == 1
    assert events == ["worker did not become ready: no answer on port 6399; stopping Taskdeck"]
    assert not is_alive(int((tmp_path / "redis").read_text()))
    if (tmp_path / "worker").exists():  # it may have been stopped before writing
        assert not is_alive(int((tmp_path / "worker").read_text()))
    assert not (tmp_path / "web").exists()


def test_exec_error_fails_the_start(
    tmp_path: Path, start: Callable[..., Running], events: list[str]
) -> None:
    children = [sleeper("redis", tmp_path / "redis"),
                ChildSpec("web", [str(tmp_path / "no-such-binary")])]
    running = start(children)

    assert running.join() == 1
    assert events[0].startswith("web could not start: ")
    assert events[0].endswith("; stopping Taskdeck")
    assert not is_alive(int((tmp_path / "redis").read_text()))


def test_children_start_in_order_after_ready(
    tmp_path: Path, start: Callable[..., Running]
) -> None:
    first_pid = tmp_path / "first"
    seen_by_second: list[bool] = []
    children = [
        ChildSpec("first", [sys.executable, "-c", SLEEPER, str(first_pid)],
                  ready=lambda: wait_until(first_pid.exists)),
        ChildSpec("second", [sys.executable, "-c", SLEEPER, str(tmp_path / "second")],
                  env={"TASKDECK_TEST_VAR": "1"},
                  ready=lambda: seen_by_second.append(first_pid.exists())),
    ]
    running = start(children)
    second_pid = read_pid(tmp_path / "second")
    environ = Path(f"/proc/{second_pid}/environ").read_bytes().split(b"\0")
    running.supervisor.stop()

    assert running.join() == 0
    assert seen_by_second == [True]
    assert b"TASKDECK_TEST_VAR=1" in environ
    assert f"PATH={os.environ['PATH']}".encode() in environ  # env adds, not replaces


def test_run_in_main_thread_restores_signal_handlers(tmp_path: Path) -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    supervisor = Supervisor([sleeper("only", tmp_path / "only")], on_event=lambda line: None)

    def stop_once_started() -> None:
        read_pid(tmp_path / "only")
        supervisor.stop()

    stopper = threading.Thread(target=stop_once_started, daemon=True)
    stopper.start()

    assert supervisor.run() == 0
    stopper.join(5.0)
    assert {sig: signal.getsignal(sig) for sig in before} == before
    assert not is_alive(int((tmp_path / "only").read_text()))


def _start_driver(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, FAMILY, STUBBORN,
         str(tmp_path / "child"), str(tmp_path / "grandchild")],
        cwd=REPO_ROOT,
        start_new_session=True,  # keep our signals away from pytest
    )
    try:
        return driver, read_pid(tmp_path / "child"), read_pid(tmp_path / "grandchild")
    except BaseException:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        raise


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_supervisor_process_stops_everything(
    tmp_path: Path, signum: signal.Signals
) -> None:
    driver, child, grandchild = _start_driver(tmp_path)

    driver.send_signal(signum)

    assert driver.wait(timeout=10) == 0
    wait_until(lambda: not is_alive(child) and not is_alive(grandchild), timeout_s=5)


def test_child_dies_when_supervisor_is_killed(tmp_path: Path) -> None:
    driver, child, grandchild = _start_driver(tmp_path)
    try:
        driver.kill()
        driver.wait(timeout=5)
        wait_until(lambda: not is_alive(child), timeout_s=5.0)  # PR_SET_PDEATHSIG
    finally:
        # The grandchild ignores SIGTERM and is not covered by PDEATHSIG: clean up.
        for pid in (child, grandchild):
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_stop_during_a_slow_ready_check_returns_at_once(
    tmp_path: Path, start: Callable[..., Running]
) -> None:
    # A first frontend build can keep the web's ready check waiting for minutes;
    # Ctrl-C must not wait for it.
    pid_file = tmp_path / "web"
    slow = ChildSpec(
        "web", [sys.executable, "-c", SLEEPER, str(pid_file)], ready=lambda: time.sleep(60)
    )
    running = start([slow])
    pid = read_pid(pid_file)
    began = time.monotonic()
    running.supervisor.stop()

    assert running.join(timeout_s=10) == 0
    assert time.monotonic() - began < 10
    assert not is_alive(pid)


def test_child_dying_during_its_ready_check_fails_the_start_at_once(
    start: Callable[..., Running], events: list[str]
) -> None:
    dies = ChildSpec(
        "web", [sys.executable, "-c", "import sys; sys.exit(3)"], ready=lambda: time.sleep(60)
    )
    running = start([dies])

    assert running.join(timeout_s=10) == 1
    assert events == ["web exited with code 3 before it was ready; stopping Taskdeck"]
