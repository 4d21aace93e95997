"""What the evaluations of one instance remember between calls, so that a long sequence is not
replayed from its first step every time (`machine.evaluate`, ``memo``).

A worker evaluates an instance after every step. In a sequence ``s1 ~> s2 ~> ... ~> sN`` each
evaluation used to walk every finished step again: look its record up, bind its result, extend
the statuses. A `Front` remembers, for one chain under one key prefix, the records of its
leading run of finished plain leaves and what walking them gave (the bindings after each, the
latest seq). The next evaluation checks that those steps still have *the very same record
objects* (an identity test per step, done by C loops: cheap even for thousands of steps) and
resumes after the last one that does; anything else (a record replaced, reloaded or pruned,
other bindings coming in) just shortens or empties the reused part. The result of an evaluation
therefore never depends on the memo, only its cost does.

A `Memo` belongs to one caller evaluating one instance, one evaluation at a time (an
`InstanceRun`); it is not shared between instances or threads. It keeps a bounded number of
fronts, so a loop, whose every iteration has a key prefix of its own, does not grow it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import is_

from dfc.runtime.prepared import Chain
from dfc.runtime.scope import Scope
from dfc.runtime.state import NodeRecord


class Front:
    """One chain under one key prefix: its keys, and the remembered run of finished leaves.

    ``recs[i]``, ``scopes[i]`` and ``seqs[i]`` are, for step i of that run, its record, the
    bindings after it and the largest seq up to it, all as of a walk that started with the
    bindings ``scope_in``.
    """

    __slots__ = ("inner_keys", "keys", "recs", "scope_in", "scopes", "seqs")

    def __init__(self, chain: Chain, prefix: str) -> None:
        self.keys = tuple([prefix + item for item in chain.items])
        self.inner_keys = tuple([prefix + tid for tid, _, _ in chain.inner])
        self.scope_in: Scope | None = None
        self.recs: list[NodeRecord] = []
        self.scopes: list[Scope] = []
        self.seqs: list[float] = []

    def resume(self, records: Mapping[str, NodeRecord], scope: Scope) -> int:
        """How many leading steps are settled exactly as remembered, given the current
        `records` and the bindings `scope` the chain starts with; forgets the rest."""
        recs = self.recs
        if not recs:
            self.scope_in = scope
            return 0
        if scope is not self.scope_in:
            self.scope_in = scope
            self.forget(0)
            return 0
        same = list(map(is_, map(records.get, self.keys), recs))
        try:
            valid = same.index(False)
        except ValueError:
            return len(recs)
        self.forget(valid)
        return valid

    def forget(self, n: int) -> None:
        """Keep only the first `n` remembered steps."""
        del self.recs[n:], self.scopes[n:], self.seqs[n:]


class Summaries:
    """One ``df.map`` under one key: the keys of its block summaries, and the leading run of
    them that exist (`dfc.runtime.fanout`), with the rows and failed rows they hold so far.

    As a `Front` does for a chain, `resume` checks by identity that the remembered summaries
    are still the records given, and extends the run with the summaries written since.
    """

    __slots__ = ("done", "failed", "keys", "recs")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self.recs: list[NodeRecord] = []
        self.done: list[int] = []  # rows held by summaries 0..i
        self.failed: list[int] = []  # failed rows among them

    def resume(self, records: Mapping[str, NodeRecord], rows_in: Callable[[int], int]) -> int:
        """How many leading blocks have summaries among `records`; `rows_in(b)` is the number
        of rows of block b."""
        recs = self.recs
        same = list(map(is_, map(records.get, self.keys[: len(recs)]), recs))
        valid = same.index(False) if False in same else len(recs)
        del recs[valid:], self.done[valid:], self.failed[valid:]
        keys = self.keys
        while len(recs) < len(keys):
            rec = records.get(keys[len(recs)])
            if rec is None:
                break
            before = len(recs)
            self.done.append((self.done[-1] if before else 0) + rows_in(before))
            failed = rec.detail.get("failed", 0)
            self.failed.append((self.failed[-1] if before else 0) + int(failed))
            recs.append(rec)
        return len(recs)


class Memo:
    """The fronts of one instance's chains, by (chain id, key prefix); at most `limit`. The same
    for the block summaries of its maps, by map key."""

    __slots__ = ("_fronts", "_maps", "limit")

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._fronts: dict[tuple[str, str], Front] = {}
        self._maps: dict[str, Summaries] = {}

    def summaries(self, map_key: str, keys: Callable[[], tuple[str, ...]]) -> Summaries:
        """The summaries of the map at `map_key` (made with `keys()` the first time)."""
        found = self._maps.get(map_key)
        if found is None:
            if len(self._maps) >= self.limit:  # the oldest first: maps of past iterations
                del self._maps[next(iter(self._maps))]
            found = self._maps[map_key] = Summaries(keys())
        return found

    def front(self, chain_id: str, prefix: str, chain: Chain) -> Front:
        """The front of chain `chain_id` walked under `prefix` (a fresh one the first time)."""
        fronts = self._fronts
        f = fronts.get((chain_id, prefix))
        if f is None:
            if len(fronts) >= self.limit:  # the oldest first: past loop iterations
                del fronts[next(iter(fronts))]
            f = fronts[(chain_id, prefix)] = Front(chain, prefix)
        return f
