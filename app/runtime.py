"""Where Taskdeck lives on disk and what its child processes need in their
environment: the project root (where rxconfig.py is), the project-local bun
that Reflex builds the frontend with, and the caches kept inside the project."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

from app.errors import SettingsError
from app.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TOOLS_DIR = PROJECT_ROOT / ".tools"


def taskdeck_command(*args: str) -> list[str]:
    """argv that runs `taskdeck <args>`, so `ps` shows what each process is."""
    script = Path(sys.executable).with_name("taskdeck")
    if script.exists():
        return [sys.executable, str(script), *args]
    return [sys.executable, "-m", "app.cli", *args]


def _npm_registry() -> str | None:
    try:
        out = subprocess.run(
            ["npm", "config", "get", "registry"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def reflex_environment() -> dict[str, str]:
    """Variables that make Reflex use our bun and keep its caches in .tools/."""
    env = {
        "PATH": f"{TOOLS_DIR / 'bun' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "REFLEX_USE_SYSTEM_BUN": "1",
        "REFLEX_TELEMETRY_ENABLED": "false",
        "REFLEX_DIR": str(TOOLS_DIR / "reflex"),
        "BUN_INSTALL_CACHE_DIR": str(TOOLS_DIR / "bun-cache"),
        "BUN_RUNTIME_TRANSPILER_CACHE_PATH": str(TOOLS_DIR / "bun-transpiler"),
    }
    if "NPM_CONFIG_REGISTRY" not in os.environ and (registry := _npm_registry()):
        env["NPM_CONFIG_REGISTRY"] = registry  # skips Reflex's own registry probe
    return env


def settings_environment(settings: Settings) -> dict[str, str]:
    """Resolved settings that child processes must agree on, whatever their cwd."""
    env = {
        "TASKDECK_DATA_DIR": str(settings.data_dir),
        "TASKDECK_DATABASE_URL": settings.resolved_database_url,
    }
    if settings.redis_url:
        env["TASKDECK_REDIS_URL"] = settings.redis_url
    return env


def ensure_port_free(host: str, port: int) -> None:
    """Refuse to start when host:port cannot be listened on, saying why: a
    host that is not an address of this machine, a port in use, a port that
    needs root."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror:  # bind() looks names up: unknown, or no such address
            raise SettingsError(
                f"cannot bind TASKDECK_HOST={host}: not an address of this machine "
                "(the name does not resolve); use 127.0.0.1, 0.0.0.0 or one of its addresses"
            ) from None
        except OSError as error:
            raise SettingsError(_bind_problem(host, port, error)) from None


def _bind_problem(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot bind TASKDECK_HOST={host}: not an address of this machine; "
            "use 127.0.0.1, 0.0.0.0 or one of its addresses"
        )
    if error.errno == errno.EADDRINUSE:
        return (
            f"Cannot listen on {host}:{port} ({error.strerror}): another program uses "
            "that port; set TASKDECK_PORT to a free one"
        )
    if error.errno == errno.EACCES:
        return (
            f"Cannot listen on {host}:{port} ({error.strerror}): ports below 1024 need "
            "root; set TASKDECK_PORT to 1024 or above"
        )
    return f"Cannot listen on {host}:{port} ({error.strerror}); check TASKDECK_HOST and TASKDECK_PORT"
