"""pg_durable's JSON graph (SPEC §7) as a workflow AST, and back.

``df.start`` stores the graph it was given in pg_durable's JSON form; a worker turns it into an
AST here, then checks and compiles it like a ``.df`` file. A graph is an object with
``node_type`` and, as its type needs, ``left_node``, ``right_node``, ``condition_node``,
``extra_nodes`` (children: nested objects), ``query`` (text: the SQL of a step, or the JSON
configuration of another leaf) and ``result_name``. Both envelope generations are read: older
graphs keep an IF's or LOOP's ``condition_node`` and a JOIN's ``extra_nodes`` as JSON text
inside ``query``. A text that is not such an object is one SQL step (pg_durable's auto-wrap);
``cond ?> then`` without ``!>`` is pg_durable's ``_partial_if`` object, read as an IF without
an else that the checker reports.

`read_graph` gives the AST with placeholder positions; `graph_module` prints it with the
canonical printer (``dfc fmt``'s) and parses that text back, so that diagnostics, plan source
maps and ``dfc explain`` point into readable DSL text, which becomes the version's source. The
printer parenthesises every operand that pg_durable's flat reading would group differently
enough to matter, so the text means the same in both grammars; it is read back with dfc's own,
which gives exactly the tree that was printed (``a ~> (b |=> 'n')`` prints without parentheses,
as the two groupings behave alike). A graph has no precedence question, so the compiler checks
it as pg_durable text (no DFC420).

`graph_text` is the inverse: the canonical graph text of an AST (pg_durable's key order,
compact, the newer envelope), for the constructs a graph can express.

Everything here walks with explicit stacks: a sequence built with ``~>`` in SQL is a graph
nested as deeply as it is long.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, assert_never

from dfc import ast
from dfc.diagnostics import Diagnostic, Diagnostics
from dfc.json_types import JSON
from dfc.source import SourceFile, TextMap
from dfc.sqlquote import dumps
from dfc.syntax import codes
from dfc.syntax.parser import internal_error
from dfc.syntax.printer import format_module

NODE_TYPES = (
    "SQL",
    "THEN",
    "IF",
    "JOIN",
    "LOOP",
    "BREAK",
    "RACE",
    "SLEEP",
    "WAIT_SCHEDULE",
    "HTTP",
    "HTTP_MULTIPART",
    "SIGNAL",
)
"""The node types of a graph, in pg_durable's order (its error message lists them so)."""

RETRY_BACKOFF = 1
RETRY_FACTOR = 2
"""pg_durable's retry policy for ``df.start(..., max_attempts => n)``: the first retry after one
second, each next one after twice as long (capped by ``max_backoff``), without jitter."""

_NOWHERE = SourceFile("<graph>", "")
_SPAN = _NOWHERE.span(0, 0)
_NO_MAP = TextMap((), 0)
_WHOLE_SECONDS = re.compile(r"-?[0-9]+")


def unknown_type_message(node_type: str) -> str:
    """pg_durable's message for a node type it does not know (``df.start`` raises the same)."""
    return f"Invalid durable function: Unknown node_type '{node_type}'. Valid types: " + ", ".join(
        NODE_TYPES
    )


def malformed_message(node_type: str, what: str) -> str:
    """The message for a node whose fields do not fit its type (``df.start`` raises the same)."""
    return f"Malformed Durofut JSON with node_type '{node_type}': {what}"


# -- graph → AST ----------------------------------------------------------------------------------


def _str(value: str) -> ast.Str:
    return ast.Str(value=value, span=_SPAN, text_map=_NO_MAP)


def _text_lit(value: JSON) -> ast.Str | None:
    """A JSON value given where pg_durable takes text: null is absent, a string is itself, any
    other value its JSON text."""
    if value is None:
        return None
    return _str(value if isinstance(value, str) else dumps(value))


