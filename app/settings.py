"""Taskdeck settings, read from `TASKDECK_*` environment variables and `.env`.

One `Settings` object serves the web process, the worker and the CLI. The
secret key is generated once into the data folder when none is given, and a
weak one is refused in production.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.errors import SettingsError

ENV_PREFIX = "TASKDECK_"
SECRET_KEY_FILE = "secret_key"
MIN_SECRET_KEY_LENGTH = 32
# Keys that appear in examples and tutorials; never acceptable in production.
KNOWN_WEAK_KEYS = frozenset({"changeme", "secret", "dev", "development", "taskdeck"})


class Settings(BaseSettings):
    """Everything Taskdeck can be told from outside."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("data")
    database_url: str = ""
    redis_url: str | None = None
    secret_key: SecretStr | None = None
    # Keys used before the current one, newest first: what was encrypted under
    # them stays readable until `rotate_credentials` re-encrypts it. Given as
    # one comma-separated string (TASKDECK_OLD_SECRET_KEYS=key2,key1).
    old_secret_keys: Annotated[list[SecretStr], NoDecode] = []
    # Pages at other origins that may use the websocket (besides the one the
    # browser reached Taskdeck at), comma-separated: https://ops.example.com
    allowed_origins: Annotated[list[str], NoDecode] = []
    # Reverse proxies in front of Taskdeck: the client's address is then the
    # Nth from the end of X-Forwarded-For (0: the header is not trusted).
    trusted_proxy_hops: int = Field(default=0, ge=0, le=10)
    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["auto", "console", "json"] = "auto"
    worker_heartbeat_ttl_s: int = Field(default=15, ge=2)
    worker_max_jobs: int = Field(default=50, ge=1)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("old_secret_keys", "allowed_origins", mode="before")
    @classmethod
    def _split_comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _valid_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
                raise ValueError(f"{origin!r} is not an origin like https://ops.example.com")
        return value

    @field_validator("database_url")
    @classmethod
    def _valid_database_url(cls, value: str) -> str:
        if not value:
            return value
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a database URL (e.g. sqlite:///data/taskdeck.db)") from None
        if url.get_backend_name() not in {"sqlite", "postgresql"}:
            raise ValueError("only sqlite and postgresql databases are supported")
        return value

    @field_validator("redis_url")
    @classmethod
    def _valid_redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'taskdeck.db').resolve()}"

    @property
    def is_production(self) -> bool:
        return self.env == "production"


def _load_or_create_secret_key(data_dir: Path) -> str:
    """Read the generated key, or write a new one readable by its owner only."""
    path = data_dir / SECRET_KEY_FILE
    try:
        if path.exists() and (existing := path.read_text().strip()):
            return existing
        data_dir.mkdir(parents=True, exist_ok=True)
        # Written whole under a temporary name, then linked into place: a
        # process starting at the same moment never reads a half-written key.
        key = secrets.token_urlsafe(48)
        temporary = data_dir / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        try:
            os.link(temporary, path)
        except FileExistsError:
            # Another process won the race, or a crash left an empty file.
            if existing := path.read_text().strip():
                key = existing
            else:
                os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as error:
        raise SettingsError(
            f"{ENV_PREFIX}DATA_DIR: cannot use {data_dir} ({error.strerror})"
        ) from None
    return key


def _check_secret_key(settings: Settings) -> None:
    key = settings.secret_key.get_secret_value() if settings.secret_key else ""
    weak = len(key) < MIN_SECRET_KEY_LENGTH or key.lower() in KNOWN_WEAK_KEYS
    if weak and settings.is_production:
        raise SettingsError(
            f"{ENV_PREFIX}SECRET_KEY is too weak for production: "
            f"use at least {MIN_SECRET_KEY_LENGTH} random characters"
        )


def describe_validation_error(error: ValidationError) -> str:
    """One line naming the variable that is wrong and why; never its value."""
    first = error.errors()[0]
    field = str(first["loc"][0]).upper() if first["loc"] else "SETTINGS"
    message = first["msg"].removeprefix("Value error, ")
    return f"{ENV_PREFIX}{field}: {message}"


def load_settings() -> Settings:
    """Read and check the settings; raise SettingsError with one clear line."""
    try:
        settings = Settings()
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from None
    # Absolute, so processes started from other folders share the same data.
    settings.data_dir = settings.data_dir.expanduser().resolve()
    if settings.secret_key is None:
        settings.secret_key = SecretStr(_load_or_create_secret_key(settings.data_dir))
    _check_secret_key(settings)
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear the cache)."""
    return load_settings()
