"""The emitter: a checked workflow becomes a `Plan` (SPEC §4).

Node ids are assigned in pre-order (``n1`` is the root), so the same source always gives the same
ids. Bindings become the ``result_name`` of the bound node; compensation becomes an ``undo`` link.
"""

from __future__ import annotations

import dataclasses
from typing import assert_never

from dfc import ast
from dfc.check.result import CheckedWorkflow
from dfc.json_types import JSON
from dfc.plan.model import Plan, PlanNode, PlanParam, SourceSpan
from dfc.source import Span

DEFAULT_HTTP_TIMEOUT = 30
DEFAULT_RETRY = {"attempts": 3, "backoff": 1, "factor": 2, "max_backoff": 300, "jitter": True}


def literal_value(lit: ast.LitArg | None) -> JSON:
    """The JSON value of a literal argument (templates are expanded, so no `Name` remains)."""
    match lit:
        case None | ast.Null():
            return None
        case ast.Str(value=v):
            return v
        case ast.Num(text=t):
            return int(t) if lit.is_integer else float(t)
        case ast.Bool(value=b):
            return b
        case ast.Name(name=n):
            raise AssertionError(f"template parameter {n} left in a checked workflow")
    assert_never(lit)


def emit(checked: CheckedWorkflow) -> Plan:
    """Compile a checked workflow to its plan."""
    e = _Emitter(checked)
    root = e.emit(checked.body)
    options: dict[str, JSON] = {o.name: literal_value(o.value) for o in checked.options}
    if checked.label is not None:
        options["label"] = checked.label
    params = tuple(
        PlanParam(
            name=p.name,
            type=p.type,
            default=literal_value(p.default) if p.default is not None else None,
            has_default=p.default is not None,
        )
        for p in checked.params
    )
    return Plan(
        name=checked.name,
        root=root,
        nodes=e.nodes,
        params=params,
        options=options,
        source=checked.source.text,
        source_map=e.source_map,
    )


_Wrapper = ast.Bind | ast.Compensate


