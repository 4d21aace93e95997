"""The emitter: a checked workflow becomes a `Plan` (SPEC §4).

Node ids are assigned in pre-order (``n1`` is the root), so the same source always gives the same
ids. Bindings become the ``result_name`` of the bound node; compensation becomes an ``undo`` link.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import assert_never

from dfc import ast
from dfc.check.result import CheckedWorkflow
from dfc.check.walk import map_source
from dfc.json_types import JSON
from dfc.plan import nodes
from dfc.plan.model import (
    Plan,
    PlanExpression,
    PlanNode,
    PlanParam,
    PlanSchedule,
    SourceSpan,
    SqlAnalysis,
)
from dfc.references import expression_var
from dfc.source import Span


def emit(checked: CheckedWorkflow) -> Plan:
    """Compile a checked workflow to its plan."""
    e = _Emitter(checked)
    root = e.emit(checked.body)
    options: dict[str, JSON] = {o.name: ast.literal_value(o.value) for o in checked.options}
    if checked.label is not None:
        options["label"] = checked.label
    params = tuple(
        PlanParam(
            name=p.name,
            type=p.type,
            default=ast.literal_value(p.default) if p.default is not None else None,
            has_default=p.default is not None,
        )
        for p in checked.params
    )
    return Plan(
        name=checked.name,
        schedule=_schedule(checked.schedule),
        root=root,
        nodes=e.nodes,
        params=params,
        options=options,
        expressions=tuple(e.expressions),
        source=checked.source.text,
        source_map=e.source_map,
        analysis=e.analysis,
    )


def _schedule(s: ast.Schedule | None) -> PlanSchedule | None:
    """The plan's schedule: what the source wrote, the defaults for what it did not."""
    if s is None:
        return None
    written: dict[str, str] = {
        "cron": s.cron.value,
        **({"timezone": s.timezone.value} if s.timezone is not None else {}),
        **({"overlap": s.overlap} if s.overlap is not None else {}),
        **({"catchup": s.catchup} if s.catchup is not None else {}),
    }
    return PlanSchedule(**written)  # type: ignore[arg-type]


_Wrapper = ast.Bind | ast.Compensate


