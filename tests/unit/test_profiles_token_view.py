"""The token state a profile page shows is derived from the stored state
and the clock: "expires in 4 min", `expiring` past the token manager's
refresh point, "expired" after the expiry, and a row shown for minutes
catches up on refresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.models.profiles import ProfilePublic, TokenState, TokenStatus
from state.profiles import expires_in_text, refreshed, shown_token_state, to_row

NOW = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)
VALID = TokenStatus.VALID


@pytest.mark.parametrize(
    ("left_s", "text"),
    [
        (-1, "expired"),
        (0, "expired"),
        (30, "expires in under a minute"),
        (4 * 60 + 10, "expires in 4 min"),
        (3 * 3600 + 5, "expires in 3 h"),
        (5 * 86400, "expires in 5 days"),
    ],
)
def test_relative_expiry_text(left_s: float, text: str) -> None:
    assert expires_in_text(left_s) == text


def test_valid_turns_expiring_at_the_refresh_point_then_expired() -> None:
    obtained, expires = NOW, NOW + timedelta(minutes=10)

    def at(minutes: float) -> tuple[TokenStatus, str]:
        return shown_token_state(
            VALID, expires, None, now=NOW + timedelta(minutes=minutes), obtained_at=obtained
        )

    assert at(1) == (VALID, "expires in 9 min")
    assert at(8.5) == (TokenStatus.EXPIRING, "expires in 1 min")  # past 80 % of its life
    assert at(11) == (TokenStatus.EXPIRING, "expired")


def test_without_its_start_a_token_is_valid_until_it_expires() -> None:
    expires = NOW + timedelta(seconds=20)

    assert shown_token_state(VALID, expires, None, now=NOW)[0] is VALID
    assert shown_token_state(VALID, expires, None, now=expires) == (TokenStatus.EXPIRING, "expired")


def test_other_states_keep_their_status_and_say_why() -> None:
    assert shown_token_state(TokenStatus.FAILED, None, "invalid_client", now=NOW) == (
        TokenStatus.FAILED, "invalid_client",
    )
    assert shown_token_state(TokenStatus.EXPIRING, None, None, now=NOW) == (
        TokenStatus.EXPIRING, "no token yet",
    )
    assert shown_token_state(TokenStatus.NOT_APPLICABLE, None, None, now=NOW)[1] == ""
    refreshing = shown_token_state(
        TokenStatus.REFRESHING, NOW + timedelta(minutes=2), None, now=NOW
    )
    assert refreshing == (TokenStatus.REFRESHING, "expires in 2 min")


def _profile(status: TokenStatus, expires_at: datetime | None) -> ProfilePublic:
    return ProfilePublic(
        id=7, name="Billing", description="", base_url="https://api.example.com", headers={},
        timeout_s=30, verify_tls=True, tags=[], auth={"kind": "oauth2_client_credentials"},
        token_state=TokenState(status=status, expires_at=expires_at, error=None),
        created_at=NOW, updated_at=NOW,
    )


def test_a_row_left_open_stops_saying_valid_after_expiry() -> None:
    row = to_row(
        _profile(VALID, NOW + timedelta(minutes=4)), now=NOW, obtained_at=NOW - timedelta(minutes=1)
    )
    assert (row.token_status, row.expiry_note) == ("valid", "expires in 4 min")
    assert "2026" not in row.expiry_note  # relative, not a timestamp

    later = refreshed(row, NOW + timedelta(minutes=4, seconds=1))
    assert (later.token_status, later.expiry_note) == ("expiring", "expired")
    assert later.stored_status == "valid"  # what it is computed from stays


def test_a_failed_row_keeps_its_error_on_refresh() -> None:
    profile = _profile(TokenStatus.FAILED, None)
    profile.token_state.error = "invalid_client"
    row = to_row(profile, now=NOW)

    assert refreshed(row, NOW + timedelta(hours=1)) == row
    assert row.expiry_note == "invalid_client"


def test_a_live_event_tells_when_a_valid_token_was_obtained() -> None:
    """The stored state has no start time: the `token_state` event that
    announced the token does, so the page can tell `expiring` early."""
    from app.services.events import Event
    from app.services.token_states import profile_event
    from state.profiles import _event_row

    profile = _profile(VALID, NOW + timedelta(minutes=10))
    event = Event(**{**profile_event(profile, "token_state").to_dict(), "at": "2026-12-03T18:00:00Z"})
    row = _event_row(event, None)
    assert row is not None and row.obtained_at

    assert refreshed(row, NOW + timedelta(minutes=5)).token_status == "valid"
    assert refreshed(row, NOW + timedelta(minutes=9)).token_status == "expiring"
    # A reload that meets the same token keeps what the event taught.
    again = _event_row(profile_event(profile, "updated"), row)
    assert again is not None and again.obtained_at == row.obtained_at