class _Emitter:
    """Two passes without recursion (a 2,000-step ``~>`` chain is a tree 2,000 levels deep):
    number the nodes in pre-order, then build each plan node from its children's numbers.

    `Bind` and `Compensate` get no node of their own: they become the ``result_name`` and the
    ``undo`` link of the node they wrap (the outermost wrapper wins when they nest).
    """

    def __init__(self, checked: CheckedWorkflow) -> None:
        self.checked = checked
        self.nodes: dict[str, PlanNode] = {}
        self.source_map: dict[str, SourceSpan] = {}
        self._ids: dict[int, str] = {}  # id(ast node) -> plan id, for non-wrapper nodes

    def emit(self, body: ast.Expr) -> str:
        order: list[tuple[ast.Expr, str | None, ast.Expr | None]] = []
        stack: list[tuple[ast.Expr, str | None, ast.Expr | None]] = [(body, None, None)]
        while stack:
            n, name, undo = stack.pop()
            match n:
                case ast.Bind(node=inner, name=bound):
                    stack.append((inner, name if name is not None else literal_value(bound), undo))
                case ast.Compensate(node=inner, undo=undo_tree):
                    stack.append((undo_tree, None, None))  # numbered after inner's subtree
                    stack.append((inner, name, undo if undo is not None else undo_tree))
                case _:
                    nid = f"n{len(self._ids) + 1}"
                    self._ids[id(n)] = nid
                    self.source_map[nid] = _source_span(n.span, self.checked.trail(n))
                    order.append((n, name, undo))
                    stack.extend((c, None, None) for c in reversed(ast.children(n)))
        for n, name, undo in order:
            node = self._build(n, self._ids[id(n)])
            self.nodes[node.id] = dataclasses.replace(
                node, result_name=name, undo=None if undo is None else self._id_of(undo)
            )
        return self._id_of(body)

    def _id_of(self, n: ast.Expr) -> str:
        """The plan id of ``n``: that of the node a chain of wrappers ends in."""
        while isinstance(n, _Wrapper):
            n = n.node
        return self._ids[id(n)]

    def _kids(self, *kids: ast.Expr) -> tuple[str, ...]:
        return tuple(self._id_of(k) for k in kids)

    def _build(self, n: ast.Expr, nid: str) -> PlanNode:
        """The plan node of ``n`` (a non-wrapper), its children already numbered."""

        def put(type_: str, children: tuple[str, ...] = (), **config: JSON) -> PlanNode:
            return PlanNode(id=nid, type=type_, children=children, config=config)  # type: ignore[arg-type]

        match n:
            case ast.Sql(query=q):
                facts = self.checked.facts(n)
                return put(
                    "SQL",
                    query=literal_value(q),
                    autocommit=facts.autocommit if facts else False,
                    statements=list(facts.statements) if facts else ["unknown"],
                    columns=list(facts.columns) if facts and facts.columns is not None else None,
                    returns_rows=facts.returns_rows if facts else None,
                    refs=list(facts.refs) if facts else [],
                    vars=list(facts.vars) if facts else [],
                )
            case ast.Seq(left=a, right=b):
                return put("THEN", self._kids(a, b))
            case ast.Join(branches=bs):
                return put("JOIN", self._kids(*bs))
            case ast.Race(branches=bs):
                return put("RACE", self._kids(*bs))
            case ast.If(cond=c, then=t, orelse=e):
                assert e is not None, "the checker rejects ?> without !>"
                return put("IF", self._kids(c, t, e), test="truthy")
            case ast.IfRows(name=rows_of, then=t, orelse=e):
                return put("IF", self._kids(t, e), test="rows", result_name=literal_value(rows_of))
            case ast.Loop(body=b, cond=c):
                return put("LOOP", self._kids(b) if c is None else self._kids(b, c))
            case ast.Break(value=v):
                return put("BREAK", value=_text(v))
            case ast.Sleep(seconds=secs):
                return put("SLEEP", seconds=literal_value(secs))
            case ast.WaitSchedule(cron=c):
                # Cron times are UTC (SPEC §5.2); the field leaves room for a per-workflow zone.
                return put("WAIT_SCHEDULE", cron=literal_value(c), timezone="UTC")
            case ast.WaitSignal(name=signal, timeout=t):
                return put("SIGNAL", name=literal_value(signal), timeout=literal_value(t))
            case ast.Http(url=u, method=m, body=b, headers=h, timeout=t):
                return put(
                    "HTTP",
                    url=literal_value(u),
                    method=(literal_value(m) or "POST").upper(),
                    body=_text(b),
                    headers=_text(h),
                    timeout=_timeout(t),
                )
            case ast.HttpMultipart(url=u, method=m, parts=parts, headers=h, timeout=t):
                return put(
                    "HTTP_MULTIPART",
                    url=literal_value(u),
                    method=(literal_value(m) or "POST").upper(),
                    parts=_text(parts) or "[]",
                    headers=_text(h),
                    timeout=_timeout(t),
                )
            case ast.Retry(node=inner):
                opts = dict(DEFAULT_RETRY)
                for key in opts:
                    v = getattr(n, key)
                    if v is not None and not isinstance(v, ast.Null):
                        opts[key] = literal_value(v)
                return put("RETRY", self._kids(inner), **opts)
            case ast.Timeout(node=inner, seconds=secs):
                return put("TIMEOUT", self._kids(inner), seconds=literal_value(secs))
            case ast.Bind() | ast.Compensate():
                raise AssertionError("wrappers have no plan node of their own")
            case ast.TemplateCall() | ast.Name() | ast.Invalid():
                raise AssertionError(f"{type(n).__name__} left in a checked workflow")
        assert_never(n)


def _text(lit: ast.LitArg | None) -> str | None:
    v = literal_value(lit)
    return None if v is None else str(v)


def _timeout(lit: ast.LitArg | None) -> JSON:
    v = literal_value(lit)
    return DEFAULT_HTTP_TIMEOUT if v is None else v


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
