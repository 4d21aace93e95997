"""Hand-made plans and a tiny in-memory engine for the state machine's tests.

`Build` makes plan nodes with short calls (``b.then(b.sql("SELECT 1", name="x"), ...)``);
`Sim` plays the engine: it evaluates, applies Stores and Prunes the way the engine must
(seq assigned on every write), and lets a test finish runs with results or errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from dfc.plan.model import Plan, PlanNode, SourceSpan
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


class Build:
    """Plan nodes with ids n1, n2, ... in creation order; every node has a source position."""

    def __init__(self) -> None:
        self.nodes: dict[str, PlanNode] = {}

    def node(self, type_: str, *children: str, bind: str | None = None, **config: Any) -> str:
        nid = f"n{len(self.nodes) + 1}"
        self.nodes[nid] = PlanNode(
            id=nid,
            type=type_,
            children=tuple(children),
            result_name=bind,
            config=config,  # type: ignore[arg-type]
        )
        return nid

    def sql(self, query: str, name: str | None = None, **config: Any) -> str:
        return self.node("SQL", bind=name, query=query, **config)

    def then(self, *steps: str, name: str | None = None) -> str:
        left = steps[0]
        for i, right in enumerate(steps[1:], 1):
            left = self.node("THEN", left, right, bind=name if i == len(steps) - 1 else None)
        return left

    def join(self, *branches: str, name: str | None = None) -> str:
        return self.node("JOIN", *branches, bind=name)

    def race(self, *branches: str, name: str | None = None) -> str:
        return self.node("RACE", *branches, bind=name)

    def if_(self, cond: str, then: str, else_: str | None = None, name: str | None = None) -> str:
        kids = (cond, then) if else_ is None else (cond, then, else_)
        return self.node("IF", *kids, bind=name, test="truthy")

    def if_rows(self, result: str, then: str, else_: str, name: str | None = None) -> str:
        return self.node("IF", then, else_, bind=name, test="rows", result_name=result)

    def loop(self, body: str, cond: str | None = None, name: str | None = None) -> str:
        kids = (body,) if cond is None else (body, cond)
        return self.node("LOOP", *kids, bind=name)

    def brk(self, value: str | None = None) -> str:
        return self.node("BREAK", value=value)

    def sleep(self, seconds: int, name: str | None = None) -> str:
        return self.node("SLEEP", bind=name, seconds=seconds)

    def schedule(self, cron: str, name: str | None = None) -> str:
        return self.node("WAIT_SCHEDULE", bind=name, cron=cron, timezone="UTC")

    def signal(self, signal: str, timeout: int | None = None, name: str | None = None) -> str:
        return self.node("SIGNAL", bind=name, name=signal, timeout=timeout)

    def http(
        self,
        url: str,
        method: str = "POST",
        body: str | None = None,
        headers: str | None = None,
        timeout: int = 30,
        name: str | None = None,
    ) -> str:
        return self.node(
            "HTTP", bind=name, url=url, method=method, body=body, headers=headers, timeout=timeout
        )

    def multipart(self, url: str, parts: str, name: str | None = None) -> str:
        return self.node(
            "HTTP_MULTIPART",
            bind=name,
            url=url,
            method="POST",
            parts=parts,
            headers=None,
            timeout=30,
        )

    def retry(
        self,
        x: str,
        attempts: int = 3,
        backoff: float = 1,
        factor: float = 2,
        max_backoff: float = 300,
        jitter: bool = False,
        name: str | None = None,
    ) -> str:
        return self.node(
            "RETRY",
            x,
            bind=name,
            attempts=attempts,
            backoff=backoff,
            factor=factor,
            max_backoff=max_backoff,
            jitter=jitter,
        )

    def timeout(self, x: str, seconds: float, name: str | None = None) -> str:
        return self.node("TIMEOUT", x, bind=name, seconds=seconds)

    def plan(self, root: str) -> Plan:
        spans = {
            nid: SourceSpan(file="t.df", line=i, column=1, end_line=i, end_column=2, start=0, end=1)
            for i, nid in enumerate(self.nodes, 1)
        }
        return Plan(name="t", root=root, nodes=dict(self.nodes), source_map=spans)


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
        self.last = evaluate(
            self.plan,
            instance_id=self.instance_id,
            label=self.label,
            vars=self.vars,
            records=dict(self.records),
            signals=list(self.signals),
            now=self.now,
            history_limit=self.history_limit,
        )
        return self.last

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
