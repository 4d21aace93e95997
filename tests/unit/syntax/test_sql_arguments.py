"""SQL expressions where a built-in takes a literal, in pg_durable's grammar (`dfc.syntax.sqlargs`)."""

from __future__ import annotations

import pytest

import dfc.syntax
from dfc import ast
from dfc.diagnostics import Diagnostic, Severity
from dfc.source import SourceFile, TextMap
from dfc.syntax import codes, format_module, parse_text


def _body(text: str) -> ast.Expr:
    module, diags = parse_text(text, grammar="pg")
    assert [d for d in diags if d.is_error] == [], [(d.code, d.message) for d in diags]
    assert module is not None and module.workflow is not None
    return module.workflow.body


def test_an_expression_argument_is_one_literal_with_its_text() -> None:
    body = _body(
        "df.http_multipart('https://x.test/up', 'POST',\n"
        "    jsonb_build_array(jsonb_build_object('name', 'f', 'data_b64', encode('hi', 'base64'))),\n"
        "    headers => '{\"a\": 1}'::jsonb || jsonb_build_object('b', 2))"
    )
    assert isinstance(body, ast.HttpMultipart)
    assert body.parts == ast.SqlExpr(
        text="jsonb_build_array(jsonb_build_object('name', 'f', 'data_b64', encode('hi', 'base64')))",
        span=body.span,
    )
    assert isinstance(body.headers, ast.SqlExpr)
    assert body.headers.text == """'{"a": 1}'::jsonb || jsonb_build_object('b', 2)"""
    assert body.headers.span.text == body.headers.text


@pytest.mark.parametrize(
    "arg",
    [
        "now()::text",
        "'a' || 'b'",
        "concat('a,b', ')', $$),($$)",  # commas and parentheses inside literals
        "(SELECT string_agg(x::text, ',') FROM generate_series(1, 3) AS x)",
        "coalesce(current_setting('app.key', true) /* a comment, ) */, 'none')",
        "x::int",  # a name with a cast is SQL, not a template parameter
        "'{\"a\": 1}'::jsonb->>'a'",
        "1 + 2",
        "-1 * 2",
        "CASE WHEN true THEN 'y' ELSE 'n' END",
    ],
)
def test_expressions(arg: str) -> None:
    body = _body(f"df.http('https://x.test', 'POST', {arg})")
    assert isinstance(body, ast.Http)
    assert body.body == ast.SqlExpr(text=arg, span=body.span)


@pytest.mark.parametrize(
    ("arg", "lit"),
    [
        ("'text'", ast.Str),
        ("'{\"a\": 1}'::jsonb", ast.Str),
        ("'x'::character varying(10)", ast.Str),
        ("'{1,2}'::int[]", ast.Str),
        ("'a'\n    'b'", ast.Str),
        ("-5", ast.Num),
        ("1.5::numeric(3, 1)", ast.Num),
        ("NULL", ast.Null),
        ("NULL::jsonb", ast.Null),
        ("TRUE", ast.Bool),
    ],
)
def test_literals_stay_literals(arg: str, lit: type) -> None:
    body = _body(f"df.http('https://x.test', 'POST', {arg})")
    assert isinstance(body, ast.Http) and type(body.body) is lit


def test_template_parameters_and_nodes_stay_what_they_are() -> None:
    module, diags = parse_text(
        "def ping(u, b) = df.http(u, 'POST', b);\nping('https://x.test', 'hello')",
        grammar="pg",
    )
    assert module is not None and not diags
    d = module.decls[0]
    assert isinstance(d, ast.Def) and isinstance(d.body, ast.Http)
    assert d.body.url == ast.Name(name="u", span=d.span)
    # A template's argument is a node or a literal: SQL there is not an argument of a built-in.
    _, diags = parse_text("df.sleep(df.sql('SELECT 1'))", grammar="pg")
    assert [d.code for d in diags] == [codes.LITERAL_EXPECTED]


