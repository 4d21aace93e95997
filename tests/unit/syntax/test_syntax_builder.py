"""Building the AST: built-in signatures, argument kinds, declarations, file structure."""

from __future__ import annotations

import pytest

from dfc import ast
from dfc.syntax import codes, parse_text


def errs(src: str, grammar: str = "dfc") -> list[str]:
    _, diags = parse_text(src, grammar=grammar)  # type: ignore[arg-type]
    return [d.code for d in diags]


def body(src: str) -> ast.Expr:
    m, diags = parse_text(src)
    assert not diags, [(d.code, d.message) for d in diags]
    assert m is not None and m.workflow is not None
    return m.workflow.body


def test_every_builtin_builds_its_node() -> None:
    e = body(
        "df.sql('q') ~> df.seq('a', 'b') ~> df.as('x', 'n') ~> df.join('a', 'b', 'c', 'd')"
        " ~> df.race('a', 'b') ~> df.if('c', 't', 'e') ~> df.if_rows('n', 't', 'e')"
        " ~> df.loop('b', 'c') ~> df.break() ~> df.break('{\"v\": 1}') ~> df.sleep(5)"
        " ~> df.wait_for_schedule('*/5 * * * *') ~> df.wait_for_signal('go', 60)"
        " ~> df.http('u', 'GET', 'b', '{}', 10) ~> df.http_multipart('u', 'POST', '[]')"
        " ~> df.retry('x', attempts => 3, backoff => 1.5, factor => 2, max_backoff => 60, jitter => true)"
        " ~> df.timeout('x', 30) ~> df.with_undo('a', 'u')"
    )
    kinds = []
    while isinstance(e, ast.Seq):
        kinds.append(type(e.right).__name__)
        e = e.left
    kinds.append(type(e).__name__)
    assert kinds[::-1] == [
        "Sql",
        "Seq",
        "Bind",
        "Join",
        "Race",
        "If",
        "IfRows",
        "Loop",
        "Break",
        "Break",
        "Sleep",
        "WaitSchedule",
        "WaitSignal",
        "Http",
        "HttpMultipart",
        "Retry",
        "Timeout",
        "Compensate",
    ]


def test_http_fields_and_named_arguments() -> None:
    e = body("df.http('u', body => 'b', timeout => 5)")
    assert isinstance(e, ast.Http)
    assert e.method is None and e.headers is None
    assert isinstance(e.body, ast.Str) and e.body.value == "b"
    assert isinstance(e.timeout, ast.Num) and e.timeout.text == "5"
    assert body("df.http(url => 'u', method => 'GET')") == body("df.http('u', 'GET')")
    # Parameter names are identifiers: case-insensitive like everything in SQL.
    assert body("DF.HTTP(URL => 'u', Method => 'GET')") == body("df.http('u', 'GET')")


def test_casts_are_kept() -> None:
    e = body("df.http('u', 'POST', NULL, '{\"a\": 1}'::jsonb, 60::int)")
    assert isinstance(e, ast.Http)
    assert isinstance(e.headers, ast.Str) and e.headers.cast == "jsonb"
    assert isinstance(e.body, ast.Null)
    assert isinstance(e.timeout, ast.Num) and e.timeout.cast == "int"
    e = body(
        "f('x'::numeric(10, 2), 'y'::TIMESTAMP  WITH TIME ZONE, 'z'::text[], 'w'::public.\"My T\", 'v'::text::jsonb)"
    )
    assert isinstance(e, ast.TemplateCall)
    assert [a.value.cast for a in e.args] == [  # type: ignore[union-attr]
        "numeric(10,2)",
        "timestamp with time zone",
        "text[]",
        'public."My T"',
        "text::jsonb",
    ]


def test_template_calls_keep_literal_arguments() -> None:
    e = body("approve('orders', 3600, df.sleep(1), step => 'SELECT 1', n => x)")
    assert isinstance(e, ast.TemplateCall)
    assert [type(a.value).__name__ for a in e.args] == ["Str", "Num", "Sleep", "Str", "Name"]
    assert [a.name for a in e.args] == [None, None, None, "step", "n"]


def test_start_unwraps_label_and_options() -> None:
    m, diags = parse_text(
        "SELECT df.start('SELECT 1', 'job', database => 'app', transaction_mode => 'new');"
    )
    assert not diags and m is not None and m.workflow is not None
    wf = m.workflow
    assert wf.label is not None and wf.label.value == "job"
    assert [(o.name, o.value.value) for o in wf.options] == [
        ("database", "app"),
        ("transaction_mode", "new"),
    ]  # type: ignore[union-attr]
    m2, _ = parse_text("df.start('SELECT 1', NULL, 'app')")
    assert m2 is not None and m2.workflow is not None
    assert m2.workflow.label is None and m2.workflow.options[0].name == "database"
    m3, _ = parse_text("df.start('SELECT 1')")
    m4, _ = parse_text("'SELECT 1'")
    assert m3 == m4


