"""The evaluation memo: a warm memo only saves work, whatever happened to the records."""

from __future__ import annotations

from dataclasses import replace

from plan_kit import Sim, rows

from dfc.runtime.frontier import Memo
from dfc.runtime.machine import evaluate
from dfc.runtime.state import Evaluation, RunSql
from plan_builder import Build


def _pair(s: Sim, memo: Memo) -> tuple[Evaluation, Evaluation]:
    # The machine's own `evaluate`, not the one the autouse fixture wraps around Sim's.
    kw = s.inputs()
    return evaluate(s.plan, **kw), evaluate(s.plan, **kw, memo=memo)


def _sequence(n: int) -> Sim:
    b = Build()
    steps = [b.sql(f"SELECT {i}", name=f"r{i}") for i in range(n - 1)]
    steps.append(b.sql("SELECT $r0, $r3"))
    return Sim(b.plan(b.then(*steps)))


def test_a_long_sequence_resumes_after_its_finished_start() -> None:
    s = _sequence(12)
    memo = Memo()
    for i in range(11):
        cold, warm = _pair(s, memo)
        assert warm == cold
        (run,) = s.runs(cold)
        s.complete(run.key, rows({"v": i}))
    cold, warm = _pair(s, memo)
    assert warm == cold
    (run,) = s.runs(cold)
    assert isinstance(run, RunSql) and run.sql == "SELECT 0, 3"


def test_records_replaced_reloaded_or_removed_are_noticed() -> None:
    s = _sequence(8)
    memo = Memo()
    for i in range(6):
        _pair(s, memo)
        s.complete(s.runs(s.evaluate())[0].key, rows({"v": i}))
    _pair(s, memo)
    key = sorted(s.records)[0]
    # Reloaded from the database: equal records, other objects.
    s.records = {k: replace(r) for k, r in s.records.items()}
    cold, warm = _pair(s, memo)
    assert warm == cold
    # A record of the remembered start changes (another result): the memo must not keep it.
    s.records[key] = replace(s.records[key], result=rows({"v": "changed"}))
    cold, warm = _pair(s, memo)
    assert warm == cold
    # A record disappears: the sequence goes back to that step.
    del s.records[key]
    cold, warm = _pair(s, memo)
    assert warm == cold
    assert [a.key for a in s.runs(cold)] == [key]


def test_a_memo_is_bounded() -> None:
    b = Build()
    body = b.then(b.sql("SELECT 1"), b.sql("SELECT 2"))
    s = Sim(b.plan(b.loop(body, b.sql("SELECT true"))))
    memo = Memo(limit=3)
    for _ in range(20):
        _pair(s, memo)
        for run in s.runs(s.settle()):
            s.complete(run.key, rows({"v": 1}))
    assert len(memo._fronts) <= 3
