"""The state machine: SQL steps, sequences, bindings, ifs, errors and statuses."""

from __future__ import annotations

from plan_kit import T0, Sim, rows

from dfc.plan.nodes import Then
from dfc.runtime import codes
from dfc.runtime.machine import evaluate
from dfc.runtime.state import NodeRecord, RunSql, Store
from plan_builder import Build


def test_sql_step_runs_and_completes() -> None:
    b = Build()
    p = b.plan(b.sql("SELECT 1", autocommit=True))
    s = Sim(p)
    ev = s.evaluate()
    assert ev.status == "running"
    assert ev.actions == (RunSql(key="n1", node_id="n1", sql="SELECT 1", autocommit=True),)
    assert ev.statuses == {"n1": "running"}
    s.complete("n1", rows({"a": 1}))
    ev = s.evaluate()
    assert (ev.status, ev.result, ev.actions) == ("completed", rows({"a": 1}), ())


def test_sequence_runs_in_order_and_gives_the_last_result() -> None:
    b = Build()
    p = b.plan(b.then(b.sql("A", name="a"), b.sql("B $a"), b.sql("C $a.x")))
    s = Sim(p)
    assert [a.sql for a in s.runs(s.evaluate())] == ["A"]
    assert s.last is not None and s.last.statuses["n2"] == "pending"
    s.complete("n1", rows({"x": 7}))
    assert [a.sql for a in s.runs(s.evaluate())] == ["B 7"]
    s.complete("n2", rows({"y": 1}))
    assert [a.sql for a in s.runs(s.evaluate())] == ["C 7"]
    s.complete("n3", rows({"z": 3}))
    ev = s.evaluate()
    assert ev.status == "completed" and ev.result == rows({"z": 3})
    assert set(ev.statuses.values()) == {"completed"}
    assert set(ev.statuses) == {"n1", "n2", "n3", "n4", "n5"}  # steps and both THEN nodes


def test_right_nested_sequences_flatten_too() -> None:
    b = Build()
    a, c, d = b.sql("A"), b.sql("C"), b.sql("D")
    inner = b.node(Then(), c, d)
    p = b.plan(b.node(Then(), a, inner))
    ev = Sim(p).run(lambda act: rows({"s": act.sql}))  # type: ignore[union-attr]
    assert ev.result == rows({"s": "D"})


def test_the_most_recent_binding_is_visible() -> None:
    b = Build()
    p = b.plan(b.then(b.sql("1", name="x"), b.sql("2", name="x"), b.sql("SELECT $x")))
    s = Sim(p)
    s.complete("n1", rows({"v": 1}))
    s.complete("n2", rows({"v": 2}))
    assert s.runs(s.evaluate())[0].sql == "SELECT 2"  # type: ignore[union-attr]


def test_a_bound_composite_binds_its_result() -> None:
    b = Build()
    seq = b.then(b.sql("A"), b.sql("B"), name="both")
    p = b.plan(b.then(seq, b.sql("SELECT $both.v")))
    s = Sim(p)
    s.complete("n1", rows({"v": 1}))
    s.complete("n2", rows({"v": 2}))
    assert s.runs(s.evaluate())[0].sql == "SELECT 2"  # type: ignore[union-attr]


def test_variables_and_system_variables() -> None:
    b = Build()
    p = b.plan(b.sql("SELECT * FROM {t} -- {sys_instance_id} {sys_label} {nope}"))
    ev = Sim(p, vars={"t": "items"}, label="nightly").evaluate()
    assert s_sql(ev) == "SELECT * FROM items -- abcd1234 nightly {nope}"
    ev = Sim(p, vars={"t": "items"}).evaluate()
    assert s_sql(ev) == "SELECT * FROM items -- abcd1234  {nope}"


def s_sql(ev: object) -> str:
    runs = [a for a in ev.actions if isinstance(a, RunSql)]  # type: ignore[attr-defined]
    assert len(runs) == 1
    return runs[0].sql