def test_node_arguments_are_not_expressions() -> None:
    body = _body("df.if('SELECT true', 'SELECT 1', 'SELECT 2')")
    assert isinstance(body, ast.If) and isinstance(body.cond, ast.Sql)


def test_only_in_the_pg_grammar() -> None:
    _, diags = parse_text("df.http('https://x.test', 'POST', now()::text)")
    assert diags and all(d.code != "DFC414" for d in diags)


def test_a_sql_expression_is_no_sql_step() -> None:
    _, diags = parse_text("df.sql(format('SELECT %s', 1))", grammar="pg")
    assert [(d.code, d.message) for d in diags] == [
        (
            codes.STRING_EXPECTED,
            "the query argument of df.sql must be a string, found a SQL expression",
        )
    ]


def test_references_outside_strings_stay_errors() -> None:
    _, diags = parse_text("df.http('https://x.test', 'POST', 'a' || $x)", grammar="pg")
    assert [d.code for d in diags] == [codes.REF_OUTSIDE_STRING]


def test_the_printer_keeps_the_expression() -> None:
    text = "df.http('https://x.test', 'POST', 'n=' || /* once */ nextval('s'), NULL, 10)\n"
    module, _ = parse_text(text, grammar="pg")
    assert module is not None
    printed = format_module(module)
    assert printed.count("/* once */") == 1 and "'n=' || /* once */ nextval('s')" in printed
    again, diags = parse_text(printed, grammar="pg")
    assert not diags and again == module


# -- a string holding a graph in place of a node -----------------------------------------------

GRAPH = (
    '{"node_type":"THEN","left_node":{"node_type":"SQL","query":"SELECT 1","result_name":"a"},'
    '"right_node":{"node_type":"SLEEP","query":"5"}}'
)


def _fake_reader(text: str) -> tuple[ast.Expr | None, list[Diagnostic]]:
    """Stands in for `dfc.syntax.graph.read_graph`: knows the one graph above."""
    nowhere = SourceFile("<graph>", "").span(0, 0)
    if text != GRAPH:
        return None, [Diagnostic(code="DFC151", severity=Severity.ERROR, message="bad", span=None)]
    one = ast.Str(value="SELECT 1", span=nowhere, text_map=TextMap((), 0))
    name = ast.Str(value="a", span=nowhere, text_map=TextMap((), 0))
    first = ast.Bind(node=ast.Sql(query=one, span=nowhere), name=name, span=nowhere)
    return ast.Seq(
        left=first,
        right=ast.Sleep(seconds=ast.Num(text="5", span=nowhere), span=nowhere),
        span=nowhere,
    ), []


def test_a_string_holding_a_graph_is_read_as_that_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dfc.syntax, "read_graph", _fake_reader)
    text = f"'{GRAPH}' ~> 'SELECT $a'"
    body = _body(text)
    assert isinstance(body, ast.Seq) and isinstance(body.left, ast.Seq)
    assert isinstance(body.left.right, ast.Sleep)
    literal = body.left.span
    assert literal.text == f"'{GRAPH}'"  # every node of the graph is placed at the string
    assert body.left.left.span == literal and body.left.right.seconds.span == literal
    # Only in node position, only in the pg grammar, and a graph it cannot read is an error.
    assert isinstance(_body(f"df.http('https://x.test', 'POST', '{GRAPH}')"), ast.Http)
    module, _ = parse_text(f"'{GRAPH}'")
    assert module is not None and isinstance(module.workflow.body, ast.Sql)  # type: ignore[union-attr]
    _, diags = parse_text("""'{"node_type": "NOPE"}'""", grammar="pg")
    assert [(d.code, d.span.text if d.span else None) for d in diags] == [
        ("DFC151", """'{"node_type": "NOPE"}'""")
    ]


def test_a_string_holding_a_graph_with_the_real_reader() -> None:
    body = _body(f"'{GRAPH}' ~> 'SELECT $a'")
    assert isinstance(body, ast.Seq) and isinstance(body.left, ast.Seq)
    assert isinstance(body.left.left, ast.Bind) and isinstance(body.left.right, ast.Sleep)
