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


@pytest.mark.parametrize(
    ("call", "literal", "code"),
    [
        ("df.sleep({})", "TRUE", codes.BAD_SECONDS),
        ("df.sleep({})", "'five'", codes.BAD_SECONDS),
        ("df.sleep({})", "1.5", codes.BAD_SECONDS),
        ("df.sleep({})", "'5'::text", codes.BAD_SECONDS),
        ("df.sleep({})", "NULL", codes.BAD_SECONDS),
        ("df.timeout('SELECT 1', {})", "TRUE", codes.BAD_SECONDS),
        ("df.wait_for_signal('s', {})", "'soon'", codes.BAD_SECONDS),
        ("df.wait_for_signal({})", "42", codes.BAD_LITERAL),
        ("df.wait_for_schedule({})", "5", codes.BAD_LITERAL),
        ("df.http({})", "42", codes.BAD_LITERAL),
        ("df.http('https://x.org', 'POST', {})", "5", codes.BAD_LITERAL),
        ("df.http('https://x.org', {})", "TRUE", codes.BAD_METHOD),
        ("df.http('https://x.org', 'GET', NULL, {})", "5", codes.BAD_HEADERS),
        ("df.http_multipart('https://x.org', 'POST', {})", "5", codes.BAD_PARTS),
        ("df.retry('SELECT 1', jitter => {})", "1", codes.BAD_RETRY),
        ("df.retry('SELECT 1', backoff => {})", "'fast'", codes.BAD_RETRY),
        ("df.retry('SELECT 1', attempts => {})", "2.5", codes.BAD_RETRY),
        ("df.sql({})", "'SELECT 1'::int", codes.BAD_LITERAL),
    ],
)
def test_a_literal_of_the_wrong_kind_has_one_code_written_or_passed(
    call: str, literal: str, code: str
) -> None:
    direct = call.format(literal)
    _, syntax = parse_text(direct)
    assert syntax == []  # the parser takes any literal; its kind is the checker's rule
    assert codes_of(direct) == [code]
    # The same literal passed through a template parameter: the same code, the same message.
    templated = f"def t(v) = {call.format('v')};\nt({literal})"
    assert codes_of(templated) == [code]
    assert _messages(templated) == _messages(direct)


def _messages(text: str) -> list[str]:
    sink = Diagnostics()
    check_file(SourceFile("t.df", text), diagnostics=sink)
    return [d.message for d in sink if d.code != codes.UNUSED_BINDING]


@pytest.mark.parametrize(
    "call",
    [
        "df.sleep('30')",
        "df.sleep(30::int)",
        "df.http('https://x.org', 'POST', '{}'::jsonb)",
        "df.retry('SELECT 1', jitter => 'on', factor => '1.5')",
        "df.sleep('30'::my_type)",  # a type dfc does not know: PostgreSQL decides
    ],
)
def test_literals_postgresql_would_convert_fit(call: str) -> None:
    assert codes_of(call) == []
