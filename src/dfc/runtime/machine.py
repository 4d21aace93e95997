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
MAP             ``completed`` with the results once every row finished; ``decided`` with the
                error when a row fails (``on_error => 'fail'``); summary records of finished
                blocks of rows (key ``n4[0]``), whose rows' records are pruned; see
                `dfc.runtime.fanout`
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

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import assert_never

from dfc.json_types import JSON
from dfc.plan import nodes
from dfc.plan.model import Plan, PlanNode
from dfc.runtime import codes
from dfc.runtime.composites import Composites
from dfc.runtime.errors import node_error
from dfc.runtime.fanout import Fanout
from dfc.runtime.frontier import Memo
from dfc.runtime.outcome import (
    BROKEN,
    DONE,
    FAILED,
    INF,
    RUNNING,
    STATUS,
    WAITING,
    Outcome,
    SignalWait,
    Wake,
    json_or_text,
)
from dfc.runtime.prepared import prepared
from dfc.runtime.request import BadRequest, build_request
from dfc.runtime.scope import Scope
from dfc.runtime.state import (
    Action,
    Evaluation,
    NodeRecord,
    RunHttp,
    RunSql,
    Signal,
    StartChild,
    Statuses,
    child_signal,
)
from dfc.runtime.substitute import SubstitutionError, substitute_raw, substitute_sql
from dfc.runtime.timers import next_fire

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


