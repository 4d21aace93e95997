"""The façade over the stages: text → AST → checked workflow → plan, with all diagnostics.

The CLI, the Python client and the tests use this instead of wiring the stages themselves.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dfc import ast
from dfc.check import Insight, check
from dfc.check.result import CheckedWorkflow
from dfc.diagnostics import DfcError, Diagnostic, Diagnostics, render_plain
from dfc.source import SourceFile, Span, TextMap
from dfc.syntax import parse
from dfc.syntax.graph import graph_module, graph_text, read_graph, with_retries

# The plan stage is imported where a plan is made: `dfc check`, which editors run on every save,
# does not make one, and importing it costs 20-40 ms of the command's start.
if TYPE_CHECKING:
    from dfc.plan import nodes
    from dfc.plan.model import Plan

Grammar = Literal["dfc", "pg"]


@dataclass(slots=True)
class Compilation:
    """Everything known about one input after as many stages as its errors allowed."""

    source: SourceFile
    module: ast.Module | None = None
    checked: CheckedWorkflow | None = None
    plan: Plan | None = None
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

    @property
    def ok(self) -> bool:
        return not self.diagnostics.has_errors

    @property
    def sorted_diagnostics(self) -> list[Diagnostic]:
        return self.diagnostics.sorted()


def read_source(path: str) -> SourceFile:
    """Read a file, or standard input for ``-``; a missing file is a `DfcError`."""
    if path == "-":
        return SourceFile("<stdin>", sys.stdin.read())
    p = Path(path)
    if not p.exists():
        raise DfcError(f"file {path} does not exist", hint="check the path and try again")
    if p.is_dir():
        raise DfcError(f"{path} is a directory, not a workflow file", hint="pass a .df file")
    try:
        return SourceFile.read(p)
    except OSError as e:
        raise DfcError(f"cannot read {path}: {e.strerror}") from e


def parse_source(source: SourceFile, *, grammar: Grammar = "dfc") -> Compilation:
    """Parse only (``dfc parse``, ``dfc fmt``)."""
    comp = Compilation(source)
    comp.module = parse(source, grammar=grammar, diagnostics=comp.diagnostics)
    return comp


def check_source(
    source: SourceFile, *, grammar: Grammar = "dfc", insight: Insight | None = None
) -> Compilation:
    """Parse and check (``dfc check``); ``insight`` as in `dfc.check.check` (editors)."""
    comp = parse_source(source, grammar=grammar)
    if comp.module is not None and not comp.diagnostics.has_errors:
        comp.checked = check(
            comp.module, source, comp.diagnostics, grammar=grammar, insight=insight
        )
    return comp


def compile_source(source: SourceFile, *, grammar: Grammar = "dfc") -> Compilation:
    """Parse, check and emit the plan (``dfc compile``, ``deploy``, ``run``)."""
    from dfc.plan.emit import emit

    comp = check_source(source, grammar=grammar)
    if comp.checked is not None and not comp.diagnostics.has_errors:
        comp.plan = emit(comp.checked)
    return comp


def compile_path(path: str, *, grammar: Grammar = "dfc") -> Compilation:
    return compile_source(read_source(path), grammar=grammar)


# -- graphs from SQL (df.start) ---------------------------------------------------------------------

GRAPH_WORKFLOW_PREFIX = "sql:"
MAX_BACKOFF = 16.0
"""``df.start``'s default ``max_backoff`` ('16 seconds'), in seconds."""


def graph_workflow_name(label: str | None) -> str:
    """The workflow an instance started with ``df.start(graph, label)`` is deployed as."""
    return GRAPH_WORKFLOW_PREFIX + ("unlabelled" if label is None else label)


def compile_graph(
    graph: str, *, label: str | None = None, max_attempts: int = 1, max_backoff: float = MAX_BACKOFF
) -> Compilation:
    """Compile a pg_durable JSON graph (what ``df.start`` stores) into the plan of workflow
    `graph_workflow_name` (``label``), with the checker and emitter of ``.df`` files.

    The source of the compilation, and of the plan, is the graph printed as DSL text (see
    `dfc.syntax.graph`), so diagnostics and source maps point into it; a graph that cannot
    become a workflow at all has diagnostics without positions. ``max_attempts > 1`` retries
    every SQL and HTTP step (``df.start(..., max_attempts => n, max_backoff => ...)``).
    """
    from dfc.plan.emit import emit

    name = graph_workflow_name(label)
    comp = Compilation(SourceFile(name, graph))
    body, diags = read_graph(graph, name)
    comp.diagnostics.extend(diags)
    if body is None:
        return comp
    if max_attempts > 1:
        body = with_retries(body, max_attempts, max_backoff)
    module, diags = graph_module(body, name)
    comp.diagnostics.extend(diags)
    if module is None:
        return comp
    comp.module = module
    comp.source = module.span.file
    comp.checked = check(module, comp.source, comp.diagnostics, grammar="pg")
    if comp.checked is not None and not comp.diagnostics.has_errors:
        comp.plan = dataclasses.replace(emit(comp.checked), name=name)
    return comp


