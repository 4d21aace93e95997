"""The public API of dfc.syntax: parse, parse_text, parse_expression, to_json, dump."""

from __future__ import annotations

import json

import pytest

from dfc import ast
from dfc.diagnostics import Diagnostics
from dfc.source import SourceFile
from dfc.syntax import codes, dump, parse, parse_expression, parse_text, to_json


def test_parse_adds_to_the_sink_and_returns_the_module() -> None:
    sink = Diagnostics()
    m = parse(SourceFile("a.df", "df.sleep(df.sleep(1)) ~> 'SELECT 1'"), diagnostics=sink)
    assert m is not None and m.workflow is not None
    assert [d.code for d in sink] == [codes.LITERAL_EXPECTED]
    assert isinstance(m.workflow.body, ast.Seq) and isinstance(m.workflow.body.left, ast.Invalid)


def test_parse_returns_none_only_when_nothing_is_usable() -> None:
    for text in ("", "-- nothing", ")))", "df.sleep(", "'unterminated"):
        m, diags = parse_text(text)
        assert m is None and diags, text
    m, _ = parse_text("param x int = ;\n'SELECT 1'")
    assert m is not None and m.workflow is not None and isinstance(m.workflow.body, ast.Sql)


def test_module_span_is_the_whole_file() -> None:
    m, _ = parse_text("  df.sleep(1)  \n")
    assert m is not None and (m.span.start, m.span.end) == (0, 16)


def test_diagnostics_are_sorted_by_position() -> None:
    _, diags = parse_text("df.wait(1) ~> df.sleep(TRUE) ~> df.if('a') # x")
    assert [d.span.start for d in diags if d.span] == sorted(d.span.start for d in diags if d.span)


def test_several_syntax_errors_in_one_run() -> None:
    src = (
        "param n int = 5\n"  # missing ;
        "df.start(\n"
        "    'SELECT 1' ~> ~> 'SELECT 2'\n"  # missing node
        "    ~> df.http('u', 'GET',)\n"  # trailing comma
        "    ~> df.sleep(10s)\n"  # bad number
        '    ~> df.sql("SELECT 3"),\n'  # double quotes
        "    'label'\n"
        ")\n"
    )
    _, diags = parse_text(src)
    assert [(d.code, d.span.start_line_col) for d in diags if d.span] == [
        (codes.MISSING_SEMICOLON, (1, 16)),
        (codes.MISSING_OPERAND, (3, 19)),
        (codes.TRAILING_COMMA, (4, 27)),
        (codes.BAD_NUMBER, (5, 17)),
        (codes.DOUBLE_QUOTED, (6, 15)),
    ]


def test_unterminated_string_does_not_cascade() -> None:
    _, diags = parse_text("df.start(\n  'SELECT 1' ~> 'oops\n  ~> df.sleep(1),\n  'label'\n)")
    # As in PostgreSQL the literal runs to the next quote, so the unterminated one is 'label''s
    # closing quote; nothing after it is reported again.
    assert [(d.code, d.span.start_line_col) for d in diags if d.span] == [
        (codes.MISSING_OPERATOR, (4, 4)),
        (codes.UNTERMINATED_STRING, (4, 9)),
    ]
    _, diags = parse_text("df.start(\n  'SELECT 1' ~> 'oops\n  ~> df.sleep(1)\n)")
    assert [(d.code, d.span.start_line_col) for d in diags if d.span] == [
        (codes.UNTERMINATED_STRING, (2, 17))
    ]


def test_grammar_option() -> None:
    m1, _ = parse_text("'a' ~> 'b' & 'c'")
    m2, _ = parse_text("'a' ~> 'b' & 'c'", grammar="pg")
    assert m1 is not None and m2 is not None
    assert isinstance(m1.workflow.body, ast.Seq)  # type: ignore[union-attr]
    assert isinstance(m2.workflow.body, ast.Join)  # type: ignore[union-attr]


def test_parse_expression() -> None:
    e, diags = parse_expression("'a' ~> df.sleep(1)")
    assert not diags and isinstance(e, ast.Seq)
    e, diags = parse_expression("df.start('a')")
    assert not diags and isinstance(e, ast.Sql)
    e, diags = parse_expression("df.start('a', 'label')")
    assert [d.code for d in diags] == [codes.SYNTAX]
    e, diags = parse_expression("param x int; 'a'")
    assert [d.code for d in diags] == [codes.SYNTAX]
    e, diags = parse_expression("'a' ~> ")
    assert e is None or isinstance(e, ast.Seq)
    assert [d.code for d in diags] == [codes.MISSING_OPERAND]


