"""Runs, their attempts and their log lines: the tables and the public shapes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Column, Index, String
from sqlmodel import Field, SQLModel

from app.models.common import PublicModel, UTCDateTime, utc_now


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


ACTIVE_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.RETRYING})
FINAL_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT}
)


class RunTrigger(StrEnum):
    MANUAL = "manual"
    API = "api"
    SCHEDULE = "schedule"
    RETRY = "retry"


class AttemptOutcome(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    WORKER_LOST = "worker_lost"


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_status_created", "status", "created_at"),
        Index("ix_runs_task_created", "task_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    task_id: int | None = Field(default=None)
    kind: str = Field(max_length=100)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Plain strings, not database enums: new statuses need no type migration.
    status: RunStatus = Field(default=RunStatus.QUEUED, sa_type=String(20))
    trigger: RunTrigger = Field(default=RunTrigger.MANUAL, sa_type=String(20))
    progress_percent: float = 0.0
    progress_message: str = Field(default="", max_length=500)
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error_type: str | None = Field(default=None, max_length=200)
    error_message: str | None = Field(default=None, max_length=2000)
    attempt_count: int = 0
    max_attempts: int = 1
    retry_of: int | None = Field(default=None)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Attempt(SQLModel, table=True):
    __tablename__ = "attempts"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True, ondelete="CASCADE")
    number: int
    outcome: AttemptOutcome = Field(default=AttemptOutcome.RUNNING, sa_type=String(20))
    worker_id: str | None = Field(default=None, max_length=200)
    error_type: str | None = Field(default=None, max_length=200)
    error_message: str | None = Field(default=None, max_length=2000)
    started_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RunLog(SQLModel, table=True):
    __tablename__ = "run_logs"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True, ondelete="CASCADE")
    attempt_number: int = 1
    level: str = Field(default="info", max_length=10)
    message: str = Field(max_length=4000)
    at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


# ----- public shapes (API responses, state data) -----


class Progress(BaseModel):
    percent: float = 0.0
    message: str = ""


class RunError(BaseModel):
    type: str
    message: str


class AttemptPublic(PublicModel):
    number: int
    outcome: AttemptOutcome
    worker_id: str | None
    error: RunError | None
    started_at: datetime
    finished_at: datetime | None


class RunPublic(PublicModel):
    id: int
    task_id: int | None
    kind: str
    status: RunStatus
    trigger: RunTrigger
    progress: Progress
    attempts: list[AttemptPublic] = []
    result: dict[str, Any] | None
    error: RunError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    retry_of: int | None


class RunLogPublic(PublicModel):
    attempt_number: int
    level: str
    message: str
    at: datetime
