"""What the state machine precomputes once per plan: flattened sequences and the walk depth.

A THEN chain ``a ~> b ~> c ~> ...`` parses as nested THEN nodes; walking it node by node would
make a 2,000-step sequence 2,000 nested calls. `Chain` flattens it into its steps, remembering
which step range each inner THEN node covers (for their statuses).

A chain also records which of its steps are *plain leaves* (SQL, HTTP, timers, signals, calls, without
an undo): a finished plain leaf is settled by its record alone, so the machine skips walking it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dfc.plan.model import Plan, PlanNode

_PLAIN_LEAVES = frozenset(
    {"SQL", "HTTP", "HTTP_MULTIPART", "SLEEP", "WAIT_SCHEDULE", "SIGNAL", "CALL", "SPAWN"}
)


@dataclass(frozen=True, slots=True)
class Chain:
    """A THEN chain flattened: the steps in order, and the inner THEN nodes with the half-open
    range of steps each covers."""

    items: tuple[str, ...]
    inner: tuple[tuple[str, int, int], ...]
    plain: tuple[bool, ...]  # per step: a plain leaf (see the module docstring)
    # Ends of the inner ranges when every range starts at step 0 and they come in increasing
    # order (a left-deep ``a ~> b ~> c``, as the parser builds it); None otherwise. Then the
    # statuses of the inner nodes are "completed" for a prefix and one other value after it.
    nested_ends: tuple[int, ...] | None


@dataclass(slots=True)
class Prepared:
    """A plan with its chains (by the id of each chain's outermost THEN), whether it has loops,
    and the nesting depth of the walk (THEN chains count as one level)."""

    plan: Plan
    chains: dict[str, Chain] = field(default_factory=dict)
    has_loops: bool = False
    depth: int = 0
    # Loops whose body holds a step with an undo (`a <-> undo`): their earlier iterations are
    # walked too, so that a failure compensates their completed steps (SPEC §5.8).
    loops_with_undo: frozenset[str] = frozenset()


_CACHE: dict[int, Prepared] = {}
_CACHE_MAX = 128


def prepared(plan: Plan) -> Prepared:
    """The preparation of `plan`, cached by identity (a worker evaluates the same pinned plan
    object over and over)."""
    p = _CACHE.get(id(plan))
    if p is not None and p.plan is plan:
        return p
    p = _prepare(plan)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[id(plan)] = p
    return p


def flattenable(node: PlanNode) -> bool:
    """Whether a THEN node merges into the chain of its parent THEN."""
    # A bound or compensated THEN is a step of its own: its result and its undo belong to it.
    return node.type == "THEN" and node.result_name is None and node.undo is None


def _prepare(plan: Plan) -> Prepared:
    p = Prepared(plan=plan)
    nodes = plan.nodes
    inner: set[str] = set()
    for node in nodes.values():
        if node.type == "LOOP":
            p.has_loops = True
        if node.type == "THEN":
            inner.update(c for c in node.children if flattenable(nodes[c]))
    for node in nodes.values():
        if node.type == "THEN" and node.id not in inner:
            p.chains[node.id] = _flatten(nodes, node.id)
    p.depth = _depth(plan, p)
    p.loops_with_undo = frozenset(
        n.id for n in nodes.values() if n.type == "LOOP" and _holds_undo(nodes, n.children[0])
    )
    return p


def _holds_undo(nodes: Mapping[str, PlanNode], root: str) -> bool:
    stack = [root]
    while stack:
        node = nodes[stack.pop()]
        if node.undo is not None:
            return True
        stack.extend(node.children)
    return False


def _flatten(nodes: Mapping[str, PlanNode], root: str) -> Chain:
    items: list[str] = []
    inner: list[tuple[str, int, int]] = []
    starts: dict[str, int] = {}
    # Iterative: a left-deep chain is as deep as it is long.
    stack: list[tuple[bool, str]] = [(True, c) for c in reversed(nodes[root].children)]
    while stack:
        opening, nid = stack.pop()
        node = nodes[nid]
        if not opening:
            inner.append((nid, starts[nid], len(items)))
        elif flattenable(node):
            starts[nid] = len(items)
            stack.append((False, nid))
            stack.extend((True, c) for c in reversed(node.children))
        else:
            items.append(nid)
    ends = [hi for _, _, hi in inner]
    nested = all(lo == 0 for _, lo, _ in inner) and ends == sorted(ends)
    plain = tuple(nodes[i].type in _PLAIN_LEAVES and nodes[i].undo is None for i in items)
    return Chain(
        items=tuple(items),
        inner=tuple(inner),
        plain=plain,
        nested_ends=tuple(ends) if nested else None,
    )


def _depth(plan: Plan, p: Prepared) -> int:
    best = 0
    stack = [(plan.root, 1)]
    while stack:
        nid, d = stack.pop()
        best = max(best, d)
        chain = p.chains.get(nid)
        kids = chain.items if chain is not None else plan.nodes[nid].children
        stack.extend((c, d + 1) for c in kids)
    return best
