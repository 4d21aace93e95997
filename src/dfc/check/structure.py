"""Structure rules (SPEC §3): breaks, unreachable steps, hot loops, `?>` without `!>`, depth."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, assert_never

from dfc import ast
from dfc.check import codes
from dfc.check.report import Reporter
from dfc.check.walk import seq_items

_CHAINS = (ast.Seq, ast.Join, ast.Race)
_WAITS = (ast.Sleep, ast.WaitSchedule, ast.WaitSignal)


def check_depth(body: ast.Expr, rep: Reporter) -> bool:
    """Report nesting deeper than `ast.MAX_DEPTH`; False when it is (later passes recurse).

    A chain of one operator (``a ~> b ~> c``, ``a & b & c``) is one level however long it is;
    every other nested construct adds a level.
    """
    stack: list[tuple[ast.Expr, int]] = [(body, 1)]
    while stack:
        n, depth = stack.pop()
        if depth > ast.MAX_DEPTH:
            rep.error(
                codes.TOO_DEEP,
                f"constructs are nested more than {ast.MAX_DEPTH} levels deep here",
                n.span,
                node=n,
                help="split the workflow into templates, or flatten the nesting",
            )
            return False
        for k in ast.children(n):
            same = isinstance(n, _CHAINS) and type(k) is type(n)
            stack.append((k, depth if same else depth + 1))
    return True


def check_structure(body: ast.Expr, rep: Reporter, *, in_template: bool = False) -> None:
    """Break placement, unreachable steps, hot loops and conditionals without else.

    ``in_template`` is for a template body checked on its own: it may be used inside a loop, so
    a break there is not misplaced.
    """
    _breaks(body, rep, in_template)
    ending: dict[int, str | None] = {}
    chained: set[int] = set()  # inner Seq nodes of a chain already looked at
    for n in ast.preorder(body):
        match n:
            case ast.If(orelse=None):
                rep.error(
                    codes.IF_WITHOUT_ELSE,
                    "`?>` without `!>`: this conditional has no else arm",
                    n.span,
                    node=n,
                    help="add `!> step`; a no-op else can be `!> 'SELECT 1'`",
                )
            case ast.Loop(cond=None, body=b) if not _waits_or_breaks(b):
                rep.warning(
                    codes.HOT_LOOP,
                    "this loop never waits and never ends: it repeats as fast as the database allows",
                    n.span,
                    node=n,
                    help="add df.sleep(...) or df.wait_for_schedule(...) to the body, or a df.break",
                )
            case ast.Seq() if id(n) not in chained:
                # One chain is looked at once, from its outermost Seq (else quadratic).
                stack: list[ast.Expr] = [n]
                while stack:
                    cur = stack.pop()
                    if isinstance(cur, ast.Seq):
                        chained.add(id(cur))
                        stack += (cur.left, cur.right)
                _unreachable(n, rep, ending)
            case ast.Seq() | ast.If() | ast.Loop():
                pass  # a chain already looked at, a complete conditional, a loop that waits
            case ast.Leaf() | ast.Wrapper() | ast.Join() | ast.Race() | ast.IfRows():
                pass
            case ast.TemplateCall():
                pass
            case ast.Map(body=b):
                _map_undo(b, rep)
            case _:
                assert_never(n)


def _map_undo(body: ast.Expr, rep: Reporter) -> None:
    """A compensation inside a map's body: finished rows are summarised, their undos lost."""
    for n in ast.preorder(body):
        if isinstance(n, ast.Compensate):
            rep.error(
                codes.MAP_UNDO,
                "a compensation inside the body of df.map cannot run: finished rows are summarised",
                n.span,
                node=n,
                help="compensate the whole map (df.map(...) <-> undo) instead",
            )
            return


_Scope = Literal["outside", "own", "inner", "map"]
"""Which loop a ``df.break`` at a place would leave: none ("outside" every loop), the loop
whose body is being looked at ("own"), or a loop nested in it ("inner"); in the body of a
``df.map`` (and no loop inside it) a break has no loop it may leave ("map")."""


