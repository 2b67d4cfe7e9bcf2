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
        redact_event,
    ]


def resolve_format(log_format: str) -> str:
    """`auto` means console on a terminal and JSON otherwise."""
    if log_format != "auto":
        return log_format
    return "console" if sys.stderr.isatty() else "json"


def configure_logging(*, level: str = "INFO", log_format: str = "auto") -> None:
    """Configure structlog and the stdlib root logger; safe to call twice."""
    global _configured
    fmt = resolve_format(log_format)
    if _configured == (level, fmt):
        return
    _configured = (level, fmt)

    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    final: list[Any] = [structlog.processors.format_exc_info] if fmt == "json" else []
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structlog": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        *final,
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
                # These libraries attach handlers of their own; send them to ours.
                name: {"handlers": ["default"], "level": level, "propagate": False}
                for name in ("arq", "granian", "_granian", "alembic", "httpx")
            },
        }
    )
    # Chatty at INFO (every HTTP call, every migration plugin): warnings only.
    for quiet in ("httpx", "alembic"):
        logging.getLogger(quiet).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