def test_substitution_error_fails_the_node_durably() -> None:
    b = Build()
    p = b.plan(b.then(b.sql("SELECT 1 WHERE false", name="job"), b.sql("UPDATE t SET x = $job")))
    s = Sim(p)
    s.complete("n1", rows())
    ev = s.evaluate()
    assert ev.status == "failed"
    (store,) = ev.actions
    assert isinstance(store, Store) and store.record.status == "failed" and store.record.key == "n2"
    err = ev.error
    assert err["node"] == "n2" and err["key"] == "n2" and err["at"] == "t.df:2:1"
    assert err["code"] == codes.MISSING_VALUE and err["reference"] == "$job"
    assert "$job?" in err["message"] and "df.if_rows('job'" in err["message"]
    s.apply(ev)
    assert s.evaluate().error == err  # replays read the stored failure


def test_sql_failure_fails_the_instance_with_its_error() -> None:
    b = Build()
    p = b.plan(b.then(b.sql("A"), b.sql("B"), b.sql("C")))
    s = Sim(p)
    s.complete("n1", rows())
    s.fail("n2", "division by zero", "22012")
    ev = s.evaluate()
    assert ev.status == "failed"
    assert ev.error["sqlstate"] == "22012" and ev.error["node"] == "n2"
    assert ev.actions == ()
    assert ev.statuses["n2"] == "failed" and ev.statuses["n3"] == "pending"


def test_if_takes_one_arm() -> None:
    for cond, taken, skipped in (
        (rows({"ok": True}), "n2", "n3"),
        (rows({"ok": "no"}), "n3", "n2"),
    ):
        b = Build()
        p = b.plan(b.if_(b.sql("COND", name="c"), b.sql("THEN $c"), b.sql("ELSE $c")))
        s = Sim(p)
        ev = s.evaluate()
        assert [a.sql for a in s.runs(ev)] == ["COND"]  # type: ignore[union-attr]
        assert ev.statuses["n2"] == ev.statuses["n3"] == "pending"
        s.complete("n1", cond)
        ev = s.evaluate()
        assert [a.key for a in s.runs(ev)] == [taken]
        assert ev.statuses[skipped] == "skipped"
        s.complete(taken, rows({"arm": taken}))
        assert s.evaluate().result == rows({"arm": taken})


def test_if_without_else_does_nothing_when_false() -> None:
    b = Build()
    p = b.plan(b.if_(b.sql("COND"), b.sql("THEN")))
    s = Sim(p)
    s.complete("n1", rows({"v": 0}))
    ev = s.evaluate()
    assert ev.status == "completed" and ev.result is None


def test_if_condition_failure_fails_the_if() -> None:
    b = Build()
    p = b.plan(b.if_(b.sql("COND"), b.sql("A"), b.sql("B")))
    s = Sim(p)
    s.fail("n1")
    assert s.evaluate().status == "failed"


def test_if_rows_runs_no_sql() -> None:
    for result, taken in ((rows({"id": 1}), "n2"), (rows(), "n3")):
        b = Build()
        p = b.plan(b.then(b.sql("Q", name="q"), b.if_rows("q", b.sql("YES $q"), b.sql("NO"))))
        s = Sim(p)
        s.complete("n1", result)
        ev = s.evaluate()
        assert [a.key for a in s.runs(ev)] == [taken]
    b = Build()
    p = b.plan(b.if_rows("nobody", b.sql("YES"), b.sql("NO")))
    assert [a.key for a in Sim(p).runs(Sim(p).evaluate())] == ["n2"]  # unbound: no rows


def test_break_outside_a_loop_fails() -> None:
    b = Build()
    p = b.plan(b.then(b.sql("A"), b.brk("1")))
    s = Sim(p)
    s.complete("n1", rows())
    ev = s.evaluate()
    assert ev.status == "failed" and ev.error["code"] == codes.BREAK_OUTSIDE_LOOP


