"""The state machine: loops, breaks and bounded loop history (SPEC §5.2 LOOP, BREAK)."""

from __future__ import annotations

from typing import Any

from plan_kit import Sim, rows

from dfc.runtime import codes
from dfc.runtime.state import Cancel, Prune, RunSql
from plan_builder import Build


def counter(limit: int):  # type: ignore[no-untyped-def]
    """An answer function: the loop condition is true `limit` times."""
    seen = {"n": 0}

    def answer(a: Any) -> Any:
        if a.sql.startswith("COND"):
            seen["n"] += 1
            return rows({"more": seen["n"] < limit})
        return rows({"sql": a.sql})

    return answer


def test_do_while_loop_uses_fresh_keys_per_iteration() -> None:
    b = Build()
    loop = b.loop(b.sql("BODY", name="x"), b.sql("COND $x.sql"), name="l")
    p = b.plan(b.then(b.sql("BEFORE", name="x"), loop, b.sql("AFTER $x $l")))
    s = Sim(p)
    keys: list[str] = []
    conditions = counter(3)

    def answer(a: Any) -> Any:
        keys.append(a.key)
        return conditions(a)

    ev = s.run(answer)
    assert ev.status == "completed"
    assert keys == ["n4", "n3#1/n1", "n3#1/n2", "n3#2/n1", "n3#2/n2", "n3#3/n1", "n3#3/n2", "n5"]
    # $x after the loop is the last iteration's (not BEFORE's); $l, the loop's result, is the
    # last body result: a SQL result, so $l is its first value
    assert ev.result == rows({"sql": "AFTER 'BODY' 'BODY'"})
    assert ev.iterations == {"n3": 3}


def test_bindings_before_the_loop_are_visible_inside() -> None:
    b = Build()
    p = b.plan(b.then(b.sql("BEFORE", name="x"), b.loop(b.then(b.sql("IN $x"), b.brk()))))
    s = Sim(p)
    s.complete("n1", rows({"v": 5}))
    assert [a.sql for a in s.runs(s.evaluate())] == ["IN 5"]  # type: ignore[union-attr]


def test_break_values() -> None:
    cases = [
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ("42", 42),
        ("done", "done"),
        (None, None),
        ("NaN", "NaN"),
        ("$r.v", 7),
        ("id-$r.v", "id-7"),
        ('{"n": $r.v}', {"n": 7}),
    ]
    for text, value in cases:
        b = Build()
        p = b.plan(b.loop(b.then(b.sql("Q", name="r"), b.brk(text))))
        ev = Sim(p).run(lambda a: rows({"v": 7}))
        assert ev.status == "completed" and ev.result == value, text


def test_break_crosses_if_then_and_ends_the_nearest_loop() -> None:
    b = Build()
    inner = b.loop(
        b.then(
            b.sql("STEP", name="s"), b.if_(b.sql("DONE? $s"), b.brk("'inner'"), b.sql("NOT YET"))
        )
    )
    outer = b.loop(b.then(inner, b.brk('"outer"')))
    p = b.plan(outer)
    calls = {"n": 0}

    def answer(a: Any) -> Any:
        if a.sql.startswith("DONE?"):
            calls["n"] += 1
            return rows({"ok": calls["n"] >= 2})
        return rows({"v": a.key})

    ev = Sim(p).run(answer)
    assert ev.status == "completed" and ev.result == "outer"


def test_break_in_a_join_branch_cancels_the_siblings() -> None:
    b = Build()
    p = b.plan(
        b.loop(b.join(b.sql("SLOW"), b.then(b.sql("FAST", name="f"), b.brk("$f.v")), b.sleep(30)))
    )
    s = Sim(p)
    s.settle()
    s.complete("n7#1/n2", rows({"v": "early"}))
    ev = s.evaluate()
    assert ev.status == "completed" and ev.result == "early"
    (cancel,) = [a for a in ev.actions if isinstance(a, Cancel)]
    assert set(cancel.keys) == {"n7#1/n1", "n7#1/n5"}
    assert ev.next_wake is None
    s.apply(ev)
    s.complete("n7#1/n1", rows({"v": "late"}))  # a cancelled sibling that still committed
    again = s.evaluate()
    assert again.result == "early" and not any(isinstance(a, Cancel) for a in again.actions)


