"""Taskdeck's exceptions. Domain code raises these; the API and the UI
translate them into the one error shape or a message for the user.

    TaskdeckError                 code, http_status, user message, details
    ├── SettingsError             a setting is missing or invalid (500)
    ├── ValidationFailed          input that breaks a rule (422)
    ├── NotFound                  a named object does not exist (404)
    │   ├── RunNotFound
    │   └── TaskKindNotFound
    ├── Conflict                  the object is not in a state that allows it (409)
    │   └── RunStateConflict
    └── ServiceUnavailable        a dependency is down (503)
        ├── DatabaseUnavailable
        └── QueueUnavailable
"""

from __future__ import annotations

from typing import Any


class TaskdeckError(Exception):
    """Base of every error Taskdeck raises on purpose."""

    code: str = "TaskdeckError"
    http_status: int = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.code = cls.__name__


class SettingsError(TaskdeckError):
    """A setting is missing or invalid; the message names the variable."""


class ValidationFailed(TaskdeckError):
    """Input that breaks a rule; details name the fields."""

    http_status = 422


class NotFound(TaskdeckError):
    """A named object does not exist."""

    http_status = 404


class RunNotFound(NotFound):
    """No run has that id."""


class TaskKindNotFound(NotFound):
    """No task kind is registered under that name."""


class Conflict(TaskdeckError):
    """The object is not in a state that allows the action."""

    http_status = 409


class RunStateConflict(Conflict):
    """The run's status does not allow that transition."""


class ServiceUnavailable(TaskdeckError):
    """A dependency Taskdeck needs is down."""

    http_status = 503


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached."""


class QueueUnavailable(ServiceUnavailable):
    """Redis, and so the job queue, cannot be reached."""
