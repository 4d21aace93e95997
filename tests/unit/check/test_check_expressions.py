"""SQL expressions as arguments (``--grammar pg``): where they may stand, their SQL, and the
references their string literals carry into the value."""

from __future__ import annotations

from dfc.check import check_file, codes
from dfc.diagnostics import Diagnostic, Diagnostics
from dfc.source import SourceFile


def check(text: str) -> list[Diagnostic]:
    sink = Diagnostics()
    check_file(SourceFile("x.df", text), grammar="pg", diagnostics=sink)
    return sink.sorted()


def test_references_in_an_expression_are_checked_like_a_literals() -> None:
    text = (
        "df.http('https://x.test/a', 'GET') |=> 'first'\n"
        "~> df.http('https://x.test/b', 'POST', 'n=' || nextval('s') || ' $first.status $nope')\n"
    )
    found = [(d.code, d.span.text if d.span else None) for d in check(text)]
    # `$first` counts as a use (no unused-binding hint), `$nope` is unbound, and a reference in
    # the expression's string literal is as meant (no DFC305).
    assert found == [(codes.UNBOUND, "$nope")]


def test_an_expression_where_the_plan_needs_a_literal() -> None:
    (d,) = check("df.timeout('SELECT 1', 10 * 6)\n")
    assert (d.code, d.message) == (
        codes.EXPRESSION_ARGUMENT,
        "the seconds argument of df.timeout must be a literal, not a SQL expression",
    )


def test_the_sql_of_an_expression_is_checked_in_place() -> None:
    (d,) = check("df.http('https://x.test', 'POST', jsonb_build_object('a', (1 +)))\n")
    assert d.code == codes.SQL_UNPARSED and d.span is not None and d.span.text == ")"
