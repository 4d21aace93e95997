"""The clocks, and the production claim left as it was (no database needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dfc.runtime.clock import SYSTEM
from dfc.store import queue
from dfc.testing import VirtualClock


def test_the_system_clock_is_real_and_aware() -> None:
    assert SYSTEM.real is True
    assert SYSTEM.now().tzinfo is not None


def test_the_claim_on_the_system_clock_still_compares_with_the_servers_now() -> None:
    # The hottest statement keeps its text (and so its plan) when no virtual clock is given.
    for only in (False, True):
        for compiled in (False, True):
            text = queue._claim_query(64, only, compiled)
            assert "WHERE run_at <= now() " in text and "%(now)s" not in text
    virtual = queue._claim_query(64, False, True, True)
    assert "run_at <= %(now)s AND (lease_expires IS NULL OR lease_expires <= now())" in virtual


def test_a_virtual_clock_runs_with_the_real_time_and_only_moves_forward() -> None:
    clock = VirtualClock()
    assert clock.real is False
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=1)
    clock.advance(timedelta(days=2))
    assert clock.now() - datetime.now(UTC) > timedelta(days=1, hours=23)
    clock.advance_to(datetime.now(UTC))  # in its past: nothing happens
    assert clock.offset >= timedelta(days=2)
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(timedelta(seconds=-1))
