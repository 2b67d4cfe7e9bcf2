"""Run status changes against the real SQLite file: every transition is a
compare-and-set, so a worker, the reconciler and a user's cancel can race
without a double transition, and attempts tell who ran what and how it ended."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from app.db import session_scope
from app.errors import RunNotFound, RunStateConflict
from app.models.runs import AttemptOutcome, RunError, RunPublic, RunStatus
from app.services import runs as run_store

pytestmark = pytest.mark.integration

T = TypeVar("T")
THREADS = 8
MISSING_RUN_ID = 999_999


def _new_run() -> int:
    with session_scope() as session:
        return run_store.create_run(session=session, kind="demo", params={"steps": 2}).id


def _get(run_id: int) -> RunPublic:
    with session_scope() as session:
        return run_store.get_run(session=session, run_id=run_id)


def _start(run_id: int, worker_id: str = "worker-a") -> int | None:
    with session_scope() as session:
        return run_store.start_attempt(session=session, run_id=run_id, worker_id=worker_id)


def _finish(
    run_id: int,
    status: RunStatus,
    result: dict[str, object] | None = None,
    error: RunError | None = None,
) -> bool:
    with session_scope() as session:
        return run_store.finish_run(
            session=session, run_id=run_id, status=status, result=result, error=error
        )


def _cancel(run_id: int) -> RunPublic:
    with session_scope() as session:
        return run_store.cancel_run(session=session, run_id=run_id)


def _race(calls: list[Callable[[], T]]) -> list[T | BaseException]:
    """Run each call in its own thread, released at the same moment."""
    barrier = threading.Barrier(len(calls))
    results: list[T | BaseException | None] = [None] * len(calls)

    def worker(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as error:  # reported to the test, not swallowed
            results[index] = error

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a racing thread hung"
    return results  # type: ignore[return-value]


def test_new_run_is_queued_with_no_attempts(taskdeck: Path) -> None:
    run = _get(_new_run())

    assert run.status is RunStatus.QUEUED
    assert run.attempts == []
    assert run.started_at is None and run.finished_at is None


def test_second_start_returns_none_and_opens_no_attempt(taskdeck: Path) -> None:
    """A duplicate job delivery must not run the same attempt twice."""
    run_id = _new_run()

    assert _start(run_id, "worker-a") == 1
    assert _start(run_id, "worker-b") is None

    run = _get(run_id)
    assert run.status is RunStatus.RUNNING
    assert run.started_at is not None
    assert [(a.number, a.worker_id, a.outcome) for a in run.attempts] == [
        (1, "worker-a", AttemptOutcome.RUNNING)
    ]


def test_finish_of_a_run_that_is_not_running_changes_nothing(taskdeck: Path) -> None:
    run_id = _new_run()
    before = _get(run_id)

    assert _finish(run_id, RunStatus.SUCCEEDED, result={"x": 1}) is False

    after = _get(run_id)
    assert after == before
    assert after.status is RunStatus.QUEUED and after.result is None


def test_a_finished_run_cannot_be_finished_again(taskdeck: Path) -> None:
    """A late worker (or the reconciler) must not overwrite the outcome."""
    run_id = _new_run()
    _start(run_id)
    assert _finish(run_id, RunStatus.SUCCEEDED, result={"rows": 3}) is True
    done = _get(run_id)

    assert _finish(run_id, RunStatus.FAILED, error=RunError(type="Late", message="x")) is False

    assert _get(run_id) == done
    assert done.status is RunStatus.SUCCEEDED
    assert done.result == {"rows": 3}
    assert done.progress.percent == 100.0
    assert done.error is None


def test_cancel_a_queued_run_then_cancel_again_conflicts(taskdeck: Path) -> None:
    run_id = _new_run()

    cancelled = _cancel(run_id)

    assert cancelled.status is RunStatus.CANCELLED
    assert cancelled.finished_at is not None
    with pytest.raises(RunStateConflict) as caught:
        _cancel(run_id)
    assert caught.value.details == {"run_id": run_id, "status": "cancelled"}
    assert caught.value.http_status == 409
    assert _get(run_id).finished_at == cancelled.finished_at


def test_a_cancelled_run_cannot_be_started(taskdeck: Path) -> None:
    """A job still on the queue after a cancel must be skipped by the worker."""
    run_id = _new_run()
    _cancel(run_id)

    assert _start(run_id) is None

    run = _get(run_id)
    assert run.status is RunStatus.CANCELLED
    assert run.attempts == []
    assert run.started_at is None


def test_finish_after_cancel_of_a_running_run_keeps_it_cancelled(taskdeck: Path) -> None:
    """The user's cancel wins over the worker that finishes afterwards."""
    run_id = _new_run()
    _start(run_id)
    _cancel(run_id)

    assert _finish(run_id, RunStatus.SUCCEEDED, result={"late": True}) is False

    run = _get(run_id)
    assert run.status is RunStatus.CANCELLED
    assert run.result is None


