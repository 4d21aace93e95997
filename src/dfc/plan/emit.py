"""The emitter: a checked workflow becomes a `Plan` (SPEC §4).

Node ids are assigned in pre-order (``n1`` is the root), so the same source always gives the same
ids. Bindings become the ``result_name`` of the bound node; compensation becomes an ``undo`` link.
"""

from __future__ import annotations

import dataclasses
from typing import assert_never

from dfc import ast
from dfc.check.result import CheckedWorkflow
from dfc.plan.model import JSON, Plan, PlanNode, PlanParam, SourceSpan
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
    root = e.node(checked.body)
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


class _Emitter:
    def __init__(self, checked: CheckedWorkflow) -> None:
        self.checked = checked
        self.nodes: dict[str, PlanNode] = {}
        self.source_map: dict[str, SourceSpan] = {}
        self._next = 0

    def _id(self, node: ast.Expr) -> str:
        self._next += 1
        nid = f"n{self._next}"
        self.source_map[nid] = _source_span(node.span, self.checked.trail(node))
        return nid

    def _put(self, nid: str, type_: str, children: tuple[str, ...] = (), **config: JSON) -> str:
        self.nodes[nid] = PlanNode(id=nid, type=type_, children=children, config=config)  # type: ignore[arg-type]
        return nid

    def node(self, n: ast.Expr) -> str:
        """Emit ``n`` and its subtree; returns its id."""
        match n:
            case ast.Bind(node=inner, name=name):
                nid = self.node(inner)
                self.nodes[nid] = _replace(self.nodes[nid], result_name=literal_value(name))
                return nid
            case ast.Compensate(node=inner, undo=undo):
                nid = self.node(inner)
                undo_id = self.node(undo)
                self.nodes[nid] = _replace(self.nodes[nid], undo=undo_id)
                return nid
            case _:
                pass
        nid = self._id(n)
        match n:
            case ast.Sql(query=q):
                facts = self.checked.facts(n)
                return self._put(
                    nid,
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
                return self._put(nid, "THEN", (self.node(a), self.node(b)))
            case ast.Join(branches=bs):
                return self._put(nid, "JOIN", tuple(self.node(b) for b in bs))
            case ast.Race(branches=bs):
                return self._put(nid, "RACE", tuple(self.node(b) for b in bs))
            case ast.If(cond=c, then=t, orelse=e):
                assert e is not None, "the checker rejects ?> without !>"
                return self._put(nid, "IF", (self.node(c), self.node(t), self.node(e)), test="truthy")
            case ast.IfRows(name=rows_of, then=t, orelse=e):
                kids = (self.node(t), self.node(e))
                return self._put(nid, "IF", kids, test="rows", result_name=literal_value(rows_of))
            case ast.Loop(body=b, cond=c):
                body = self.node(b)
                return self._put(nid, "LOOP", (body,) if c is None else (body, self.node(c)))
            case ast.Break(value=v):
                return self._put(nid, "BREAK", value=_text(v))
            case ast.Sleep(seconds=s):
                return self._put(nid, "SLEEP", seconds=literal_value(s))
            case ast.WaitSchedule(cron=c):
                # Cron times are UTC (SPEC §5.2); the field leaves room for a per-workflow zone.
                return self._put(nid, "WAIT_SCHEDULE", cron=literal_value(c), timezone="UTC")
            case ast.WaitSignal(name=signal, timeout=t):
                return self._put(nid, "SIGNAL", name=literal_value(signal), timeout=literal_value(t))
            case ast.Http(url=u, method=m, body=b, headers=h, timeout=t):
                return self._put(
                    nid,
                    "HTTP",
                    url=literal_value(u),
                    method=(literal_value(m) or "POST").upper(),
                    body=_text(b),
                    headers=_text(h),
                    timeout=_timeout(t),
                )
            case ast.HttpMultipart(url=u, method=m, parts=p, headers=h, timeout=t):
                return self._put(
                    nid,
                    "HTTP_MULTIPART",
                    url=literal_value(u),
                    method=(literal_value(m) or "POST").upper(),
                    parts=_text(p) or "[]",
                    headers=_text(h),
                    timeout=_timeout(t),
                )
            case ast.Retry(node=inner):
                opts = dict(DEFAULT_RETRY)
                for key in opts:
                    v = getattr(n, key)
                    if v is not None and not isinstance(v, ast.Null):
                        opts[key] = literal_value(v)
                return self._put(nid, "RETRY", (self.node(inner),), **opts)
            case ast.Timeout(node=inner, seconds=s):
                return self._put(nid, "TIMEOUT", (self.node(inner),), seconds=literal_value(s))
            case ast.Bind() | ast.Compensate():
                raise AssertionError("handled above")
            case ast.TemplateCall() | ast.Name() | ast.Invalid():
                raise AssertionError(f"{type(n).__name__} left in a checked workflow")
        assert_never(n)


def _text(lit: ast.LitArg | None) -> str | None:
    v = literal_value(lit)
    return None if v is None else str(v)


def _timeout(lit: ast.LitArg | None) -> JSON:
    v = literal_value(lit)
    return DEFAULT_HTTP_TIMEOUT if v is None else v


def _replace(node: PlanNode, **changes: JSON) -> PlanNode:
    return dataclasses.replace(node, **changes)


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