def _seconds_lit(value: JSON) -> ast.Num | ast.Str | None:
    """A number of seconds: a whole number as a number literal, anything else as written (the
    checker says what is wrong with it)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else dumps(value)
    if _WHOLE_SECONDS.fullmatch(text):
        return ast.Num(text=text, span=_SPAN)
    return _str(text)


def _object(text: str) -> dict[str, Any] | None:
    """The JSON object a text holds, or None (not JSON, or not an object)."""
    if not text.lstrip(" \t\r\n").startswith("{"):
        return None
    try:
        with ast.deep_recursion():  # json nests a C frame per level; graphs nest deeply
            value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


Build = Callable[[list[ast.Expr]], ast.Expr]
"""Makes a node from its children, built already (in the order they were listed)."""


@dataclass(slots=True)
class _Entry:
    build: Build
    kids: list[int] = field(default_factory=list)


class _Reader:
    """Reads one graph: nodes parents first (each with its children's entries), then builds
    them children first."""

    def __init__(self, sink: Diagnostics) -> None:
        self.sink = sink
        self.entries: list[_Entry] = []

    def error(self, code: str, message: str, path: str, help: str | None = None) -> None:
        self.sink.error(code, message, None, notes=(f"in the graph at {path}",), help=help)

    def read(self, root: dict[str, Any]) -> ast.Expr:
        stack: list[tuple[dict[str, Any], str, int | None]] = [(root, "$", None)]
        while stack:
            obj, path, parent = stack.pop()
            index = len(self.entries)
            build, kids = self.node(obj, path)
            self.entries.append(_Entry(build))
            if parent is not None:
                self.entries[parent].kids.append(index)
            # Pushed in reverse, so that they are visited (and listed by the parent) in order.
            stack.extend((kid, kid_path, index) for kid, kid_path in reversed(kids))
        built: list[ast.Expr | None] = [None] * len(self.entries)
        for i in range(len(self.entries) - 1, -1, -1):
            entry = self.entries[i]
            kids_built = [built[k] for k in entry.kids]
            built[i] = entry.build([k for k in kids_built if k is not None])
            for k in entry.kids:
                built[k] = None  # done with it: keep memory flat on long chains
        result = built[0]
        assert result is not None
        return result

    def node(
        self, obj: dict[str, Any], path: str
    ) -> tuple[Build, list[tuple[dict[str, Any], str]]]:
        """How to build the node ``obj`` from its children, and the children (object, path)."""
        if "_partial_if" in obj and "node_type" not in obj:
            return self.partial_if(obj, path)
        node_type = obj.get("node_type")
        if not isinstance(node_type, str) or node_type not in NODE_TYPES:
            shown = node_type if isinstance(node_type, str) else dumps(node_type)
            self.error(
                codes.GRAPH_NODE_TYPE,
                unknown_type_message(shown),
                path,
                help="build graphs with the df.* functions and operators",
            )
            return _invalid, []
        build, kids = self.typed(node_type, obj, path)
        name = obj.get("result_name")
        if name is None:
            return build, kids
        bound = _str(name if isinstance(name, str) else dumps(name))

        def bind(children: list[ast.Expr]) -> ast.Expr:
            return ast.Bind(node=build(children), name=bound, span=_SPAN)

        return bind, kids

    def partial_if(
        self, obj: dict[str, Any], path: str
    ) -> tuple[Build, list[tuple[dict[str, Any], str]]]:
        cond, then = obj.get("condition"), obj.get("then_branch")
        if not isinstance(cond, dict) or not isinstance(then, dict):
            self.error(
                codes.GRAPH_MALFORMED,
                malformed_message("IF", "a `?>` object needs condition and then_branch objects"),
                path,
            )
            return _invalid, []

        def build(k: list[ast.Expr]) -> ast.Expr:
            return ast.If(cond=k[0], then=k[1], orelse=None, span=_SPAN)

        return build, [(cond, f"{path}.condition"), (then, f"{path}.then_branch")]

    def typed(
        self, t: str, obj: dict[str, Any], path: str
    ) -> tuple[Build, list[tuple[dict[str, Any], str]]]:
        query = obj.get("query")
        if query is not None and not isinstance(query, str):
            query = dumps(query)
        # Children; in the older envelope an IF's or LOOP's condition and a JOIN's further
        # branches are JSON text inside query.
        cond, extras = obj.get("condition_node"), obj.get("extra_nodes")
        if t in ("IF", "LOOP", "JOIN") and query is not None:
            old = _object(query)
            if old is not None and "condition_node" in old and t != "JOIN":
                cond, query = cond if cond is not None else old["condition_node"], None
            elif old is not None and "extra_nodes" in old and t == "JOIN":
                extras, query = extras if extras is not None else old["extra_nodes"], None
        slots: dict[str, dict[str, Any]] = {}
        wanted = {
            "THEN": ("left_node", "right_node"),
            "JOIN": ("left_node", "right_node"),
            "RACE": ("left_node", "right_node"),
            "IF": ("left_node", "right_node", "condition_node"),
            "LOOP": ("left_node", "condition_node"),
        }.get(t, ())
        ok = True
        for key in wanted:
            value = cond if key == "condition_node" else obj.get(key)
            if value is None:
                continue
            if not isinstance(value, dict):
                self.error(
                    codes.GRAPH_MALFORMED,
                    malformed_message(t, f"{key} must be a node object"),
                    path,
                )
                ok = False
                continue
            slots[key] = value
        extra: list[dict[str, Any]] = []
        if t == "JOIN" and extras is not None:
            if not isinstance(extras, list) or not all(isinstance(e, dict) for e in extras):
                self.error(
                    codes.GRAPH_MALFORMED,
                    malformed_message(t, "extra_nodes must hold node objects"),
                    path,
                )
                ok = False
            else:
                extra = extras
        if not ok:
            return _invalid, []
        kids = [(slots[k], f"{path}.{k}") for k in wanted if k in slots]
        kids += [(e, f"{path}.extra_nodes[{i}]") for i, e in enumerate(extra)]
        missing = self.missing(t, slots, query)
        if missing is not None:
            self.error(codes.GRAPH_MALFORMED, malformed_message(t, missing), path)
            return _invalid, []
        if t in ("THEN", "JOIN", "RACE", "IF", "LOOP"):
            return self.composite(t, slots, query, path), kids
        leaf = self.leaf(t, query, path)
        return (lambda _: leaf), []

    @staticmethod
    def missing(t: str, slots: Mapping[str, object], query: str | None) -> str | None:
        """What the node lacks for its type, if anything."""
        if t in ("THEN", "JOIN", "RACE") and not ("left_node" in slots and "right_node" in slots):
            return "needs left_node and right_node"
        if t == "LOOP" and "left_node" not in slots:
            return "needs left_node (the body)"
        if t == "IF":
            if "left_node" not in slots:
                return "needs left_node (the then branch)"
            if "condition_node" not in slots and (
                (_object(query or "") or {}).get("condition_type") != "result_has_rows"
            ):
                return "needs condition_node, or a result_has_rows query"
            if "condition_node" not in slots and "right_node" not in slots:
                return "needs right_node (the else branch)"
        if query is None and t in (
            "SQL",
            "SLEEP",
            "WAIT_SCHEDULE",
            "SIGNAL",
            "HTTP",
            "HTTP_MULTIPART",
        ):
            return "needs query"
        return None

    def composite(self, t: str, slots: Mapping[str, object], query: str | None, path: str) -> Build:
        has_cond = "condition_node" in slots
        has_else = "right_node" in slots
        match t:
            case "THEN":
                return lambda k: ast.Seq(left=k[0], right=k[1], span=_SPAN)
            case "JOIN":
                return lambda k: ast.Join(
                    branches=tuple(k), spelling="call" if len(k) > 2 else "operator", span=_SPAN
                )
            case "RACE":
                return lambda k: ast.Race(branches=tuple(k), span=_SPAN)
            case "LOOP":
                return lambda k: ast.Loop(
                    body=k[0],
                    cond=k[1] if has_cond else None,
                    spelling="call" if has_cond else "operator",
                    span=_SPAN,
                )
            case "IF" if has_cond:
                # Children were listed then, [else,] condition.
                return lambda k: ast.If(
                    cond=k[-1], then=k[0], orelse=k[1] if has_else else None, span=_SPAN
                )
            case "IF":
                config = _object(query or "") or {}
                rows_of = _text_lit(config.get("result_name")) or _str("")
                return lambda k: ast.IfRows(name=rows_of, then=k[0], orelse=k[1], span=_SPAN)
        raise AssertionError(f"not a composite node type: {t}")

    def leaf(self, t: str, query: str | None, path: str) -> ast.Expr:
        if t == "SQL":
            assert query is not None
            return ast.Sql(query=_str(query), span=_SPAN)
        if t == "SLEEP":
            seconds = _seconds_lit(query)
            assert seconds is not None
            return ast.Sleep(seconds=seconds, span=_SPAN)
        if t == "BREAK" and query is None:
            return ast.Break(span=_SPAN)
        config = _object(query or "")
        if config is None:
            self.error(
                codes.GRAPH_MALFORMED, malformed_message(t, "query must be a JSON object"), path
            )
            return _invalid([])
        need = {
            "WAIT_SCHEDULE": "cron_expr",
            "SIGNAL": "signal_name",
            "HTTP": "url",
            "HTTP_MULTIPART": "url",
        }.get(t)
        if need is not None and not isinstance(config.get(need), str):
            self.error(codes.GRAPH_MALFORMED, malformed_message(t, f"query needs {need}"), path)
            return _invalid([])
        match t:
            case "BREAK":
                value = config.get("break_value")
                if value is not None and not isinstance(value, str):
                    self.error(
                        codes.GRAPH_MALFORMED,
                        malformed_message(t, "break_value must be a string or null"),
                        path,
                    )
                    return _invalid([])
                return ast.Break(value=_text_lit(value), span=_SPAN)
            case "WAIT_SCHEDULE":
                return ast.WaitSchedule(cron=_str(config["cron_expr"]), span=_SPAN)
            case "SIGNAL":
                return ast.WaitSignal(
                    name=_str(config["signal_name"]),
                    timeout=_seconds_lit(config.get("timeout_seconds")),
                    span=_SPAN,
                )
            case "HTTP" | "HTTP_MULTIPART":
                url, method = _str(config["url"]), _text_lit(config.get("method"))
                headers = _text_lit(config.get("headers"))
                timeout = _seconds_lit(config.get("timeout_seconds"))
                if t == "HTTP":
                    body = _text_lit(config.get("body"))
                    return ast.Http(
                        url=url,
                        method=method,
                        body=body,
                        headers=headers,
                        timeout=timeout,
                        span=_SPAN,
                    )
                parts = _text_lit(config.get("parts"))
                return ast.HttpMultipart(
                    url=url,
                    method=method,
                    parts=parts,
                    headers=headers,
                    timeout=timeout,
                    span=_SPAN,
                )
        raise AssertionError(f"not a leaf node type: {t}")


def _invalid(_: list[ast.Expr]) -> ast.Expr:
    return ast.Invalid(span=_SPAN)


def read_graph(text: str, name: str = "<graph>") -> tuple[ast.Expr | None, list[Diagnostic]]:
    """The workflow a graph text stands for (placeholder positions), or None and the reasons.

    A text that is not a JSON object with a ``node_type`` (nor a ``?>`` object) is one SQL
    step. Never raises.
    """
    sink = Diagnostics()
    root = _object(text)
    if root is None or ("node_type" not in root and "_partial_if" not in root):
        return ast.Sql(query=_str(text), span=_SPAN), []
    source = SourceFile(name, text)
    try:
        body = _Reader(sink).read(root)
    except Exception as exc:  # a bug: report it rather than crash the worker
        sink.add(internal_error(source.span(0, 0), exc))
        return None, sink.sorted()
    if sink.has_errors:
        return None, sink.sorted()
    return body, sink.sorted()


def graph_module(body: ast.Expr, name: str) -> tuple[ast.Module | None, list[Diagnostic]]:
    """``body`` as a module parsed from its canonical text (a file named ``name``): the same
    tree, now with positions in that text. The diagnostics are the parser's (a graph nested
    more deeply than a file may be, for one)."""
    placeholder = ast.Module(decls=(), workflow=ast.Workflow(body=body, span=_SPAN), span=_SPAN)
    from dfc.syntax import parse  # the package imports this module

    source = SourceFile(name, format_module(placeholder))
    sink = Diagnostics()
    module = parse(source, grammar="dfc", diagnostics=sink)
    if sink.has_errors or module is None:
        return None, sink.sorted()
    if module.workflow is None or not _same(module.workflow.body, body):
        message = "the printed graph does not parse back to the same workflow"
        sink.add(internal_error(source.span(0, 0), AssertionError(message)))
        return None, sink.sorted()
    return module, sink.sorted()


def _same(a: ast.Expr, b: ast.Expr) -> bool:
    """``a == b`` without recursion (dataclass equality recurses once per level, and a chain
    of 10,000 steps is 10,000 levels deep)."""
    pairs = [(a, b)]
    while pairs:
        x, y = pairs.pop()
        if type(x) is not type(y):
            return False
        for f in dataclasses.fields(x):
            if not f.compare:
                continue
            u, v = getattr(x, f.name), getattr(y, f.name)
            if f.name in x.NODE_FIELDS:
                us, vs = (u, v) if isinstance(u, tuple) else ((u,), (v,))
                if len(us) != len(vs):
                    return False
                for p, q in zip(us, vs, strict=True):
                    if (p is None) != (q is None):
                        return False
                    if p is not None:
                        pairs.append((p, q))
            elif u != v:
                return False
    return True


def with_retries(body: ast.Expr, attempts: int, max_backoff: float) -> ast.Expr:
    """``body`` with every SQL and HTTP step wrapped in a retry of pg_durable's policy
    (`RETRY_BACKOFF`, `RETRY_FACTOR`, capped by ``max_backoff`` seconds, no jitter): what
    ``df.start(..., max_attempts => n)`` asks for. A binding stays outside its retry."""

    def num(value: float) -> ast.Num:
        return ast.Num(text=str(int(value)) if value == int(value) else repr(value), span=_SPAN)

    def retried(leaf: ast.Expr) -> ast.Expr:
        return ast.Retry(
            node=leaf,
            attempts=num(attempts),
            backoff=num(RETRY_BACKOFF),
            factor=num(RETRY_FACTOR),
            max_backoff=num(max_backoff),
            jitter=ast.Bool(value=False, span=_SPAN),
            span=_SPAN,
        )

    return ast.rebuild(body, lambda n: retried(n) if isinstance(n, _RETRIED) else n)


_RETRIED = (ast.Sql, ast.Http, ast.HttpMultipart)


# -- AST → graph ----------------------------------------------------------------------------------


def graph_text(body: ast.Expr) -> str:
    """The canonical graph text of ``body``: pg_durable's key order (``node_type, left_node,
    right_node, condition_node, extra_nodes, query, result_name``), no spaces, the newer
    envelope; ``?>`` without ``!>`` as pg_durable's ``_partial_if`` object.

    Raises ValueError for what a graph cannot express: df.retry, df.timeout, df.map, compensation,
    templates, a race of more than two branches, a literal that is not text where a graph
    holds text.
    """
    texts: dict[int, str] = {}
    for n in reversed(list(ast.preorder(body))):
        texts[id(n)] = _node_text(n, [texts.pop(id(k)) for k in ast.children(n)])
    return texts[id(body)]


def _obj(*pairs: tuple[str, str | None]) -> str:
    """An object of pre-encoded values (absent ones left out), keys in the given order."""
    return "{" + ",".join(f'"{k}":{v}' for k, v in pairs if v is not None) + "}"


def _lit_json(lit: ast.LitArg | None, *, as_json: bool = False) -> JSON:
    """A literal argument as the graph's configuration holds it: text (or the JSON value the
    text holds, with ``as_json``), a number, or null."""
    match lit:
        case None | ast.Null():
            return None
        case ast.Str(value=v):
            if as_json:
                try:
                    parsed: JSON = json.loads(v)
                except ValueError:
                    return v
                return parsed
            return v
        case ast.Num(text=t):
            return int(t) if lit.is_integer else float(t)
        case ast.Bool(value=b):
            return b
        case ast.Name(name=name):
            raise ValueError(f"template parameter {name} has no place in a graph")
        case ast.SqlExpr():
            raise ValueError(
                "a SQL expression argument is evaluated when the instance starts; a graph holds "
                "only its value"
            )
    assert_never(lit)


def _node_text(n: ast.Expr, k: list[str]) -> str:
    def typed(t: str, *pairs: tuple[str, str | None]) -> str:
        return _obj(("node_type", dumps(t)), *pairs)

    def query(config: dict[str, JSON]) -> str:
        return dumps(dumps(config))

    match n:
        case ast.Sql(query=q):
            return typed("SQL", ("query", dumps(_lit_json(q))))
        case ast.Seq():
            return typed("THEN", ("left_node", k[0]), ("right_node", k[1]))
        case ast.Bind(node=ast.If(orelse=None)):
            raise ValueError("`?>` without `!>` cannot be bound to a name in a graph")
        case ast.Bind(name=name):
            # Bound twice, the outer name wins (as in the plan); a name is an identifier.
            inner = re.sub(r',"result_name":"[A-Za-z0-9_]*"}$', "}", k[0])
            return inner[:-1] + ',"result_name":' + dumps(_lit_json(name)) + "}"
        case ast.Join():
            extra = "[" + ",".join(k[2:]) + "]" if len(k) > 2 else None
            return typed("JOIN", ("left_node", k[0]), ("right_node", k[1]), ("extra_nodes", extra))
        case ast.Race():
            if len(k) != 2:
                raise ValueError("a graph's race has two branches")
            return typed("RACE", ("left_node", k[0]), ("right_node", k[1]))
        case ast.If(orelse=None):
            return _obj(("_partial_if", "true"), ("condition", k[0]), ("then_branch", k[1]))
        case ast.If():
            return typed("IF", ("left_node", k[1]), ("right_node", k[2]), ("condition_node", k[0]))
        case ast.IfRows(name=name):
            config = {"condition_type": "result_has_rows", "result_name": _lit_json(name)}
            return typed("IF", ("left_node", k[0]), ("right_node", k[1]), ("query", query(config)))
        case ast.Loop():
            cond = k[1] if len(k) > 1 else None
            return typed("LOOP", ("left_node", k[0]), ("condition_node", cond))
        case ast.Break(value=v):
            return typed("BREAK", ("query", query({"break_value": _lit_json(v)})))
        case ast.Sleep(seconds=s):
            return typed("SLEEP", ("query", dumps(str(_lit_json(s)))))
        case ast.WaitSchedule(cron=c):
            return typed("WAIT_SCHEDULE", ("query", query({"cron_expr": _lit_json(c)})))
        case ast.WaitSignal(name=name, timeout=t):
            config = {"signal_name": _lit_json(name), "timeout_seconds": _lit_json(t)}
            return typed("SIGNAL", ("query", query(config)))
        case ast.Http() | ast.HttpMultipart():
            payload = ("body", n.body) if isinstance(n, ast.Http) else ("parts", n.parts)
            config = {
                "url": _lit_json(n.url),
                "method": _lit_json(n.method),
                payload[0]: _lit_json(payload[1], as_json=payload[0] == "parts"),
                "headers": _lit_json(n.headers, as_json=True),
                "timeout_seconds": _lit_json(n.timeout),
            }
            kind = "HTTP" if isinstance(n, ast.Http) else "HTTP_MULTIPART"
            return typed(kind, ("query", query(config)))
        case ast.Retry() | ast.Timeout() | ast.Compensate() | ast.TemplateCall() | ast.Call():
            raise ValueError(f"a graph cannot express {type(n).__name__}")
        case ast.Map():
            raise ValueError("a graph cannot express df.map")
        case ast.Name() | ast.Invalid():
            raise ValueError(f"{type(n).__name__} has no place in a graph")
    assert_never(n)


__all__ = [
    "NODE_TYPES",
    "graph_module",
    "graph_text",
    "malformed_message",
    "read_graph",
    "unknown_type_message",
    "with_retries",
]
