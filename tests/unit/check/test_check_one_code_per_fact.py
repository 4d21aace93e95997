"""One fact, one code, wherever it is written: the checker owns the rules about values."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfc.check import check_file, codes
from dfc.diagnostics import Diagnostics
from dfc.source import SourceFile
from dfc.syntax import codes as syntax_codes
from dfc.syntax import parse_text


def codes_of(text: str) -> list[str]:
    sink = Diagnostics()
    check_file(SourceFile("t.df", text), diagnostics=sink)
    return [d.code for d in sink.sorted() if d.code != codes.UNUSED_BINDING]


@pytest.mark.parametrize(
    "text",
    [
        "'SELECT 1' |=> 'bad name'",
        "'SELECT 1' |=> '$one'",
        "'SELECT 1' |=> '1st'",
        "df.as('SELECT 1', 'bad name')",
        "'SELECT 1' |=> 'one' ~> df.if_rows('bad name', 'SELECT 2', 'SELECT 3')",
        "def keep(step, into) = step |=> into;\nkeep('SELECT 1', 'bad name')",
        "def rows(n) = df.if_rows(n, 'SELECT 2', 'SELECT 3');\n'SELECT 1' |=> 'one' ~> rows('bad name')",
    ],
)
def test_an_invalid_result_name_is_dfc208_wherever_it_is_written(text: str) -> None:
    _, syntax = parse_text(text)
    assert syntax == []  # a string is a well-formed name argument; its value is the checker's
    assert codes_of(text) == [codes.BAD_RESULT_NAME]


def test_the_dollar_hint_survives_the_move() -> None:
    sink = Diagnostics()
    check_file(SourceFile("t.df", "'SELECT 1' |=> '$one'"), diagnostics=sink)
    [d] = [d for d in sink if d.code == codes.BAD_RESULT_NAME]
    assert d.help == "write the name without '$': 'one' (it is referenced as $one)"


def test_a_duplicate_template_parameter_is_reported_once_even_when_imported(tmp_path: Path) -> None:
    (tmp_path / "lib.df").write_text("def twice(a, a) = a ~> a;\n")
    main = tmp_path / "main.df"
    main.write_text("import './lib.df';\n'SELECT 1'\n")
    sink = Diagnostics()
    check_file(main, diagnostics=sink)
    assert [d.code for d in sink] == [syntax_codes.BAD_DEF]
