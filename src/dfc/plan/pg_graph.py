"""A workflow as pg_durable's JSON graph (SPEC §7): the text the SQL builders would produce.

`to_graph` turns an expanded workflow body (no template calls left: the checker's
``CheckedWorkflow.body``) into the graph ``df.seq``, ``df.as``, ``df.http`` ... build in SQL:
compact JSON, keys in pg_durable's order (``node_type, left_node, right_node, condition_node,
extra_nodes, query, result_name``), a node's configuration as JSON text in ``query``, with the
language's defaults (`dfc.plan.nodes`) for the HTTP arguments left out, as ``df.http`` writes
them. ``dfc explain --format pg FILE`` sends it to ``df.explain``, so that the database renders
files and instances alike. It lives beside the emitter, which also turns a checked AST into
data; `dfc.syntax.graph` reads such a graph back into an AST.

pg_durable's graph has no node for dfc's extensions: a ``df.retry`` or ``df.timeout`` stands as
the step it wraps, and a compensation (``<->``) as its step without the undo. `to_graph` says
which it left out, with their positions, so that the caller can warn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import assert_never

from dfc import ast
from dfc.json_types import JSON
from dfc.plan import nodes
from dfc.source import Span

# pg_durable's keys, in the order serde_json writes them.
_KEYS = ("node_type", "left_node", "right_node", "condition_node", "extra_nodes", "query")


@dataclass(frozen=True, slots=True)
class Omitted:
    """A dfc construct the graph cannot hold, shown as the step it wraps."""

    construct: str  # "df.retry", "df.timeout", "compensation"
    span: Span


@dataclass(slots=True)
class Graph:
    """A workflow as pg_durable's graph, and the dfc constructs it leaves out."""

    root: dict[str, JSON]
    omitted: list[Omitted] = field(default_factory=list)

    def text(self) -> str:
        """The compact JSON text, as pg_durable's builders write it."""
        return _compact(self.root)


def to_graph(body: ast.Expr) -> Graph:
    """The graph of an expanded workflow body (see the module docstring)."""
    omitted: list[Omitted] = []
    with ast.deep_recursion():
        root = _node(body, omitted)
    return Graph(root, omitted)


def _compact(value: JSON) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _config(**values: JSON) -> str:
    return _compact(dict(values))


def _default(kind: type[nodes.Http] | type[nodes.HttpMultipart], name: str) -> JSON:
    value: JSON = next(f.default for f in fields(kind) if f.name == name)
    return value


def _method(kind: type[nodes.Http] | type[nodes.HttpMultipart], m: ast.LitArg | None) -> str:
    text = _text(m)
    return str(_default(kind, "method")) if text is None else text.upper()


def _timeout(kind: type[nodes.Http] | type[nodes.HttpMultipart], t: ast.LitArg | None) -> JSON:
    value = _lit(t)
    return _default(kind, "timeout") if value is None else value


def _make(node_type: str, **fields: JSON) -> dict[str, JSON]:
    node: dict[str, JSON] = {"node_type": node_type}
    for key in _KEYS[1:]:
        if fields.get(key) is not None:
            node[key] = fields[key]
    return node


def _lit(v: ast.LitArg | None) -> JSON:
    match v:
        case None | ast.Null():
            return None
        case ast.Str(value=s):
            return s
        case ast.Num(text=t):
            return int(t) if v.is_integer else float(t)
        case ast.Bool(value=b):
            return b
        case ast.Name(name=n):
            raise ValueError(f"template parameter {n} left in an expanded workflow")
    assert_never(v)


def _text(v: ast.LitArg | None) -> str | None:
    """A literal as the text pg_durable's text parameters receive (numbers as written)."""
    match v:
        case ast.Num(text=t):
            return t
        case ast.Bool(value=b):
            return "true" if b else "false"
        case _:
            value = _lit(v)
            return None if value is None else str(value)