def _scoped(body: ast.Expr, scope: _Scope, *, undo: bool) -> Iterator[tuple[ast.Expr, _Scope]]:
    """Every node of ``body`` with the loop a break there would leave.

    A compensation's undo runs after the failure, outside any loop; it is visited only when
    ``undo`` is set.
    """
    stack: list[tuple[ast.Expr, _Scope]] = [(body, scope)]
    while stack:
        n, s = stack.pop()
        yield n, s
        match n:
            case ast.Loop():
                stack.extend((k, "inner") for k in ast.children(n))
            case ast.Compensate(node=x, undo=u):
                stack.append((x, s))
                if undo:
                    stack.append((u, "outside"))
            case ast.Leaf() | ast.Wrapper() | ast.Seq() | ast.Join() | ast.Race():
                stack.extend((k, s) for k in ast.children(n))
            case ast.If() | ast.IfRows() | ast.TemplateCall():
                stack.extend((k, s) for k in ast.children(n))
            case ast.Map(rows=r, body=b):
                stack += ((r, s), (b, "map"))
            case _:
                assert_never(n)


def _breaks(body: ast.Expr, rep: Reporter, in_template: bool) -> None:
    for n, scope in _scoped(body, "inner" if in_template else "outside", undo=True):
        if isinstance(n, ast.Break) and scope == "outside":
            rep.error(
                codes.BREAK_OUTSIDE_LOOP,
                "df.break is not inside a loop",
                n.span,
                node=n,
                help="df.break ends the nearest enclosing @> or df.loop",
            )
        elif isinstance(n, ast.Break) and scope == "map":
            rep.error(
                codes.BREAK_OUTSIDE_LOOP,
                "df.break cannot leave the body of df.map: a row's steps end with the row",
                n.span,
                node=n,
                help="put the loop inside the body, or end the row with a step",
            )


def _waits_or_breaks(body: ast.Expr) -> bool:
    """True when the loop body waits somewhere or contains a break of this loop."""
    return any(
        isinstance(n, _WAITS) or (isinstance(n, ast.Break) and scope == "own")
        for n, scope in _scoped(body, "own", undo=False)
    )


def _unreachable(seq: ast.Seq, rep: Reporter, memo: dict[int, str | None]) -> None:
    items = seq_items(seq)
    for i, item in enumerate(items[:-1]):
        why = _never_completes(item, memo)
        if why is None:
            continue
        rest = items[i + 1 :]
        span = rest[0].span.cover(rest[-1].span)
        cause = (
            "the step before always leaves the loop with df.break"
            if why == "break"
            else "the loop before never ends"
        )
        rep.warning(
            codes.UNREACHABLE,
            f"unreachable: {cause}",
            span,
            node=rest[0],
            help="remove these steps or move them before the break"
            if why == "break"
            else "give the loop a condition or a df.break",
        )
        return


def _never_completes(e: ast.Expr, memo: dict[int, str | None]) -> str | None:
    """ "break" when ``e`` always leaves a loop, "forever" when it never ends, else None."""
    if id(e) in memo:
        return memo[id(e)]
    result: str | None = None
    match e:
        case ast.Break():
            result = "break"
        case ast.Seq():
            for item in seq_items(e):
                result = _never_completes(item, memo)
                if result is not None:
                    break
        case ast.If(then=t, orelse=o) if o is not None:
            a, b = _never_completes(t, memo), _never_completes(o, memo)
            result = a if a is not None and b is not None else None
        case ast.IfRows(then=t, orelse=o):
            a, b = _never_completes(t, memo), _never_completes(o, memo)
            result = a if a is not None and b is not None else None
        case ast.Wrapper():
            result = _never_completes(e.node, memo)
        case ast.Join(branches=bs):
            result = next((r for r in (_never_completes(b, memo) for b in bs) if r), None)
        case ast.Race(branches=bs):
            rs = [_never_completes(b, memo) for b in bs]
            result = rs[0] if all(rs) else None
        case ast.Loop(cond=None, body=b) if not _has_own_break(b):
            result = "forever"
        case ast.Leaf() | ast.If() | ast.Loop() | ast.TemplateCall():  # If without else: reported
            result = None
        case ast.Map():
            result = None
        case _:
            assert_never(e)
    memo[id(e)] = result
    return result


def _has_own_break(body: ast.Expr) -> bool:
    """Whether the loop body holds a break that leaves this loop (not a nested one's)."""
    return any(
        isinstance(n, ast.Break) and scope == "own" for n, scope in _scoped(body, "own", undo=False)
    )
