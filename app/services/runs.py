"""Runs in the database: create, change status (compare-and-set), record
attempts, progress and log lines, and read them back as public models.

Every status change goes through `transition()`, an
`UPDATE … WHERE id = :id AND status IN (:allowed)`, so a worker, the
reconciler and a user's cancel can race without a double transition.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from app.errors import RunNotFound, RunStateConflict
from app.kinds import get_kind
from app.models.common import utc_now
from app.models.runs import (
    Attempt,
    AttemptOutcome,
    AttemptPublic,
    Progress,
    Run,
    RunError,
    RunLog,
    RunLogPublic,
    RunPublic,
    RunStatus,
    RunTrigger,
)
from app.models.users import Principal
from app.services import audit

RUN_CANCEL = "run.cancel"
AUDIT_ACTIONS = (RUN_CANCEL,)
MAX_ERROR_MESSAGE_CHARS = 2000
MAX_LOG_MESSAGE_CHARS = 4000


def create_run(
    *,
    session: Session,
    kind: str,
    params: dict[str, Any],
    trigger: RunTrigger = RunTrigger.MANUAL,
    task_id: int | None = None,
    max_attempts: int = 1,
) -> RunPublic:
    """Validate params against the kind and store a queued run."""
    parsed = get_kind(kind).parse_params(params)
    run = Run(
        kind=kind,
        params=parsed.model_dump(mode="json"),
        trigger=trigger,
        task_id=task_id,
        max_attempts=max_attempts,
    )
    session.add(run)
    session.flush()
    return to_public(run, attempts=[])


def transition(
    *,
    session: Session,
    run_id: int,
    to: RunStatus,
    allowed_from: Iterable[RunStatus],
    **fields: Any,
) -> bool:
    """Move the run to `to` if its status is one of `allowed_from`.

    Returns False (changing nothing) when another writer got there first.
    """
    statement = (
        update(Run)
        .where(col(Run.id) == run_id, col(Run.status).in_([s.value for s in allowed_from]))
        .values(status=to.value, **fields)
    )
    return session.execute(statement).rowcount == 1  # type: ignore[attr-defined]


def start_attempt(*, session: Session, run_id: int, worker_id: str) -> int | None:
    """Mark the run running and open its next attempt; None if it may not start."""
    run = session.get(Run, run_id)
    if run is None:
        raise RunNotFound(f"Run {run_id} does not exist", details={"run_id": run_id})
    number = run.attempt_count + 1
    now = utc_now()
    started = transition(
        session=session,
        run_id=run_id,
        to=RunStatus.RUNNING,
        allowed_from=(RunStatus.QUEUED, RunStatus.RETRYING),
        attempt_count=number,
        started_at=run.started_at or now,
        progress_percent=0.0,
        progress_message="",
    )
    if not started:
        return None
    session.add(Attempt(run_id=run_id, number=number, worker_id=worker_id, started_at=now))
    return number


_OUTCOME_FOR_STATUS = {
    RunStatus.SUCCEEDED: AttemptOutcome.SUCCEEDED,
    RunStatus.FAILED: AttemptOutcome.FAILED,
    RunStatus.TIMED_OUT: AttemptOutcome.TIMED_OUT,
    RunStatus.CANCELLED: AttemptOutcome.CANCELLED,
}


def finish_run(
    *,
    session: Session,
    run_id: int,
    status: RunStatus,
    result: dict[str, Any] | None = None,
    error: RunError | None = None,
) -> bool:
    """Close the running attempt and move the run to a final status."""
    now = utc_now()
    fields: dict[str, Any] = {"finished_at": now, "result": result}
    if status is RunStatus.SUCCEEDED:
        fields.update(progress_percent=100.0)
    if error is not None:
        fields.update(
            error_type=error.type, error_message=error.message[:MAX_ERROR_MESSAGE_CHARS]
        )
    if not transition(
        session=session, run_id=run_id, to=status, allowed_from=(RunStatus.RUNNING,), **fields
    ):
        return False
    _close_running_attempt(
        session=session, run_id=run_id, outcome=_OUTCOME_FOR_STATUS[status], error=error
    )
    return True


def _close_running_attempt(
    *, session: Session, run_id: int, outcome: AttemptOutcome, error: RunError | None = None
) -> None:
    session.execute(
        update(Attempt)
        .where(
            col(Attempt.run_id) == run_id, col(Attempt.outcome) == AttemptOutcome.RUNNING.value
        )
        .values(
            outcome=outcome.value,
            finished_at=utc_now(),
            error_type=error.type if error else None,
            error_message=error.message[:MAX_ERROR_MESSAGE_CHARS] if error else None,
        )
    )


def cancel_run(*, session: Session, run_id: int, actor: Principal | None = None) -> RunPublic:
    """Cancel a run that has not finished; RunStateConflict if it has."""
    cancelled = transition(
        session=session,
        run_id=run_id,
        to=RunStatus.CANCELLED,
        allowed_from=(RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.RETRYING),
        finished_at=utc_now(),
    )
    if cancelled:
        _close_running_attempt(session=session, run_id=run_id, outcome=AttemptOutcome.CANCELLED)
        audit.record(
            session=session, action=RUN_CANCEL, actor=actor, object_type="run", object_id=run_id
        )
    run = get_run(session=session, run_id=run_id)
    if not cancelled:
        raise RunStateConflict(
            f"Run {run_id} is {run.status.value} and cannot be cancelled",
            details={"run_id": run_id, "status": run.status.value},
        )
    return run


def record_progress(*, session: Session, run_id: int, percent: float, message: str) -> None:
    """Store the latest progress of a running run (callers throttle this)."""
    session.execute(
        update(Run)
        .where(col(Run.id) == run_id, col(Run.status) == RunStatus.RUNNING.value)
        .values(progress_percent=percent, progress_message=message[:500])
    )


def add_log(
    *, session: Session, run_id: int, attempt_number: int, message: str, level: str = "info"
) -> RunLogPublic:
    line = RunLog(
        run_id=run_id,
        attempt_number=attempt_number,
        level=level,
        message=message[:MAX_LOG_MESSAGE_CHARS],
    )
    session.add(line)
    session.flush()
    return RunLogPublic.model_validate(line, from_attributes=True)


def get_run(*, session: Session, run_id: int) -> RunPublic:
    run = session.get(Run, run_id, populate_existing=True)
    if run is None:
        raise RunNotFound(f"Run {run_id} does not exist", details={"run_id": run_id})
    attempts = session.exec(
        select(Attempt).where(Attempt.run_id == run_id).order_by(col(Attempt.number))
    ).all()
    return to_public(run, attempts=list(attempts))


def list_recent_runs(*, session: Session, limit: int = 20) -> list[RunPublic]:
    runs = session.exec(select(Run).order_by(col(Run.id).desc()).limit(limit)).all()
    return [to_public(run, attempts=None) for run in runs]


def list_run_logs(*, session: Session, run_id: int, limit: int = 500) -> list[RunLogPublic]:
    lines = session.exec(
        select(RunLog).where(RunLog.run_id == run_id).order_by(col(RunLog.id)).limit(limit)
    ).all()
    return [RunLogPublic.model_validate(line, from_attributes=True) for line in lines]


def count_runs_by_status(*, session: Session) -> dict[str, int]:
    rows = session.exec(select(Run.status, func.count()).group_by(Run.status)).all()
    counts = {status.value: 0 for status in RunStatus}
    counts.update({str(status): count for status, count in rows})
    return counts


def to_public(run: Run, *, attempts: list[Attempt] | None) -> RunPublic:
    assert run.id is not None
    return RunPublic(
        id=run.id,
        task_id=run.task_id,
        kind=run.kind,
        status=RunStatus(run.status),
        trigger=RunTrigger(run.trigger),
        progress=Progress(percent=run.progress_percent, message=run.progress_message),
        attempts=[_attempt_public(a) for a in attempts or []],
        result=run.result,
        error=RunError(type=run.error_type, message=run.error_message or "")
        if run.error_type
        else None,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        retry_of=run.retry_of,
    )


def _attempt_public(attempt: Attempt) -> AttemptPublic:
    return AttemptPublic(
        number=attempt.number,
        outcome=AttemptOutcome(attempt.outcome),
        worker_id=attempt.worker_id,
        error=RunError(type=attempt.error_type, message=attempt.error_message or "")
        if attempt.error_type
        else None,
        started_at=attempt.started_at,
        finished_at=attempt.finished_at,
    )
