"""Bindings: which ``$name`` references are certainly bound when their step runs (SPEC §3).

A forward dataflow analysis over the expanded tree, in execution order. The state at each point
(`Flow`) holds, per name, the bindings that may reach it (``reach``) and the names bound on
every path (``must``). Sequences thread one state through their steps; branches fork it and
join it again: after a join all branches ran (union), after an if, a race or a loop only one of
several paths did (intersection of ``must``, union of ``reach``). A ``df.break`` ends its path
and hands its state to the loop's exit; a loop body starts from the state before the loop
(every iteration is fresh), its condition sees the body's bindings.

The same pass checks columns: each binding's result shape (`Shape`) is known for SQL steps whose
output columns sqlglot could derive and for the fixed envelopes of HTTP, signal and sleep steps.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, assert_never

from dfc import ast
from dfc.check import codes
from dfc.check.refs import Ref, scan
from dfc.check.report import Reporter
from dfc.check.result import SqlFacts
from dfc.check.sql import sql_refs
from dfc.check.walk import map_source, result_step, seq_items, texts
from dfc.diagnostics import Diagnostics, Label
from dfc.fanout import DEFAULT_ITEM
from dfc.references import RESULT_NAME
from dfc.source import Span, TextMap

HTTP_FIELDS = ("status", "body", "encoding", "headers", "ok", "duration_ms")
SIGNAL_FIELDS = ("signal_name", "timed_out", "data")
SPAWN_FIELDS = ("id",)
SLEEP_FIELDS = ("slept", "seconds")
SCHEDULE_FIELDS = ("scheduled",)


@dataclass(frozen=True, slots=True)
class Shape:
    """What is known about a bound result: SQL rows, a fixed record, a join's array, or nothing.

    A join's result is a JSON array with one element per branch (SPEC §5.2): it has no rows and
    no fields; ``elements`` are the shapes of its branches, in order.
    """

    kind: Literal["rows", "record", "array", "unknown"]
    fields: tuple[str, ...] | None = None  # columns of rows (None: unknown), fields of a record
    returns_rows: bool | None = None
    what: str = ""  # "an HTTP response", ... for messages
    elements: tuple[Shape, ...] = ()


UNKNOWN = Shape("unknown")


def shape(e: ast.Expr, facts: Callable[[ast.Sql], SqlFacts | None]) -> Shape:
    """The shape of the result of ``e`` (a sequence's is its last step's)."""
    match e:
        case ast.Seq() | ast.Wrapper():
            return shape(result_step(e), facts)
        case ast.Sql():
            f = facts(e)
            if f is None:
                return UNKNOWN
            return Shape("rows", f.columns, f.returns_rows, "the statement")
        case ast.Http() | ast.HttpMultipart():
            return Shape("record", HTTP_FIELDS, None, "an HTTP response")
        case ast.WaitSignal():
            return Shape("record", SIGNAL_FIELDS, None, "a signal wait")
        case ast.Sleep():
            return Shape("record", SLEEP_FIELDS, None, "a sleep")
        case ast.WaitSchedule():
            return Shape("record", SCHEDULE_FIELDS, None, "a schedule wait")
        case ast.Call(wait=False):
            return Shape("record", SPAWN_FIELDS, None, "a df.spawn")
        case ast.Call():
            return UNKNOWN  # the child's result
        case ast.If(then=t, orelse=o) if o is not None:
            return _same([shape(t, facts), shape(o, facts)])
        case ast.IfRows(then=t, orelse=o):
            return _same([shape(t, facts), shape(o, facts)])
        case ast.Race(branches=bs):
            return _same([shape(b, facts) for b in bs])
        case ast.Join(branches=bs):
            return Shape("array", (), None, "a join", tuple(shape(b, facts) for b in bs))
        case ast.If() | ast.Loop():  # without else: reported on its own; a loop's varies
            return UNKNOWN
        case ast.Break() | ast.TemplateCall() | ast.Name() | ast.Invalid():
            return UNKNOWN
        case ast.Map():  # a JSON array of the rows' results, whose shapes may vary
            return UNKNOWN
        case _:
            assert_never(e)


def _bound(b: ast.Bind) -> str:
    """The name a binding binds (after expansion always a string literal)."""
    return _lit_name(b.name)


def _lit_name(n: ast.Str | ast.Name) -> str:
    return n.value if isinstance(n, ast.Str) else n.name


def _same(shapes: list[Shape]) -> Shape:
    return shapes[0] if all(s == shapes[0] for s in shapes) else UNKNOWN


@lru_cache(maxsize=8192)
def _refs(text: str) -> tuple[Ref, ...]:
    return tuple(r for r in scan(text) if r.kind == "result")


class Flow:
    """The binding state at one point: may-reaching bindings per name, and names bound for sure.

    ``dead`` marks a point no path reaches (after a break): anything goes there.

    A branch's state is a `fork` that holds only what the branch changed and reads the rest
    through its parent; `merge` writes the branches' changes back into the parent. A branch
    therefore costs what it binds, not the number of names bound before it, and a workflow of
    thousands of steps and branches is analysed in linear time (copying the whole state at
    every branch made it quadratic).
    """

    __slots__ = ("dead", "must", "parent", "reach")

    def __init__(self, parent: Flow | None = None, *, dead: bool = False) -> None:
        self.parent = parent
        self.reach: dict[str, frozenset[int]] = {}  # set here; other names are the parent's
        self.must: set[str] = set()  # added here to the parent's
        self.dead = dead

    def reaching(self, name: str) -> frozenset[int]:
        """The ids of the bindings of ``name`` that may reach this point."""
        f: Flow | None = self
        while f is not None:
            ids = f.reach.get(name)
            if ids is not None:
                return ids
            f = f.parent
        return frozenset()

    def bound(self, name: str) -> bool:
        """Whether every path to this point binds ``name``."""
        f: Flow | None = self
        while f is not None:
            if name in f.must:
                return True
            f = f.parent
        return False

    def bind(self, name: str, binding: int) -> None:
        self.reach[name] = frozenset({binding})
        self.must.add(name)

    def fork(self) -> Flow:
        """The state at the start of a branch from here (this flow stays unchanged meanwhile)."""
        return Flow(self, dead=self.dead)

    def snapshot(self, base: Flow) -> Flow:
        """This state as a fork of ``base``, one of its ancestors, unaffected by later changes
        of the flows between them (a break's state, merged at its loop's exit)."""
        if self.dead:
            return Flow(dead=True)
        layers: list[Flow] = []
        f: Flow | None = self
        while f is not base:
            assert f is not None, "a snapshot's base is an ancestor"
            layers.append(f)
            f = f.parent
        out = Flow(base)
        for f in reversed(layers):
            out.reach.update(f.reach)
            out.must |= f.must
        return out

    def merge(self, flows: list[Flow], *, all_ran: bool) -> Flow:
        """The state after branches forked from this flow (or this flow itself, for a path that
        skips them): ``all_ran`` for a join, else one of them ran. Updates and returns this
        flow, or returns a dead one when no path goes on."""
        live = [f for f in flows if not f.dead]
        if not live or (all_ran and len(live) < len(flows)):
            return Flow(dead=True)
        forks = [f for f in live if f is not self]
        assert all(f.parent is self for f in forks), "merged flows are forks of this one"
        for name in {name for f in forks for name in f.reach}:
            self.reach[name] = frozenset[int]().union(*(f.reaching(name) for f in live))
        # Every branch binds what this flow binds for sure, so only the branches' additions count.
        if all_ran:
            self.must.update(*(f.must for f in forks))
        elif len(forks) == len(live):
            self.must |= set.intersection(*(f.must for f in forks))
        return self


Path = tuple[tuple[int, int], ...]  # (id(container), child index) from the root


def check_bindings(body: ast.Expr, rep: Reporter, facts: Mapping[int, SqlFacts]) -> None:
    """Report every binding problem of an expanded workflow body."""
    _Bindings(body, rep, facts).run()


def _unseen(top: ast.Expr, seen: Mapping[int, object]) -> Iterator[ast.Expr]:
    """The nodes of ``top`` in pre-order, without the subtrees of nodes in ``seen``."""
    stack = [top]
    while stack:
        n = stack.pop()
        if id(n) not in seen:
            yield n
            stack.extend(reversed(ast.children(n)))


class _Bindings:
    def __init__(self, body: ast.Expr, rep: Reporter, facts: Mapping[int, SqlFacts]) -> None:
        self.body = body
        self.rep = rep
        self.facts = facts
        self.binds: dict[str, list[ast.Bind]] = {}
        self.paths: dict[int, Path] = {}
        self.nodes: dict[int, ast.Expr] = {}
        self.used: set[int] = set()
        self.loops: list[tuple[Flow, list[Flow]]] = []  # (state before the loop, exits)
        self.path: list[tuple[int, int]] = []
        self.shapes: dict[int, Shape] = {}
        self.below: dict[int, Mapping[str, ast.Bind]] = {}  # see `_first_binds`
        # id(map) -> the binding of its current row in its body (not in the tree: the map
        # makes it), written where the rows are, or where the item name is given.
        self.rows_binds: dict[int, ast.Bind] = {}

    def _facts(self, n: ast.Sql) -> SqlFacts | None:
        return self.facts.get(id(n))

    def run(self) -> None:
        self._index()
        self.visit(self.body, Flow())
        for name, bs in self.binds.items():
            if not RESULT_NAME.match(name):
                continue  # reported as an invalid name
            for b in bs:
                if id(b) not in self.used and not any(b is r for r in self.rows_binds.values()):
                    self.rep.hint(
                        codes.UNUSED_BINDING,
                        f"`${_bound(b)}` is bound here but never used",
                        b.name.span,
                        node=b,
                        help="remove `|=> '" + _bound(b) + "'` if the result is not needed",
                    )

    def _index(self) -> None:
        """Record every binding and the path to every node (to explain failed references)."""
        stack: list[tuple[ast.Expr, Path]] = [(self.body, ())]
        while stack:
            n, p = stack.pop()
            self.nodes[id(n)] = n
            if isinstance(n, ast.Bind):
                self.binds.setdefault(_bound(n), []).append(n)
                self.paths[id(n)] = p
            if isinstance(n, ast.Map):
                row = self.rows_binds[id(n)] = _row_binding(n)
                self.nodes[id(row)] = row
                self.binds.setdefault(_bound(row), []).append(row)
                self.paths[id(row)] = (*p, (id(n), 1))
            kids = seq_items(n) if isinstance(n, ast.Seq) else ast.children(n)
            for i, k in enumerate(kids):
                stack.append((k, (*p, (id(n), i))))
        for bs in self.binds.values():
            bs.sort(key=lambda b: b.span.start)

    # ----------------------------------------------------------------------------------------

    def visit(self, e: ast.Expr, f: Flow) -> Flow:
        """Analyse ``e`` starting from ``f`` (which it may update); returns the state after it."""
        match e:
            case ast.Seq():
                for i, item in enumerate(seq_items(e)):
                    f = self._child(e, i, item, f)
                return f
            case ast.Bind(node=x, name=name):
                f = self._child(e, 0, x, f)
                self._bind(e, _bound(e), f)
                self._bound_twice(e)
                return f
            case ast.Join(branches=bs) | ast.Race(branches=bs):
                outs = [self._child(e, i, b, f.fork()) for i, b in enumerate(bs)]
                self._duplicates(e, bs)
                return f.merge(outs, all_ran=isinstance(e, ast.Join))
            case ast.If(cond=c, then=t, orelse=o):
                f = self._child(e, 0, c, f)
                ft = self._child(e, 1, t, f.fork())
                fe = self._child(e, 2, o, f.fork()) if o is not None else f
                return f.merge([ft, fe], all_ran=False)
            case ast.IfRows(name=name, then=t, orelse=o):
                if RESULT_NAME.match(_lit_name(name)):  # else reported as an invalid name
                    self._use(_lit_name(name), None, name.span, e, f)
                ft = self._child(e, 0, t, f.fork())
                fe = self._child(e, 1, o, f.fork())
                return f.merge([ft, fe], all_ran=False)
            case ast.Loop(body=b, cond=c):
                self.loops.append((f, []))
                fb = self._child(e, 0, b, f.fork())
                if c is not None:
                    self.loops[-1][1].append(self._child(e, 1, c, fb))
                _, exits = self.loops.pop()
                return f.merge(exits, all_ran=False)
            case ast.Break():
                self._texts(e, f)
                if self.loops:
                    before, exits = self.loops[-1]
                    exits.append(f.snapshot(before))
                return Flow(dead=True)
            case ast.Compensate(node=x, undo=u):
                f = self._child(e, 0, x, f)
                saved, self.loops = self.loops, []
                self._child(e, 1, u, f.fork())
                self.loops = saved
                return f
            case ast.Retry(node=x) | ast.Timeout(node=x):
                return self._child(e, 0, x, f)
            case ast.Map(rows=r, body=b):
                f = self._child(e, 0, r, f)
                row = self.rows_binds[id(e)]
                self.shapes[id(row)] = self._rows_shape(e, f)
                fb = f.fork()
                self._bind(row, _bound(row), fb)
                saved, self.loops = self.loops, []  # a break cannot leave a row (DFC401)
                self._child(e, 1, b, fb)
                self.loops = saved
                return f  # each row's bindings are its own: none is visible after the map
            case ast.Sql() | ast.Http() | ast.HttpMultipart() | ast.Call():
                self._texts(e, f)
                return f
            case ast.Leaf() | ast.TemplateCall():
                return f
        assert_never(e)

    def _child(self, parent: ast.Expr, i: int, child: ast.Expr, f: Flow) -> Flow:
        self.path.append((id(parent), i))
        try:
            return self.visit(child, f)
        finally:
            self.path.pop()

    def _in_order(self, ids: frozenset[int]) -> list[ast.Bind]:
        """The bindings of ``ids`` in source order (the order of ids, addresses, is arbitrary)."""
        found = [b for b in map(self.nodes.get, ids) if isinstance(b, ast.Bind)]
        return sorted(found, key=lambda b: (b.span.file.name, b.span.start))

    def _bind(self, b: ast.Bind, name: str, f: Flow) -> None:
        prev = self._in_order(f.reaching(name))
        # Names bound inside templates are the templates' own: `drain(a) ~> drain(b)` rebinds
        # `batch` on purpose. Only a rebinding the user wrote is suspicious.
        from_templates = id(b) in self.rep.trails and all(id(p) in self.rep.trails for p in prev)
        if not f.dead and prev and not from_templates:
            self.rep.warning(
                codes.REBINDING,
                f"`${name}` is bound again while an earlier binding is still visible",
                b.name.span,
                node=b,
                labels=tuple(Label(p.name.span, "bound earlier here") for p in prev),
                help="use a new name if both results are meant",
            )
        f.bind(name, id(b))

    def _bound_twice(self, b: ast.Bind) -> None:
        # A plan node has one result name: the emitter keeps the outermost (compensations
        # between the two bindings wrap the same node).
        inner = b.node
        while isinstance(inner, ast.Compensate):
            inner = inner.node
        if isinstance(inner, ast.Bind):
            self.rep.warning(
                codes.BOUND_TWICE,
                f"this result is already bound to `${_bound(inner)}`, which will not be bound "
                "when the workflow runs: only the outer name is",
                b.name.span,
                node=b,
                labels=(Label(inner.name.span, "not bound when the workflow runs"),),
                help="use one name for it",
            )

    def _duplicates(self, e: ast.Join | ast.Race, branches: tuple[ast.Expr, ...]) -> None:
        first: dict[str, ast.Bind] = {}
        kind = "join" if isinstance(e, ast.Join) else "race"
        for b in branches:
            for name, n in self._first_binds(b).items():
                if name in first:
                    self.rep.error(
                        codes.BRANCH_BINDING,
                        f"`${name}` is bound in two branches of the same {kind}",
                        n.name.span,
                        node=n,
                        labels=(Label(first[name].name.span, "also bound in this branch"),),
                        help="the branches run concurrently; give each result its own name",
                    )
                else:
                    first[name] = n

    def _first_binds(self, top: ast.Expr) -> Mapping[str, ast.Bind]:
        """The first binding of each name inside ``top``, in pre-order. Remembered for every
        node below: in a chain of joins (`a & b & c ...`, nested to the left) each join asks
        again for the branch holding all the joins before it."""
        below = self.below
        for n in reversed(list(_unseen(top, below))):
            here: dict[str, ast.Bind] = {_bound(n): n} if isinstance(n, ast.Bind) else {}
            for k in ast.children(n):
                for name, b in below[id(k)].items():
                    here.setdefault(name, b)
            below[id(n)] = here
        return below[id(top)]

    def _texts(self, e: ast.Expr, f: Flow) -> None:
        for role, s in texts(e):
            refs = sql_refs(s.value) if role == "sql" else _refs(s.value)
            for r in refs:
                if r.kind != "result":
                    continue
                span = s.text_map.span(s.span.file, r.start, r.end)
                self._use(r.name, r, span, e, f)

    # ----------------------------------------------------------------------------------------

    def _use(self, name: str, ref: Ref | None, span: Span, node: ast.Expr, f: Flow) -> None:
        """Check one reference (``ref`` None for ``df.if_rows('name', ...)``)."""
        shown = ref.text if ref is not None else f"${name}"
        binds = self.binds.get(name)
        if not binds:
            close = difflib.get_close_matches(name, list(self.binds), n=1)
            self.rep.error(
                codes.UNBOUND,
                f"`{shown}` refers to a result that is never bound",
                span,
                node=node,
                help=f"did you mean `${close[0]}`?"
                if close
                else f"bind a step's result with `|=> '{name}'` before this step",
            )
            return
        if f.dead:
            return
        reaching = f.reaching(name)
        if f.bound(name):
            self.used |= reaching
            self._columns(name, ref, span, node, f)
            return
        if reaching:
            self.used |= reaching
            if ref is not None and ref.null_safe:
                self._columns(name, ref, span, node, f)
                return
            self.rep.error(
                codes.NOT_BOUND_HERE,
                f"`{shown}` may not be bound here: only some paths to this step bind it",
                span,
                node=node,
                labels=tuple(
                    Label(b.name.span, "bound only on some paths") for b in self._in_order(reaching)
                ),
                help=f"bind it on every path, or write `{shown}?` to get NULL when it is not bound"
                if ref is not None
                else "bind it on every path before this step",
            )
            return
        reason, b = self._reason(binds)
        self.rep.error(
            codes.NOT_BOUND_HERE,
            f"`{shown}` is not bound when this step runs: {reason}",
            span,
            node=node,
            labels=(Label(b.name.span, "bound here"),),
            notes=self._loop_note(b),
        )

    def _reason(self, binds: list[ast.Bind]) -> tuple[str, ast.Bind]:
        """Why the bindings of a name do not reach the current point (for the message)."""
        use = tuple(self.path)
        best: tuple[int, str, ast.Bind] | None = None
        for b in binds:
            bp = self.paths[id(b)]
            rank, why = self._relation(bp, use, b)
            if best is None or rank < best[0]:
                best = (rank, why, b)
        assert best is not None
        return best[1], best[2]

    def _relation(self, bp: Path, up: Path, b: ast.Bind) -> tuple[int, str]:
        k = 0
        while k < len(bp) and k < len(up) and bp[k] == up[k]:
            k += 1
        if k == len(bp) and len(up) > k and up[k][0] == id(b):
            return 0, "it is used inside the step whose result it binds"
        if k >= len(bp) or k >= len(up) or bp[k][0] != up[k][0]:
            return 9, "no path to this step binds it"
        container = self.nodes[bp[k][0]]
        ib, iu = bp[k][1], up[k][1]
        if any(i == 1 and isinstance(self.nodes[c], ast.Map) for c, i in bp[k + 1 :]):
            return (
                1,
                "it is bound inside the body of a df.map, where each row has its own: "
                "it is not visible outside the body",
            )
        match container:
            case ast.Join():
                return (
                    1,
                    "it is bound in a parallel branch of the same join, which may not have finished",
                )
            case ast.Race():
                return 1, "it is bound in another branch of the same race, which runs concurrently"
            case ast.If() if {ib, iu} == {1, 2}:
                return 1, "it is bound only in the other arm of the if"
            case ast.IfRows() if {ib, iu} == {0, 1}:
                return 1, "it is bound only in the other arm of the if"
            case ast.If() if iu == 0:
                return 2, "it is bound in an arm of the if, which runs after the condition"
            case ast.Seq() if ib > iu:
                return 2, "it is used before it is bound"
            case ast.Loop() if ib == 1 and iu == 0:
                return 2, "it is bound in the loop condition, which runs after the body"
            case ast.Compensate() if ib == 1:
                return 2, "it is bound in a compensation step, which runs only after a failure"
            case ast.Compensate() if iu == 1:
                return 3, "an undo step sees only the bindings made before its step completed"
            case ast.Map() if iu == 0:
                return 2, "it is bound in the body of the df.map, which runs after its rows"
            case ast.Map():
                pass
            case ast.Leaf() | ast.Wrapper() | ast.Seq() | ast.If() | ast.IfRows() | ast.Loop():
                pass
            case ast.TemplateCall():
                pass
            case _:
                assert_never(container)
        return 8, "no path to this step binds it"

    def _loop_note(self, b: ast.Bind) -> tuple[str, ...]:
        """A note when the reference is in a loop: earlier iterations' bindings are not visible."""
        for pid, _ in self.path:
            if isinstance(self.nodes.get(pid), ast.Loop):
                return (
                    "each loop iteration starts afresh: bindings of the previous iteration "
                    "are not visible before they are made again",
                )
        return ()

    def _rows_shape(self, m: ast.Map, f: Flow) -> Shape:
        """The shape of the result a map's rows come from; reports a result without rows."""
        source = map_source(m)
        if source is None:
            found = shape(m.rows, self._facts)
        else:
            binds = self._in_order(f.reaching(source))
            found = _same([self._shape(b) for b in binds]) if binds else UNKNOWN
            query = m.rows.query if isinstance(m.rows, ast.Sql) else None
            star = isinstance(query, ast.Str) and query.value.rstrip().endswith(".*")
            if star and found.kind != "rows":
                return UNKNOWN  # `$name.*` on a result without rows is DFC210 already
        if found.kind in ("record", "array") or found.returns_rows is False:
            what = found.what or "the result"
            self.rep.error(
                codes.MAP_ROWS,
                f"df.map runs its body once per row, but {what} gives no rows",
                m.rows.span,
                node=m,
                help="give it a query that returns the rows to process, e.g. "
                "'SELECT id FROM orders WHERE ...'",
            )
            return UNKNOWN
        return found

    # ----------------------------------------------------------------------------------------

    def _shape(self, b: ast.Bind) -> Shape:
        s = self.shapes.get(id(b))
        if s is None:
            s = self.shapes[id(b)] = shape(b.node, self._facts)
        return s

    def _columns(self, name: str, ref: Ref | None, span: Span, node: ast.Expr, f: Flow) -> None:
        binds = self._in_order(f.reaching(name))
        shapes = [self._shape(b) for b in binds]
        if not shapes or any(s.kind == "unknown" for s in shapes):
            return
        labels = tuple(Label(b.name.span, "bound here") for b in binds)
        shown = ref.text if ref is not None else f"df.if_rows('{name}', ...)"
        if all(s.kind == "rows" and s.returns_rows is False for s in shapes):
            self.rep.error(
                codes.NO_ROWS,
                f"`{shown}` reads a result with no rows: the bound statement returns none",
                span,
                node=node,
                labels=labels,
                help="add a RETURNING clause to the statement, or bind a query",
            )
            return
        if ref is None:
            return
        if ref.star:
            if all(s.kind != "rows" for s in shapes):
                self._no_row_set(name, ref, span, node, labels, shapes)
            return
        if ref.column is None:
            return
        if all(s.kind == "array" for s in shapes):
            self._join_field(name, ref.column, shown, span, node, labels, shapes)
            return
        if any(s.fields is None for s in shapes):
            return
        available = sorted({c for s in shapes for c in (s.fields or ())}, key=str)
        if ref.column in available:
            return
        what = shapes[0].what
        kind = "column" if shapes[0].kind == "rows" else "field"
        close = difflib.get_close_matches(ref.column, available, n=1)
        listing = ", ".join(available) if available else "none"
        self.rep.error(
            codes.UNKNOWN_COLUMN,
            f"`{shown}`: the result of {what} has no {kind} `{ref.column}` (it has: {listing})",
            span,
            node=node,
            labels=labels,
            help=f"did you mean `${name}.{close[0]}`?" if close else None,
        )

    def _join_field(
        self,
        name: str,
        column: str,
        shown: str,
        span: Span,
        node: ast.Expr,
        labels: tuple[Label, ...],
        shapes: list[Shape],
    ) -> None:
        """``$j.col`` on a join's result: a JSON array has no fields, PostgreSQL would fail."""
        path = next((p for s in shapes for p in _paths(s, column)), None)
        bind = f"bind the branch that returns `{column}` with its own name (`(...) |=> 'b'`, then `$b.{column}`)"
        self.rep.error(
            codes.JOIN_FIELD,
            f"`{shown}` reads a field of a join's result, which is a JSON array with one element per branch",
            span,
            node=node,
            labels=labels,
            help=bind
            if path is None
            else f"{bind}, or read it from the array: `${name}::jsonb{path}`",
        )

    def _no_row_set(
        self,
        name: str,
        ref: Ref,
        span: Span,
        node: ast.Expr,
        labels: tuple[Label, ...],
        shapes: list[Shape],
    ) -> None:
        """``$name.*`` on a result without rows (a record or a join's array) fails the step."""
        what = shapes[0].what if all(s.what == shapes[0].what for s in shapes) else "the result"
        if all(s.kind == "array" for s in shapes):
            help_ = f"use `${name}` for the whole JSON array (e.g. `${name}::jsonb`), or bind the branch whose rows you need with its own name and use `$b.*`"
        else:
            fields = shapes[0].fields or ("field",)
            help_ = f"use `${name}` for the whole JSON value (e.g. `${name}::jsonb`) or `${name}.{fields[0]}` for one field"
        self.rep.error(
            codes.NOT_A_ROW_SET,
            f"`{ref.text}` expands the rows of a SQL result, but the result of {what} has no rows",
            span,
            node=node,
            labels=labels,
            help=help_,
        )


