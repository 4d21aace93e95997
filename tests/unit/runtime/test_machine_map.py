"""The state machine: df.map (issue #12): rows in order, at most N at a time, summaries."""

from __future__ import annotations

import random
from typing import Any

from plan_kit import Sim, rows

from dfc.runtime import codes
from dfc.runtime.fanout import BLOCK
from dfc.runtime.live import marks
from dfc.runtime.state import Cancel, Prune, RunSql
from plan_builder import Build


def _map_plan(total: int, **options: Any) -> Any:
    """``SELECT ... |=> 'src' ~> df.map(rows, 'ROW $item.i') |=> 'out' ~> 'AFTER'`` over
    ``total`` rows given by the rows step (the test answers it)."""
    b = Build()
    m = b.map(b.sql("ROWS"), b.sql("ROW $item.i"), name="out", **options)
    return b.plan(b.then(m, b.sql("AFTER $out")))


def _answer_rows(total: int) -> Any:
    return rows(*({"i": i} for i in range(total)))


def drive(s: Sim, limit: int, *, pick: Any = None, fail: set[int] | None = None) -> Any:
    """Settle, then finish one running row at a time (``pick`` chooses which; default the
    oldest), checking that no evaluation asks for more than ``limit`` rows at once."""
    fail = fail or set()
    most = 0
    for _ in range(100_000):
        ev = s.settle()
        if ev.status != "running":
            return ev, most
        runs = [a for a in s.runs(ev) if isinstance(a, RunSql)]
        assert runs, "a running map always has a row to finish"
        if runs[0].key == "n1":
            s.complete("n1", _answer_rows(s.total))  # type: ignore[attr-defined]
            continue
        if runs[0].key.startswith("n4"):
            s.complete(runs[0].key, rows({"done": True}))
            continue
        most = max(most, len(runs))
        a = (pick or (lambda rs: rs[0]))(runs)
        row = int(a.key.split("#")[1].split("/")[0]) - 1
        if row in fail:
            s.fail(a.key, f"row {row} broke")
        else:
            s.complete(a.key, rows({"r": row}))
    raise AssertionError("never finished")


def _sim(total: int, **options: Any) -> Sim:
    s = Sim(_map_plan(total, **options))
    s.total = total  # type: ignore[attr-defined]
    return s


def test_rows_run_in_order_at_most_n_at_a_time_and_results_keep_row_order() -> None:
    total = 2 * BLOCK + 6
    s = _sim(total, concurrency=3)
    ev, most = drive(s, 3, pick=lambda rs: random.Random(len(s.records)).choice(rs))
    assert ev.status == "completed"
    assert most == 3
    out = s.records["n3"].result
    assert out == [rows({"r": i}) for i in range(total)]
    # Finished: the map's result is one record; its rows and summaries were pruned.
    assert set(s.records) == {"n1", "n3", "n4"}


def test_every_evaluation_walks_a_bounded_number_of_rows_and_keeps_few_records() -> None:
    total = 40 * BLOCK
    s = _sim(total, concurrency=4)
    most_records = 0
    for _ in range(total + 10):
        ev = s.settle()
        most_records = max(most_records, len(s.records))
        if ev.status != "running":
            break
        runs = s.runs(ev)
        if runs[0].key == "n1":
            s.complete("n1", _answer_rows(total))
            continue
        assert len(runs) <= 4
        # Statuses list what the walk visited: bounded by the rows not yet summarised.
        assert len(ev.statuses) < 3 * BLOCK + 20
        s.complete(runs[0].key, rows({"r": 1}))
    assert ev.status == "completed"
    assert most_records < 2 * BLOCK + total // BLOCK + 10
    prunes = [a for a in s.log if isinstance(a, Prune)]
    assert len(prunes) == total // BLOCK  # one per block; the last with the map's own record


