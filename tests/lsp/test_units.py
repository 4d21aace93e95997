"""The pieces of the language server that need no client: positions in the client's units,
and `dfc lsp` without its optional packages."""

from __future__ import annotations

import importlib.util
from importlib.machinery import ModuleSpec

import pytest
from click.testing import CliRunner
from lsprotocol import types

from dfc import ast
from dfc.check import Insight
from dfc.check.bindings import visible_bindings
from dfc.cli.main import main
from dfc.compiler import check_source
from dfc.lsp import features
from dfc.lsp.document import analyze
from dfc.lsp.positions import Positions
from dfc.source import SourceFile

TEXT = "-- é 😀 x\n'SELECT 1' |=> 'a'\n"


@pytest.mark.parametrize(
    ("encoding", "column"),
    [
        (types.PositionEncodingKind.Utf16, 8),  # the emoji is two UTF-16 units
        (types.PositionEncodingKind.Utf32, 7),
        (types.PositionEncodingKind.Utf8, 11),  # é two bytes, the emoji four
    ],
)
def test_positions_count_columns_in_the_clients_units(encoding: str, column: int) -> None:
    pos = Positions(TEXT, encoding)
    x = TEXT.index("x")
    assert pos.position(x) == types.Position(0, column)
    assert pos.offset(types.Position(0, column)) == x
    second = TEXT.index("'a'")
    assert pos.position(second) == types.Position(1, 15)
    assert pos.offset(types.Position(1, 15)) == second


def test_positions_past_the_end_are_clamped() -> None:
    pos = Positions(TEXT)
    assert pos.offset(types.Position(9, 0)) == len(TEXT)
    assert pos.offset(types.Position(1, 500)) == TEXT.index("\n", 10)


def test_dfc_lsp_without_pygls_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "pygls" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    result = CliRunner().invoke(main, ["lsp"])
    assert result.exit_code == 1
    assert "pip install 'dfc[lsp]'" in result.output


def _step(body: ast.Expr, sql: str) -> ast.Expr:
    return next(
        n
        for n in ast.preorder(body)
        if isinstance(n, ast.Sql) and isinstance(n.query, ast.Str) and n.query.value == sql
    )


def test_visible_bindings_are_the_binding_rules_view_of_one_step() -> None:
    text = (
        "'SELECT 1 AS x' |=> 'x'\n"
        "~> ('SELECT 2 AS a' |=> 'a' | 'SELECT 3 AS b' |=> 'b')\n"
        "~> 'SELECT $x, $a?'\n"
        "~> ('SELECT 4' |=> 'c' & 'SELECT 5')\n"
    )
    insight = Insight()
    comp = check_source(SourceFile("v.df", text), insight=insight)
    assert comp.ok and insight.body is not None
    seen = visible_bindings(insight.body, insight.sql_facts, _step(insight.body, "SELECT $x, $a?"))
    assert seen is not None
    assert seen.sure == {"x"} and seen.partial == {"a", "b"}
    assert [b.name.span.text for b in seen.reaching["a"]] == ["'a'"]
    # A parallel branch sees nothing of its sibling.
    seen = visible_bindings(insight.body, insight.sql_facts, _step(insight.body, "SELECT 5"))
    assert seen is not None and "c" not in seen.reaching


def test_the_insight_is_kept_when_the_checker_finds_errors() -> None:
    insight = Insight()
    comp = check_source(
        SourceFile("e.df", "'SELECT 1 AS n' |=> 'r' ~> 'SELECT $rr'"), insight=insight
    )
    assert not comp.ok and comp.checked is None
    assert insight.body is not None and len(insight.sql_facts) == 2


def test_definition_of_a_rebound_name_is_the_binding_that_reaches_the_step() -> None:
    text = "'SELECT 1 AS n' |=> 'x' ~> 'SELECT $x' ~> 'SELECT 2 AS n' |=> 'x' ~> 'SELECT $x.n'\n"
    doc = analyze(text, "/tmp/rebound.df")
    pos = Positions(text)
    first, second = (i for i in range(len(text)) if text.startswith("'x'", i))
    (loc,) = features.definition(doc, pos, text.index("$x'") + 1)
    assert loc.range == pos.range(first + 1, first + 2)
    (loc,) = features.definition(doc, pos, text.index("$x.n") + 1)
    assert loc.range == pos.range(second + 1, second + 2)


def test_rename_refuses_what_is_not_a_binding_or_not_a_result_name() -> None:
    text = "param p int = 1;\n'SELECT {p} AS n' |=> 'x' ~> 'SELECT $x'\n"
    doc = analyze(text, "/tmp/rename.df")
    pos = Positions(text)
    with pytest.raises(ValueError, match="not a valid result name"):
        features.rename(doc, pos, text.index("$x") + 1, "2x")
    with pytest.raises(ValueError, match="only a binding"):
        features.rename(doc, pos, text.index("{p}") + 1, "q")
    assert features.prepare_rename(doc, pos, text.index("{p}") + 1) is None
    edit = features.rename(doc, pos, text.index("$x") + 1, "y")
    assert edit is not None and edit.changes is not None
    assert len(next(iter(edit.changes.values()))) == 2
