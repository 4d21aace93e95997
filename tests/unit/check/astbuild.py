"""Build ASTs by hand for checker unit tests (no parser needed).

Nodes get dummy spans into one blank file, except where a test passes real text; strings map
their characters to offsets 0..n of that file. Plain ``str`` in node position becomes a SQL step
and Python values in literal position become literals, as in the language.
"""

from __future__ import annotations

from dfc import ast
from dfc.check import check
from dfc.check.expand import LoadedModule
from dfc.check.result import CheckedWorkflow
from dfc.diagnostics import Diagnostic, Diagnostics
from dfc.source import SourceFile, Span, TextMap

SRC = SourceFile("hand.df", " " * 1000)


_next = 0


def sp() -> Span:
    """A distinct dummy span (nodes built by different calls never share one)."""
    global _next
    _next = (_next + 1) % 999
    return Span(SRC, _next, _next + 1)


def s(value: str) -> ast.Str:
    return ast.Str(value=value, span=sp(), text_map=TextMap(((0, 0),), len(value)))


def lit(v: object) -> ast.LitArg:
    match v:
        case ast.Str() | ast.Num() | ast.Null() | ast.Bool() | ast.Name():
            return v
        case None:
            return ast.Null(span=sp())
        case bool():
            return ast.Bool(value=v, span=sp())
        case int() | float():
            return ast.Num(text=str(v), span=sp())
        case str():
            return s(v)
    raise TypeError(v)


def opt(v: object) -> ast.LitArg | None:
    return None if v is ... else lit(v)


def node(x: object) -> ast.Expr:
    if isinstance(x, str):
        return sql(x)
    assert isinstance(
        x,
        ast.Sql
        | ast.Seq
        | ast.Bind
        | ast.Join
        | ast.Race
        | ast.If
        | ast.IfRows
        | ast.Loop
        | ast.Break
        | ast.Sleep
        | ast.WaitSchedule
        | ast.WaitSignal
        | ast.Http
        | ast.HttpMultipart
        | ast.Retry
        | ast.Timeout
        | ast.Compensate
        | ast.TemplateCall
        | ast.Name
        | ast.Invalid,
    ), x
    return x


def sql(text: str | ast.Name) -> ast.Sql:
    return ast.Sql(query=text if isinstance(text, ast.Name) else s(text), span=sp())


def seq(*items: object) -> ast.Expr:
    out = node(items[0])
    for x in items[1:]:
        out = ast.Seq(left=out, right=node(x), span=sp())
    return out


def bind(x: object, name: str | ast.Name) -> ast.Bind:
    return ast.Bind(node=node(x), name=name if isinstance(name, ast.Name) else s(name), span=sp())


def join(*bs: object) -> ast.Join:
    return ast.Join(branches=tuple(node(b) for b in bs), span=sp())


def race(*bs: object) -> ast.Race:
    return ast.Race(branches=tuple(node(b) for b in bs), span=sp())


def if_(c: object, t: object, e: object = ...) -> ast.If:
    return ast.If(cond=node(c), then=node(t), orelse=None if e is ... else node(e), span=sp())


def if_rows(name: str, t: object, e: object) -> ast.IfRows:
    return ast.IfRows(name=s(name), then=node(t), orelse=node(e), span=sp())


def loop(body: object, cond: object = ...) -> ast.Loop:
    return ast.Loop(body=node(body), cond=None if cond is ... else node(cond), span=sp())


def brk(value: object = ...) -> ast.Break:
    return ast.Break(value=opt(value), span=sp())


def sleep(n: object) -> ast.Sleep:
    return ast.Sleep(seconds=lit(n), span=sp())


def cron(c: object) -> ast.WaitSchedule:
    return ast.WaitSchedule(cron=lit(c), span=sp())


def signal(name: object, timeout: object = ...) -> ast.WaitSignal:
    return ast.WaitSignal(name=lit(name), timeout=opt(timeout), span=sp())


