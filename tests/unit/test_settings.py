"""Settings: safe defaults, one clear line per bad variable (never a secret
value), and a secret key that is generated once and refused when weak in
production. Every test reads the real environment through `load_settings()`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.errors import SettingsError
from app.settings import MIN_SECRET_KEY_LENGTH, SECRET_KEY_FILE, load_settings


def _settings_error(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> str:
    """Set one variable and return the SettingsError message it causes."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    return caught.value.message


def test_defaults_are_loopback_port_3000_and_sqlite_in_the_data_dir(
    isolated_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh machine must listen on loopback only and keep data in one folder."""
    monkeypatch.setenv("TASKDECK_DATA_DIR", "relative-data")
    settings = load_settings()

    assert settings.port == 3000
    assert settings.host == "127.0.0.1"
    assert settings.env == "development"
    assert settings.redis_url is None
    assert settings.data_dir.is_absolute()
    assert settings.data_dir == (isolated_settings.parent / "relative-data").resolve()
    url = settings.resolved_database_url
    assert url.startswith("sqlite:///")
    assert url == f"sqlite:///{settings.data_dir / 'taskdeck.db'}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TASKDECK_PORT", "abc"),
        ("TASKDECK_PORT", "70000"),
        ("TASKDECK_PORT", "0"),
        ("TASKDECK_DATABASE_URL", "mysql://x"),
        ("TASKDECK_REDIS_URL", "http://x"),
        ("TASKDECK_LOG_LEVEL", "loud"),
        ("TASKDECK_ALLOWED_ORIGINS", "ops.example.com"),
        ("TASKDECK_ALLOWED_ORIGINS", "https://ops.example.com/path"),
    ],
)
def test_bad_value_names_the_variable_on_one_line(
    isolated_settings: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """The CLI prints this message as is: it must say which variable to fix."""
    message = _settings_error(monkeypatch, name, value)

    assert message.startswith(f"{name}: ")
    assert "\n" not in message
    assert len(message) > len(name) + 2, "the line must also say what is wrong"


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("TASKDECK_DATABASE_URL", "mysql://u:hunter2@h/db", "hunter2"),
        ("TASKDECK_DATABASE_URL", "not a url hunter2", "hunter2"),
        ("TASKDECK_REDIS_URL", "http://:s3cr3tpw@h:6379/0", "s3cr3tpw"),
    ],
)
def test_bad_url_message_does_not_leak_the_password(
    isolated_settings: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, secret: str
) -> None:
    """Startup errors end up in terminals and CI logs: passwords stay out."""
    message = _settings_error(monkeypatch, name, value)

    assert message.startswith(f"{name}: ")
    assert secret not in message


def test_secret_key_is_generated_once_owner_only_and_reused(isolated_settings: Path) -> None:
    """Sessions and encrypted credentials must survive a restart."""
    first = load_settings()
    key_file = isolated_settings / SECRET_KEY_FILE

    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.secret_key is not None
    key = first.secret_key.get_secret_value()
    assert len(key) >= MIN_SECRET_KEY_LENGTH
    assert key_file.read_text().strip() == key
    written_ns = key_file.stat().st_mtime_ns

    second = load_settings()

    assert second.secret_key is not None
    assert second.secret_key.get_secret_value() == key
    assert key_file.stat().st_mtime_ns == written_ns, "the key file must not be rewritten"


def test_given_secret_key_wins_and_writes_no_file(
    isolated_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's key is used as is; nothing is generated beside it."""
    given = "k" * 40
    monkeypatch.setenv("TASKDECK_SECRET_KEY", given)
    settings = load_settings()

    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == given
    assert not (isolated_settings / SECRET_KEY_FILE).exists()


def test_an_empty_secret_key_file_is_never_used_as_the_key(isolated_settings: Path) -> None:
    """The file is created empty before it is written; a reader in that window
    (two processes starting at once) must not end up with an empty key."""
    isolated_settings.mkdir(parents=True)
    (isolated_settings / SECRET_KEY_FILE).write_text("")

    settings = load_settings()

    assert settings.secret_key is not None
    assert len(settings.secret_key.get_secret_value()) >= MIN_SECRET_KEY_LENGTH


@pytest.mark.parametrize("weak", ["changeme", "CHANGEME", "short-key-123"])
def test_production_refuses_a_weak_secret_key(
    isolated_settings: Path, monkeypatch: pytest.MonkeyPatch, weak: str
) -> None:
    """Tutorial keys and short keys would make signed cookies forgeable."""
    monkeypatch.setenv("TASKDECK_ENV", "production")
    message = _settings_error(monkeypatch, "TASKDECK_SECRET_KEY", weak)

    assert "TASKDECK_SECRET_KEY" in message
    assert weak not in message
    assert "\n" not in message


def test_development_accepts_a_weak_secret_key(
    isolated_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only production is strict; a laptop setup must keep working."""
    monkeypatch.setenv("TASKDECK_SECRET_KEY", "changeme")
    settings = load_settings()

    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "changeme"


def test_production_without_a_key_uses_the_generated_strong_key(
    isolated_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key given is fine in production: the generated one is strong."""
    monkeypatch.setenv("TASKDECK_ENV", "production")
    settings = load_settings()

    assert settings.is_production
    assert settings.secret_key is not None
    key = settings.secret_key.get_secret_value()
    assert len(key) >= MIN_SECRET_KEY_LENGTH
    assert (isolated_settings / SECRET_KEY_FILE).read_text().strip() == key


def test_dotenv_in_the_working_directory_is_read(
    isolated_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`.env` beside where Taskdeck starts is the documented way to configure it."""
    monkeypatch.delenv("TASKDECK_LOG_LEVEL", raising=False)
    Path(".env").write_text(
        "TASKDECK_PORT=4321\nTASKDECK_HOST=0.0.0.0\nTASKDECK_LOG_LEVEL=debug\n"
    )

    settings = load_settings()

    assert settings.port == 4321
    assert settings.host == "0.0.0.0"
    assert settings.log_level == "DEBUG"


def test_environment_beats_dotenv(isolated_settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable set for one process overrides the shared file."""
    Path(".env").write_text("TASKDECK_PORT=4321\n")
    monkeypatch.setenv("TASKDECK_PORT", "5555")

    assert load_settings().port == 5555


def test_bad_value_in_dotenv_is_reported_like_the_environment(
    isolated_settings: Path,
) -> None:
    """A typo in .env must produce the same one-line error, not a trace."""
    Path(".env").write_text("TASKDECK_PORT=abc\n")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert caught.value.message.startswith("TASKDECK_PORT: ")


def test_allowed_origins_are_a_comma_separated_list(
    isolated_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKDECK_ALLOWED_ORIGINS", "https://a.example.com, http://b.example:8080")
    assert load_settings().allowed_origins == ["https://a.example.com", "http://b.example:8080"]
