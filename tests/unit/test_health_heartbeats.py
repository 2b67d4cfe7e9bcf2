"""How health judges a worker's heartbeat: by its age on the Redis clock
(the key's TTL minus what remains), not only by whether the key exists."""

from __future__ import annotations

import pytest

from app.services.health import HEARTBEAT_INTERVAL_S, heartbeat_interval_s, is_fresh

BEAT = {"id": "w", "ttl_s": 15, "interval_s": 2.0}


@pytest.mark.parametrize(
    ("remaining_ms", "fresh"),
    [
        (15_000, True),  # just written
        (9_000, True),  # two beats missed: 6 s old (a stall, perhaps)
        (8_900, False),  # three missed: a killed worker, its key still there
        (1_000, False),
        (-2, False),  # expired between the scan and the read
    ],
)
def test_a_beat_is_fresh_for_three_intervals(remaining_ms: int, fresh: bool) -> None:
    assert is_fresh(BEAT, remaining_ms) is fresh


def test_a_beat_without_interval_is_trusted_until_its_key_expires() -> None:
    """Workers of an older version during a rolling upgrade still count."""
    assert is_fresh({"id": "old"}, 100) is True


def test_the_interval_is_short_and_fits_three_times_in_a_short_ttl() -> None:
    assert heartbeat_interval_s(15) == HEARTBEAT_INTERVAL_S == 2.0
    assert heartbeat_interval_s(3) == 1.0
