"""The state machine's df.call and df.spawn: start the child, then (a call) wait for the signal
its end sends (docs/runtime.md, "Child workflows")."""

from __future__ import annotations

import json

from plan_kit import Sim

from dfc.plan import nodes
from dfc.runtime import codes
from dfc.runtime.state import NodeRecord, StartChild, Store, child_signal
from plan_builder import Build


def _call_plan(spawn: bool = False) -> tuple[Build, str]:
    b = Build()
    kind = nodes.Spawn if spawn else nodes.Call
    first = b.sql("SELECT 5 AS n", name="a")
    call = b.node(kind(workflow="double", args={"n": "$a.n", "fixed": 3, "who": "{who}"}), bind="r")
    return b, b.then(first, call, b.sql("AFTER $r"))


def test_a_call_starts_its_child_with_substituted_parameters() -> None:
    b, root = _call_plan()
    s = Sim(b.plan(root), vars={"who": "ann"})
    s.complete("n1", {"rows": [{"n": 5}], "row_count": 1})
    (start,) = s.evaluate().actions
    assert start == StartChild(
        key="n2",
        node_id="n2",
        workflow="double",
        version=None,
        vars={"n": "5", "fixed": 3, "who": "ann"},
        wait=True,
        idempotency_key=f"{s.instance_id}/n2",
    )


def test_a_waiting_call_completes_with_its_childs_result() -> None:
    b, root = _call_plan()
    s = Sim(b.plan(root), vars={"who": "ann"})
    s.complete("n1", {"rows": [{"n": 5}], "row_count": 1})
    s.write(NodeRecord(key="n2", node_id="n2", status="waiting", detail={"child": "c0ffee00"}))
    ev = s.evaluate()
    assert ev.actions == () and ev.waiting_for_signal and ev.statuses["n2"] == "waiting"
    # A signal of that name that is not this child's end is left alone.
    s.send(child_signal("n2"), json.dumps({"child": "someone", "status": "completed"}))
    assert s.evaluate().actions == ()
    result = {"rows": [{"doubled": 10}], "row_count": 1}
    s.send(
        child_signal("n2"),
        json.dumps({"child": "c0ffee00", "status": "completed", "result": result}),
    )
    store, run = s.evaluate().actions
    assert isinstance(store, Store) and store.consume_signal is not None
    assert store.record.status == "completed" and store.record.result == result
    assert store.record.detail == {"child": "c0ffee00"}
    # The child's result is a SQL result: $r is its first column, as for a SQL step.
    assert run.sql == "AFTER 10"  # type: ignore[union-attr]


def test_a_failed_or_cancelled_child_fails_the_call_naming_it() -> None:
    for status, code, said in [
        ("failed", codes.CHILD_FAILED, "child c0ffee00 (double) failed: division by zero"),
        ("cancelled", codes.CHILD_CANCELLED, "child c0ffee00 (double) was cancelled: by hand"),
    ]:
        b, root = _call_plan()
        s = Sim(b.plan(root), vars={"who": "ann"})
        s.complete("n1", {"rows": [{"n": 5}], "row_count": 1})
        s.write(NodeRecord(key="n2", node_id="n2", status="waiting", detail={"child": "c0ffee00"}))
        ended = {
            "child": "c0ffee00",
            "status": status,
            "error": {"message": "division by zero"} if status == "failed" else None,
            "reason": "by hand" if status == "cancelled" else None,
        }
        s.send(child_signal("n2"), json.dumps(ended))
        ev = s.settle()
        assert ev.status == "failed"
        assert ev.error["message"] == said and ev.error["code"] == code
        assert ev.error["child"] == "c0ffee00" and ev.error["at"] == "t.df:2:1"


def test_a_spawn_does_not_wait() -> None:
    b, root = _call_plan(spawn=True)
    s = Sim(b.plan(root), vars={"who": "ann"})
    s.complete("n1", {"rows": [{"n": 5}], "row_count": 1})
    (start,) = s.evaluate().actions
    assert isinstance(start, StartChild) and not start.wait
    s.write(
        NodeRecord(
            key="n2",
            node_id="n2",
            status="completed",
            result={"id": "c0ffee00"},
            detail={"child": "c0ffee00"},
        )
    )
    (run,) = s.evaluate().actions
    assert run.sql == """AFTER '{"id":"c0ffee00"}'"""  # type: ignore[union-attr]
