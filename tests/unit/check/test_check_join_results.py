"""References into results without rows or fields: a join's JSON array, HTTP and wait records.

`$j.col` on a join's result used to pass the checker and fail in PostgreSQL (the reference is
left as written in SQL); `$x.*` on a result without rows fails the step when it runs.
"""

from __future__ import annotations

import pytest

from dfc.check import check_file, codes
from dfc.diagnostics import Diagnostic, Diagnostics
from dfc.runtime.substitute import SubstitutionError, substitute_sql
from dfc.source import SourceFile


def diagnose(text: str) -> list[Diagnostic]:
    sink = Diagnostics()
    check_file(SourceFile("t.df", text), diagnostics=sink)
    return [d for d in sink.sorted() if d.code != codes.UNUSED_BINDING]


def test_a_field_of_a_join_is_an_error_with_the_fix() -> None:
    [d] = diagnose("('SELECT 1 AS a' & 'SELECT 2 AS b') |=> 'j' ~> 'SELECT $j.a AS x'")
    assert d.code == codes.JOIN_FIELD and d.is_error
    assert d.span is not None and d.span.text == "$j.a"
    assert d.help is not None
    assert "`$j::jsonb->0->'rows'->0->>'a'`" in d.help
    assert "|=> 'b'`, then `$b.a`" in d.help


@pytest.mark.parametrize(
    ("text", "path"),
    [
        # `a & b & c` nests: [[ra, rb], rc].
        ("'SELECT 1 AS a' & 'SELECT 2 AS b' & 'SELECT 3 AS c'", "->0->1->'rows'->0->>'b'"),
        ("df.join('SELECT 1 AS a', 'SELECT 2 AS b', 'SELECT 3 AS c')", "->1->'rows'->0->>'b'"),
        ("'SELECT 1 AS a' & (df.sleep(1) ~> df.http('https://x.org', 'GET'))", None),
    ],
)
def test_the_help_reads_the_array_where_the_field_is(text: str, path: str | None) -> None:
    [d] = diagnose(f"({text}) |=> 'j' ~> 'SELECT $j.b AS x'")
    assert d.code == codes.JOIN_FIELD and d.help is not None
    assert (f"`$j::jsonb{path}`" in d.help) if path else ("::jsonb" not in d.help)


@pytest.mark.parametrize(
    "text",
    [
        "('SELECT 1 AS a' & 'SELECT 2 AS b') |=> 'j' ~> 'SELECT $j::jsonb->0 AS x'",
        "(('SELECT 1 AS a' |=> 'a1') & 'SELECT 2 AS b') ~> 'SELECT $a1.a AS x'",
        # A race's result is the winner's: its fields are the branches' (when they agree).
        "(df.http('https://a.org', 'GET') | df.http('https://b.org', 'GET')) |=> 'r'"
        " ~> 'SELECT $r.status AS s'",
        "df.sleep(1) |=> 's' ~> 'SELECT $s::jsonb AS slept'",
        "'SELECT 1 AS a' |=> 'q' ~> 'SELECT * FROM $q.*'",
    ],
)
def test_what_works_at_run_time_passes(text: str) -> None:
    assert diagnose(text) == []


@pytest.mark.parametrize(
    ("text", "advice"),
    [
        ("df.sleep(1) |=> 's' ~> 'SELECT * FROM $s.*'", "`$s.slept` for one field"),
        (
            "('SELECT 1 AS a' & 'SELECT 2 AS b') |=> 'j' ~> 'SELECT * FROM $j.*'",
            "`$j::jsonb`), or bind the branch",
        ),
    ],
)
def test_star_on_a_result_without_rows_is_an_error(text: str, advice: str) -> None:
    [d] = diagnose(text)
    assert d.code == codes.NOT_A_ROW_SET and d.help is not None
    assert advice in d.help
    assert ".field" not in d.help


def test_the_runtime_never_advises_a_field_of_an_array() -> None:
    join_result = [{"rows": [{"a": 1}], "row_count": 1}, {"rows": [], "row_count": 0}]
    with pytest.raises(SubstitutionError) as e:
        substitute_sql("SELECT * FROM $j.*", {"j": join_result}, {})
    assert "use $j instead" in str(e.value)
    with pytest.raises(SubstitutionError) as e:
        substitute_sql("SELECT * FROM $s.*", {"s": {"slept": True, "seconds": 1}}, {})
    assert "use $s or $s.field instead" in str(e.value)