@dataclass(frozen=True, slots=True)
class Visible:
    """The bindings a step's references can use (for editors: completion, go to definition).

    ``reaching`` has, for each name some binding of which may reach the step, those bindings in
    source order; ``sure`` holds the names bound on every path to the step.
    """

    reaching: Mapping[str, tuple[ast.Bind, ...]]
    sure: frozenset[str]

    @property
    def partial(self) -> frozenset[str]:
        """Names bound on some paths only (a reference needs ``?`` there)."""
        return frozenset(self.reaching) - self.sure


def visible_bindings(
    body: ast.Expr, facts: Mapping[int, SqlFacts], step: ast.Expr
) -> Visible | None:
    """What the references in ``step`` can see: ``step`` is a node of the expanded ``body``
    whose text holds references (SQL, HTTP, ``df.break``). The same analysis as the binding
    rules; None when no path reaches the step (or it is not in ``body``)."""
    v = _Visibility(body, Reporter(Diagnostics()), facts, step)
    v.visit(body, Flow())
    return v.seen


class _Visibility(_Bindings):
    """The binding analysis, stopped to look at the state before one step."""

    def __init__(
        self,
        body: ast.Expr,
        rep: Reporter,
        facts: Mapping[int, SqlFacts],
        step: ast.Expr,
    ) -> None:
        super().__init__(body, rep, facts)
        self.step = step
        self.seen: Visible | None = None
        self._index()

    def _texts(self, e: ast.Expr, f: Flow) -> None:
        if e is not self.step or f.dead:
            return
        reaching = {
            name: tuple(self._in_order(ids)) for name in self.binds if (ids := f.reaching(name))
        }
        self.seen = Visible(reaching, frozenset(n for n in reaching if f.bound(n)))


def _paths(s: Shape, column: str) -> list[str]:
    """JSON paths (``->0->'rows'->0->>'col'``) to ``column`` inside a result of shape ``s``."""
    match s.kind:
        case "rows":
            return ["->'rows'->0->>" + f"'{column}'"] if column in (s.fields or ()) else []
        case "record":
            return [f"->>'{column}'"] if column in (s.fields or ()) else []
        case "array":
            return [f"->{i}{p}" for i, e in enumerate(s.elements) for p in _paths(e, column)]
        case "unknown":
            return []
    assert_never(s.kind)


def _row_binding(m: ast.Map) -> ast.Bind:
    """The binding a map makes of its current row, as if its rows were bound to the item name
    in its body: placed at the item name when written, else at the rows."""
    item = m.item
    if isinstance(item, ast.Str):
        name = item
    else:
        at = m.rows.span
        name = ast.Str(
            value=DEFAULT_ITEM,
            span=at,
            text_map=TextMap(((0, at.start),), len(DEFAULT_ITEM)),
        )
    return ast.Bind(node=m.rows, name=name, span=m.span)
