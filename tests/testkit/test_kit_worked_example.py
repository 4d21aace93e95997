"""The worked example of docs/testing.md, run as written there: examples/order_approval.df
(a manager's decision by signal, a reminder after a day, expiry two days later)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from dfc.testing import Env

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]

WORKFLOW = Path(__file__).parents[2] / "examples" / "order_approval.df"


def test_an_approved_order(dfc_env: Env) -> None:
    dfc_env.deploy(WORKFLOW)
    order = dfc_env.start("order-approval", order_id=7)
    dfc_env.signal(order, "approval", {"approved": True, "by": "maria"})
    assert dfc_env.result(order)["rows"] == [{"status": "approved"}]


def test_an_order_nobody_decides_on_expires_after_three_days(dfc_env: Env) -> None:
    dfc_env.deploy(WORKFLOW)
    began = dfc_env.now
    order = dfc_env.start("order-approval", order_id=8)
    dfc_env.advance("1d 1m")  # the first wait timed out: a reminder was recorded
    assert dfc_env.sql("SELECT event FROM order_events WHERE order_id = 8") == [("reminder sent",)]
    assert dfc_env.result(order)["rows"] == [{"status": "expired"}]
    assert dfc_env.now - began >= timedelta(days=3)


def test_a_late_decision_still_counts(dfc_env: Env) -> None:
    dfc_env.deploy(WORKFLOW)
    order = dfc_env.start("order-approval", order_id=9)
    dfc_env.advance("30h")
    dfc_env.signal(order, "approval", {"approved": False, "by": "li"})
    assert dfc_env.result(order)["rows"] == [{"status": "rejected"}]
    events = [e.event for e in dfc_env.history(order)]
    assert events[-1] == "completed"