def http(
    url: object,
    method: object = ...,
    body: object = ...,
    headers: object = ...,
    timeout: object = ...,
) -> ast.Http:
    return ast.Http(
        url=lit(url),
        method=opt(method),
        body=opt(body),
        headers=opt(headers),
        timeout=opt(timeout),
        span=sp(),
    )


def multipart(
    url: object, method: object = ..., parts: object = ..., headers: object = ...
) -> ast.HttpMultipart:
    return ast.HttpMultipart(
        url=lit(url), method=opt(method), parts=opt(parts), headers=opt(headers), span=sp()
    )


def retry(x: object, **kw: object) -> ast.Retry:
    return ast.Retry(node=node(x), **{k: lit(v) for k, v in kw.items()}, span=sp())


def timeout(x: object, n: object) -> ast.Timeout:
    return ast.Timeout(node=node(x), seconds=lit(n), span=sp())


def undo(a: object, u: object) -> ast.Compensate:
    return ast.Compensate(node=node(a), undo=node(u), span=sp())


def name(n: str) -> ast.Name:
    return ast.Name(name=n, span=sp())


def arg(v: object, key: str | None = None) -> ast.Arg:
    value = (
        v
        if isinstance(v, ast.Expr | ast.Str | ast.Num | ast.Null | ast.Bool)
        else (sql(v) if isinstance(v, str) else lit(v))
    )
    return ast.Arg(value=value, name=key, span=sp())  # type: ignore[arg-type]


def call(tname: str, /, *args: object, **named: object) -> ast.TemplateCall:
    return ast.TemplateCall(
        name=tname,
        args=(*(arg(a) for a in args), *(arg(v, k) for k, v in named.items())),
        span=sp(),
    )


def defn(n: str, params: list[str | tuple[str, object]], body: object) -> ast.Def:
    ps = tuple(
        ast.DefParam(name=p, span=sp())
        if isinstance(p, str)
        else ast.DefParam(
            name=p[0], default=p[1] if isinstance(p[1], ast.Expr) else lit(p[1]), span=sp()
        )
        for p in params
    )
    return ast.Def(name=n, params=ps, body=node(body), span=sp())


def param(n: str, type_: str = "text", default: object = ...) -> ast.Param:
    return ast.Param(name=n, type=type_, default=opt(default), span=sp())  # type: ignore[arg-type]


def imp(path: str) -> ast.Import:
    return ast.Import(path=s(path), span=sp())


def module(
    body: object = None,
    *decls: ast.Decl,
    label: str | None = None,
    options: tuple[ast.Option, ...] = (),
) -> ast.Module:
    wf = (
        None
        if body is None
        else ast.Workflow(
            body=node(body), label=None if label is None else s(label), options=options, span=sp()
        )
    )
    return ast.Module(decls=decls, workflow=wf, span=sp())


class DictLoader:
    """A module loader over in-memory modules: ``{"std/x": Module}``."""

    def __init__(self, modules: dict[str, ast.Module]) -> None:
        self.modules = modules

    def load(self, spec: str, importer: object, diagnostics: Diagnostics) -> LoadedModule | None:
        m = self.modules.get(spec)
        return None if m is None else LoadedModule(spec, SourceFile(spec, ""), m, None)


def run(
    x: object, *decls: ast.Decl, modules: dict[str, ast.Module] | None = None, grammar: str = "dfc"
) -> tuple[CheckedWorkflow | None, list[Diagnostic]]:
    """Check a body (or a whole module) and return the result and the diagnostics."""
    m = x if isinstance(x, ast.Module) else module(x, *decls)
    sink = Diagnostics()
    out = check(m, SRC, sink, grammar=grammar, loader=DictLoader(modules or {}))
    return out, sink.sorted()


def codes_of(diags: list[Diagnostic]) -> list[str]:
    return sorted(d.code for d in diags)
