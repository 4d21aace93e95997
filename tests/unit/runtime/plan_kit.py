"""A tiny in-memory engine for the state machine's tests, which make their plans with the
shared `plan_builder.Build` (``b.then(b.sql("SELECT 1", name="x"), ...)``).

`Sim` plays the engine: it evaluates, applies Stores and Prunes the way the engine must
(seq assigned on every write), and lets a test finish runs with results or errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from dfc.plan.model import Plan
from dfc.runtime.machine import evaluate
from dfc.runtime.state import (
    Cancel,
    Evaluation,
    NodeRecord,
    Prune,
    RunHttp,
    RunSql,
    Signal,
    Store,
)

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def rows(*dicts: Mapping[str, Any]) -> dict[str, Any]:
    """A SQL result."""
    return {"rows": [dict(d) for d in dicts], "row_count": len(dicts)}


class Sim:
    """An in-memory engine: records with seqs, buffered signals, a clock."""

    def __init__(
        self,
        plan: Plan,
        *,
        vars: Mapping[str, str] | None = None,
        label: str | None = None,
        history_limit: int = 10,
        instance_id: str = "abcd1234",
    ) -> None:
        self.plan = plan
        self.vars = dict(vars or {})
        self.label = label
        self.history_limit = history_limit
        self.instance_id = instance_id
        self.records: dict[str, NodeRecord] = {}
        self.signals: list[Signal] = []
        self.now = T0
        self.seq = 0
        self.last: Evaluation | None = None
        self.log: list[Any] = []  # every action applied, in order

    def evaluate(self) -> Evaluation:
        self.last = evaluate(self.plan, **self.inputs())
        return self.last

    def inputs(self) -> dict[str, Any]:
        """The machine's inputs for this instance now: the arguments of `evaluate` after the
        plan."""
        return {
            "instance_id": self.instance_id,
            "label": self.label,
            "vars": self.vars,
            "records": dict(self.records),
            "signals": list(self.signals),
            "now": self.now,
            "history_limit": self.history_limit,
        }

    def write(self, record: NodeRecord) -> None:
        self.seq += 1
        self.records[record.key] = replace(record, seq=self.seq)

    def apply(self, ev: Evaluation) -> bool:
        """Apply Stores and Prunes; whether state changed."""
        changed = False
        for a in ev.actions:
            if isinstance(a, Store):
                self.log.append(a)
                self.write(a.record)
                if a.consume_signal is not None:
                    self.signals = [s for s in self.signals if s.seq != a.consume_signal]
                changed = True
            elif isinstance(a, Prune):
                self.log.append(a)
                for k in a.keys:
                    self.records.pop(k, None)
                changed = True
            elif isinstance(a, Cancel):
                self.log.append(a)
        return changed

    def settle(self) -> Evaluation:
        """Evaluate and apply Stores until an evaluation stores nothing."""
        for _ in range(1000):
            ev = self.evaluate()
            if not self.apply(ev):
                return ev
        raise AssertionError("the machine never settled")

    def complete(self, key: str, result: Any) -> None:
        self.write(
            NodeRecord(key=key, node_id=key.rpartition("/")[2], status="completed", result=result)
        )

    def fail(self, key: str, message: str = "boom", sqlstate: str | None = "XX000") -> None:
        error = {"message": message, "node": key.rpartition("/")[2], "key": key}
        if sqlstate:
            error["sqlstate"] = sqlstate
        self.write(
            NodeRecord(key=key, node_id=key.rpartition("/")[2], status="failed", error=error)
        )

    def send(self, name: str, payload: str | None = None) -> None:
        self.seq += 1
        self.signals.append(Signal(seq=self.seq, name=name, payload=payload))

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def runs(self, ev: Evaluation | None = None) -> list[RunSql | RunHttp]:
        ev = ev or self.last
        assert ev is not None
        return [a for a in ev.actions if isinstance(a, RunSql | RunHttp)]

    def run(
        self, answer: Callable[[RunSql | RunHttp], Any] | None = None, *, limit: int = 10_000
    ) -> Evaluation:
        """Drive to the end: settle, answer every run (default: one row ``{"v": 1}``), jump the
        clock to the next wake when only timers remain."""
        answer = answer or (lambda _a: rows({"v": 1}))
        for _ in range(limit):
            ev = self.settle()
            if ev.status != "running":
                return ev
            runs = self.runs(ev)
            if runs:
                for a in runs:
                    out = answer(a)
                    if isinstance(out, Exception):
                        self.fail(a.key, str(out))
                    else:
                        self.complete(a.key, out)
                continue
            if ev.next_wake is not None:
                self.now = max(self.now, ev.next_wake)
                continue
            return ev
        raise AssertionError("the workflow did not finish")
