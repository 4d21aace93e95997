"""The state machine: timers, schedules, signals, retries and timeouts (SPEC §5.2, §5.7)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from plan_kit import T0, Sim, rows

from dfc.runtime import codes
from dfc.runtime.state import Cancel, RunSql, Store
from plan_builder import Build


def test_sleep_is_a_durable_timer() -> None:
    b = Build()
    p = b.plan(b.then(b.sleep(30, name="z"), b.sql("AFTER $z")))
    s = Sim(p)
    ev = s.evaluate()
    (store,) = ev.actions
    assert isinstance(store, Store)
    assert (store.record.status, store.record.wake_at) == ("waiting", T0 + timedelta(seconds=30))
    assert ev.next_wake == T0 + timedelta(seconds=30) and ev.statuses["n1"] == "waiting"
    s.apply(ev)
    s.advance(29)  # a restart in between changes nothing: the stored wake time counts
    assert s.evaluate().actions == ()
    s.advance(1)
    ev = s.evaluate()
    fired, run = ev.actions
    assert isinstance(fired, Store) and fired.record.result == {"slept": True, "seconds": 30}
    assert isinstance(run, RunSql) and run.sql == """AFTER '{"slept":true,"seconds":30}'"""


def test_wait_for_schedule() -> None:
    b = Build()
    p = b.plan(b.schedule("*/5 * * * *"))
    s = Sim(p)
    s.advance(61)
    ev = s.settle()
    assert ev.next_wake == T0 + timedelta(minutes=5)
    s.now = ev.next_wake
    ev = s.settle()
    assert ev.status == "completed" and ev.result == {"scheduled": True}


def test_signals_sent_before_the_wait_are_buffered_and_consumed_in_order() -> None:
    b = Build()
    p = b.plan(
        b.then(
            b.sql("FIRST"),
            b.signal("go", name="a"),
            b.signal("go", name="b"),
            b.signal("other"),
            b.sql("$a.data $b.data"),
        )
    )
    s = Sim(p)
    s.send("go", '{"n": 1}')
    s.send("go", "plain text")
    s.send("other")
    s.complete("n1", rows())
    ev = s.run()
    assert ev.status == "completed"
    signal_stores = [a for a in s.log if isinstance(a, Store) and a.consume_signal is not None]
    assert [a.consume_signal for a in signal_stores] == [1, 2, 3]
    results = [a.record.result for a in signal_stores]
    assert results == [
        {"signal_name": "go", "timed_out": False, "data": {"n": 1}},
        {"signal_name": "go", "timed_out": False, "data": "plain text"},
        {"signal_name": "other", "timed_out": False, "data": None},
    ]
    assert s.signals == []


def test_a_signal_wait_waits() -> None:
    b = Build()
    p = b.plan(b.signal("go"))
    s = Sim(p)
    ev = s.settle()
    assert ev.status == "running" and ev.waiting_for_signal and ev.next_wake is None
    assert s.records["n1"].status == "waiting"
    s.send("other")
    assert s.settle().status == "running"
    s.send("go", "[1, 2]")
    ev = s.settle()
    assert ev.result == {"signal_name": "go", "timed_out": False, "data": [1, 2]}
    assert [x.name for x in s.signals] == ["other"]


def test_signal_timeout() -> None:
    b = Build()
    p = b.plan(b.then(b.signal("approve", timeout=60), b.signal("approve", name="second")))
    s = Sim(p)
    ev = s.settle()
    assert (
        s.records["n1"].wake_at == T0 + timedelta(seconds=60)
        and ev.next_wake == s.records["n1"].wake_at
    )
    s.advance(60)
    ev = s.evaluate()
    assert next(a.record.result for a in ev.actions if isinstance(a, Store)) == {
        "signal_name": "approve",
        "timed_out": True,
        "data": None,
    }
    s.apply(ev)
    s.send("approve", "late")  # a late signal is kept for the next wait
    ev = s.settle()
    assert ev.result == {"signal_name": "approve", "timed_out": False, "data": "late"}


def answers(*outcomes: Any):  # type: ignore[no-untyped-def]
    """Answer runs with these outcomes in turn (an Exception fails the step)."""
    queue = list(outcomes)

    def answer(_a: Any) -> Any:
        return queue.pop(0)

    return answer


def test_retry_reruns_under_fresh_attempt_keys_after_backoff() -> None:
    b = Build()
    p = b.plan(
        b.then(
            b.sql("BEFORE"),
            b.retry(b.sql("FLAKY", name="f"), attempts=4, backoff=2, factor=3, max_backoff=10),
            b.sql("AFTER $f"),
        )
    )
    s = Sim(p)
    s.complete("n1", rows())
    ev = s.evaluate()
    assert [a.key for a in s.runs(ev)] == ["n3@1/n2"]
    wakes = []
    for attempt, delay in ((1, 2), (2, 6), (3, 10)):
        s.fail(f"n3@{attempt}/n2", f"attempt {attempt}")
        ev = s.evaluate()
        (store,) = ev.actions
        assert isinstance(store, Store)
        rec = store.record
        assert (rec.key, rec.status, rec.attempt) == ("n3", "waiting", attempt + 1)
        assert rec.wake_at == s.now + timedelta(seconds=delay)
        assert rec.detail["delays"][-1] == delay and len(rec.detail["errors"]) == attempt
        s.apply(ev)
        assert s.evaluate().statuses["n3"] == "waiting"
        wakes.append(rec.wake_at)
        s.now = rec.wake_at
        ev = s.evaluate()
        assert [a.key for a in s.runs(ev)] == [f"n3@{attempt + 1}/n2"]
    s.complete("n3@4/n2", rows({"ok": 1}))
    ev = s.evaluate()
    assert [a.sql for a in s.runs(ev)] == ["AFTER 1"]  # type: ignore[union-attr]
    s.apply(ev)
    assert s.records["n3"].status == "completed"  # the counter is closed, with its history
    assert s.records["n3"].detail == {
        "attempts": 4,
        "delays": [2.0, 6.0, 10.0],
        "errors": [
            {"message": f"attempt {i}", "key": f"n3@{i}/n2", "sqlstate": "XX000"} for i in (1, 2, 3)
        ],
    }


def test_retry_gives_up_after_the_last_attempt() -> None:
    b = Build()
    p = b.plan(b.retry(b.sql("X"), attempts=2, backoff=1))
    ev = Sim(p).run(answers(Exception("one"), Exception("two")))
    assert ev.status == "failed"
    assert ev.error["message"] == "two"
    assert ev.error["path"] == [{"node": "n2", "key": "n2", "attempts": 2}]


def test_retry_jitter_is_decided_once() -> None:
    b = Build()
    p = b.plan(b.retry(b.sql("X"), attempts=3, backoff=100, jitter=True))
    s = Sim(p)
    s.fail("n2@1/n1")
    first = s.evaluate()
    again = s.evaluate()
    assert first == again  # deterministic: replays compute the same delay
    (store,) = first.actions
    delay = store.record.detail["delays"][0]  # type: ignore[union-attr]
    assert 0 <= delay <= 100 and delay not in (0, 100)
    other = Sim(p, instance_id="ffff0000")
    other.fail("n2@1/n1")
    assert other.evaluate().actions[0].record.detail["delays"][0] != delay  # type: ignore[union-attr]


def test_timeout_caps_statements_and_fails_when_it_expires() -> None:
    b = Build()
    p = b.plan(b.timeout(b.join(b.sql("SLOW"), b.sleep(600)), 10))
    s = Sim(p)
    ev = s.settle()
    (run,) = s.runs(ev)
    assert isinstance(run, RunSql) and run.timeout_s == 10
    assert s.records["n4"].status == "running" and ev.next_wake == T0 + timedelta(seconds=10)
    s.advance(4)
    (run,) = s.runs(s.evaluate())
    assert run.timeout_s == 6  # type: ignore[union-attr]
    s.advance(6)
    ev = s.evaluate()
    assert ev.status == "failed"
    assert (
        ev.error["code"] == codes.TIMED_OUT
        and ev.error["node"] == "n4"
        and ev.error["at"] == "t.df:4:1"
    )
    (cancel,) = [a for a in ev.actions if isinstance(a, Cancel)]
    assert set(cancel.keys) == {"n1", "n2"}
    assert ev.statuses["n1"] == "cancelled"


def test_timeout_passes_a_result_through() -> None:
    b = Build()
    p = b.plan(b.timeout(b.sql("FAST"), 10))
    s = Sim(p)
    assert s.run().result == rows({"v": 1})
    assert s.records["n2"].status == "completed"  # the deadline record is closed


def test_retry_of_a_timeout_gets_a_fresh_deadline_per_attempt() -> None:
    b = Build()
    p = b.plan(b.retry(b.timeout(b.sleep(100), 5), attempts=2, backoff=1))
    s = Sim(p)
    ev = s.run()
    assert ev.status == "failed" and ev.error["code"] == codes.TIMED_OUT
    deadlines = [r for k, r in s.records.items() if k.endswith("/n2")]
    assert [r.key for r in deadlines] == ["n3@1/n2", "n3@2/n2"]
    assert deadlines[1].wake_at - deadlines[0].wake_at == timedelta(seconds=6)  # 5 s + 1 s backoff
