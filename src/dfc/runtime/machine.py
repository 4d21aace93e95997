"""The replaying state machine: what an instance has done and what it must do next.

`evaluate` is a pure, deterministic function of the plan, the instance's variables, its node
records, its buffered signals and the clock (SPEC §5). It walks the plan from the root: a node
is finished iff that is derivable from the records; a leaf that is not becomes an action. See
`dfc.runtime.state` for the vocabulary and the contract with the engine.

Records the machine itself asks to store (`Store`):

=============== ===================================================================================
SLEEP, SCHEDULE ``waiting`` with ``wake_at`` when first reached; ``completed`` with the result once
                ``now >= wake_at``
SIGNAL          ``waiting`` (``wake_at`` = the timeout's deadline, or none); ``completed`` with the
                result, consuming the oldest buffered signal of that name (``consume_signal``),
                or with ``timed_out: true`` at the deadline
any leaf        ``failed`` when its references cannot be substituted (the step never runs)
RACE            ``decided``, ``detail`` ``{"winner": i}`` (branch index from 0), when the first
                branch finishes (completes, fails or breaks)
JOIN            ``decided`` when a branch fails or breaks: ``detail`` ``{"branch": i, "outcome":
                "failed" | "break", "completed": [j, ...]}``, the error or the break value
RETRY           ``waiting`` after attempt k failed: ``attempt`` = k + 1, ``wake_at`` = end of the
                backoff, ``detail`` ``{"attempts", "delays", "errors"}``; ``completed`` (same
                detail) when a later attempt succeeds; ``failed`` when the last attempt failed
TIMEOUT         ``running`` with ``wake_at`` = the deadline when first reached; ``completed`` when
                the subtree finished in time; ``failed`` when the deadline passed first
=============== ===================================================================================

Loops, sequences, ifs and breaks keep no records: a loop's current iteration is the newest
iteration that has records (or the next one, once that one is finished), and old iterations are
pruned (`Prune`) down to ``history_limit``. Statuses: every visited key gets one; the children
a sequence, if or loop has not reached yet get ``pending`` (their own subtrees are absent: an
absent key means not reached); race losers and the siblings of a failed or broken join branch
get ``cancelled`` (were active) or ``skipped`` (never reached).

Concurrency: finishing order is the records' ``seq`` order; a finish caused by a Store of the
evaluation itself counts as after every stored record, ties going to the earlier branch — the
order in which the engine will write those Stores. Decisions that later records could otherwise
change (races, join failures and breaks) are persisted as ``decided`` records.

Compensation (``undo``, SPEC §5.8) is not executed yet; nothing here stands in its way: records
keep completion order (``seq``), and the bindings a step saw are re-derivable by this replay.
"""

from __future__ import annotations

import sys
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import repeat
from typing import Any, assert_never

from dfc.plan.model import Plan, PlanNode
from dfc.runtime import codes
from dfc.runtime.errors import brief, node_error, with_path
from dfc.runtime.frontier import Memo
from dfc.runtime.keys import attempt_prefix, iteration_prefix, loop_index
from dfc.runtime.outcome import (
    BROKEN,
    DONE,
    FAILED,
    INF,
    RUNNING,
    STATUS,
    WAITING,
    Item,
    Outcome,
    SignalWait,
    Wake,
    has_rows,
    json_or_text,
    merge,
)
from dfc.runtime.prepared import Chain, Prepared, prepared
from dfc.runtime.request import BadRequest, build_request
from dfc.runtime.scope import Scope
from dfc.runtime.state import (
    Action,
    Cancel,
    Evaluation,
    NodeRecord,
    Prune,
    RunHttp,
    RunSql,
    Signal,
    Store,
)
from dfc.runtime.substitute import SubstitutionError, substitute_raw, substitute_sql
from dfc.runtime.timers import backoff, next_fire
from dfc.runtime.truth import truthy

JSON = Any


# -- evaluation -----------------------------------------------------------------------------------