@pytest.mark.parametrize(
    ("src", "code"),
    [
        ("df.if('c', 't')", codes.ARITY),
        ("df.sleep(1, 2)", codes.ARITY),
        ("df.sleep()", codes.ARITY),
        ("df.join('a')", codes.ARITY),
        ("df.join3('a', 'b')", codes.ARITY),
        ("df.race('a', 'b', 'c')", codes.ARITY),
        ("df.break('a', 'b')", codes.ARITY),
        ("df.sleep(df.sql('SELECT 5'))", codes.LITERAL_EXPECTED),
        ("df.http('a' ~> 'b')", codes.LITERAL_EXPECTED),
        ("df.wait_for_signal(df.sleep(1))", codes.LITERAL_EXPECTED),
        ("df.seq(5, 'x')", codes.NODE_EXPECTED),
        ("'x' ~> NULL", codes.NODE_EXPECTED),
        ("TRUE", codes.NODE_EXPECTED),
        ("df.loop('x', 3)", codes.NODE_EXPECTED),
        ("df.sql(NULL)", codes.STRING_EXPECTED),
        ("df.sql(5)", codes.STRING_EXPECTED),
        ("df.http('u', methd => 'GET')", codes.UNKNOWN_ARG),
        ("df.loop('x', continue_on_failure => true)", codes.UNKNOWN_ARG),
        ("df.start('x', 'job', retries => 3)", codes.UNKNOWN_ARG),
        ("df.sleep(5, seconds => 5)", codes.DUPLICATE_ARG),
        ("df.http(url => 'a', url => 'b')", codes.DUPLICATE_ARG),
        ("f(a => 1, a => 2)", codes.DUPLICATE_ARG),
        ("df.retry(attempts => 3, 'x')", codes.POSITIONAL_AFTER_NAMED),
        ("f(a => 1, 2)", codes.POSITIONAL_AFTER_NAMED),
        ("'x' |=> 5", codes.STRING_EXPECTED),
        ("df.as('x', df.sleep(1))", codes.STRING_EXPECTED),
        ("df.wait(5)", codes.UNKNOWN_FUNCTION),
        ("df.with_http_options(df.http('u'), '{}')", codes.UNKNOWN_FUNCTION),
        ("'x' ~> df.start('y')", codes.TOPLEVEL_ONLY),
        ("df.signal('i', 'go')", codes.TOPLEVEL_ONLY),
        ("df.setvar('k', 'v') ~> 'x'", codes.TOPLEVEL_ONLY),
        ("f(df.start('x'))", codes.TOPLEVEL_ONLY),
        ("df.start('x', 42)", codes.BAD_START),
        ("df.start('x', 'job', database => df.sleep(1))", codes.BAD_START),
        ("df.start('x', lbl)", codes.BAD_START),
    ],
)
def test_argument_errors(src: str, code: str) -> None:
    assert errs(src) == [code]


@pytest.mark.parametrize(
    "src",
    [
        "df.sleep('30')",  # PostgreSQL converts an untyped literal
        "df.sleep(' 30 ')",
        "df.sleep(30::int)",
        "df.sleep(-1)",  # negative: the checker's business
        "df.retry('x', backoff => '1.5', jitter => 'yes')",
        "df.retry('x', backoff => 2, factor => 1.5, jitter => FALSE)",
        "df.http('u', NULL, NULL, NULL, NULL)",
        "df.http('u', 'GET', NULL, '{}'::jsonb)",
        "df.break(42)",
        "df.break(NULL)",
        "df.sleep('5'::mytype)",  # a type we do not know: PostgreSQL decides
        "df.wait_for_signal(name, t)",  # template parameters fit any literal
        "'x' |=> n",
        "df.if_rows(n, 'a', 'b')",
        "df.sql(q)",
    ],
)
def test_accepted_literals(src: str) -> None:
    assert errs(src) == []


def test_errors_in_different_calls_are_all_reported() -> None:
    assert errs(
        "df.sleep(df.sleep(1)) ~> df.wait(1) ~> df.if('c', 't') ~> df.http(methd => 'x', url => 'u')"
    ) == [
        codes.LITERAL_EXPECTED,
        codes.UNKNOWN_FUNCTION,
        codes.ARITY,
        codes.UNKNOWN_ARG,
    ]


