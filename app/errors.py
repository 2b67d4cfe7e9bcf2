"""Taskdeck's exceptions. Domain code raises these; the API and the UI
translate them into the one error shape or a message for the user.

    TaskdeckError                 code, http_status, user message, details
    ├── SettingsError             a setting is missing or invalid (500)
    ├── SecretUnreadable          a stored credential cannot be decrypted (500)
    ├── ValidationFailed          input that breaks a rule (422)
    ├── Unauthenticated           nobody is signed in, or the proof is bad (401)
    │   └── InvalidCredentials    always "Wrong email or password"
    ├── Forbidden                 signed in, but the role does not allow it (403)
    ├── NotFound                  a named object does not exist (404)
    │   ├── RunNotFound
    │   ├── TaskKindNotFound
    │   ├── UserNotFound
    │   ├── TokenNotFound
    │   └── ProfileNotFound
    ├── Conflict                  the object is not in a state that allows it (409)
    │   ├── RunStateConflict
    │   ├── UserExists
    │   ├── SetupAlreadyDone
    │   ├── LastAdmin
    │   ├── ProfileNameTaken
    │   └── ProfileInUse
    ├── OutboundError             an outside API failed or could not be reached (502)
    │   └── TokenRefreshFailed    the OAuth2 token endpoint gave no token
    ├── TooManyRequests           slow down and try again later (429)
    │   └── SignInLocked
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


class SecretUnreadable(TaskdeckError):
    """A stored credential cannot be decrypted with the configured secret key
    (the key changed without TASKDECK_OLD_SECRET_KEYS, or the data is damaged)."""

    MESSAGE = "A stored credential cannot be decrypted with the configured secret key"

    def __init__(self, message: str = MESSAGE, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)


class ValidationFailed(TaskdeckError):
    """Input that breaks a rule; details name the fields."""

    http_status = 422


class Unauthenticated(TaskdeckError):
    """Nobody is signed in, or the session or API token is missing or invalid."""

    http_status = 401

    def __init__(
        self, message: str = "Sign in to continue", *, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)


class InvalidCredentials(Unauthenticated):
    """A sign-in failed; the message never says whether the email exists."""

    MESSAGE = "Wrong email or password"

    def __init__(self, message: str = MESSAGE, *, details: dict[str, Any] | None = None) -> None:
        # Always the same words, whatever the caller passes: no hint for guessers.
        super().__init__(self.MESSAGE, details=details)


class Forbidden(TaskdeckError):
    """Signed in, but the role does not allow the action."""

    http_status = 403

    def __init__(
        self, message: str = "You may not do this", *, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)


class NotFound(TaskdeckError):
    """A named object does not exist."""

    http_status = 404


class RunNotFound(NotFound):
    """No run has that id."""


class TaskKindNotFound(NotFound):
    """No task kind is registered under that name."""


class UserNotFound(NotFound):
    """No user has that id."""


class TokenNotFound(NotFound):
    """No API token has that id."""


class ProfileNotFound(NotFound):
    """No profile has that id."""


class Conflict(TaskdeckError):
    """The object is not in a state that allows the action."""

    http_status = 409


class RunStateConflict(Conflict):
    """The run's status does not allow that transition."""


class UserExists(Conflict):
    """A user with that email (compared case-insensitively) already exists."""


class SetupAlreadyDone(Conflict):
    """The first admin exists already; /setup is closed."""


class LastAdmin(Conflict):
    """The change would leave no active admin."""


class ProfileNameTaken(Conflict):
    """Another profile has that name (compared case-insensitively)."""


class ProfileInUse(Conflict):
    """Tasks use the profile; details carry `tasks`, how many."""


class TooManyRequests(TaskdeckError):
    """Too many attempts in a short time; try again later."""

    http_status = 429


class SignInLocked(TooManyRequests):
    """Too many failed sign-ins for the account or the address; details carry
    `retry_after_s`."""

    MESSAGE = "Too many failed sign-ins. Try again in a minute."

    def __init__(self, message: str = MESSAGE, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)


class ServiceUnavailable(TaskdeckError):
    """A dependency Taskdeck needs is down."""

    http_status = 503


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached."""


class QueueUnavailable(ServiceUnavailable):
    """Redis, and so the job queue, cannot be reached."""


class OutboundError(TaskdeckError):
    """An outside API answered with an error or could not be reached; the
    message names the host and the error class, never a secret or a query."""

    http_status = 502
    MESSAGE = "The API answered with an error or could not be reached"

    def __init__(self, message: str = MESSAGE, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)


class TokenRefreshFailed(OutboundError):
    """The OAuth2 token endpoint gave no usable token; `details["reason"]`
    holds the server's error text (never a secret)."""