def test_a_very_long_sequence_does_not_recurse() -> None:
    b = Build()
    steps = [b.sql(f"S{i}") for i in range(3000)]
    p = b.plan(b.then(*steps))
    records = {
        k: NodeRecord(key=k, node_id=k, status="completed", result=rows({"i": i}), seq=i + 1)
        for i, k in enumerate(steps[:-1])
    }
    ev = evaluate(
        p, instance_id="abcd1234", label=None, vars={}, records=records, signals=[], now=T0
    )
    assert [a.sql for a in ev.actions] == ["S2999"]  # type: ignore[union-attr]


def test_deep_nesting_is_fine() -> None:
    b = Build()
    node = b.sql("LEAF")
    for _ in range(300):  # the checker's limit is 256
        node = b.if_(b.sql("SELECT true"), node, b.sql("X"))
    p = b.plan(node)
    ev = Sim(p).run(lambda a: rows({"v": True}))
    assert ev.status == "completed"


def test_evaluate_is_deterministic() -> None:
    b = Build()
    p = b.plan(
        b.join(b.then(b.sql("A", name="a"), b.sleep(5)), b.signal("go", timeout=60), b.sql("C"))
    )
    s = Sim(p)
    s.complete("n1", rows({"v": 1}))
    assert s.evaluate() == s.evaluate()


def test_compensation_runs_undos_in_reverse_completion_order() -> None:
    b = Build()
    a = b.undo(b.sql("BOOK", name="booking"), b.sql("UNBOOK $booking.id"))
    c = b.undo(b.sql("CHARGE", name="charge"), b.sql("REFUND $charge.id $booking.id"))
    plain = b.sql("LOG")
    p = b.plan(b.then(a, c, plain, b.sql("SHIP")))
    s = Sim(p)
    s.complete("n1", rows({"id": 1}))
    s.complete("n3", rows({"id": 2}))
    s.complete("n5", rows())
    s.fail("n6", "out of stock", "P0001")
    ev = s.evaluate()
    assert ev.status == "running"  # compensating
    (run,) = s.runs(ev)
    assert (run.key, run.sql) == ("n3~/n4", "REFUND 2 1")  # type: ignore[union-attr]
    s.complete("n3~/n4", rows())
    (run,) = s.runs(s.evaluate())
    assert (run.key, run.sql) == ("n1~/n2", "UNBOOK 1")  # type: ignore[union-attr]
    s.complete("n1~/n2", rows())
    ev = s.evaluate()
    assert ev.status == "failed"
    assert ev.error["message"] == "out of stock" and ev.error["compensated"] is True


def test_no_compensation_without_failure_or_for_steps_that_did_not_complete() -> None:
    b = Build()
    a = b.undo(b.sql("A"), b.sql("UNDO A"))
    p = b.plan(b.then(a, b.sql("B")))
    assert Sim(p).run().status == "completed"
    b = Build()
    a = b.undo(b.sql("A"), b.sql("UNDO A"))
    s = Sim(b.plan(b.then(a, b.sql("B"))))
    s.fail("n1")
    ev = s.evaluate()
    assert ev.status == "failed" and "compensated" not in ev.error


def test_a_failing_undo_stops_compensation() -> None:
    b = Build()
    a = b.undo(b.sql("A"), b.sql("UNDO A"))
    c = b.undo(b.sql("C"), b.sql("UNDO C"))
    s = Sim(b.plan(b.then(a, c, b.sql("BAD"))))
    s.complete("n1", rows())
    s.complete("n3", rows())
    s.fail("n5", "bad")
    s.evaluate()
    s.fail("n3~/n4", "undo broke")
    ev = s.evaluate()
    assert ev.status == "failed" and ev.error["compensated"] is False
    assert ev.error["compensation_error"]["message"] == "undo broke"
    assert not s.runs(ev)
