"""How the state machine runs ``df.map``: the body once per row, at most N rows at a time.

Part of the walk in `dfc.runtime.machine` (as `dfc.runtime.composites` is). A map first has
its rows: it walks its rows child (a SQL step, run once and recorded once like any step), or
reads the result bound to ``rows_from``. Each row then runs the body under the key prefix of
that row, ``n4#17/`` for row 17 of map n4 (`dfc.runtime.keys.row_prefix`), with the item name
bound to a one-row SQL result (``{"rows": [row], "row_count": 1}``): ``$item``, ``$item.col``
and ``$item.*`` read it as they read any bound SQL result.

**Concurrency.** Rows start in row order. The walk goes through the rows in order and stops
before the first row that would make more than ``concurrency`` rows running or waiting: a row
that was never walked has no records and runs nothing. Finished rows never run again, so the
set of rows walked only grows and every evaluation agrees with the one before.

**Summaries.** A map of 10,000 rows must not make every evaluation walk 10,000 rows, nor keep
10,000 rows' records in memory. The rows are taken in blocks of `BLOCK` rows. As soon as every
row of a block has finished (with records written before this evaluation), the machine stores
a *summary* record for the block (key ``n4[0]`` for rows 1-32, `summary_key`; status
``completed``; result: the block's results in row order, as one JSON text; detail
``{"failed": n}``) and prunes
the records of its rows, in the same transaction (a `Store` and a `Prune` of one evaluation).
A later evaluation reads the summary instead of walking the block. Rows start in order and at
most N run, so at most about N + 1 blocks are unsummarised at any time: an evaluation walks
at most about (N + 1) × `BLOCK` rows and looks up one summary per block.

**Records the map stores** at its own key: ``completed`` with the whole result once every row
has finished (the summaries and remaining row records are pruned with it, so a finished map
costs one look-up from then on); ``decided`` with the error when a row fails and
``on_error`` is ``fail`` (the first row to fail by record order decides, as in a join; the
rows still running are cancelled); ``failed`` when its rows cannot be read (DFC650).

With ``on_error => 'collect'``, a failed row finishes its slot with ``{"error": <the row's
error>}`` and the map goes on. A ``df.break`` that would leave the body fails its row (the
checker refuses it: DFC401).
"""

from __future__ import annotations

import abc
import json
from datetime import datetime

from dfc.json_types import JSON
from dfc.plan import nodes
from dfc.plan.model import PlanNode
from dfc.runtime import codes
from dfc.runtime.errors import with_path
from dfc.runtime.keys import row_prefix, summary_key
from dfc.runtime.outcome import BROKEN, DONE, FAILED, INF, RUNNING, WAITING, Outcome
from dfc.runtime.replay import Replay
from dfc.runtime.scope import Scope
from dfc.runtime.state import MapProgress, NodeRecord, Prune

BLOCK = 32
"""Rows per summary record: small enough that walking a few unsummarised blocks is cheap, large
enough that a map of 10,000 rows has a few hundred summaries."""

_Mark = tuple[int, int]


