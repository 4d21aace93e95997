"""The state machine: joins and races (SPEC §5.2 JOIN, RACE; §5.6)."""

from __future__ import annotations

from plan_kit import Sim, rows

from dfc.runtime.state import Cancel, Store
from plan_builder import Build


def test_join_runs_branches_concurrently_and_keeps_branch_order() -> None:
    b = Build()
    p = b.plan(
        b.then(b.join(b.sql("A", name="a"), b.sql("B", name="b"), name="j"), b.sql("$a $b $j"))
    )
    s = Sim(p)
    ev = s.evaluate()
    assert [a.key for a in s.runs(ev)] == ["n1", "n2"]
    s.complete("n2", rows({"b": 2}))  # the second branch finishes first
    ev = s.evaluate()
    assert s.runs(ev) == [] or [a.key for a in s.runs(ev)] == ["n1"]
    s.complete("n1", rows({"a": 1}))
    ev = s.evaluate()
    (run,) = s.runs(ev)
    # both branches' bindings are visible after the join; the join result is an array
    assert run.sql.startswith("1 2 '[")  # type: ignore[union-attr]
    assert '[{"rows":[{"a":1}],"row_count":1},{"rows":[{"b":2}],"row_count":1}]' in run.sql  # type: ignore[union-attr]


def test_join_results_nest_as_parsed() -> None:
    b = Build()
    nested = b.plan(b.join(b.join(b.sql("A"), b.sql("B")), b.sql("C")))
    flat = Build()
    flat_plan = flat.plan(flat.join(flat.sql("A"), flat.sql("B"), flat.sql("C")))
    answer = lambda a: rows({"q": a.sql})  # noqa: E731
    ra, rb, rc = rows({"q": "A"}), rows({"q": "B"}), rows({"q": "C"})
    assert Sim(nested).run(answer).result == [[ra, rb], rc]
    assert Sim(flat_plan).run(answer).result == [ra, rb, rc]


def test_a_failing_branch_fails_the_join_and_cancels_the_others() -> None:
    b = Build()
    p = b.plan(b.join(b.sql("SLOW"), b.sql("BAD"), b.sleep(60), b.sql("DONE")))
    s = Sim(p)
    s.settle()
    s.complete("n4", rows())
    s.fail("n2", "boom", "P0001")
    ev = s.evaluate()
    assert ev.status == "failed"
    assert ev.error["sqlstate"] == "P0001" and ev.error["node"] == "n2"
    assert ev.error["path"] == [{"node": "n5", "key": "n5", "join_branch": 2}]
    stores = [a for a in ev.actions if isinstance(a, Store)]
    assert [(x.record.key, x.record.status, dict(x.record.detail)) for x in stores] == [
        ("n5", "decided", {"branch": 1, "completed": [3], "outcome": "failed"})
    ]
    (cancel,) = [a for a in ev.actions if isinstance(a, Cancel)]
    assert cancel.keys == ("n1", "n3")  # the running SQL and the timer
    assert ev.statuses["n1"] == "cancelled" and ev.statuses["n3"] == "cancelled"
    assert ev.statuses["n4"] == "completed" and ev.statuses["n2"] == "failed"
    assert ev.next_wake is None
    s.apply(ev)
    again = s.evaluate()
    assert again.error == ev.error
    assert not any(isinstance(a, Cancel) for a in again.actions)  # cancelled once


def test_the_first_branch_to_fail_decides_even_if_another_fails_later() -> None:
    b = Build()
    p = b.plan(b.join(b.sql("A"), b.sql("B")))
    s = Sim(p)
    s.fail("n2", "first")
    s.fail("n1", "second")
    assert s.evaluate().error["message"] == "first"


def test_race_first_to_complete_wins_and_losers_are_cancelled() -> None:
    b = Build()
    p = b.plan(b.then(b.race(b.sql("A", name="a"), b.sql("B", name="b")), b.sql("$a? $b?")))
    s = Sim(p)
    assert [a.key for a in s.runs(s.evaluate())] == ["n1", "n2"]
    s.complete("n2", rows({"v": "b"}))
    ev = s.evaluate()
    decided = [a for a in ev.actions if isinstance(a, Store)]
    assert [(d.record.key, d.record.status, dict(d.record.detail)) for d in decided] == [
        ("n3", "decided", {"winner": 1})
    ]
    assert [a.keys for a in ev.actions if isinstance(a, Cancel)] == [("n1",)]
    # only the winner's binding is visible: $a stays as written for PostgreSQL to reject
    assert [a.sql for a in s.runs(ev)] == ["$a? 'b'"]  # type: ignore[union-attr]
    assert ev.statuses["n1"] == "cancelled" and ev.statuses["n3"] == "completed"
    s.apply(ev)
    s.complete("n1", rows({"v": "a"}))  # the loser's commit raced the cancel: changes nothing
    ev = s.evaluate()
    assert [a.sql for a in s.runs(ev)] == ["$a? 'b'"]  # type: ignore[union-attr]
    assert not any(isinstance(a, Cancel | Store) for a in ev.actions)


def test_race_is_decided_by_record_order_not_branch_order() -> None:
    b = Build()
    p = b.plan(b.race(b.sql("A"), b.sql("B")))
    s = Sim(p)
    s.complete("n2", rows({"v": "b"}))  # both finished before any evaluation saw them
    s.complete("n1", rows({"v": "a"}))
    assert s.evaluate().result == rows({"v": "b"})


def test_race_first_finisher_failing_fails_the_race() -> None:
    b = Build()
    p = b.plan(b.race(b.sql("A"), b.sql("B")))
    s = Sim(p)
    s.fail("n1", "no")
    ev = s.evaluate()
    assert ev.status == "failed"
    assert ev.error["path"] == [{"node": "n3", "key": "n3", "race_branch": 1}]
    assert [a.keys for a in ev.actions if isinstance(a, Cancel)] == [("n2",)]


def test_race_between_a_timer_and_a_signal() -> None:
    b = Build()
    p = b.plan(b.race(b.sleep(60), b.signal("approve")))
    s = Sim(p)
    ev = s.settle()
    assert ev.waiting_for_signal and ev.next_wake is not None
    assert ev.statuses == {"n3": "waiting", "n1": "waiting", "n2": "waiting"}
    s.send("approve", '{"by": "ann"}')
    ev = s.evaluate()
    assert ev.status == "completed"
    assert ev.result == {"signal_name": "approve", "timed_out": False, "data": {"by": "ann"}}
    assert [a.keys for a in ev.actions if isinstance(a, Cancel)] == [("n1",)]  # timer discarded
    assert ev.statuses["n1"] == "cancelled"


def test_simultaneous_finishers_the_earlier_branch_wins_and_the_loser_consumes_nothing() -> None:
    b = Build()
    p = b.plan(b.then(b.race(b.sleep(5), b.signal("go")), b.signal("go", name="later")))
    s = Sim(p)
    s.settle()
    s.advance(10)
    s.send("go", "first")
    sent = s.signals[0].seq
    ev = s.evaluate()
    stores = [a for a in ev.actions if isinstance(a, Store)]
    # the sleep fired and won; the signal branch's consumption was withdrawn, so the signal is
    # still there for the next wait, which takes it in the same evaluation
    assert [(x.record.key, x.record.status, x.consume_signal) for x in stores] == [
        ("n1", "completed", None),
        ("n3", "decided", None),
        ("n4", "completed", sent),
    ]
    s.apply(ev)
    assert s.evaluate().result == {"signal_name": "go", "timed_out": False, "data": "first"}
