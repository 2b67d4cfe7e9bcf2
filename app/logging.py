"""structlog set up once for the web process, the worker and the CLI.

Console output on a terminal, JSON lines otherwise. Standard-library loggers
(arq, granian, alembic, uvicorn-style servers) are routed through the same
processors, and context bound with `bind_contextvars` (request_id, run_id,
user_id) appears on every line.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from typing import Any

import structlog

from app.redaction import redact_event

_configured: tuple[str, str] | None = None


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        # Tracebacks become text before redaction, so the masking of text
        # applies to them: URL user-info, secret `name=value` pairs,
        # Authorization and Bearer credentials. A secret in an exception
        # message in any other shape stays (redact_event masks by name).
        structlog.processors.format_exc_info,
        redact_event,
    ]


def resolve_format(log_format: str) -> str:
    """`auto` means console on a terminal and JSON otherwise."""
    if log_format != "auto":
        return log_format
    return "console" if sys.stderr.isatty() else "json"


# Libraries that attach handlers of their own; their records go to ours.
_LIBRARY_LOGGERS = ("arq", "granian", "_granian", "granian.access", "alembic", "httpx")
# Chatty at INFO (every HTTP call, every migration plugin): warnings only.
_QUIET_LOGGERS = ("httpx", "alembic")


def logging_dictconfig(*, level: str = "INFO", log_format: str = "auto") -> dict[str, Any]:
    """The stdlib logging config that renders every record through structlog."""
    fmt = resolve_format(log_format)
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    quiet_level = logging.getLevelName(max(logging.WARNING, logging.getLevelName(level)))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structlog": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    renderer,
                ],
                "foreign_pre_chain": _shared_processors(),
            }
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "structlog",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            name: {
                "handlers": ["default"],
                "level": quiet_level if name in _QUIET_LOGGERS else level,
                "propagate": False,
            }
            for name in _LIBRARY_LOGGERS
        },
    }


def configure_logging(*, level: str = "INFO", log_format: str = "auto") -> None:
    """Configure structlog and the stdlib root logger; safe to call twice."""
    global _configured
    if _configured == (level, resolve_format(log_format)):
        return
    _configured = (level, resolve_format(log_format))
    logging.config.dictConfig(logging_dictconfig(level=level, log_format=log_format))
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
