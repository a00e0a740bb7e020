"""Heartbeat state of a run, computed from its manifest (pure: no I/O)."""

from __future__ import annotations

from mcp_core.jsfmt import parse_timestamp_ms
from mcp_core.manifest import HEARTBEAT_INTERVAL_SECONDS, HEARTBEAT_STALE_AFTER_SECONDS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _positive_number(value: object, default: float) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return value
    return default


def _or_default(value: object, default: int) -> object:
    return default if value is None else value


def heartbeat_state(manifest: dict[str, Any], now_ms: float) -> dict[str, Any]:
    """``{updated_at, age_seconds, stale, interval_seconds, stale_after_seconds}``.

    Unknown or unparsable ``heartbeat_at``: age None, not stale. Otherwise the age
    in seconds with millisecond precision, never negative, and stale when strictly
    older than the manifest's own ``heartbeat_stale_after_seconds``.
    """
    updated_at = manifest.get("heartbeat_at")
    stale_after = _positive_number(
        manifest.get("heartbeat_stale_after_seconds"), HEARTBEAT_STALE_AFTER_SECONDS
    )
    beat_ms = parse_timestamp_ms(updated_at)
    age: float | None = None
    stale = False
    if beat_ms is not None:
        age = max(0.0, round(now_ms - beat_ms) / 1000)
        stale = age > stale_after
    return {
        "updated_at": updated_at if isinstance(updated_at, str) else None,
        "age_seconds": age,
        "stale": stale,
        "interval_seconds": _or_default(manifest.get("heartbeat_interval_seconds"), HEARTBEAT_INTERVAL_SECONDS),
        "stale_after_seconds": _or_default(
            manifest.get("heartbeat_stale_after_seconds"), HEARTBEAT_STALE_AFTER_SECONDS
        ),
    }


def to_fixed_1(value: float) -> str:
    """JavaScript's ``value.toFixed(1)``: half up on the exact binary value (12.25 -> 12.3).

    In integers on the value's exact ratio (not decimal, an import poll does without).
    """
    numerator, denominator = abs(value).as_integer_ratio()
    tenths = (20 * numerator + denominator) // (2 * denominator)
    sign = "-" if value < 0 else ""  # as JavaScript: (-0.04).toFixed(1) is "-0.0", (-0).toFixed(1) "0.0"
    return f"{sign}{tenths // 10}.{tenths % 10}"