def evaluate(
    plan: Plan,
    *,
    instance_id: str,
    label: str | None,
    vars: Mapping[str, str],
    records: Mapping[str, NodeRecord],
    signals: Sequence[Signal],
    now: datetime,
    history_limit: int = 10,
    memo: Memo | None = None,
) -> Evaluation:
    """Replay the instance and say what it must do next (pure; no I/O, no clock, no randomness).

    `records` maps node keys to their stored records, `signals` are the buffered, unconsumed
    signals, `now` is an aware datetime, `history_limit` (≥ 1) the number of loop iterations
    whose records are kept. A caller that evaluates the same instance again and again passes
    the same `memo` each time: later evaluations then skip the finished start of sequences
    (the result is the same with or without it; see `dfc.runtime.frontier`).
    """
    prep = prepared(plan)
    needed = prep.depth * 4 + 200
    if sys.getrecursionlimit() < needed:  # deep but legal nesting: the walk is recursive
        sys.setrecursionlimit(needed)
    run = _Run(
        plan=plan,
        prepared=prep,
        instance_id=instance_id,
        variables={**vars, "sys_instance_id": instance_id, "sys_label": label or ""},
        records=records,
        signals=signals,
        now=now,
        history_limit=max(1, history_limit),
        memo=memo if memo is not None else Memo(),
    )
    return run.evaluate()


