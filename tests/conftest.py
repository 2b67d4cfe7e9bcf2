"""Fixtures every layer shares: settings that point at a private folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db import get_engine
from app.settings import get_settings


def _clear_caches() -> None:
    get_settings.cache_clear()
    get_engine.cache_clear()


@pytest.fixture
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """TASKDECK_* settings of this test only: data in tmp_path, no Redis, no .env."""
    for name in (
        "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "OLD_SECRET_KEYS", "ENV", "PORT", "HOST",
        "ALLOWED_ORIGINS", "TRUSTED_PROXY_HOPS",
    ):
        monkeypatch.delenv(f"TASKDECK_{name}", raising=False)
    monkeypatch.setenv("TASKDECK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)  # no .env from the project folder
    _clear_caches()
    yield tmp_path / "data"
    _clear_caches()