def test_cancel_of_a_running_run_closes_its_attempt(taskdeck: Path) -> None:
    run_id = _new_run()
    _start(run_id, "worker-a")

    _cancel(run_id)

    (attempt,) = _get(run_id).attempts
    assert attempt.outcome is AttemptOutcome.CANCELLED
    assert attempt.finished_at is not None


def test_concurrent_finish_has_exactly_one_winner(taskdeck: Path) -> None:
    """Worker, reconciler and timeout racing to close a run: one wins, no errors."""
    run_id = _new_run()
    _start(run_id)
    statuses = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED]
    calls = [
        (lambda s=statuses[i % 4], i=i: _finish(run_id, s, result={"thread": i}))
        for i in range(THREADS)
    ]

    results = _race(calls)

    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert results.count(True) == 1
    assert results.count(False) == THREADS - 1
    winner = results.index(True)
    run = _get(run_id)
    assert run.status is statuses[winner % 4]
    assert run.result == {"thread": winner}
    (attempt,) = run.attempts
    assert attempt.outcome.value == statuses[winner % 4].value


def test_concurrent_start_opens_exactly_one_attempt(taskdeck: Path) -> None:
    """Two workers handed the same job: one runs it, the others skip."""
    run_id = _new_run()
    calls = [(lambda i=i: _start(run_id, f"worker-{i}")) for i in range(THREADS)]

    results = _race(calls)

    assert [r for r in results if isinstance(r, BaseException)] == []
    assert results.count(1) == 1
    assert results.count(None) == THREADS - 1
    run = _get(run_id)
    assert len(run.attempts) == 1
    assert run.attempts[0].worker_id == f"worker-{results.index(1)}"


def test_count_runs_by_status_lists_every_status(taskdeck: Path) -> None:
    """The dashboard shows a zero, not a missing tile, for empty statuses."""
    queued = [_new_run() for _ in range(3)]
    _start(queued[0])
    _finish(queued[0], RunStatus.SUCCEEDED)
    _start(queued[1])
    _cancel(_new_run())

    with session_scope() as session:
        counts = run_store.count_runs_by_status(session=session)

    assert set(counts) == {status.value for status in RunStatus}
    assert counts["queued"] == 1
    assert counts["running"] == 1
    assert counts["succeeded"] == 1
    assert counts["cancelled"] == 1
    assert counts["failed"] == counts["retrying"] == counts["timed_out"] == 0
    assert sum(counts.values()) == 4


def test_count_runs_by_status_on_an_empty_database(taskdeck: Path) -> None:
    with session_scope() as session:
        counts = run_store.count_runs_by_status(session=session)

    assert counts == {status.value: 0 for status in RunStatus}


@pytest.mark.parametrize(
    "action",
    [
        lambda: _get(MISSING_RUN_ID),
        lambda: _start(MISSING_RUN_ID),
        lambda: _cancel(MISSING_RUN_ID),
    ],
    ids=["get", "start", "cancel"],
)
def test_missing_run_raises_run_not_found(taskdeck: Path, action: Callable[[], object]) -> None:
    """The API turns this into a 404, not a 409 or a 500."""
    with pytest.raises(RunNotFound) as caught:
        action()

    assert caught.value.details == {"run_id": MISSING_RUN_ID}
    assert caught.value.http_status == 404


def test_finish_of_a_missing_run_returns_false(taskdeck: Path) -> None:
    assert _finish(MISSING_RUN_ID, RunStatus.SUCCEEDED) is False


def test_attempt_is_recorded_with_worker_and_closed_with_outcome(taskdeck: Path) -> None:
    run_id = _new_run()
    _start(run_id, "host-1:4242:abc123")
    long_message = "x" * 5000

    assert _finish(
        run_id, RunStatus.FAILED, error=RunError(type="HTTPError", message=long_message)
    )

    run = _get(run_id)
    assert run.status is RunStatus.FAILED
    assert run.finished_at is not None
    assert run.error is not None and run.error.type == "HTTPError"
    assert len(run.error.message) == run_store.MAX_ERROR_MESSAGE_CHARS
    (attempt,) = run.attempts
    assert attempt.number == 1
    assert attempt.worker_id == "host-1:4242:abc123"
    assert attempt.outcome is AttemptOutcome.FAILED
    assert attempt.error is not None and attempt.error.type == "HTTPError"
    assert attempt.finished_at is not None
    assert attempt.started_at <= attempt.finished_at
    assert attempt.finished_at.tzinfo is not None, "times stay UTC-aware"
