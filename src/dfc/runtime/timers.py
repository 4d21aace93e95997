"""When durable timers fire: the next minute of a cron expression (df.wait_for_schedule, SPEC
§1.3) and the backoff before a retry (df.retry, SPEC §5.7)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from dfc.plan.nodes import Retry

__all__ = ["CronSimError", "backoff", "next_fire", "zone"]


@lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    """The time zone named ``name`` (``UTC`` in any case)."""
    return UTC if name.upper() == "UTC" else ZoneInfo(name)


def next_fire(expr: str, after: datetime, timezone: str = "UTC") -> datetime:
    """The first minute strictly after `after` that matches `expr`, in `timezone`, as UTC.

    Raises `CronSimError` (a ValueError) for an invalid expression; the checker rejects those
    before a plan is made, so at run time it means a plan that bypassed the checker.
    """
    start = after.astimezone(zone(timezone)).replace(second=0, microsecond=0)
    fire = next(iter(CronSim(expr, start)))
    return fire.astimezone(UTC)


def backoff(config: Retry, attempt: int, seed: str) -> float:
    """Seconds to wait after failed attempt `attempt` (from 1): ``min(max_backoff, backoff *
    factor^(attempt-1))``, with full jitter drawn deterministically from `seed` (instance and
    retry key), so that every replay computes — and the record stores — the same delay."""
    cap = float(config.max_backoff)
    try:
        delay = min(cap, float(config.backoff) * float(config.factor) ** (attempt - 1))
    except OverflowError:
        delay = cap
    delay = max(0.0, delay)
    if config.jitter:
        digest = hashlib.sha256(f"{seed}:{attempt}".encode()).digest()
        delay *= int.from_bytes(digest[:8], "big") / 2**64
    return round(delay, 3)
