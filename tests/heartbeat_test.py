"""Heartbeat state from a manifest, and JavaScript's toFixed(1) for the printed age."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import node_eval
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_core.heartbeat import heartbeat_state, to_fixed_1

BEAT = "2025-10-18T18:27:06.832Z"
BEAT_MS = 1760812026832  # Date.parse(BEAT)


def state(now_ms: float, **manifest: Any) -> dict[str, Any]:
    return heartbeat_state(manifest, now_ms)


def test_age_in_seconds_with_millisecond_precision_and_key_order() -> None:
    result = state(BEAT_MS + 12_345, heartbeat_at=BEAT)
    assert list(result) == ["updated_at", "age_seconds", "stale", "interval_seconds", "stale_after_seconds"]
    assert result == {
        "updated_at": BEAT, "age_seconds": 12.345, "stale": False, "interval_seconds": 10, "stale_after_seconds": 30,
    }


@pytest.mark.parametrize("beat", [None, "", "not a time", 12, ["x"]])
def test_unknown_heartbeat_has_no_age_and_is_not_stale(beat: Any) -> None:
    result = state(BEAT_MS + 10**9, heartbeat_at=beat, status="in_progress")
    assert result["age_seconds"] is None and result["stale"] is False
    assert result["updated_at"] == (beat if isinstance(beat, str) else None)


def test_missing_heartbeat_key() -> None:
    assert state(BEAT_MS)["age_seconds"] is None and state(BEAT_MS)["updated_at"] is None


def test_a_heartbeat_in_the_future_has_age_zero() -> None:
    assert state(BEAT_MS - 5_000, heartbeat_at=BEAT)["age_seconds"] == 0


@pytest.mark.parametrize(
    ("age_ms", "stale_after", "stale"),
    [
        (30_000, None, False),  # strictly older than the threshold
        (30_001, None, True),
        (29_999, 30, False),
        (100_000, 3600, False),  # the manifest's own threshold
        (3_600_001, 3600, True),
        (5_001, 5, True),
        (1_501, 1.5, True),
        (100_000, 0, True),  # not a positive number: the default 30
        (100_000, -1, True),
        (100_000, "3600", True),
        (100_000, True, True),
        (10_000, None, False),
    ],
)
def test_staleness_uses_the_manifest_threshold(age_ms: int, stale_after: Any, stale: bool) -> None:
    manifest: dict[str, Any] = {"heartbeat_at": BEAT}
    if stale_after is not None:
        manifest["heartbeat_stale_after_seconds"] = stale_after
    assert heartbeat_state(manifest, BEAT_MS + age_ms)["stale"] is stale


def test_interval_and_threshold_default_when_missing_or_null() -> None:
    assert state(BEAT_MS, heartbeat_interval_seconds=None)["interval_seconds"] == 10
    result = state(BEAT_MS, heartbeat_interval_seconds=5, heartbeat_stale_after_seconds=60)
    assert (result["interval_seconds"], result["stale_after_seconds"]) == (5, 60)


def test_dash_stamp_heartbeats_are_understood() -> None:
    result = state(1760794647000 + 2_500, heartbeat_at="2025-10-18T13-37-27Z")
    assert result["age_seconds"] == 2.5


FIXED_CASES = [
    0, 0.05, 0.15, 0.25, 0.35, 0.45, 1.005, 1.05, 2.5, 9.95, 12.25, 12.35, 99.95, 123456.05, 1702.676,
    34759664.95, 0.04999, 1e-7, 5e-324, 999999.95, 1e15 + 0.25,
]


def test_to_fixed_1_table_by_hand() -> None:
    assert to_fixed_1(12.25) == "12.3"  # Python's format would give 12.2
    assert to_fixed_1(0) == "0.0"
    assert to_fixed_1(1702.676) == "1702.7"


def test_to_fixed_1_matches_node(node: str) -> None:
    expected = node_eval(node, "[" + ",".join(repr(v) for v in FIXED_CASES) + "].map(v => v.toFixed(1))")
    assert [to_fixed_1(v) for v in FIXED_CASES] == expected


@settings(max_examples=5, deadline=None)
@given(ages_ms=st.lists(st.integers(min_value=0, max_value=10**11), min_size=200, max_size=300))
def test_property_printed_ages_match_node(node: str, ages_ms: list[int]) -> None:
    # ages are whole milliseconds over 1000, as heartbeat_state makes them
    ages = [ms / 1000 for ms in ages_ms]
    expected = node_eval(node, "[" + ",".join(repr(a) for a in ages) + "].map(v => v.toFixed(1))")
    assert [to_fixed_1(a) for a in ages] == expected