class Fanout(Replay, abc.ABC):
    """The ``df.map`` handler of one evaluation."""

    @abc.abstractmethod
    def walk(self, nid: str, prefix: str, scope: Scope, deadline: datetime | None) -> Outcome:
        """Walk a subtree: the machine's dispatch on node types (`dfc.runtime.machine`)."""

    def _map(
        self,
        node: PlanNode,
        config: nodes.Map,
        key: str,
        prefix: str,
        scope: Scope,
        deadline: datetime | None,
    ) -> Outcome:
        body = node.children[-1]
        seq = 0.0
        source: JSON
        if config.rows_from is None:
            got = self.walk(node.children[0], prefix, scope, deadline)
            if got.state != DONE:
                self._status(prefix + body, "pending")
                return got
            source, scope, seq = got.result, got.scope, got.seq
        else:
            source = scope.get(config.rows_from)
        rec = self.records.get(key)
        if rec is not None and rec.status == "completed":
            self._finished_map(node, key, prefix, rec)
            return Outcome(DONE, scope, result=rec.result, seq=max(seq, rec.seq))
        if rec is not None and rec.status in ("decided", "failed"):
            return Outcome(FAILED, scope, error=rec.error, seq=max(seq, rec.seq))
        rows = source.get("rows") if isinstance(source, dict) else None
        if not isinstance(rows, list):
            where = f"${config.rows_from}" if config.rows_from is not None else "its rows step"
            message = (
                f"df.map needs the rows of a SQL result, and {where} gave none"
                if config.rows_from is None or config.rows_from in scope
                else f"df.map reads its rows from {where}, which is not bound"
            )
            return self._fail(
                node, key, scope, self._error(node, key, message, code=codes.MAP_ROWS)
            )
        return self._map_rows(node, config, key, prefix, scope, deadline, rows, seq)

    def _map_rows(
        self,
        node: PlanNode,
        config: nodes.Map,
        key: str,
        prefix: str,
        scope: Scope,
        deadline: datetime | None,
        rows: list[JSON],
        seq: float,
    ) -> Outcome:
        body = node.children[-1]
        total = len(rows)
        n_blocks = (total + BLOCK - 1) // BLOCK
        collect = config.on_error == "collect"
        # The leading blocks that have summaries are settled as the memo remembers them.
        known = self.memo.summaries(
            key, lambda: tuple(summary_key(key, b) for b in range(n_blocks))
        )
        first = known.resume(self.records, lambda b: min(total, (b + 1) * BLOCK) - b * BLOCK)
        done = known.done[first - 1] if first else 0
        failed = known.failed[first - 1] if first else 0
        finished: dict[int, list[JSON]] = {}  # blocks walked whose rows have all finished
        summaries: list[tuple[int, list[JSON], int]] = []  # (block, results, failed) to store
        failures: list[tuple[float, int, Outcome]] = []  # (seq, row, outcome), on_error fail
        walked: list[tuple[int, _Mark, _Mark]] = []  # (row, marks around its walk)
        active = 0
        running = full = False
        complete_blocks = first  # blocks whose rows have all finished
        for b in range(first, n_blocks):
            lo, hi = b * BLOCK, min(total, (b + 1) * BLOCK)
            summary = self.records.get(known.keys[b])
            if summary is not None:
                done += hi - lo
                failed += int(summary.detail.get("failed", 0))
                complete_blocks += 1
                continue
            if full:
                # Rows start in order: no row from here on ever started, none has records.
                break
            results: list[JSON] = []
            block_failed = 0
            settled = True  # every row finished by records written before this evaluation
            for i in range(lo, hi):
                if active >= config.concurrency:
                    full = True
                    break
                start = self._mark()
                item = {"rows": [rows[i]], "row_count": 1}
                row_scope = scope.bind(config.item, item)
                out = self.walk(body, row_prefix(prefix, node.id, i + 1), row_scope, deadline)
                walked.append((i, start, self._mark()))
                if out.state == BROKEN:
                    out = self._row_broke(node, key, i, out)
                if out.state in (RUNNING, WAITING):
                    active += 1
                    running = running or out.state == RUNNING
                    settled = False
                    continue
                if out.seq == INF:
                    settled = False
                else:
                    seq = max(seq, out.seq)
                if out.state == DONE:
                    results.append(out.result)
                elif collect:
                    results.append({"error": out.error})
                    block_failed += 1
                else:
                    failures.append((out.seq, i, out))
                    continue
                done += 1
            failed += block_failed
            if len(results) == hi - lo:
                complete_blocks += 1
                finished[b] = results
                if settled:
                    summaries.append((b, results, block_failed))
        self.maps[key] = MapProgress(
            done=done, running=active, failed=failed + len(failures), total=total
        )
        if failures:
            return self._map_failed(node, key, scope, failures, walked)
        if complete_blocks == n_blocks:
            result: JSON = [
                x
                for b, k in enumerate(known.keys)
                for x in (finished[b] if b in finished else _summarised(self.records[k]))
            ]
            self._store(
                NodeRecord(
                    key=key,
                    node_id=node.id,
                    status="completed",
                    result=result,
                    detail={"rows": total, "failed": failed},
                )
            )
            self._forget_rows(key, total)
            return Outcome(DONE, scope, result=result, seq=INF)
        for b, results, block_failed in summaries:
            self._summarise(node, key, b, results, block_failed)
        return Outcome(RUNNING if running else WAITING, scope)

    def _finished_map(self, node: PlanNode, key: str, prefix: str, rec: NodeRecord) -> None:
        """A finished map walks no row: its body shows as completed, with the counts."""
        total = int(rec.detail.get("rows", 0))
        failed = int(rec.detail.get("failed", 0))
        self.maps[key] = MapProgress(done=total, running=0, failed=failed, total=total)
        for n in self.plan.walk(node.children[-1]):
            self._status(prefix + n.id, "completed")

    def _row_broke(self, node: PlanNode, key: str, i: int, out: Outcome) -> Outcome:
        """A break reached the end of a row (the checker refuses it): the row fails."""
        message = "df.break cannot leave the body of df.map: a row's steps end with the row"
        error = self._error(node, key, message, code=codes.MAP_BREAK, map_row=i + 1)
        return Outcome(FAILED, out.scope, error=error, seq=INF)

    def _map_failed(
        self,
        node: PlanNode,
        key: str,
        scope: Scope,
        failures: list[tuple[float, int, Outcome]],
        walked: list[tuple[int, _Mark, _Mark]],
    ) -> Outcome:
        """The first row to fail fails the map, persisted; the others are cancelled."""
        _, row, first = min(failures, key=lambda f: (f[0], f[1]))
        cancel: list[str] = []
        for i, start, end in walked:
            if i != row:
                cancel += self._discard(start, end, cancel=True)
        error = with_path(first.error, {"node": node.id, "key": key, "map_row": row + 1})
        self._store(
            NodeRecord(
                key=key, node_id=node.id, status="decided", error=error, detail={"row": row + 1}
            )
        )
        self._cancel(cancel, f"row {row + 1} of the map failed")
        return Outcome(FAILED, scope, error=error, seq=INF)

    def _summarise(
        self, node: PlanNode, key: str, block: int, results: list[JSON], failed: int
    ) -> None:
        """Store the summary of a finished block and prune its rows' records.

        The summary holds the results as one JSON text, not as JSON values: the worker keeps
        records in memory, and a text costs a few bytes per row where parsed values cost
        hundreds, so finished rows do not make the worker grow. It is parsed once, when the
        map completes."""
        text = json.dumps(results, ensure_ascii=False, separators=(",", ":"))
        self._store(
            NodeRecord(
                key=summary_key(key, block),
                node_id=node.id,
                status="completed",
                result=text,
                detail={"failed": failed},
            )
        )
        rows = self._loop_index().get(key, {})
        first = block * BLOCK + 1
        doomed = tuple(k for r in range(first, first + BLOCK) for k in rows.get(r, ()))
        if doomed:
            self.items.append(Prune(loop_key=key, below=0, keys=doomed))

    def _forget_rows(self, key: str, total: int) -> None:
        """The map has stored its result: prune its summaries and its rows' records."""
        rows = self._loop_index().get(key, {})
        blocks = (total + BLOCK - 1) // BLOCK
        doomed = [summary_key(key, b) for b in range(blocks)]
        doomed = [k for k in doomed if k in self.records]
        doomed += [k for keys in rows.values() for k in keys]
        if doomed:
            self.items.append(Prune(loop_key=key, below=0, keys=tuple(doomed)))


def _summarised(rec: NodeRecord) -> list[JSON]:
    """The results a block's summary record holds (see `_summarise`)."""
    assert isinstance(rec.result, str), "a summary holds its block's results as JSON text"
    results = json.loads(rec.result)
    assert isinstance(results, list)
    return results
