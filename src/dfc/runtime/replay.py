"""One replay in progress: what the state machine's walk reads, what it collects, and the
bookkeeping the node handlers share.

`Replay` is the base of the walk in `dfc.runtime.machine` (which documents the records and
statuses it produces): it holds one evaluation's inputs (plan, records, buffered signals, clock)
and the actions, Stores, waits and statuses gathered so far, with the operations that add to
them or, for a cancelled subtree, withdraw them. It knows no node type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from dfc.json_types import JSON
from dfc.plan.model import Plan, PlanNode
from dfc.runtime.errors import node_error
from dfc.runtime.frontier import Memo
from dfc.runtime.keys import loop_index
from dfc.runtime.outcome import FAILED, INF, Item, Outcome, SignalWait, Wake
from dfc.runtime.prepared import Prepared
from dfc.runtime.scope import Scope
from dfc.runtime.state import (
    Cancel,
    MapProgress,
    NodeRecord,
    Prune,
    RunHttp,
    RunSql,
    Signal,
    StartChild,
    Store,
)
from dfc.runtime.substitute import SubstitutionError


class Replay:
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
        self.loops_with_undo = prepared.loops_with_undo
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
        self.maps: dict[str, MapProgress] = {}
        self._loops: dict[str, dict[int, list[str]]] | None = None
        # (seq, walk order, key, undo root, bindings) of every completed node with an undo
        self.undos: list[tuple[float, int, str, str, Scope]] = []

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
                case RunSql() | RunHttp() | StartChild() | Wake() | SignalWait():
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
