"""Properties: parse(format_module(m)) == m for any AST; formatting is idempotent; any input
gives diagnostics, never an exception."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfc import ast
from dfc.source import SourceFile, TextMap
from dfc.syntax import codes, format_module, parse_text

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.df"))
_FILE = SourceFile("<generated>", "")
SP = _FILE.span(0, 0)
_NO_MAP = TextMap((), 0)

# -- a strategy for valid ASTs (what the parser accepts without errors) ------------------------------

_RESERVED = {"select", "param", "def", "import", "null", "true", "false", "df"}
idents = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(lambda s: s not in _RESERVED)
result_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
casts = st.sampled_from(
    [
        None,
        None,
        None,
        "jsonb",
        "text",
        "int",
        "numeric(10,2)",
        "timestamp with time zone",
        "text[]",
        '"My Type"',
        "public.t",
        "text::jsonb",
    ]
)
text_casts = st.sampled_from([None, None, "jsonb", "text", "varchar(20)"])
int_texts = st.from_regex(r"-?[0-9]{1,4}", fullmatch=True)
num_texts = st.one_of(int_texts, st.from_regex(r"-?[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True))


def mk_str(value: str, cast: str | None = None) -> ast.Str:
    return ast.Str(value=value, cast=cast, span=SP, text_map=_NO_MAP)


def name() -> st.SearchStrategy[ast.Name]:
    return idents.map(lambda n: ast.Name(name=n, span=SP))


def strs(cast: st.SearchStrategy[str | None] = casts) -> st.SearchStrategy[ast.Str]:
    return st.builds(mk_str, texts, cast)


def nums(t: st.SearchStrategy[str] = num_texts) -> st.SearchStrategy[ast.Num]:
    return st.builds(
        lambda x, c: ast.Num(text=x, cast=c, span=SP),
        t,
        st.sampled_from([None, None, "int", "numeric"]),
    )


ints = st.builds(lambda x: ast.Num(text=x, span=SP), int_texts)
nulls = st.builds(lambda c: ast.Null(cast=c, span=SP), st.sampled_from([None, "text"]))
bools = st.builds(lambda v: ast.Bool(value=v, span=SP), st.booleans())
lits: st.SearchStrategy[Any] = st.one_of(strs(), nums(), nulls, bools)
text_lit = st.one_of(strs(text_casts), name())
opt_text = st.one_of(st.none(), strs(text_casts), name(), nulls)
int_lit = st.one_of(ints, name())
opt_int = st.one_of(st.none(), ints, name())
rnames = st.one_of(result_names.map(mk_str), name())


def leaves() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(lambda q: ast.Sql(query=q, span=SP), st.one_of(strs(text_casts), name())),
        name(),
        st.builds(lambda v: ast.Break(value=v, span=SP), st.one_of(st.none(), lits, name())),
        st.builds(lambda s: ast.Sleep(seconds=s, span=SP), int_lit),
        st.builds(lambda c: ast.WaitSchedule(cron=c, span=SP), text_lit),
        st.builds(lambda n, t: ast.WaitSignal(name=n, timeout=t, span=SP), text_lit, opt_int),
        st.builds(
            lambda u, m, b, h, t: ast.Http(url=u, method=m, body=b, headers=h, timeout=t, span=SP),
            text_lit,
            opt_text,
            opt_text,
            opt_text,
            opt_int,
        ),
        st.builds(
            lambda u, m, p, h, t: ast.HttpMultipart(
                url=u, method=m, parts=p, headers=h, timeout=t, span=SP
            ),
            text_lit,
            opt_text,
            opt_text,
            opt_text,
            opt_int,
        ),
        st.builds(
            lambda w, v, passed, wait: ast.Call(
                workflow=w,
                version=v,
                args=tuple(ast.CallArg(name=k, value=x, span=SP) for k, x in passed.items()),
                wait=wait,
                span=SP,
            ),
            text_lit,
            opt_int,
            st.dictionaries(
                idents.filter(lambda s: s not in ("workflow", "version")),
                st.one_of(lits, name()),
                max_size=3,
            ),
            st.booleans(),
        ),
    )


def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    two = st.tuples(children, children)
    targs = st.lists(st.one_of(children, lits), max_size=3)
    named = st.dictionaries(idents, st.one_of(children, lits), max_size=2)
    return st.one_of(
        st.builds(lambda p: ast.Seq(left=p[0], right=p[1], span=SP), two),
        st.builds(lambda n, r: ast.Bind(node=n, name=r, span=SP), children, rnames),
        st.builds(
            lambda bs: ast.Join(branches=tuple(bs), span=SP),
            st.lists(children, min_size=2, max_size=4),
        ),
        st.builds(lambda p: ast.Race(branches=p, span=SP), two),
        st.builds(
            lambda c, t, e: ast.If(cond=c, then=t, orelse=e, span=SP),
            children,
            children,
            st.one_of(st.none(), children),
        ),
        st.builds(
            lambda n, t, e: ast.IfRows(name=n, then=t, orelse=e, span=SP),
            rnames,
            children,
            children,
        ),
        st.builds(
            lambda b, c: ast.Loop(body=b, cond=c, span=SP),
            children,
            st.one_of(st.none(), st.none(), children),
        ),
        st.builds(
            lambda n, a, b, f, m, j: ast.Retry(
                node=n, attempts=a, backoff=b, factor=f, max_backoff=m, jitter=j, span=SP
            ),
            children,
            st.one_of(st.none(), ints),
            st.one_of(st.none(), nums()),
            st.one_of(st.none(), nums(num_texts)),
            st.one_of(st.none(), ints),
            st.one_of(st.none(), bools, name()),
        ),
        st.builds(lambda n, s: ast.Timeout(node=n, seconds=s, span=SP), children, int_lit),
        st.builds(lambda p: ast.Compensate(node=p[0], undo=p[1], span=SP), two),
        st.builds(
            lambda p, c, e, i: ast.Map(
                rows=p[0], body=p[1], concurrency=c, on_error=e, item=i, span=SP
            ),
            two,
            opt_int,
            opt_text,
            st.one_of(st.none(), rnames),
        ),
        st.builds(
            lambda fname, pos, kw: ast.TemplateCall(
                name=fname,
                args=tuple(
                    [ast.Arg(value=v, span=SP) for v in pos]
                    + [ast.Arg(value=v, name=k, span=SP) for k, v in kw.items()]
                ),
                span=SP,
            ),
            idents,
            targs,
            named,
        ),
    )


exprs = st.recursive(leaves(), extend, max_leaves=12)
param_types = st.sampled_from(["text", "int", "numeric", "bool", "json", "ident"])


def _def(fname: str, names: list[str], defaults: list[Any], body: Any) -> ast.Def:
    # Parameters with defaults come last.
    k = len(names) - len(defaults[: len(names)])
    params = [
        ast.DefParam(name=n, default=(defaults[i - k] if i >= k else None), span=SP)
        for i, n in enumerate(names)
    ]
    return ast.Def(name=fname, params=tuple(params), body=body, span=SP)


decls = st.one_of(
    st.builds(lambda p: ast.Import(path=p, span=SP), strs(st.none())),
    st.builds(
        lambda n, t, d: ast.Param(name=n, type=t, default=d, span=SP),
        idents,
        param_types,
        st.one_of(st.none(), lits),
    ),
    st.builds(
        _def,
        idents,
        st.lists(idents, max_size=3, unique=True),
        st.lists(st.one_of(lits, exprs), max_size=3),
        exprs,
    ),
)
options = st.lists(
    st.builds(
        lambda n, v: ast.Option(name=n, value=v, span=SP),
        st.sampled_from(["database", "transaction_mode"]),
        strs(st.none()),
    ),
    max_size=2,
    unique_by=lambda o: o.name,
).map(lambda os: tuple(sorted(os, key=lambda o: o.name)))
workflows = st.builds(
    lambda b, lbl, opts: ast.Workflow(body=b, label=lbl, options=opts, span=SP),
    exprs,
    st.one_of(st.none(), strs(st.none())),
    options,
)
modules = st.builds(
    lambda ds, wf: ast.Module(decls=tuple(ds), workflow=wf, span=SP),
    st.lists(decls, max_size=3),
    st.one_of(workflows, workflows, st.none()),
).filter(lambda m: m.decls or m.workflow is not None)

# -- properties -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules)
def test_format_then_parse_gives_the_same_ast(m: ast.Module) -> None:
    text = format_module(m)
    back, diags = parse_text(text, "fmt.df")
    assert not diags, (text, [(d.code, str(d.span), d.message) for d in diags])
    assert back == m, text
    assert format_module(back) == text  # idempotent


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules)
def test_formatted_text_means_the_same_in_pg_durable(m: ast.Module) -> None:
    # `dfc fmt` writes the parentheses that make the meaning explicit: its own output never
    # draws the pg_durable divergence warning (DFC420).
    from dfc.check import codes as check_codes
    from dfc.check.precedence import check_precedence
    from dfc.check.report import Reporter
    from dfc.diagnostics import Diagnostics

    text = format_module(m)
    back, _ = parse_text(text, "fmt.df")
    assert back is not None
    sink = Diagnostics()
    check_precedence(back, Reporter(sink))
    assert [d.message for d in sink if d.code == check_codes.PRECEDENCE] == [], text


@settings(max_examples=150, deadline=None)
@given(modules)
def test_pg_parse_of_formatted_text_is_valid_or_diagnosed(m: ast.Module) -> None:
    # The flat grammar may read the text differently, but never crashes on it.
    _, diags = parse_text(format_module(m), grammar="pg")
    assert all(d.code != codes.INTERNAL for d in diags)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_give_diagnostics_not_exceptions(data: bytes) -> None:
    for grammar in ("dfc", "pg"):
        m, diags = parse_text(data.decode("utf-8", errors="replace"), grammar=grammar)  # type: ignore[arg-type]
        assert all(d.code != codes.INTERNAL for d in diags), [d.message for d in diags]
        assert m is not None or diags


_FRAGMENTS = [
    "'",
    '"',
    "$$",
    "$q$",
    "(",
    ")",
    ",",
    ";",
    "~>",
    "|=>",
    "&",
    "|",
    "?>",
    "!>",
    "@>",
    "<->",
    "=>",
    "=",
    "::jsonb",
    "df.",
    "df.sleep(",
    "df.start(",
    "df.break()",
    "E'\\",
    "/*",
    "*/",
    "--",
    "\n",
    "NULL",
    "-",
    "{x}",
    "$x",
    "param",
    "def f(",
    "import",
    "SELECT",
    "1.5",
    "df.http(",
    "x",
    "",
]


@st.composite
def mutated_examples(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(EXAMPLES)).read_text()
    for _ in range(draw(st.integers(1, 4))):
        a = draw(st.integers(0, len(text)))
        b = draw(st.integers(a, min(len(text), a + 30)))
        text = text[:a] + draw(st.sampled_from(_FRAGMENTS)) + text[b:]
    return text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_examples(), st.sampled_from(["dfc", "pg"]))
def test_mutated_examples_give_diagnostics_not_exceptions(text: str, grammar: str) -> None:
    m, diags = parse_text(text, grammar=grammar)  # type: ignore[arg-type]
    assert all(d.code != codes.INTERNAL for d in diags), [d.message for d in diags]
    if m is not None and not any(d.is_error for d in diags):
        # Whatever parsed cleanly also formats and round-trips, read by the same grammar: a
        # pg-grammar module may hold SQL expressions as arguments (`'{}'()` among them: the
        # database evaluates them at start), which only the pg grammar reads back.
        back, diags2 = parse_text(format_module(m), grammar=grammar)  # type: ignore[arg-type]
        assert not diags2 and back == m


@st.composite
def commented_examples(draw: st.DrawFn) -> str:
    """An example with comments inserted between random tokens (own-line, trailing, block)."""
    from dfc.syntax.lexer import end_of, lex, start_of

    text = draw(st.sampled_from(EXAMPLES)).read_text()
    tokens = lex(SourceFile("x.df", text)).tokens
    cuts = sorted({start_of(t) for t in tokens} | {end_of(t) for t in tokens})
    for k, at in enumerate(
        sorted(
            draw(st.lists(st.sampled_from(cuts), min_size=1, max_size=6, unique=True)), reverse=True
        )
    ):
        comment = draw(
            st.sampled_from([f"-- c{k}\n", f"/* b{k} */ ", f"\n-- own {k}\n", f"/* m{k}\n  */"])
        )
        text = text[:at] + comment + text[at:]
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commented_examples())
def test_comments_survive_formatting(text: str) -> None:
    from dfc.syntax.lexer import lex

    m, diags = parse_text(text)
    assert not diags and m is not None
    out = format_module(m)
    back, diags2 = parse_text(out)
    assert not diags2 and back == m, out
    assert format_module(back) == out, out
    assert sorted(c.text for c in lex(SourceFile("a", text)).comments) == sorted(
        c.text for c in lex(SourceFile("b", out)).comments
    )
