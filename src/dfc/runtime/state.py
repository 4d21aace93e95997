"""The vocabulary between the replaying state machine and the durable engine.

An instance's whole state is the set of `NodeRecord` rows stored for it (``dfc.node_state``),
keyed by *node key*: the plan node id, prefixed by the loop iterations and retry attempts it runs
in. Keys read outermost first, separated by ``/``: ``n7`` at top level; ``n2#3/n7`` in iteration
3 of loop ``n2``; ``n9@2/n2#1/n7`` in attempt 2 of retry ``n9``; ``n5~/n9`` in the undo of the
completed step ``n5`` (compensation). Iterations and attempts count from 1 (`dfc.runtime.keys`).

The state machine (`dfc.runtime.machine.evaluate`) is a pure function of the plan, the instance's
variables, these records, the buffered signals and the clock. It returns what is finished and what
must happen next as `Action` values; the engine performs them and stores the resulting records,
then evaluates again. Composite nodes (THEN, JOIN, IF, LOOP, ...) have no records of their own,
except where a decision cannot be re-derived: a race's winner, a join's failing or breaking
branch, a retry's attempt counter and backoff timer, a timeout's deadline (the full list is in
`dfc.runtime.machine`). That is what makes recovery a replay: load the records, evaluate,
continue.

The contract between `evaluate` and the engine (everything below is relied on by the machine):

* **Records.** One record per key; a `Store` *replaces* the record at its key (upsert). ``seq``
  is the commit order among the instance's records and is assigned again on every write, so a
  record that is updated (a timer that fires) gets a new, larger seq. The machine decides races
  by seq (first to finish wins), which is only sound if seqs never go backwards.
* **Applying an evaluation.** Apply every `Store` and `Prune` of one evaluation, in order, in one
  transaction, before (or in the same transaction as) starting its `RunSql`/`RunHttp` actions: a
  run may depend on a Store of the same evaluation (a sleep that fired, a race decided). After
  applying Stores or Prunes, evaluate again; state changed (a loop may even have stopped at an
  iteration boundary and be waiting for exactly that).
* **Runs.** The machine emits a `RunSql`/`RunHttp` for every leaf that may run now and has no
  finished record, on every evaluation: the engine skips keys it already has in flight. A leaf
  whose record says ``running`` (an autocommit or HTTP step interrupted by a crash) is emitted
  again, with the same key and idempotency key.
* **Cancel** is emitted once, in the evaluation that decides a race, fails a join or a timeout,
  or breaks out of a join; later evaluations simply stop emitting work for those keys. An engine
  may also cancel any in-flight key the latest evaluation no longer lists.
* **Timers.** Schedule the instance's next evaluation from `Evaluation.next_wake`, never from
  records' ``wake_at`` (they describe history; only the machine knows which still matter).
* **Loop history.** `Prune` names records of old loop iterations to delete; the machine never
  needs them again (the current iteration count stays derivable from the newest iteration).
  A ``df.map`` prunes the records of its finished rows the same way, in the evaluation that
  stores the summary record holding their results (`dfc.runtime.fanout`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from dfc.json_types import JSON

RecordStatus = Literal[
    "running", "waiting", "completed", "failed", "cancelled", "skipped", "decided"
]
InstanceStatus = Literal["pending", "running", "completed", "failed", "cancelled"]


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRecord:
    """One stored row of ``dfc.node_state``."""

    key: str
    node_id: str
    status: RecordStatus
    result: JSON = None
    error: JSON = None  # {"message", "sqlstate"?, "node": id, "at": "file:line:col", ...}
    wake_at: datetime | None = None  # timers, signal deadlines, timeouts, retry backoff
    attempt: int = 1
    detail: Mapping[str, JSON] = field(default_factory=dict)  # e.g. {"winner": 1}
    seq: int = 0  # commit order among records of the instance, new on every write (see above)


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """A buffered, not yet consumed signal sent to the instance."""

    seq: int
    name: str
    payload: str | None


def child_signal(key: str) -> str:
    """The name of the signal by which the end of the child that the ``df.call`` step at
    ``key`` started reaches its parent (sent by migration 0013's trigger, with the child's
    outcome as payload; the key is unique within the parent)."""
    return "dfc:child:" + key


# -- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSql:
    """Execute a SQL step: statements, checkpoint and what follows commit in one transaction
    (unless ``autocommit``, which runs outside a transaction block and is at-least-once)."""

    key: str
    node_id: str
    sql: str  # references already substituted
    autocommit: bool = False
    timeout_s: float | None = None  # statement_timeout from an enclosing df.timeout


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    """A fully substituted HTTP request (SPEC §5.2 HTTP)."""

    url: str
    method: str
    body: str | None
    headers: Mapping[str, str]
    timeout_s: float
    idempotency_key: str
    multipart: tuple[Mapping[str, JSON], ...] | None = None  # parts for HTTP_MULTIPART


@dataclass(frozen=True, slots=True, kw_only=True)
class RunHttp:
    """Perform an HTTP step (at-least-once), then store its envelope as the result."""

    key: str
    node_id: str
    request: HttpRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class StartChild:
    """Start an instance of ``workflow`` (``version``; None: the latest) with ``vars`` as a
    child of the step at ``key`` (``df.call``, or ``df.spawn`` when not ``wait``), and record
    the step, in one transaction; ``idempotency_key`` makes a second start of it return the
    first child."""

    key: str
    node_id: str
    workflow: str
    version: int | None
    vars: Mapping[str, JSON]
    wait: bool
    idempotency_key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Store:
    """Persist a record decided by the machine itself: a timer started or fired, a signal
    consumed (``consume_signal``), a race decided, a retry scheduled, a node failed by a
    substitution error, a loser marked cancelled."""

    record: NodeRecord
    consume_signal: int | None = None  # seq of the signal this completion consumes


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel:
    """Stop work in flight for these keys (race losers, siblings of a failed join branch)."""

    keys: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Prune:
    """Delete the records of old iterations of a loop (bounded history, SPEC §5.2 LOOP), or of
    rows of a ``df.map`` that a summary record now holds (``loop_key`` is the map's key,
    ``below`` 0: the rows pruned are not a range below a number).

    ``keys`` are exactly the records to delete: every record of iterations ``< below`` of the
    loop whose key is ``loop_key`` (nested loops and retries inside them included). The machine
    keeps the last ``history_limit`` iterations and never prunes the newest iteration that has
    records, from which the iteration count is derived. Added for issue #5.
    """

    loop_key: str
    below: int
    keys: tuple[str, ...]


Action = RunSql | RunHttp | StartChild | Store | Cancel | Prune


@dataclass(frozen=True, slots=True, kw_only=True)
class MapProgress:
    """How far a ``df.map`` is, for display: rows finished (``failed`` of them in vain, with
    ``on_error => 'collect'``), rows running or waiting, all rows."""

    done: int
    running: int
    failed: int
    total: int

    def describe(self) -> str:
        """``120 done, 8 running, 0 failed of 10000`` (explain trees)."""
        return f"{self.done} done, {self.running} running, {self.failed} failed of {self.total}"


class Statuses(Mapping[str, str]):
    """The statuses of an evaluation, as the walk listed them, made a dict only when read.

    The worker evaluates an instance after every step and reads the statuses only to show
    them (explain trees, the live view): building a dict of every node of a 2,000-step
    sequence on each evaluation cost about as much as the rest of the evaluation.
    """

    __slots__ = ("_dict", "_keys", "_overrides", "_vals")

    def __init__(
        self, keys: Sequence[str], vals: Sequence[str], overrides: Mapping[str, str]
    ) -> None:
        self._keys, self._vals, self._overrides = keys, vals, overrides
        self._dict: dict[str, str] | None = None

    def _built(self) -> dict[str, str]:
        if self._dict is None:
            self._dict = dict(zip(self._keys, self._vals, strict=True))
            self._dict.update(self._overrides)
        return self._dict

    def __getitem__(self, key: str) -> str:
        return self._built()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())

    def __repr__(self) -> str:
        return repr(self._built())


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """The result of one replay of an instance."""

    status: Literal["running", "completed", "failed"]
    result: JSON = None
    error: JSON = None
    actions: tuple[Action, ...] = ()
    next_wake: datetime | None = None  # earliest timer among waiting nodes (None: none)
    waiting_for_signal: bool = False  # some node waits for a signal (wake on signal arrival)
    # key -> status for explain trees: running, waiting, completed, failed, cancelled (was
    # active when a race, join or timeout ended it), skipped (never reached: race losers, the
    # arm an if did not take), pending (the next children a sequence, if or loop will reach).
    # Keys absent from it have not been reached.
    statuses: Mapping[str, str] = field(default_factory=dict)
    # loop key -> its current iteration (from 1), for every loop visited. Added for issue #5.
    iterations: Mapping[str, int] = field(default_factory=dict)
    # map key -> its progress, for every df.map visited that has its rows. Added for issue #12.
    maps: Mapping[str, MapProgress] = field(default_factory=dict)