def test_if_without_else_is_built_not_reported() -> None:
    e = body("'c' ?> 't'")
    assert isinstance(e, ast.If) and e.orelse is None


def test_declarations() -> None:
    m, diags = parse_text(
        "import 'std/batch';\nparam n int = 5;\nparam url;\nparam flag BOOL = TRUE;\n"
        "def f(a, b = 'SELECT 1', c = df.sleep(1)) = a ~> b ~> c;\ndef g = df.sleep(1);\n"
    )
    assert not diags and m is not None
    assert m.workflow is None
    imp, n, url, flag, f, g = m.decls
    assert isinstance(imp, ast.Import) and imp.path.value == "std/batch"
    assert isinstance(n, ast.Param) and (n.name, n.type) == ("n", "int")
    assert isinstance(n.default, ast.Num) and n.default.text == "5"
    assert isinstance(url, ast.Param) and (url.type, url.default) == ("text", None)
    assert isinstance(flag, ast.Param) and flag.type == "bool"
    assert isinstance(f, ast.Def) and [p.name for p in f.params] == ["a", "b", "c"]
    assert isinstance(f.params[1].default, ast.Str)
    assert isinstance(f.params[2].default, ast.Sleep)
    assert isinstance(f.body, ast.Seq)
    assert isinstance(g, ast.Def) and g.params == ()


@pytest.mark.parametrize(
    ("src", "code"),
    [
        ("param limit integer = 10;", codes.BAD_PARAM),
        ("param x text = df.sleep(1);", codes.BAD_PARAM),
        ("param x text = y;", codes.BAD_PARAM),
        ("def f(a, a) = a;", codes.BAD_DEF),
        ("def f(a = 1, b) = a;", codes.BAD_DEF),
        ("import std_batch;", codes.BAD_IMPORT),
        ("import 5;", codes.BAD_IMPORT),
        ("", codes.EMPTY_FILE),
        ("-- nothing\n/* at all */", codes.EMPTY_FILE),
        ("'a';\n'b';", codes.MULTIPLE_WORKFLOWS),
        ("df.sleep(1);\nparam n int;", codes.DECL_AFTER_WORKFLOW),
    ],
)
def test_declaration_and_file_errors(src: str, code: str) -> None:
    assert errs(src) == [code]


def test_param_type_suggestion() -> None:
    _, diags = parse_text("param n integer;")
    assert diags[0].help is not None and diags[0].help.startswith("did you mean int?")


def test_semicolons_are_optional_at_the_end_and_empty_statements_allowed() -> None:
    assert errs("df.sleep(1)") == []
    assert errs(";;param a int;;df.sleep(1);;") == []


def test_spans_of_nodes() -> None:
    src = "param n int;\ndf.start(\n  'SELECT 1' |=> 'one'\n  ~> df.sleep(5),\n  'lbl')"
    m, _ = parse_text(src)
    assert m is not None and m.workflow is not None
    wf = m.workflow
    assert wf.span.text == src[13:]
    seq = wf.body
    assert isinstance(seq, ast.Seq)
    assert seq.span.text == "'SELECT 1' |=> 'one'\n  ~> df.sleep(5)"
    assert seq.left.span.text == "'SELECT 1' |=> 'one'"
    assert isinstance(seq.left, ast.Bind) and seq.left.name.span.text == "'one'"
    assert seq.right.span.text == "df.sleep(5)"
    assert seq.right.span.start_line_col == (4, 6)
    assert m.decls[0].span.text == "param n int"


def test_deep_nesting_is_limited() -> None:
    deep = "df.seq('a', " * 300 + "'b'" + ")" * 300
    assert errs(deep) == [codes.TOO_DEEP]
    ok = "df.seq('a', " * 200 + "'b'" + ")" * 200
    assert errs(ok) == []


def test_long_chains_are_not_deep() -> None:
    # 5,000 steps in one `~>` chain: one nesting level, no recursion trouble anywhere.
    m, diags = parse_text(" ~> ".join(f"'SELECT {i}'" for i in range(5000)))
    assert not diags and m is not None


@pytest.mark.parametrize("grammar", ["dfc", "pg"])
def test_a_column_alias_after_select_is_accepted_and_means_nothing(grammar: str) -> None:
    plain = "SELECT df.start('SELECT 1' ~> 'SELECT 2', 'x');"
    aliased, diags = parse_text(plain.replace(");", ") AS instance_id;"), grammar=grammar)  # type: ignore[arg-type]
    assert diags == []
    assert aliased == parse_text(plain, grammar=grammar)[0]  # type: ignore[arg-type]
