"""A small process supervisor for `taskdeck run`.

It starts the embedded Redis, the arq worker and the web server as separate
child processes, in order, restarts a child that dies (with exponential
backoff), gives up when one keeps dying, and stops everything in reverse order
on SIGINT / SIGTERM or `Supervisor.stop()`.

Each child runs in its own session, hence its own process group: Ctrl-C in the
terminal reaches only the supervisor, which then stops the children in order,
and stopping a child signals its whole group, so its own children (e.g. the
web server's workers) go with it. On Linux each child also gets
PR_SET_PDEATHSIG=SIGTERM, so it dies if the supervisor is SIGKILLed.

Stdlib and structlog only: no reflex or arq imports.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import structlog

__all__ = ["ChildSpec", "Supervisor"]

log = structlog.get_logger(__name__)

_POLL_S = 0.1
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_SIGTERM = int(signal.SIGTERM)
# Loaded once in the parent: loading a library between fork and exec is unsafe.
_libc: ctypes.CDLL | None = (
    ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
)


@dataclass(frozen=True)
class ChildSpec:
    """One child process: what to run and how to know it is ready.

    `env` holds variables added to (or overriding) the supervisor's own
    environment; None inherits it unchanged. `ready` is a blocking check run
    right after the child starts (e.g. waiting for Redis to answer); if it
    raises, the start has failed.
    """

    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    ready: Callable[[], None] | None = None


@dataclass
class _Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes] | None = None
    exit_times: deque[float] = field(default_factory=deque)  # monotonic seconds
    restart_at: float | None = None


def _print_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _describe_exit(returncode: int) -> str:
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"was killed by signal {-returncode}"


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already empty


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to SIGTERM the child when we die (Linux)."""
    libc = _libc
    if libc is None:
        return None

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, _SIGTERM, 0, 0, 0)
        # If we died between fork and prctl, no signal will ever come.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