def graph_compiler(graph: str, label: str | None, options: Mapping[str, Any] | None) -> Plan | str:
    """`compile_graph` as a worker calls it (``dfc.runtime.worker.GraphCompiler``): the plan,
    or why there is none as text (the errors rendered as ``dfc check`` prints them, without
    colour). ``options`` are the instance's compile options as ``df.start`` stores them
    (``{"max_attempts": n, "max_backoff": seconds}``, or None)."""
    options = options or {}
    attempts, backoff = options.get("max_attempts", 1), options.get("max_backoff", MAX_BACKOFF)
    if (
        not isinstance(attempts, int)
        or isinstance(attempts, bool)
        or attempts < 1
        or not isinstance(backoff, int | float)
        or backoff <= 0
    ):
        return (
            f"error: the instance's options {dict(options)!r} are not valid: max_attempts must "
            "be a whole number of at least 1 and max_backoff a positive number of seconds\n"
        )
    comp = compile_graph(graph, label=label, max_attempts=attempts, max_backoff=float(backoff))
    if comp.plan is not None:
        return comp.plan
    return "".join(render_plain(d) for d in comp.sorted_diagnostics if d.is_error)


# -- a file as pg_durable's graph ---------------------------------------------------------------
#
# A workflow as pg_durable's JSON graph (SPEC §7): the text the SQL builders would produce.
#
# `to_graph` turns an expanded workflow body (no template calls left: the checker's
# ``CheckedWorkflow.body``) into the graph ``df.seq``, ``df.as``, ``df.http`` ... build in SQL:
# the canonical text of `dfc.syntax.graph.graph_text`, after the tree is brought to what those
# builders can build: the language's defaults (`dfc.plan.nodes`) written for omitted HTTP
# arguments, as ``df.http`` writes them; numbers given to text parameters as their text; a race of
# n branches as nested races. ``dfc explain --format pg FILE`` sends it to ``df.explain``, so
# that the database renders files and instances alike; `dfc.syntax.graph` reads such a graph
# back into an AST. It lives in the façade because it reaches both the syntax and the plan.
#
# pg_durable's graph has no node for dfc's extensions: a ``df.retry`` or ``df.timeout`` stands as
# the step it wraps, and a compensation (``<->``) as its step without the undo. `to_graph` says
# which it left out, with their positions, so that the caller can warn.


@dataclass(frozen=True, slots=True)
class Omitted:
    """A dfc construct the graph cannot hold, shown as the step it wraps."""

    construct: str  # "df.retry", "df.timeout", "compensation"
    span: Span


@dataclass(slots=True)
class Graph:
    """A workflow as pg_durable's graph text, and the dfc constructs it leaves out."""

    text: str
    omitted: list[Omitted] = field(default_factory=list)


def to_graph(body: ast.Expr) -> Graph:
    """The graph of an expanded workflow body (see the module docstring)."""
    from dfc.plan import nodes

    omitted: list[Omitted] = []

    def visit(n: ast.Expr) -> ast.Expr:
        match n:
            case ast.Retry(node=x) | ast.Timeout(node=x) | ast.Compensate(node=x):
                name = {ast.Retry: "df.retry", ast.Timeout: "df.timeout"}.get(type(n))
                omitted.append(Omitted(name or "compensation", n.span))
                return x
            case ast.Race(branches=bs) if len(bs) > 2:
                # pg_durable races two branches; the first of three to finish is the first of
                # (the first of two) and the third.
                race = ast.Race(branches=bs[:2], span=n.span)
                for b in bs[2:]:
                    race = ast.Race(branches=(race, b), span=n.span)
                return race
            case ast.Http() | ast.HttpMultipart():
                kind = nodes.Http if isinstance(n, ast.Http) else nodes.HttpMultipart
                method = _as_text(n.method, n.span) if n.method is not None else None
                return replace(
                    n,
                    method=_text(
                        str(method.value if method else _default(kind, "method")).upper(), n.span
                    ),
                    timeout=n.timeout or ast.Num(text=str(_default(kind, "timeout")), span=n.span),
                )
            case ast.Break(value=ast.Num() | ast.Bool() as v):
                return replace(n, value=_as_text(v, n.span))
            case _:
                return n

    return Graph(graph_text(ast.rebuild(body, visit)), omitted)


def _default(kind: type[nodes.Http] | type[nodes.HttpMultipart], name: str) -> object:
    """The language's default of an HTTP argument: one definition, in `dfc.plan.nodes`."""
    return next(f.default for f in fields(kind) if f.name == name)


def _text(value: str, span: Span) -> ast.Str:
    return ast.Str(value=value, span=span, text_map=TextMap((), 0))


def _as_text(lit: ast.LitArg, span: Span) -> ast.Str:
    """A literal as the text a text parameter of the SQL builders receives (numbers as written)."""
    match lit:
        case ast.Str():
            return lit
        case ast.Num(text=t):
            return _text(t, span)
        case ast.Bool(value=b):
            return _text("true" if b else "false", span)
        case ast.Null() | ast.Name() | ast.SqlExpr():
            raise ValueError(
                "a text parameter cannot be NULL, a template parameter or an expression here"
            )