def test_break_in_a_race_branch() -> None:
    b = Build()
    p = b.plan(b.loop(b.race(b.signal("stop"), b.then(b.sleep(1), b.brk('"slept"')))))
    ev = Sim(p).run()
    assert ev.result == "slept"


def test_break_inside_the_condition_ends_the_loop() -> None:
    b = Build()
    p = b.plan(b.loop(b.sql("BODY"), b.then(b.sql("C"), b.brk("7"))))
    assert Sim(p).run().result == 7


def test_falsy_condition_gives_the_last_body_result() -> None:
    b = Build()
    p = b.plan(b.loop(b.sql("BODY"), b.sql("COND")))
    ev = Sim(p).run(lambda a: rows({"v": 0}) if a.sql == "COND" else rows({"body": a.key}))
    assert ev.result == rows({"body": "n3#1/n1"})


def test_bounded_history() -> None:
    b = Build()
    p = b.plan(b.loop(b.then(b.sql("STEP", name="s"), b.sql("MORE $s.i")), b.sql("COND")))
    s = Sim(p, history_limit=3)
    n = {"i": 0}

    def answer(a: Any) -> Any:
        if a.sql == "COND":
            return rows({"more": n["i"] < 30})
        if a.sql == "STEP":
            n["i"] += 1
            return rows({"i": n["i"]})
        return rows({"ok": True})

    most = 0
    for _ in range(500):
        ev = s.settle()
        iterations = {k.split("#")[1].split("/")[0] for k in s.records}
        most = max(most, len(iterations))
        if ev.status != "running":
            break
        for a in s.runs(ev):
            s.complete(a.key, answer(a))
    assert ev.status == "completed"
    assert most <= 4  # the last 3 iterations, plus the newest while the next has no records
    assert ev.iterations == {"n5": 30}
    prunes = [a for a in s.log if isinstance(a, Prune)]
    assert prunes and all(p.loop_key == "n5" for p in prunes)
    assert (
        sorted(int(k.split("#")[1].split("/")[0]) for k in s.records)
        == [28] * 3 + [29] * 3 + [30] * 3
    )
    # the pruned iterations are never needed again: the same evaluation replays
    assert s.evaluate().status == "completed"


def test_iteration_count_survives_pruning_at_an_iteration_boundary() -> None:
    b = Build()
    p = b.plan(b.loop(b.sql("STEP")))
    s = Sim(p, history_limit=1)
    for i in range(1, 6):
        ev = s.settle()
        (run,) = s.runs(ev)
        assert run.key == f"n2#{i}/n1"
        assert ev.iterations == {"n2": i}
        s.complete(run.key, rows())
    assert len(s.records) <= 2


def test_an_iteration_that_runs_no_step_fails_instead_of_spinning() -> None:
    b = Build()
    p = b.plan(b.loop(b.loop(b.brk())))
    ev = Sim(p).evaluate()
    assert ev.status == "failed" and ev.error["code"] == codes.IDLE_ITERATION


def test_zero_sleep_loop_advances_one_iteration_per_evaluation() -> None:
    b = Build()
    p = b.plan(b.loop(b.sleep(0)))
    s = Sim(p)
    for i in range(1, 4):
        ev = s.evaluate()
        assert ev.status == "running" and ev.iterations == {"n2": i}
        s.apply(ev)


def test_nested_loop_keys() -> None:
    b = Build()
    inner = b.loop(b.then(b.sql("I"), b.brk()))
    p = b.plan(b.loop(b.then(inner, b.sql("O")), b.sql("COND")))
    keys: list[str] = []

    def answer(a: Any) -> Any:
        keys.append(a.key)
        return rows({"more": len(keys) < 6})

    Sim(p).run(answer)
    assert keys == ["n8#1/n4#1/n1", "n8#1/n5", "n8#1/n7", "n8#2/n4#1/n1", "n8#2/n5", "n8#2/n7"]


def test_loop_runs_are_sql() -> None:
    b = Build()
    p = b.plan(b.loop(b.sql("X")))
    assert all(isinstance(a, RunSql) for a in Sim(p).evaluate().actions)