class Supervisor:
    """Start, watch, restart and stop a fixed list of child processes.

    Call `run()` once. Signal handlers for SIGINT and SIGTERM are installed
    only when `run()` is called from the main thread (Python allows no other);
    from another thread, use `stop()`. Note that PR_SET_PDEATHSIG fires when
    the *thread* that started a child exits, which here is the thread running
    `run()`: it returns only after stopping every child, so that is safe.

    `on_event` receives one human-readable line per notable event (a start
    failure, an exit and restart, giving up, stopping); by default the lines
    go to stderr. Every event is also logged with structlog.
    """

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        max_restarts: int = 5,
        restart_window_s: float = 60.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
        stop_timeout_s: float = 10.0,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self._children = [_Child(spec) for spec in children]
        self._max_restarts = max_restarts
        self._restart_window_s = restart_window_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._stop_timeout_s = stop_timeout_s
        self._on_event = on_event or _print_stderr
        # A plain flag, not a threading.Event: a signal handler must not take
        # locks the interrupted main thread may hold.
        self._stop_reason: str | None = None

    def stop(self, reason: str = "stop requested") -> None:
        """Ask `run()` to stop all children and return 0 (any thread, or a signal handler)."""
        self._stop_reason = reason

    def run(self) -> int:
        """Supervise until stopped (returns 0) or until a child cannot be kept up (1)."""
        previous = self._install_signal_handlers()
        try:
            return self._run()
        finally:
            for child in reversed(self._children):
                self._stop_child(child)
            for signum, handler in previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def _run(self) -> int:
        for child in self._children:
            if self._stop_reason is not None:
                break
            error = self._start(child)
            if error is not None:
                self._report("error", "child_start_failed", f"{error}; stopping Taskdeck",
                             child=child.spec.name)
                return 1
        while self._stop_reason is None:
            time.sleep(_POLL_S)
            now = time.monotonic()
            for child in self._children:
                if self._check(child, now):
                    return 1
        self._report("info", "supervisor_stopping", f"stopping Taskdeck ({self._stop_reason})",
                     reason=self._stop_reason)
        return 0

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stop(signal.Signals(signum).name)

        return {signum: signal.signal(signum, on_signal)
                for signum in (signal.SIGINT, signal.SIGTERM)}

    def _start(self, child: _Child) -> str | None:
        """Start a child and wait until it is ready; a message if it failed."""
        spec = child.spec
        env = None if spec.env is None else {**os.environ, **spec.env}
        try:
            child.proc = subprocess.Popen(
                spec.argv,
                env=env,
                stdin=subprocess.DEVNULL,  # a background group reading the tty would stop
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return f"{spec.name} could not start: {exc}"
        log.info("child_started", child=spec.name, pid=child.proc.pid)
        if spec.ready is not None:
            error = self._wait_ready(child)
            if error is not None:
                returncode = child.proc.poll()
                self._stop_child(child)
                if returncode is not None:
                    return f"{spec.name} {_describe_exit(returncode)} before it was ready"
                return f"{spec.name} did not become ready: {error}"
        return None

    def _wait_ready(self, child: _Child) -> str | None:
        """Run the ready check in a thread, so that a stop request or the
        child's death ends the wait at once; an error message if it failed."""
        assert child.spec.ready is not None and child.proc is not None
        outcome: list[BaseException | None] = []

        def check() -> None:
            try:
                child.spec.ready()  # type: ignore[misc]
            except BaseException as exc:  # handed to the supervising thread
                outcome.append(exc)
            else:
                outcome.append(None)

        threading.Thread(target=check, name=f"ready-{child.spec.name}", daemon=True).start()
        while not outcome:
            if self._stop_reason is not None:
                return None  # the main loop stops everything
            if child.proc.poll() is not None:
                return "exited"
            time.sleep(_POLL_S)
        return None if outcome[0] is None else str(outcome[0])

    def _check(self, child: _Child, now: float) -> bool:
        """Notice an exit, restart once the backoff is over; True if we must give up."""
        if child.proc is not None:
            returncode = child.proc.poll()
            if returncode is None:
                return False
            self._stop_child(child)  # reaps and kills whatever it left in its group
            return self._on_exit(child, now, f"{child.spec.name} {_describe_exit(returncode)}",
                                 returncode)
        if child.restart_at is not None and now >= child.restart_at:
            child.restart_at = None
            error = self._start(child)
            if error is not None:
                return self._on_exit(child, time.monotonic(), error, None)
        return False

    def _on_exit(self, child: _Child, now: float, what: str, returncode: int | None) -> bool:
        name = child.spec.name
        child.exit_times.append(now)
        while now - child.exit_times[0] > self._restart_window_s:
            child.exit_times.popleft()
        exits = len(child.exit_times)
        if exits > self._max_restarts:
            self._report("error", "child_keeps_dying",
                         f"{name} keeps dying ({exits} exits in {self._restart_window_s:g}s); "
                         "stopping Taskdeck",
                         child=name, returncode=returncode, exits=exits)
            return True
        # Backoff grows with the exits still inside the window, so a child
        # that stayed up for a whole window starts again from the initial delay.
        delay_s = min(self._backoff_initial_s * 2 ** (exits - 1), self._backoff_max_s)
        child.restart_at = now + delay_s
        self._report("warning", "child_exited", f"{what}; restarting in {delay_s:g}s",
                     child=name, returncode=returncode, restart_in_s=delay_s)
        return False

    def _stop_child(self, child: _Child) -> None:
        """SIGTERM the child's group, wait, then SIGKILL what is left of it."""
        proc, child.proc = child.proc, None
        if proc is None:
            return
        pgid = proc.pid  # a session leader's pid is its process group id
        if proc.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            try:
                proc.wait(timeout=self._stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("child_stop_timeout", child=child.spec.name,
                            timeout_s=self._stop_timeout_s)
        # Once the leader is gone, anything left in its group is an orphan:
        # kill it rather than wait (zombies would make an "empty group" wait hang
        # where PID 1 does not reap).
        _signal_group(pgid, signal.SIGKILL)
        returncode = proc.wait()
        log.info("child_stopped", child=child.spec.name, pid=pgid, returncode=returncode)

    def _report(self, level: str, event: str, line: str, **fields: Any) -> None:
        getattr(log, level)(event, **fields)
        self._on_event(line)