class _Emitter:
    """Two passes without recursion (a 2,000-step ``~>`` chain is a tree 2,000 levels deep):
    number the nodes in pre-order, then build each plan node from its children's numbers.

    `Bind` and `Compensate` get no node of their own: they become the ``result_name`` and the
    ``undo`` link of the node they wrap (the outermost binding wins when they nest; nested
    compensations undo in turn, the outermost first).
    """

    def __init__(self, checked: CheckedWorkflow) -> None:
        self.checked = checked
        self.nodes: dict[str, PlanNode] = {}
        self.source_map: dict[str, SourceSpan] = {}
        self.analysis: dict[str, SqlAnalysis] = {}
        self.expressions: list[PlanExpression] = []
        self._ids: dict[int, str] = {}  # id(ast node) -> plan id, for non-wrapper nodes

    def emit(self, body: ast.Expr) -> str:
        order: list[tuple[ast.Expr, str | None, ast.Expr | None]] = []
        stack: list[tuple[ast.Expr, str | None, ast.Expr | None]] = [(body, None, None)]
        while stack:
            n, name, undo = stack.pop()
            match n:
                case ast.Bind(node=inner, name=bound):
                    stack.append(
                        (inner, name if name is not None else ast.literal_value(bound), undo)
                    )
                case ast.Compensate(node=inner, undo=undo_tree):
                    if undo is not None:
                        # `(a <-> u1) <-> u2`: both undo a; the outer one completed last, so
                        # it runs first (SPEC §5.8).
                        undo_tree = ast.Seq(left=undo, right=undo_tree, span=undo_tree.span)
                    stack.append((inner, name, undo_tree))
                case _:
                    nid = f"n{len(self._ids) + 1}"
                    self._ids[id(n)] = nid
                    self.source_map[nid] = _source_span(n.span, self.checked.trail(n))
                    order.append((n, name, undo))
                    if undo is not None:
                        stack.append((undo, None, None))  # numbered after n's subtree
                    stack.extend((c, None, None) for c in reversed(_planned_children(n)))
        for n, name, undo in order:
            nid = self._ids[id(n)]
            config, children = self._config(n, nid)
            self.nodes[nid] = PlanNode(
                id=nid,
                config=config,
                children=children,
                result_name=name,
                undo=None if undo is None else self._id_of(undo),
            )
        return self._id_of(body)

    def _id_of(self, n: ast.Expr) -> str:
        """The plan id of ``n``: that of the node a chain of wrappers ends in."""
        while isinstance(n, _Wrapper):
            n = n.node
        return self._ids[id(n)]

    def _kids(self, *kids: ast.Expr) -> tuple[str, ...]:
        return tuple(self._id_of(k) for k in kids)

    def _config(self, n: ast.Expr, nid: str) -> tuple[nodes.NodeConfig, tuple[str, ...]]:
        """The configuration and the children of the plan node of ``n`` (a non-wrapper, its
        children already numbered). Literal values go through `nodes.read`, as stored plans do:
        an argument left out (None) takes the default."""
        read, kids, _args = nodes.read, self._kids, functools.partial(self._args, nid)
        match n:
            case ast.Sql(query=q):
                facts = self.checked.facts(n)
                if facts is not None:
                    self.analysis[nid] = SqlAnalysis(
                        statements=facts.statements,
                        columns=facts.columns,
                        returns_rows=facts.returns_rows,
                        refs=facts.refs,
                        vars=facts.vars,
                    )
                autocommit = facts.autocommit if facts else False
                return read(
                    nodes.Sql, {"query": ast.literal_value(q), "autocommit": autocommit}
                ), ()
            case ast.Seq(left=a, right=b):
                return nodes.Then(), kids(a, b)
            case ast.Join(branches=bs):
                return nodes.Join(), kids(*bs)
            case ast.Race(branches=bs):
                return nodes.Race(), kids(*bs)
            case ast.If(cond=c, then=t, orelse=e):
                assert e is not None, "the checker rejects ?> without !>"
                return nodes.If(), kids(c, t, e)
            case ast.IfRows(name=rows_of, then=t, orelse=e):
                return read(nodes.IfRows, {"result_name": ast.literal_value(rows_of)}), kids(t, e)
            case ast.Loop(body=b, cond=c):
                return nodes.Loop(), kids(b) if c is None else kids(b, c)
            case ast.Break():
                return read(nodes.Break, _args(n, "value")), ()
            case ast.Sleep():
                return read(nodes.Sleep, _args(n, "seconds")), ()
            case ast.WaitSchedule():
                # Cron times are UTC (SPEC §5.2); the field leaves room for a per-workflow zone.
                return read(nodes.WaitSchedule, _args(n, "cron")), ()
            case ast.WaitSignal():
                return read(nodes.Signal, _args(n, "name", "timeout")), ()
            case ast.Http():
                return read(nodes.Http, _args(n, "url", "method", "body", "headers", "timeout")), ()
            case ast.HttpMultipart():
                raw = _args(n, "url", "method", "parts", "headers", "timeout")
                return read(nodes.HttpMultipart, raw), ()
            case ast.Call(args=passed, wait=wait):
                raw = _args(n, "workflow", "version")
                raw["args"] = {a.name: ast.literal_value(a.value) for a in passed}
                return read(nodes.Call if wait else nodes.Spawn, raw), ()
            case ast.Retry(node=inner):
                return read(nodes.Retry, _args(n, *_RETRY_OPTIONS)), kids(inner)
            case ast.Timeout(node=inner):
                return read(nodes.Timeout, _args(n, "seconds")), kids(inner)
            case ast.Map(rows=rows, body=body):
                raw = _args(n, "concurrency", "on_error", "item")
                source = map_source(n)
                if source is not None:
                    return read(nodes.Map, {**raw, "rows_from": source}), kids(body)
                return read(nodes.Map, raw), kids(rows, body)
            case ast.Bind() | ast.Compensate():
                raise AssertionError("wrappers have no plan node of their own")
            case ast.TemplateCall() | ast.Name() | ast.Invalid():
                raise AssertionError(f"{type(n).__name__} left in a checked workflow")
        assert_never(n)

    def _args(self, nid: str, n: ast.Expr, *names: str) -> dict[str, JSON]:
        """The values of literal arguments of ``n``; a plan node's configuration names its
        fields as the AST does. A SQL expression's value is known only when an instance starts:
        the configuration holds the name of the variable that will hold it."""
        out: dict[str, JSON] = {}
        for name in names:
            v = getattr(n, name)
            if isinstance(v, ast.SqlExpr):
                var = expression_var(len(self.expressions) + 1)
                self.expressions.append(
                    PlanExpression(name=var, sql=v.text, node=nid, argument=name)
                )
                out[name] = "{" + var + "}"
            else:
                out[name] = ast.literal_value(v)
        return out


def _planned_children(n: ast.Expr) -> tuple[ast.Expr, ...]:
    """The children of ``n`` that have plan nodes: all, except the rows of a map written as a
    reference to a bound result, which are no step of their own."""
    if isinstance(n, ast.Map) and map_source(n) is not None:
        return (n.body,)
    return ast.children(n)


# The options of df.retry: its AST fields and its configuration's, by the same names.
_RETRY_OPTIONS = tuple(f.name for f in dataclasses.fields(nodes.Retry))


def _source_span(span: Span, trail: tuple[Span, ...]) -> SourceSpan:
    d = span.to_dict()
    return SourceSpan(
        file=str(d["file"]),
        line=int(d["line"]),  # type: ignore[call-overload]
        column=int(d["column"]),  # type: ignore[call-overload]
        end_line=int(d["end_line"]),  # type: ignore[call-overload]
        end_column=int(d["end_column"]),  # type: ignore[call-overload]
        start=span.start,
        end=span.end,
        trail=tuple(f"template call at {s}" for s in trail),
    )