def test_progress_counts_for_explain() -> None:
    s = _sim(10, concurrency=2)
    s.complete("n1", _answer_rows(10))
    s.complete("n3#1/n2", rows({"r": 0}))
    ev = s.settle()
    p = ev.maps["n3"]
    assert (p.done, p.running, p.failed, p.total) == (1, 2, 0, 10)
    assert p.describe() == "1 done, 2 running, 0 failed of 10"
    # The explain tree notes it on the map's line, once (not one line per row).
    shown = marks(ev.statuses, s.records, maps=ev.maps)
    assert shown["n3"].note == p.describe()
    assert (shown["n2"].iteration, shown["n2"].row) == (3, True)  # the body: its newest row


def test_a_failing_row_fails_the_map_and_cancels_the_running_rows() -> None:
    s = _sim(10, concurrency=3)
    s.complete("n1", _answer_rows(10))
    s.settle()
    s.fail("n3#2/n2", "row 1 broke")
    ev = s.settle()
    assert ev.status == "failed"
    assert ev.error["message"] == "row 1 broke"
    assert ev.error["path"][-1] == {"node": "n3", "key": "n3", "map_row": 2}
    cancels = [a for a in s.log if isinstance(a, Cancel)]
    assert cancels and {"n3#1/n2", "n3#3/n2"} <= set(cancels[-1].keys)
    assert not s.runs(ev)
    assert s.records["n3"].status == "decided"
    # Decided for good: a sibling finishing later changes nothing.
    s.fail("n3#1/n2", "later")
    assert s.settle().error["message"] == "row 1 broke"


def test_collect_gives_an_error_object_in_the_failed_rows_slots() -> None:
    s = _sim(5, concurrency=2, on_error="collect")
    ev, _ = drive(s, 2, fail={1, 3})
    assert ev.status == "completed"
    out = s.records["n3"].result
    assert [("error" in r) for r in out] == [False, True, False, True, False]
    assert out[1]["error"]["message"] == "row 1 broke"
    assert out[0] == rows({"r": 0})
    # Finished, the map walks no row: its body shows completed, and the counts stay.
    again = s.evaluate()
    assert again.statuses["n2"] == "completed"
    assert again.maps["n3"].describe() == "5 done, 0 running, 2 failed of 5"


def test_rows_from_a_bound_result_and_the_item_name() -> None:
    b = Build()
    src = b.sql("SRC", name="orders")
    m = b.map(None, b.sql("ROW $order.id"), rows_from="orders", item="order", concurrency=8)
    p = b.plan(b.then(src, m))
    s = Sim(p)
    s.complete("n1", rows({"id": 7}, {"id": 9}))
    ev = s.settle()
    assert [a.sql for a in s.runs(ev)] == ["ROW 7", "ROW 9"]  # type: ignore[union-attr]
    assert [a.key for a in s.runs(ev)] == ["n3#1/n2", "n3#2/n2"]


def test_a_map_over_no_rows_gives_an_empty_array() -> None:
    s = _sim(0)
    s.complete("n1", rows())
    ev = s.settle()
    assert s.records["n3"].result == []
    assert [a.sql for a in s.runs(ev)] == ["AFTER '[]'"]  # type: ignore[union-attr]


def test_rows_that_are_not_a_sql_result_fail_the_map() -> None:
    b = Build()
    m = b.map(None, b.sql("ROW"), rows_from="sig")
    p = b.plan(b.then(b.signal("go", name="sig"), m))
    s = Sim(p)
    s.send("go", '{"a": 1}')
    ev = s.settle()
    assert ev.status == "failed"
    assert ev.error["code"] == codes.MAP_ROWS
    assert "gave none" in ev.error["message"]


def test_a_row_that_sleeps_holds_its_slot() -> None:
    b = Build()
    m = b.map(b.sql("ROWS"), b.then(b.sleep(60), b.sql("ROW $item.i")), concurrency=2)
    s = Sim(b.plan(m))
    s.complete("n1", _answer_rows(5))
    ev = s.settle()
    assert ev.maps["n5"].running == 2 and not s.runs(ev)  # two rows asleep, none else started
    s.advance(61)
    ev = s.settle()
    assert [a.key for a in s.runs(ev)] == ["n5#1/n3", "n5#2/n3"]