def _json_value(v: ast.LitArg | None) -> JSON:
    """A JSON argument (headers, parts) as the JSON value the SQL builders embed."""
    text = _text(v)
    if text is None:
        return None
    try:
        parsed: JSON = json.loads(text)
    except ValueError:
        return text  # references make it JSON only once substituted: keep the text
    return parsed


def _node(e: ast.Expr, omitted: list[Omitted]) -> dict[str, JSON]:
    def kid(x: ast.Expr) -> dict[str, JSON]:
        return _node(x, omitted)

    match e:
        case ast.Sql(query=q):
            return _make("SQL", query=_text(q))
        case ast.Seq():
            # A chain nests to the left, as `a ~> b ~> c` does in SQL; walked without recursion.
            items: list[ast.Expr] = []
            stack: list[ast.Expr] = [e]
            while stack:
                x = stack.pop()
                if isinstance(x, ast.Seq):
                    stack += (x.right, x.left)
                else:
                    items.append(x)
            node = kid(items[0])
            for item in items[1:]:
                node = _make("THEN", left_node=node, right_node=kid(item))
            return node
        case ast.Bind(node=x, name=name):
            node = kid(x)
            node["result_name"] = _text(name)
            return node
        case ast.Join(branches=bs):
            extras = [kid(b) for b in bs[2:]]
            return _make(
                "JOIN", left_node=kid(bs[0]), right_node=kid(bs[1]), extra_nodes=extras or None
            )
        case ast.Race(branches=bs):
            # pg_durable races two branches; the first of three to finish is the first of
            # (the first of two) and the third.
            node = _make("RACE", left_node=kid(bs[0]), right_node=kid(bs[1]))
            for b in bs[2:]:
                node = _make("RACE", left_node=node, right_node=kid(b))
            return node
        case ast.If(cond=c, then=t, orelse=o):
            if o is None:
                raise ValueError("`?>` without `!>` has no graph (the checker refuses it)")
            return _make("IF", left_node=kid(t), right_node=kid(o), condition_node=kid(c))
        case ast.IfRows(name=name, then=t, orelse=o):
            query = _config(condition_type="result_has_rows", result_name=_text(name))
            return _make("IF", left_node=kid(t), right_node=kid(o), query=query)
        case ast.Loop(body=b, cond=c):
            return _make("LOOP", left_node=kid(b), condition_node=None if c is None else kid(c))
        case ast.Break(value=v):
            return _make("BREAK", query=_config(break_value=_text(v)))
        case ast.Sleep(seconds=s):
            return _make("SLEEP", query=_text(s))
        case ast.WaitSchedule(cron=c):
            return _make("WAIT_SCHEDULE", query=_config(cron_expr=_text(c)))
        case ast.WaitSignal(name=n, timeout=t):
            return _make("SIGNAL", query=_config(signal_name=_text(n), timeout_seconds=_lit(t)))
        case ast.Http(url=u, method=m, body=b, headers=h, timeout=t):
            query = _config(
                url=_text(u),
                method=_method(nodes.Http, m),
                body=_text(b),
                headers=_json_value(h),
                timeout_seconds=_timeout(nodes.Http, t),
            )
            return _make("HTTP", query=query)
        case ast.HttpMultipart(url=u, method=m, parts=p, headers=h, timeout=t):
            query = _config(
                url=_text(u),
                method=_method(nodes.HttpMultipart, m),
                parts=_json_value(p),
                headers=_json_value(h),
                timeout_seconds=_timeout(nodes.HttpMultipart, t),
            )
            return _make("HTTP_MULTIPART", query=query)
        case ast.Retry(node=x):
            omitted.append(Omitted("df.retry", e.span))
            return kid(x)
        case ast.Timeout(node=x):
            omitted.append(Omitted("df.timeout", e.span))
            return kid(x)
        case ast.Compensate(node=x):
            omitted.append(Omitted("compensation", e.span))
            return kid(x)
        case ast.TemplateCall() | ast.Name() | ast.Invalid():
            raise ValueError(f"{type(e).__name__} left in an expanded workflow")
    assert_never(e)
