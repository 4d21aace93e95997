"""The pg_durable-divergence warning (SPEC §1.2).

The parser reads each body whose grouping could differ with both grammars (`dfc.syntax.flat`)
and keeps the flat reading on the `ast.Workflow` or `ast.Def` (``pg_reading``). Here the two
trees are compared after normalising what does not change behaviour:

- sequences are flattened (``~>`` is associative in effect);
- a binding or compensation of a sequence applies to its last step: ``(a ~> b) |=> 'n'`` behaves
  as ``a ~> (b |=> 'n')`` because a sequence's result is its last step's, and ``b`` completes
  exactly when the sequence does.

Where the normal forms differ, the smallest differing subtree (or run of sequence steps) is
reported, with the fully parenthesised text that means the same under both grammars. A text
that pg_durable cannot parse at all has no flat reading and is not a divergence
(``c ?> t ~> u !> e``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import assert_never

from dfc import ast
from dfc.check import codes
from dfc.check.report import Reporter
from dfc.check.walk import seq_items
from dfc.syntax.flat import PRECEDENCE, is_operator

_MAX_SHOWN = 160


def check_precedence(module: ast.Module, rep: Reporter) -> None:
    """Warn where the workflow or a template body would behave differently in pg_durable."""
    readings = [(d.body, d.pg_reading) for d in module.decls if isinstance(d, ast.Def)]
    if module.workflow is not None:
        readings.append((module.workflow.body, module.workflow.pg_reading))
    for body, pg in readings:
        if pg is not None:
            _Compare().report(body, pg, rep)


@dataclass(slots=True)
class _Region:
    dfc: list[ast.Expr]
    pg: list[ast.Expr]


class _Compare:
    def __init__(self) -> None:
        self.memo: dict[int, tuple[ast.Expr, tuple[object, ...]]] = {}
        self.flats: dict[int, tuple[ast.Expr, list[ast.Expr]]] = {}
        self.pseudo: set[int] = set()

    def report(self, body: ast.Expr, pg: ast.Expr, rep: Reporter) -> None:
        for region in self.find(body, pg):
            self._warn(body, region, rep)

    def _warn(self, body: ast.Expr, region: _Region, rep: Reporter) -> None:
        span = region.dfc[0].span.cover(region.dfc[-1].span)
        whole = span.start <= body.span.start and span.end >= body.span.end
        suggestion = self.render_items(region.dfc, whole=whole)
        # `show` parenthesises every operand whose grouping could differ, so the suggestion
        # means the same in both grammars by construction (a property test parses both).
        help_ = None
        if len(suggestion) <= _MAX_SHOWN:
            help_ = f"write `{suggestion}` to mean the same in both"
        pg_text = _shorten(self.render_items(region.pg, whole=whole))
        rep.warning(
            codes.PRECEDENCE,
            "pg_durable groups these operators differently (one precedence, left to right), "
            "so this behaves differently there",
            span,
            node=region.dfc[0],
            notes=(f"pg_durable reads it as `{pg_text}`",),
            help=help_,
        )

    # -- normal forms ------------------------------------------------------------------------

    def flat(self, e: ast.Expr) -> list[ast.Expr]:
        """The steps of ``e`` as a sequence, bindings and compensations pushed to the last step."""
        hit = self.flats.get(id(e))
        if hit is not None:
            return hit[1]
        match e:
            case ast.Seq():
                out = [x for item in seq_items(e) for x in self.flat(item)]
            case ast.Bind(node=x) | ast.Compensate(node=x):
                xs = self.flat(x)
                if len(xs) == 1 and xs[0] is x:
                    out = [e]
                else:
                    last = dataclasses.replace(e, node=xs[-1], span=xs[-1].span.cover(e.span))
                    self.pseudo.add(id(last))
                    self.flats[id(last)] = (last, [last])
                    out = [*xs[:-1], last]
            case ast.Leaf() | ast.Wrapper() | ast.Join() | ast.Race() | ast.If() | ast.IfRows():
                out = [e]  # the wrappers left, a retry or a timeout, are calls: grouped explicitly
            case ast.Loop() | ast.TemplateCall() | ast.Map():
                out = [e]
            case _:
                assert_never(e)
        self.flats[id(e)] = (e, out)
        return out

    def sig(self, e: ast.Expr) -> tuple[object, ...]:
        """A value equal for two trees exactly when they behave the same."""
        hit = self.memo.get(id(e))
        if hit is not None:
            return hit[1]
        items = self.flat(e)
        if len(items) > 1:
            s: tuple[object, ...] = ("seq", *(self.sig(i) for i in items))
        else:
            n = items[0]
            s = (type(n).__name__, _literals(n), tuple(self.sig(k) for k in ast.children(n)))
        self.memo[id(e)] = (e, s)
        return s

    def find(self, d: ast.Expr, p: ast.Expr) -> list[_Region]:
        """The smallest parts of ``d`` that differ from ``p`` (none when they agree)."""
        if self.sig(d) == self.sig(p):
            return []
        di, pi = self.flat(d), self.flat(p)
        if len(di) == len(pi) and len(di) > 1:
            # Same steps: each pair that differs is a divergence of its own.
            return [r for x, y in zip(di, pi, strict=True) for r in self.find(x, y)]
        if len(di) > 1 or len(pi) > 1:
            i = 0
            while i < min(len(di), len(pi)) and self.sig(di[i]) == self.sig(pi[i]):
                i += 1
            j = 0
            while j < min(len(di), len(pi)) - i and self.sig(di[-1 - j]) == self.sig(pi[-1 - j]):
                j += 1
            rd, rp = di[i : len(di) - j], pi[i : len(pi) - j]
            if len(rd) == 1 and len(rp) == 1:
                return self._inner(rd[0], rp[0])
            return [_Region(rd or di, rp or pi)]
        return self._inner(di[0], pi[0])

    def _inner(self, d: ast.Expr, p: ast.Expr) -> list[_Region]:
        kd, kp = ast.children(d), ast.children(p)
        if type(d) is not type(p) or _literals(d) != _literals(p) or len(kd) != len(kp):
            return [_Region([d], [p])]
        out = [r for cd, cp in zip(kd, kp, strict=True) for r in self.find(cd, cp)]
        return out or [_Region([d], [p])]

    # -- text that means the same in both grammars -------------------------------------------

    def render_items(self, items: list[ast.Expr], *, whole: bool = False) -> str:
        """Sequence steps as text; ``whole`` when nothing surrounds them (no outer parentheses)."""
        if whole and len(items) == 1:
            return self.render(items[0]) if self.spelled_out(items[0]) else items[0].span.text
        seq = PRECEDENCE[ast.Seq]
        return " ~> ".join(
            self.show(x, seq, "left" if i == 0 else "right") for i, x in enumerate(items)
        )

    def spelled_out(self, e: ast.Expr) -> bool:
        """Whether ``e`` is shown operator by operator (else its own text is quoted)."""
        return id(e) in self.pseudo or is_operator(e)

    def show(self, e: ast.Expr, parent: int, side: str) -> str:
        """``e`` as an operand; parenthesised unless both grammars would group it the same."""
        if not self.spelled_out(e):
            return e.span.text
        prec = PRECEDENCE[type(e)]
        text = self.render(e)
        if_ = PRECEDENCE[ast.If]
        bare = side == "left" and (prec < parent or (prec == parent and parent != if_))
        return text if bare else f"({text})"

    def render(self, e: ast.Expr) -> str:
        """An operator expression with each operand shown by `show`."""
        match e:
            case ast.Seq(left=a, right=b):
                return f"{self.show(a, 5, 'left')} ~> {self.show(b, 5, 'right')}"
            case ast.Join(branches=(a, b)):
                return f"{self.show(a, 3, 'left')} & {self.show(b, 3, 'right')}"
            case ast.Race(branches=(a, b)):
                return f"{self.show(a, 4, 'left')} | {self.show(b, 4, 'right')}"
            case ast.Bind(node=x, name=n):
                return f"{self.show(x, 2, 'left')} |=> {n.span.text}"
            case ast.Compensate(node=x, undo=u):
                return f"{self.show(x, 1, 'left')} <-> {self.show(u, 1, 'right')}"
            case ast.If(cond=c, then=t, orelse=o):
                out = f"{self.show(c, 6, 'left')} ?> {self.show(t, 6, 'right')}"
                return out if o is None else f"{out} !> {self.show(o, 6, 'right')}"
            case ast.Loop(body=b, cond=None):
                return f"@> {self.show(b, 7, 'unary')}"
            case ast.Join() | ast.Race() | ast.Loop():
                return e.span.text  # n-ary, or a loop with a condition: a call
            case ast.Leaf() | ast.Wrapper() | ast.IfRows() | ast.TemplateCall():
                return e.span.text  # the wrappers left, a retry or a timeout, are calls
            case ast.Map():
                return e.span.text
        assert_never(e)


def _literals(n: ast.Expr) -> tuple[object, ...]:
    """The meaning of a node's fields that are not nodes (layout fields are not compared)."""
    out: list[object] = []
    for f in dataclasses.fields(n):
        if not f.compare:
            continue
        v = getattr(n, f.name)
        if isinstance(n, ast.TemplateCall) and f.name == "args":
            # The nodes among the arguments are children; literals and names are compared here.
            out.append(tuple((a.name, None if _is_node(a.value) else a.value) for a in n.args))
        elif f.name not in n.NODE_FIELDS:
            out.append(v.name if isinstance(v, ast.Name) else v)
    return tuple(out)


def _is_node(v: ast.Expr | ast.LitArg) -> bool:
    return not isinstance(v, ast.Str | ast.Num | ast.Null | ast.Bool)


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