def test_to_json() -> None:
    m, _ = parse_text("param n int = 5;\ndf.start('SELECT 1' |=> 'one', 'job')", "w.df")
    assert m is not None
    data = to_json(m)
    json.dumps(data)  # JSON-ready
    assert data["file"] == "w.df"
    assert data["kind"] == "Module"
    assert data["decls"][0] == {
        "kind": "Param",
        "span": {"line": 1, "column": 1, "end_line": 1, "end_column": 16, "start": 0, "end": 15},
        "name": "n",
        "type": "int",
        "default": {
            "kind": "Num",
            "span": {
                "line": 1,
                "column": 15,
                "end_line": 1,
                "end_column": 16,
                "start": 14,
                "end": 15,
            },
            "text": "5",
            "cast": None,
        },
    }
    wf = data["workflow"]
    assert wf["label"]["value"] == "job"
    assert wf["body"]["kind"] == "Bind"
    assert wf["body"]["node"]["query"]["value"] == "SELECT 1"
    assert wf["options"] == []


def test_to_json_of_a_long_chain_does_not_recurse() -> None:
    m, _ = parse_text(" ~> ".join(["'SELECT 1'"] * 3000))
    assert m is not None
    data = to_json(m)
    depth = 0
    node = data["workflow"]["body"]
    while node["kind"] == "Seq":
        node = node["left"]
        depth += 1
    assert depth == 2999
    assert dump(m).count("Seq") == 2999


def test_dump() -> None:
    m, _ = parse_text("df.start('SELECT 1' ~> df.http('u', body => '{}'::jsonb), 'job')")
    assert m is not None
    assert dump(m) == (
        "Module decls=() @1:1-1:65\n"
        "  workflow: Workflow options=() @1:1-1:65\n"
        "    body: Seq @1:10-1:57\n"
        "      left: Sql @1:10-1:20\n"
        "        query: Str 'SELECT 1' @1:10-1:20\n"
        "      right: Http @1:24-1:57\n"
        "        url: Str 'u' @1:32-1:35\n"
        "        body: Str '{}' cast='jsonb' @1:45-1:56\n"
        "    label: Str 'job' @1:59-1:64\n"
    )
    assert "@" not in dump(m, spans=False)


def test_internal_errors_become_diagnostics(monkeypatch: pytest.MonkeyPatch) -> None:
    from dfc.syntax import builder

    def boom(self: object, tree: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(builder.Builder, "build", boom)
    m, diags = parse_text("'SELECT 1'")
    assert m is None
    assert [d.code for d in diags] == [codes.INTERNAL]


def test_codes_are_registered_with_examples() -> None:
    from dfc.catalogue import all_codes

    registered = {c: v for c, v in all_codes().items() if c.startswith("DFC1")}
    assert len(registered) >= 40
    for code, entry in registered.items():
        assert entry.explanation and entry.title, code
        if code not in (codes.TOO_DEEP, codes.INTERNAL) and not entry.title.endswith("(retired)"):
            assert entry.bad is not None and entry.good is not None, code
        if entry.title.endswith("(retired)"):  # kept so that the number is never reused
            assert entry.explanation.startswith("Retired:"), code


@pytest.mark.parametrize(
    "code",
    [
        c
        for c in dir(codes)
        # Graph codes have graph texts as examples (tests/unit/syntax/test_syntax_graph.py).
        if c.isupper() and c not in ("E", "TOO_DEEP", "INTERNAL") and not c.startswith("GRAPH_")
    ],
)
def test_bad_examples_trigger_their_code_and_good_ones_are_clean(code: str) -> None:
    from dfc.catalogue import all_codes

    entry = all_codes()[getattr(codes, code)]
    assert entry.bad is not None and entry.good is not None
    _, bad = parse_text(entry.bad)
    assert entry.code in [d.code for d in bad], (entry.bad, [(d.code, d.message) for d in bad])
    _, good = parse_text(entry.good)
    assert good == [], (entry.good, [(d.code, d.message) for d in good])


def test_grammar_is_usable_with_lark_directly() -> None:
    # The custom lexer class lets lark's own parse() take the hand-written lexer's output.
    from dfc.syntax.lexer import lex
    from dfc.syntax.parser import lark_parser

    tree = lark_parser().parse(lex(SourceFile("t.df", "'a' ~> 'b' & 'c'")), start="start")  # type: ignore[arg-type]
    assert [t.data for t in tree.iter_subtrees_topdown()][:3] == ["start", "workflow", "seq"]
    tree = lark_parser().parse(lex(SourceFile("t.df", "'a' ~> 'b' & 'c'")), start="pg_start")  # type: ignore[arg-type]
    assert [t.data for t in tree.iter_subtrees_topdown()][:3] == ["pg_start", "workflow", "join"]