class _Run:
    """One evaluation: the walk's inputs and what it collects."""

    def __init__(
        self,
        *,
        plan: Plan,
        prepared: Prepared,
        instance_id: str,
        variables: Mapping[str, str],
        records: Mapping[str, NodeRecord],
        signals: Sequence[Signal],
        now: datetime,
        history_limit: int,
        memo: Memo,
    ) -> None:
        self.plan = plan
        self.memo = memo
        self.nodes = plan.nodes
        self.chains = prepared.chains
        self.has_loops = prepared.has_loops
        self.instance_id = instance_id
        self.vars = variables
        self.records = records
        self.now = now
        self.history_limit = history_limit
        self.by_name: dict[str, list[Signal]] = {}
        for sig in sorted(signals, key=lambda s: s.seq):
            self.by_name.setdefault(sig.name, []).append(sig)
        self.claimed: set[int] = set()
        self.items: list[Item] = []
        self.st_keys: list[str] = []
        self.st_vals: list[str] = []
        self.revoked: set[str] = set()
        self.iterations: dict[str, int] = {}
        self._loops: dict[str, dict[int, list[str]]] | None = None
        # (seq, walk order, key, undo root, bindings) of every completed node with an undo
        self.undos: list[tuple[float, int, str, str, Scope]] = []

    # -- driver -------------------------------------------------------------------------------

    def evaluate(self) -> Evaluation:
        root = self.plan.root
        out = self.walk(root, "", Scope.EMPTY, None)
        if out.state == BROKEN:
            broke = node_error(
                self.plan,
                root,
                root,
                "df.break was reached outside any loop",
                code=codes.BREAK_OUTSIDE_LOOP,
            )
            out = Outcome(FAILED, out.scope, error=broke)
        if out.state == FAILED and self.undos:
            out = self._compensate(out)
        status = "running"
        result: JSON = None
        error: JSON = None
        if out.state == DONE:
            status, result = "completed", out.result
        elif out.state == FAILED:
            status, error = "failed", out.error
        actions: list[Action] = []
        wakes: list[datetime] = []
        signal_wait = False
        for item in self.items:
            if item is None:
                continue
            if isinstance(item, Wake):
                wakes.append(item.at)
            elif isinstance(item, SignalWait):
                signal_wait = True
            else:
                actions.append(item)
        if status != "running":
            wakes, signal_wait = [], False
        statuses = dict(zip(self.st_keys, self.st_vals, strict=True))
        for key in self.revoked:
            statuses[key] = "cancelled"
        return Evaluation(
            status=status,  # type: ignore[arg-type]
            result=result,
            error=error,
            actions=tuple(actions),
            next_wake=min(wakes) if wakes else None,
            waiting_for_signal=signal_wait,
            statuses=statuses,
            iterations=self.iterations,
        )

    # -- bookkeeping --------------------------------------------------------------------------

    def _status(self, key: str, status: str) -> None:
        self.st_keys.append(key)
        self.st_vals.append(status)

    def _mark(self) -> tuple[int, int]:
        return len(self.items), len(self.st_keys)

    def _discard(self, start: tuple[int, int], end: tuple[int, int], *, cancel: bool) -> list[str]:
        """Withdraw what a subtree walked between two marks asked for (a race loser, the
        siblings of a failed join branch, a timed-out subtree): its runs and waits become keys
        to cancel, its Stores are dropped (releasing the signals they would consume), its
        statuses become cancelled (was active) or skipped (not reached)."""
        keys: list[str] = []
        items = self.items
        for i in range(start[0], end[0]):
            item = items[i]
            match item:
                case None | Prune():
                    continue
                case RunSql() | RunHttp() | Wake() | SignalWait():
                    keys.append(item.key)
                case Store():
                    if item.consume_signal is not None:
                        self.claimed.discard(item.consume_signal)
                    if item.record.status == "completed":
                        keys.append(item.record.key)  # a timer or wait that fired just now
                        self.revoked.add(item.record.key)
                case Cancel():
                    keys.extend(item.keys)
            items[i] = None
        vals = self.st_vals
        for j in range(start[1], end[1]):
            if vals[j] in ("running", "waiting"):
                vals[j] = "cancelled"
            elif vals[j] == "pending":
                vals[j] = "skipped"
        keys = list(dict.fromkeys(keys))
        return keys if cancel else []

    def _cancel(self, keys: list[str], reason: str) -> None:
        if keys:
            self.items.append(Cancel(keys=tuple(keys), reason=reason))

    def _store(self, record: NodeRecord, consume_signal: int | None = None) -> None:
        self.items.append(Store(record=record, consume_signal=consume_signal))

    def _error(self, node: PlanNode, key: str, message: str, **kw: JSON) -> dict[str, JSON]:
        return node_error(self.plan, key, node.id, message, **kw)

    def _fail(self, node: PlanNode, key: str, scope: Scope, error: dict[str, JSON]) -> Outcome:
        """Fail a leaf durably (a failure the machine found, e.g. a substitution error)."""
        self._store(NodeRecord(key=key, node_id=node.id, status="failed", error=error))
        return Outcome(FAILED, scope, error=error, seq=INF)

    def _substitution_failed(
        self, node: PlanNode, key: str, scope: Scope, e: SubstitutionError
    ) -> Outcome:
        error = self._error(node, key, e.message, code=e.code, reference=e.reference)
        return self._fail(node, key, scope, error)

    def _remaining(self, deadline: datetime | None) -> float | None:
        if deadline is None:
            return None
        return max(0.001, (deadline - self.now).total_seconds())

    def _loop_index(self) -> dict[str, dict[int, list[str]]]:
        if self._loops is None:
            self._loops = loop_index(self.records)
        return self._loops

    # -- the walk -----------------------------------------------------------------------------

    def walk(self, nid: str, prefix: str, scope: Scope, deadline: datetime | None) -> Outcome:
        """Walk the subtree of node `nid` running under key prefix `prefix` with the bindings
        `scope`; `deadline` is the nearest enclosing df.timeout's."""
        node = self.nodes[nid]
        key = prefix + nid
        slot = len(self.st_vals)
        self._status(key, "pending")
        match node.type:
            case "SQL":
                out = self._sql(node, key, scope, deadline)
            case "THEN":
                out = self._then(node, prefix, scope, deadline)
            case "JOIN":
                out = self._join(node, key, prefix, scope, deadline)
            case "RACE":
                out = self._race(node, key, prefix, scope, deadline)
            case "IF":
                out = self._if(node, prefix, scope, deadline)
            case "LOOP":
                out = self._loop(node, key, prefix, scope, deadline)
            case "BREAK":
                out = self._break(node, key, scope)
            case "SLEEP" | "WAIT_SCHEDULE":
                out = self._timer(node, key, scope)
            case "SIGNAL":
                out = self._signal(node, key, scope)
            case "HTTP" | "HTTP_MULTIPART":
                out = self._http(node, key, scope, deadline)
            case "RETRY":
                out = self._retry(node, key, prefix, scope, deadline)
            case "TIMEOUT":
                out = self._timeout(node, key, prefix, scope, deadline)
            case _:  # Plan.from_json refuses unknown types
                assert_never(node.type)
        self.st_vals[slot] = STATUS[out.state]
        if out.state == DONE:
            if node.result_name is not None:
                out.scope = out.scope.bind(node.result_name, out.result)
            if node.undo is not None:
                self.undos.append((out.seq, len(self.undos), key, node.undo, out.scope))
        return out

    def _compensate(self, failure: Outcome) -> Outcome:
        """The instance failed: run the undo subtrees of the completed steps, one at a time, the
        latest completed first (SPEC §5.8), each under the key of its step plus ``~/`` and with
        the bindings its step saw. The instance then fails with ``compensated`` in its error."""
        error = (
            failure.error if isinstance(failure.error, dict) else {"message": str(failure.error)}
        )
        for _seq, _order, key, undo, scope in sorted(self.undos, reverse=True):
            out = self.walk(undo, key + "~/", scope, None)
            if out.state in (RUNNING, WAITING):
                return out
            if out.state != DONE:  # an undo failed: stop compensating, report both
                undo_error = (
                    out.error if out.state == FAILED else {"message": "df.break in an undo"}
                )
                return Outcome(
                    FAILED,
                    scope,
                    error={**error, "compensated": False, "compensation_error": undo_error},
                )
        return Outcome(FAILED, failure.scope, error={**error, "compensated": True})

    # -- leaves -------------------------------------------------------------------------------

    def _finished(self, rec: NodeRecord, scope: Scope) -> Outcome | None:
        """The outcome a leaf's record already settles, if any."""
        status = rec.status
        if status == "completed":
            return Outcome(DONE, scope, result=rec.result, seq=rec.seq)
        if status == "failed":
            return Outcome(FAILED, scope, error=rec.error, seq=rec.seq)
        if status in ("cancelled", "skipped"):
            # Only reachable if an engine cancelled work the machine still considers live.
            error = rec.error or {
                "message": "the step was cancelled",
                "node": rec.node_id,
                "key": rec.key,
            }
            return Outcome(FAILED, scope, error=error, seq=rec.seq)
        return None

    def _sql(self, node: PlanNode, key: str, scope: Scope, deadline: datetime | None) -> Outcome:
        rec = self.records.get(key)
        if rec is not None:
            done = self._finished(rec, scope)
            if done is not None:
                return done
        config = node.config
        try:
            sql = substitute_sql(config.get("query", ""), scope, self.vars)
        except SubstitutionError as e:
            return self._substitution_failed(node, key, scope, e)
        self.items.append(
            RunSql(
                key=key,
                node_id=node.id,
                sql=sql,
                autocommit=bool(config.get("autocommit", False)),
                timeout_s=self._remaining(deadline),
            )
        )
        return Outcome(RUNNING, scope)

    def _break(self, node: PlanNode, key: str, scope: Scope) -> Outcome:
        text = node.config.get("value")
        value: JSON = None
        if text is not None:
            try:
                value = json_or_text(substitute_raw(str(text), scope, self.vars))
            except SubstitutionError as e:
                return self._substitution_failed(node, key, scope, e)
        # No record: a break is re-derived from the records before it on every replay.
        return Outcome(BROKEN, scope, result=value, seq=0)

    def _timer(self, node: PlanNode, key: str, scope: Scope) -> Outcome:
        rec = self.records.get(key)
        if rec is not None:
            done = self._finished(rec, scope)
            if done is not None:
                return done
        config = node.config
        if node.type == "SLEEP":
            seconds = int(config.get("seconds", 0))
            result: JSON = {"slept": True, "seconds": seconds}
            wake = self.now + timedelta(seconds=seconds)
        else:
            result = {"scheduled": True}
            wake = next_fire(str(config["cron"]), self.now, str(config.get("timezone") or "UTC"))
        if rec is not None and rec.wake_at is not None:
            wake = rec.wake_at
        if self.now >= wake:
            self._store(NodeRecord(key=key, node_id=node.id, status="completed", result=result))
            return Outcome(DONE, scope, result=result, seq=INF)
        if rec is None:
            self._store(NodeRecord(key=key, node_id=node.id, status="waiting", wake_at=wake))
        self.items.append(Wake(key, wake))
        return Outcome(WAITING, scope)

    def _signal(self, node: PlanNode, key: str, scope: Scope) -> Outcome:
        rec = self.records.get(key)
        if rec is not None:
            done = self._finished(rec, scope)
            if done is not None:
                return done
        name = str(node.config.get("name", ""))
        for sig in self.by_name.get(name, ()):
            if sig.seq not in self.claimed:
                self.claimed.add(sig.seq)
                data = None if sig.payload is None else json_or_text(sig.payload)
                result = {"signal_name": name, "timed_out": False, "data": data}
                record = NodeRecord(key=key, node_id=node.id, status="completed", result=result)
                self._store(record, consume_signal=sig.seq)
                return Outcome(DONE, scope, result=result, seq=INF)
        timeout = node.config.get("timeout")
        if rec is not None:
            wake = rec.wake_at
        else:
            wake = None if timeout is None else self.now + timedelta(seconds=float(timeout))
        if wake is not None and self.now >= wake:
            result = {"signal_name": name, "timed_out": True, "data": None}
            self._store(NodeRecord(key=key, node_id=node.id, status="completed", result=result))
            return Outcome(DONE, scope, result=result, seq=INF)
        if rec is None:
            self._store(NodeRecord(key=key, node_id=node.id, status="waiting", wake_at=wake))
        self.items.append(SignalWait(key))
        if wake is not None:
            self.items.append(Wake(key, wake))
        return Outcome(WAITING, scope)

    def _http(self, node: PlanNode, key: str, scope: Scope, deadline: datetime | None) -> Outcome:
        rec = self.records.get(key)
        if rec is not None:
            done = self._finished(rec, scope)
            if done is not None:
                return done
        try:
            request = build_request(
                node,
                key,
                scope,
                self.vars,
                instance_id=self.instance_id,
                remaining=self._remaining(deadline),
            )
        except SubstitutionError as e:
            return self._substitution_failed(node, key, scope, e)
        except BadRequest as e:
            return self._fail(
                node, key, scope, self._error(node, key, str(e), code=codes.BAD_REQUEST)
            )
        self.items.append(RunHttp(key=key, node_id=node.id, request=request))
        return Outcome(RUNNING, scope)

    # -- composites ---------------------------------------------------------------------------

    def _then(
        self, node: PlanNode, prefix: str, scope: Scope, deadline: datetime | None
    ) -> Outcome:
        chain = self.chains[node.id]
        items, plain = chain.items, chain.plain
        front = self.memo.front(node.id, prefix, chain)
        keys = front.keys
        nodes, records = self.nodes, self.records
        st_keys, st_vals = self.st_keys, self.st_vals
        # The leading finished steps that still have the records of the last evaluation are
        # settled as they were then (see `dfc.runtime.frontier`).
        start = front.resume(records, scope)
        recs, scopes, seqs = front.recs, front.scopes, front.seqs
        seq = 0.0
        last: JSON = None
        if start:
            st_keys.extend(keys[:start])
            st_vals.extend(repeat("completed", start))
            scope, seq, last = scopes[start - 1], seqs[start - 1], recs[start - 1].result
        growing = True  # every step so far was a finished plain leaf: the front grows
        out: Outcome | None = None
        stopped = len(items)
        for i in range(start, len(items)):
            if plain[i]:
                # The hot path of a long sequence: a finished leaf needs no walk at all.
                key = keys[i]
                rec = records.get(key)
                if rec is not None and rec.status == "completed":
                    st_keys.append(key)
                    st_vals.append("completed")
                    if rec.seq > seq:
                        seq = rec.seq
                    last = rec.result
                    name = nodes[items[i]].result_name
                    if name is not None:
                        scope = scope.bind(name, last)
                    if growing:
                        recs.append(rec)
                        scopes.append(scope)
                        seqs.append(seq)
                    continue
            growing = False
            out = self.walk(items[i], prefix, scope, deadline)
            if out.seq > seq:
                seq = out.seq
            if out.state != DONE:
                stopped = i
                break
            scope, last = out.scope, out.result
        if stopped == len(items):
            out = Outcome(DONE, scope, result=last)
        assert out is not None
        if stopped < len(items):
            st_keys.extend(keys[stopped + 1 :])
            st_vals.extend(repeat("pending", len(items) - stopped - 1))
        if chain.inner:
            self._inner_statuses(chain, front.inner_keys, stopped, STATUS[out.state])
        out.seq = seq
        return out

    def _inner_statuses(
        self, chain: Chain, inner_keys: tuple[str, ...], stopped: int, state: str
    ) -> None:
        """Statuses of the THEN nodes inside a chain that stopped at step `stopped`."""
        self.st_keys.extend(inner_keys)
        ends = chain.nested_ends
        if ends is not None:  # a left-deep chain: a completed prefix, then the chain's state
            done = bisect_right(ends, stopped)
            self.st_vals.extend(repeat("completed", done))
            self.st_vals.extend(repeat(state, len(ends) - done))
            return
        self.st_vals.extend(
            "completed" if hi <= stopped else state if lo <= stopped else "pending"
            for _, lo, hi in chain.inner
        )

    def _join(
        self, node: PlanNode, key: str, prefix: str, scope: Scope, deadline: datetime | None
    ) -> Outcome:
        outs: list[Outcome] = []
        marks: list[tuple[tuple[int, int], tuple[int, int]]] = []
        for child in node.children:
            start = self._mark()
            outs.append(self.walk(child, prefix, scope, deadline))
            marks.append((start, self._mark()))
        rec = self.records.get(key)
        if rec is not None and rec.status == "decided":
            branch = int(rec.detail.get("branch", 0))
            for i, m in enumerate(marks):
                if i != branch:
                    self._discard(*m, cancel=False)
            if rec.detail.get("outcome") == "break":
                keep = [*rec.detail.get("completed", ()), branch]
                merged = merge(scope, [o for i, o in enumerate(outs) if i in keep])
                return Outcome(BROKEN, merged, result=rec.result, seq=rec.seq)
            return Outcome(FAILED, scope, error=rec.error, seq=rec.seq)
        ended = [i for i, o in enumerate(outs) if o.state in (FAILED, BROKEN)]
        if ended:
            # The first branch to fail or break decides (SPEC §5.2 JOIN, BREAK); persisted, so
            # a sibling failing a moment later can never change the outcome on replay.
            branch = min(ended, key=lambda i: (outs[i].seq, i))
            first = outs[branch]
            completed = [i for i, o in enumerate(outs) if o.state == DONE]
            cancel: list[str] = []
            for i, m in enumerate(marks):
                if i != branch:
                    cancel += self._discard(*m, cancel=True)
            detail: dict[str, JSON] = {"branch": branch, "completed": completed}
            if first.state == FAILED:
                detail["outcome"] = "failed"
                error = with_path(
                    first.error, {"node": node.id, "key": key, "join_branch": branch + 1}
                )
                self._store(
                    NodeRecord(
                        key=key, node_id=node.id, status="decided", error=error, detail=detail
                    )
                )
                self._cancel(cancel, f"branch {branch + 1} of the join failed")
                return Outcome(FAILED, scope, error=error, seq=INF)
            detail["outcome"] = "break"
            self._store(
                NodeRecord(
                    key=key, node_id=node.id, status="decided", result=first.result, detail=detail
                )
            )
            self._cancel(cancel, f"branch {branch + 1} of the join broke out of the loop")
            merged = merge(scope, [outs[i] for i in (*completed, branch)])
            return Outcome(BROKEN, merged, result=first.result, seq=INF)
        if all(o.state == DONE for o in outs):
            return Outcome(
                DONE,
                merge(scope, outs),
                result=[o.result for o in outs],
                seq=max((o.seq for o in outs), default=0),
            )
        return Outcome(RUNNING if any(o.state == RUNNING for o in outs) else WAITING, scope)

    def _race(
        self, node: PlanNode, key: str, prefix: str, scope: Scope, deadline: datetime | None
    ) -> Outcome:
        outs: list[Outcome] = []
        marks: list[tuple[tuple[int, int], tuple[int, int]]] = []
        for child in node.children:
            start = self._mark()
            outs.append(self.walk(child, prefix, scope, deadline))
            marks.append((start, self._mark()))
        rec = self.records.get(key)
        decided = rec is not None and rec.status == "decided"
        if decided:
            assert rec is not None
            winner = int(rec.detail.get("winner", 0))
        else:
            ended = [i for i, o in enumerate(outs) if o.state in (DONE, FAILED, BROKEN)]
            if not ended:
                return Outcome(RUNNING if any(o.state == RUNNING for o in outs) else WAITING, scope)
            winner = min(ended, key=lambda i: (outs[i].seq, i))
        cancel: list[str] = []
        for i, m in enumerate(marks):
            if i != winner:
                cancel += self._discard(*m, cancel=not decided)
        out = outs[winner]
        if not decided:
            self._store(
                NodeRecord(key=key, node_id=node.id, status="decided", detail={"winner": winner})
            )
            self._cancel(cancel, f"branch {winner + 1} won the race")
        if out.state == FAILED:
            out.error = with_path(
                out.error, {"node": node.id, "key": key, "race_branch": winner + 1}
            )
        return out

    def _if(self, node: PlanNode, prefix: str, scope: Scope, deadline: datetime | None) -> Outcome:
        kids = node.children
        if node.config.get("test") == "rows":
            name = str(node.config.get("result_name", ""))
            value = scope.get(name)
            take = has_rows(value)
            arms = kids[0:2]
            seq = 0.0
        else:
            cond = self.walk(kids[0], prefix, scope, deadline)
            arms = kids[1:3]
            if cond.state != DONE:
                for arm in arms:
                    self._status(prefix + arm, "pending")
                return cond
            take = truthy(cond.result)
            scope = cond.scope
            seq = cond.seq
        then_id, else_id = arms[0], arms[1] if len(arms) > 1 else None
        arm_id, other = (then_id, else_id) if take else (else_id, then_id)
        if other is not None:
            self._status(prefix + other, "skipped")
        if arm_id is None:  # `?>` without `!>` (SQL surface only): the missing arm does nothing
            return Outcome(DONE, scope, result=None, seq=seq)
        out = self.walk(arm_id, prefix, scope, deadline)
        out.seq = max(out.seq, seq)
        return out

    def _loop(
        self, node: PlanNode, key: str, prefix: str, scope: Scope, deadline: datetime | None
    ) -> Outcome:
        body = node.children[0]
        cond = node.children[1] if len(node.children) > 1 else None
        index = self._loop_index().get(key, {})
        newest = max(index) if index else 0  # the newest iteration that has records
        k = max(newest, 1)
        while True:
            iter_prefix = iteration_prefix(prefix, node.id, k)
            first_item = len(self.items)
            out = self.walk(body, iter_prefix, scope, deadline)
            if out.state == BROKEN:
                out.state = DONE
                break
            if out.state != DONE:
                if cond is not None:
                    self._status(iter_prefix + cond, "pending")
                break
            if cond is not None:
                body_result = out.result
                test = self.walk(cond, iter_prefix, out.scope, deadline)
                if test.state == BROKEN:  # a break inside the condition also ends the loop
                    test.state = DONE
                    out = test
                    break
                if test.state != DONE or not truthy(test.result):
                    out = test
                    if test.state == DONE:  # falsy: the loop's result is the last body result
                        out.result = body_result
                    break
            if k > newest:
                # This iteration finished without records of its own before this evaluation:
                # never run a second one in the same evaluation (a body of `df.sleep(0)` would
                # spin here). Its Stores, once applied, make it the newest.
                if any(isinstance(i, Store) for i in self.items[first_item:]):
                    out = Outcome(RUNNING, scope)
                else:
                    error = self._error(
                        node,
                        key,
                        f"iteration {k} of the loop finished without running any step",
                        code=codes.IDLE_ITERATION,
                    )
                    out = Outcome(FAILED, scope, error=error, seq=INF)
                break
            k += 1
        self.iterations[key] = k
        self._prune(node, key, index, k, newest)
        return out

    def _prune(
        self, node: PlanNode, key: str, index: Mapping[int, list[str]], k: int, newest: int
    ) -> None:
        below = min(k - self.history_limit + 1, newest)
        if not index or min(index) >= below:
            return
        old = sorted(i for i in index if i < below)
        doomed = tuple(r for i in old for r in index[i])
        self.items.append(Prune(loop_key=key, below=below, keys=doomed))

    def _retry(
        self, node: PlanNode, key: str, prefix: str, scope: Scope, deadline: datetime | None
    ) -> Outcome:
        config = node.config
        attempts = max(1, int(config.get("attempts", 3)))
        rec = self.records.get(key)
        attempt = rec.attempt if rec is not None else 1
        child = node.children[0]
        child_prefix = attempt_prefix(prefix, node.id, attempt)
        if rec is not None and rec.status == "failed":
            return Outcome(FAILED, scope, error=rec.error, seq=rec.seq)
        if rec is not None and rec.wake_at is not None and self.now < rec.wake_at:
            self._status(child_prefix + child, "pending")
            self.items.append(Wake(key, rec.wake_at))
            return Outcome(WAITING, scope)
        out = self.walk(child, child_prefix, scope, deadline)
        if out.state != FAILED:
            if out.state in (DONE, BROKEN) and rec is not None and rec.status == "waiting":
                # Close the counter so history shows a finished retry, with its attempts.
                self._store(replace(rec, status="completed", wake_at=None, seq=0))
            return out
        detail = dict(rec.detail) if rec is not None else {}
        errors = [*detail.get("errors", ()), brief(out.error)]
        delays = list(detail.get("delays", ()))
        if attempt >= attempts:
            error = with_path(out.error, {"node": node.id, "key": key, "attempts": attempt})
            self._store(
                NodeRecord(
                    key=key,
                    node_id=node.id,
                    status="failed",
                    error=error,
                    attempt=attempt,
                    detail={"attempts": attempts, "delays": delays, "errors": errors},
                )
            )
            return Outcome(FAILED, scope, error=error, seq=INF)
        delay = backoff(config, attempt, f"{self.instance_id}:{key}")
        wake = self.now + timedelta(seconds=delay)
        self._store(
            NodeRecord(
                key=key,
                node_id=node.id,
                status="waiting",
                wake_at=wake,
                attempt=attempt + 1,
                detail={"attempts": attempts, "delays": [*delays, delay], "errors": errors},
            )
        )
        self.items.append(Wake(key, wake))
        return Outcome(WAITING, scope)

    def _timeout(
        self, node: PlanNode, key: str, prefix: str, scope: Scope, deadline: datetime | None
    ) -> Outcome:
        seconds = float(node.config.get("seconds", 0))
        rec = self.records.get(key)
        child = node.children[0]
        start = self._mark()
        if rec is not None and rec.status == "failed":
            self.walk(child, prefix, scope, deadline)  # for the statuses only
            self._discard(start, self._mark(), cancel=False)
            return Outcome(FAILED, scope, error=rec.error, seq=rec.seq)
        if rec is not None and rec.wake_at is not None:
            ends = rec.wake_at
        else:
            ends = self.now + timedelta(seconds=seconds)
            self._store(NodeRecord(key=key, node_id=node.id, status="running", wake_at=ends))
            start = self._mark()
        inner = ends if deadline is None or ends < deadline else deadline
        out = self.walk(child, prefix, scope, inner)
        if out.state not in (RUNNING, WAITING):
            if out.state != FAILED and (rec is None or rec.status == "running"):
                # Close the deadline record so history does not show it running forever.
                self._store(NodeRecord(key=key, node_id=node.id, status="completed", wake_at=ends))
            return out
        if self.now < ends:
            self.items.append(Wake(key, ends))
            return out
        cancel = self._discard(start, self._mark(), cancel=True)
        error = self._error(node, key, f"timed out after {seconds:g} s", code=codes.TIMED_OUT)
        self._store(
            NodeRecord(key=key, node_id=node.id, status="failed", error=error, wake_at=ends)
        )
        self._cancel(cancel, "df.timeout expired")
        return Outcome(FAILED, scope, error=error, seq=INF)
