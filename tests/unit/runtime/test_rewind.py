"""What retry forgets and what fork reuses (`dfc.runtime.rewind`), replayed by the state machine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from plan_kit import Sim, rows

from dfc.diagnostics import DfcError
from dfc.plan import compat, nodes
from dfc.plan.model import Plan
from dfc.runtime.machine import evaluate
from dfc.runtime.rewind import forgotten, fork_prefix
from dfc.runtime.state import RunHttp, RunSql
from plan_builder import Build


def fail_on(*keys: str) -> Callable[[RunSql | RunHttp], Any]:
    """An answer that fails the steps at ``keys`` (node keys, attempts stripped)."""

    def answer(a: RunSql | RunHttp) -> Any:
        plain = "/".join(seg for seg in a.key.split("/") if "@" not in seg)
        return RuntimeError("boom") if plain in keys else rows({"q": a.key})

    return answer


def retried(s: Sim) -> list[str]:
    """Forget what `forgotten` names, as `dfc retry` does; the keys forgotten."""
    keys = forgotten(s.plan, s.records)
    for k in keys:
        del s.records[k]
    return keys


def test_a_sequence_runs_again_from_the_failed_step_only() -> None:
    b = Build()
    s = Sim(b.plan(b.then(b.sql("A", name="a"), b.sql("B"), b.sql("C $a"), b.sql("D"))))
    assert s.run(fail_on("n3")).status == "failed"
    assert retried(s) == ["n3"]
    ev = s.evaluate()
    assert [a.key for a in s.runs(ev)] == ["n3"]  # A and B are not run again; $a still binds
    ran: list[str] = []

    def answer(a: RunSql | RunHttp) -> Any:
        ran.append(a.key)
        return rows({"q": 1})

    assert s.run(answer).status == "completed"
    assert ran == ["n3", "n4"]


def test_what_the_failure_decided_or_cut_off_is_forgotten_too() -> None:
    b = Build()
    flaky = b.sql("FLAKY")
    guarded = b.timeout(b.retry(flaky, attempts=2, backoff=1), 60)
    waits = b.signal("go")
    p = b.plan(b.then(b.sql("FIRST"), b.join(b.sql("LEFT"), guarded, waits), b.sql("LAST")))
    s = Sim(p)
    assert s.run(fail_on(flaky)).status == "failed"
    keys = retried(s)
    # the attempts, the retry's counter, the deadline, the wait the failure cut off, the join's
    # decision
    assert sorted(keys) == sorted(["n2@1/n1", "n2@2/n1", "n2", "n3", "n4", "n7"])
    assert {k: r.status for k, r in s.records.items()} == {"n5": "completed", "n6": "completed"}
    ev = s.evaluate()
    assert [a.key for a in s.runs(ev)] == ["n2@1/n1"]  # LEFT stays done
    s.send("go")
    assert s.run().status == "completed"


def test_failed_attempts_a_retry_got_past_are_kept() -> None:
    b = Build()
    p = b.plan(b.then(b.retry(b.sql("FLAKY"), attempts=3, backoff=1), b.sql("LATER")))
    s = Sim(p)
    tries = iter([RuntimeError("once"), rows({"v": 1})])
    later = fail_on("n3")

    def answer(a: RunSql | RunHttp) -> Any:
        return next(tries) if a.key.endswith("/n1") else later(a)

    assert s.run(answer).status == "failed"
    assert retried(s) == ["n3"]
    assert s.records["n2@1/n1"].status == "failed"  # history of the retry that succeeded


def test_a_failure_in_a_loop_forgets_only_its_iteration() -> None:
    b = Build()
    body = b.then(b.sql("STEP"), b.sql("CHECK"))
    p = b.plan(b.loop(body, b.sql("MORE")))
    s = Sim(p)
    checks = iter([rows({"v": 1})] * 2 + [RuntimeError("third")])

    def answer(a: RunSql | RunHttp) -> Any:
        return next(checks) if a.key.endswith("/n2") else rows({"v": True})

    assert s.run(answer).status == "failed"
    assert retried(s) == ["n5#3/n2"]
    assert [a.key for a in s.runs(s.evaluate())] == ["n5#3/n2"]


def test_fork_reuses_the_completed_records_before_the_step() -> None:
    b = Build()
    s = Sim(b.plan(b.then(b.sql("A"), b.sql("B"), b.sql("C"))))
    assert s.run().status == "completed"
    assert fork_prefix(s.plan, s.records, "n2") == ["n1"]
    assert fork_prefix(s.plan, s.records, "n3") == ["n1", "n2"]
    assert fork_prefix(s.plan, s.records, "n1") == []
    with pytest.raises(DfcError, match="the workflow has no step n9"):
        fork_prefix(s.plan, s.records, "n9")


def test_fork_from_one_iteration_of_a_loop() -> None:
    b = Build()
    p = b.plan(b.loop(b.then(b.sql("STEP"), b.sql("NEXT")), b.sql("MORE")))
    s = Sim(p)
    more = iter([rows({"v": True}), rows({"v": True}), rows({"v": False})])
    assert s.run(lambda a: next(more) if a.key.endswith("/n4") else rows({"v": 1})).status == (
        "completed"
    )
    keep = fork_prefix(s.plan, s.records, "n5#2/n2")
    assert keep == ["n5#1/n1", "n5#1/n2", "n5#1/n4", "n5#2/n1"]
    # By node id: from its first run.
    assert fork_prefix(s.plan, s.records, "n2") == ["n5#1/n1"]


def test_fork_from_a_step_never_reached_is_refused() -> None:
    b = Build()
    s = Sim(b.plan(b.then(b.sql("A"), b.sql("B"), b.sql("C"))))
    assert s.run(fail_on("n2")).status == "failed"
    with pytest.raises(DfcError, match="step n3 never ran in this instance"):
        fork_prefix(s.plan, s.records, "n3")
    assert fork_prefix(s.plan, s.records, "n2") == ["n1"]  # the failed step: reused before it


# -- the compatibility rule against the machine ----------------------------------------------


def _shapes() -> list[Plan]:
    """Plans that stop at a signal wait with steps of several kinds before and after it."""
    b = Build()
    loop = b.loop(b.then(b.sql("LOOP STEP", name="x"), b.brk("'done'")))
    first = b.plan(
        b.then(b.sql("A", name="a"), loop, b.join(b.sql("C $a"), b.signal("go")), b.sql("D"))
    )
    b = Build()
    cond = b.if_(b.sql("COND"), b.sql("YES"), b.sql("NO"))
    second = b.plan(b.then(cond, b.retry(b.sql("R")), b.signal("go"), b.sql("Z")))
    return [first, second]


def _edited(plan: Plan, nid: str) -> Plan:
    """``plan`` with the text of SQL or BREAK node ``nid`` changed (every id stays)."""
    node = plan.nodes[nid]
    config = node.config
    if isinstance(config, nodes.Sql):
        config = replace(config, query=config.query + " -- v2")
    elif isinstance(config, nodes.Break):
        config = replace(config, value="'other'")
    return replace(plan, nodes={**plan.nodes, nid: replace(node, config=config)})


@pytest.mark.parametrize("shape", range(2))
def test_a_compatible_version_never_runs_a_finished_step_again(shape: int) -> None:
    """For every one-node edit: when the rule lets a waiting instance move, replaying its
    records on the new version finishes every step the old one had finished, and runs none of
    them again; when it refuses, the edit is in what the instance ran."""
    old = _shapes()[shape]
    s = Sim(old)
    ev = s.run(lambda a: rows({"v": True}))
    assert ev.status == "running" and ev.waiting_for_signal
    done = {k for k, v in ev.statuses.items() if v == "completed"}
    edits = [n for n in old.nodes.values() if isinstance(n.config, nodes.Sql | nodes.Break)]
    moved = refused = 0
    for node in edits:
        new = _edited(old, node.id)
        found = compat.verdict(old, new, {r.node_id for r in s.records.values()})
        if not found.ok:
            refused += 1
            assert (
                node.id in done
                or any(k.endswith("/" + node.id) for k in done)
                or (isinstance(node.config, nodes.Break))
            ), node.id
            continue
        moved += 1
        after = evaluate(new, **{**s.inputs(), "records": dict(s.records)})
        assert all(after.statuses.get(k) == "completed" for k in done), node.id
        assert not {a.key for a in after.actions if isinstance(a, RunSql)} & done, node.id
    assert moved and refused
