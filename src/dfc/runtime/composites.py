"""How the composite nodes of the state machine combine their children's outcomes: sequences,
joins, races, ifs, loops, retries and timeouts.

`Composites` is part of the walk in `dfc.runtime.machine`, whose docstring lists the records
these nodes store and the statuses they give their children; each method walks the children
through `walk` (the machine's dispatch) and turns their outcomes into the node's own.
"""

from __future__ import annotations

import abc
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import repeat

from dfc.json_types import JSON
from dfc.plan import nodes
from dfc.plan.model import PlanNode
from dfc.runtime import codes
from dfc.runtime.errors import brief, with_path
from dfc.runtime.keys import attempt_prefix, iteration_prefix
from dfc.runtime.outcome import (
    BROKEN,
    DONE,
    FAILED,
    INF,
    RUNNING,
    STATUS,
    WAITING,
    Outcome,
    Wake,
    has_rows,
    merge,
)
from dfc.runtime.prepared import Chain
from dfc.runtime.replay import Replay
from dfc.runtime.scope import Scope
from dfc.runtime.state import NodeRecord, Prune, Store
from dfc.runtime.timers import backoff
from dfc.runtime.truth import truthy


class Composites(Replay, abc.ABC):
    """The composite-node handlers of one evaluation."""

    @abc.abstractmethod
    def walk(self, nid: str, prefix: str, scope: Scope, deadline: datetime | None) -> Outcome:
        """Walk a subtree: the machine's dispatch on node types (`dfc.runtime.machine`)."""

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

    def _branches(
        self, node: PlanNode, prefix: str, scope: Scope, deadline: datetime | None
    ) -> tuple[list[Outcome], list[tuple[tuple[int, int], tuple[int, int]]]]:
        """Walk every branch of a JOIN or RACE from the same scope; each branch's outcome and the
        marks around what it added (so a losing or cancelled branch can be discarded)."""
        outs: list[Outcome] = []
        marks: list[tuple[tuple[int, int], tuple[int, int]]] = []
        for child in node.children:
            start = self._mark()
            outs.append(self.walk(child, prefix, scope, deadline))
            marks.append((start, self._mark()))
        return outs, marks

    def _join(
        self, node: PlanNode, key: str, prefix: str, scope: Scope, deadline: datetime | None
    ) -> Outcome:
        outs, marks = self._branches(node, prefix, scope, deadline)
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
        outs, marks = self._branches(node, prefix, scope, deadline)
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

    def _if(
        self,
        node: PlanNode,
        config: nodes.If | nodes.IfRows,
        prefix: str,
        scope: Scope,
        deadline: datetime | None,
    ) -> Outcome:
        kids = node.children
        if isinstance(config, nodes.IfRows):
            take = has_rows(scope.get(config.result_name))
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
        if node.id in self.loops_with_undo:
            # Earlier iterations still kept are finished: walking them again runs nothing, and
            # registers the undos of their completed steps for a failure (SPEC §5.8).
            for i in sorted(i for i in index if i < k):
                self.walk(body, iteration_prefix(prefix, node.id, i), scope, deadline)
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
        self,
        node: PlanNode,
        config: nodes.Retry,
        key: str,
        prefix: str,
        scope: Scope,
        deadline: datetime | None,
    ) -> Outcome:
        attempts = max(1, config.attempts)
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
        self,
        node: PlanNode,
        config: nodes.Timeout,
        key: str,
        prefix: str,
        scope: Scope,
        deadline: datetime | None,
    ) -> Outcome:
        seconds = config.seconds
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