class _Run(Composites, Fanout):
    """One evaluation: the driver, the walk's dispatch on node types, and the leaves (the
    composite nodes are in `dfc.runtime.composites`, ``df.map`` in `dfc.runtime.fanout`, the
    shared bookkeeping in `dfc.runtime.replay`)."""

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
        statuses = Statuses(self.st_keys, self.st_vals, dict.fromkeys(self.revoked, "cancelled"))
        return Evaluation(
            status=status,  # type: ignore[arg-type]
            result=result,
            error=error,
            actions=tuple(actions),
            next_wake=min(wakes) if wakes else None,
            waiting_for_signal=signal_wait,
            statuses=statuses,
            iterations=self.iterations,
            maps=self.maps,
        )

    # -- the walk -----------------------------------------------------------------------------

    def walk(self, nid: str, prefix: str, scope: Scope, deadline: datetime | None) -> Outcome:
        """Walk the subtree of node `nid` running under key prefix `prefix` with the bindings
        `scope`; `deadline` is the nearest enclosing df.timeout's."""
        node = self.nodes[nid]
        key = prefix + nid
        slot = len(self.st_vals)
        self._status(key, "pending")
        config = node.config
        match config:
            case nodes.Sql():
                out = self._sql(node, config, key, scope, deadline)
            case nodes.Then():
                out = self._then(node, prefix, scope, deadline)
            case nodes.Join():
                out = self._join(node, key, prefix, scope, deadline)
            case nodes.Race():
                out = self._race(node, key, prefix, scope, deadline)
            case nodes.If() | nodes.IfRows():
                out = self._if(node, config, prefix, scope, deadline)
            case nodes.Loop():
                out = self._loop(node, key, prefix, scope, deadline)
            case nodes.Break():
                out = self._break(node, config, key, scope)
            case nodes.Sleep() | nodes.WaitSchedule():
                out = self._timer(node, config, key, scope)
            case nodes.Signal():
                out = self._signal(node, config, key, scope)
            case nodes.Http() | nodes.HttpMultipart():
                out = self._http(node, config, key, scope, deadline)
            case nodes.Call():  # and nodes.Spawn, its subclass
                out = self._call(node, config, key, scope)
            case nodes.Retry():
                out = self._retry(node, config, key, prefix, scope, deadline)
            case nodes.Timeout():
                out = self._timeout(node, config, key, prefix, scope, deadline)
            case nodes.Map():
                out = self._map(node, config, key, prefix, scope, deadline)
            case _:
                assert_never(config)
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

    def _finished(self, key: str, scope: Scope) -> Outcome | None:
        """The outcome the record of the leaf at ``key`` already settles, if any."""
        rec = self.records.get(key)
        if rec is None:
            return None
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

    def _sql(
        self, node: PlanNode, config: nodes.Sql, key: str, scope: Scope, deadline: datetime | None
    ) -> Outcome:
        done = self._finished(key, scope)
        if done is not None:
            return done
        try:
            sql = substitute_sql(config.query, scope, self.vars)
        except SubstitutionError as e:
            return self._substitution_failed(node, key, scope, e)
        self.items.append(
            RunSql(
                key=key,
                node_id=node.id,
                sql=sql,
                autocommit=config.autocommit,
                timeout_s=self._remaining(deadline),
            )
        )
        return Outcome(RUNNING, scope)

    def _break(self, node: PlanNode, config: nodes.Break, key: str, scope: Scope) -> Outcome:
        value: JSON = None
        if config.value is not None:
            try:
                value = json_or_text(substitute_raw(config.value, scope, self.vars))
            except SubstitutionError as e:
                return self._substitution_failed(node, key, scope, e)
        # No record: a break is re-derived from the records before it on every replay.
        return Outcome(BROKEN, scope, result=value, seq=0)

    def _timer(
        self, node: PlanNode, config: nodes.Sleep | nodes.WaitSchedule, key: str, scope: Scope
    ) -> Outcome:
        done = self._finished(key, scope)
        if done is not None:
            return done
        rec = self.records.get(key)
        if isinstance(config, nodes.Sleep):
            result: JSON = {"slept": True, "seconds": config.seconds}
            wake = self.now + timedelta(seconds=config.seconds)
        else:
            result = {"scheduled": True}
            wake = next_fire(config.cron, self.now, config.timezone)
        if rec is not None and rec.wake_at is not None:
            wake = rec.wake_at
        if self.now >= wake:
            self._store(NodeRecord(key=key, node_id=node.id, status="completed", result=result))
            return Outcome(DONE, scope, result=result, seq=INF)
        if rec is None:
            self._store(NodeRecord(key=key, node_id=node.id, status="waiting", wake_at=wake))
        self.items.append(Wake(key, wake))
        return Outcome(WAITING, scope)

    def _signal(self, node: PlanNode, config: nodes.Signal, key: str, scope: Scope) -> Outcome:
        done = self._finished(key, scope)
        if done is not None:
            return done
        rec = self.records.get(key)
        name = config.name
        for sig in self.by_name.get(name, ()):
            if sig.seq not in self.claimed:
                self.claimed.add(sig.seq)
                data = None if sig.payload is None else json_or_text(sig.payload)
                result = {"signal_name": name, "timed_out": False, "data": data}
                record = NodeRecord(key=key, node_id=node.id, status="completed", result=result)
                self._store(record, consume_signal=sig.seq)
                return Outcome(DONE, scope, result=result, seq=INF)
        timeout = config.timeout
        if rec is not None:
            wake = rec.wake_at
        else:
            wake = None if timeout is None else self.now + timedelta(seconds=timeout)
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

    def _http(
        self,
        node: PlanNode,
        config: nodes.Http | nodes.HttpMultipart,
        key: str,
        scope: Scope,
        deadline: datetime | None,
    ) -> Outcome:
        done = self._finished(key, scope)
        if done is not None:
            return done
        try:
            request = build_request(
                config,
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

    def _call(self, node: PlanNode, config: nodes.Call, key: str, scope: Scope) -> Outcome:
        """``df.call`` / ``df.spawn``: start the child (the engine records the step with it:
        ``waiting`` with ``detail.child`` for a call, ``completed`` with ``{"id": child}`` for a
        spawn), then, for a call, wait for the signal its end sends."""
        done = self._finished(key, scope)
        if done is not None:
            return done
        rec = self.records.get(key)
        if rec is None:
            try:
                values = {
                    name: substitute_raw(v, scope, self.vars) if isinstance(v, str) else v
                    for name, v in config.args.items()
                }
            except SubstitutionError as e:
                return self._substitution_failed(node, key, scope, e)
            self.items.append(
                StartChild(
                    key=key,
                    node_id=node.id,
                    workflow=config.workflow,
                    version=config.version,
                    vars=values,
                    wait=not isinstance(config, nodes.Spawn),
                    idempotency_key=f"{self.instance_id}/{key}",
                )
            )
            return Outcome(RUNNING, scope)
        child = rec.detail.get("child")
        for sig in self.by_name.get(child_signal(key), ()):
            ended = _child_outcome(sig, child)
            if sig.seq in self.claimed or ended is None:
                continue  # not this child's end (a signal sent by hand under that name)
            self.claimed.add(sig.seq)
            return self._child_ended(node, config, key, scope, rec, sig.seq, ended)
        self.items.append(SignalWait(key))
        return Outcome(WAITING, scope)

    def _child_ended(
        self,
        node: PlanNode,
        config: nodes.Call,
        key: str,
        scope: Scope,
        rec: NodeRecord,
        seq: int,
        ended: Mapping[str, JSON],
    ) -> Outcome:
        """The step of a call whose child ended: its result, or its failure."""
        done = child_ended(self.plan, key, node.id, config.workflow, ended, rec.detail)
        self._store(done, consume_signal=seq)
        if done.status == "completed":
            return Outcome(DONE, scope, result=done.result, seq=INF)
        return Outcome(FAILED, scope, error=done.error, seq=INF)


def child_ended(
    plan: Plan,
    key: str,
    node_id: str,
    workflow: str,
    ended: Mapping[str, JSON],
    detail: Mapping[str, JSON],
) -> NodeRecord:
    """The record of the call step at ``key`` whose child ended as ``ended`` says (the payload
    of its end signal: ``child``, ``status``, ``result``, ``error``, ``reason``): completed with
    the child's result, or failed with an error naming the child."""
    child, status = ended.get("child"), ended.get("status")
    if status == "completed":
        result = ended.get("result")
        return NodeRecord(
            key=key, node_id=node_id, status="completed", result=result, detail=detail
        )
    what = f"child {child} ({workflow})"
    if status == "failed":
        cause = ended.get("error")
        message = cause.get("message") if isinstance(cause, Mapping) else cause
        error = node_error(
            plan,
            key,
            node_id,
            f"{what} failed: {message}",
            code=codes.CHILD_FAILED,
            child=child,
            child_error=cause,
        )
    else:
        reason = ended.get("reason")
        error = node_error(
            plan,
            key,
            node_id,
            f"{what} was cancelled" + (f": {reason}" if reason else ""),
            code=codes.CHILD_CANCELLED,
            child=child,
        )
    return NodeRecord(key=key, node_id=node_id, status="failed", error=error, detail=detail)


def _child_outcome(sig: Signal, child: JSON) -> Mapping[str, JSON] | None:
    """The outcome a child's end signal carries (migration 0013), when it is ``child``'s."""
    try:
        ended = json.loads(sig.payload or "")
    except ValueError:
        return None
    if not isinstance(ended, dict) or child is None or ended.get("child") != child:
        return None
    return ended
