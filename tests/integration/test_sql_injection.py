"""No value can change a statement, under any session setting a step can change (real PostgreSQL).

Every hostile value is substituted at every place a reference can stand, and the text runs in a
session where ``standard_conforming_strings`` and ``backslash_quote`` take each of their values
(set earlier on the connection, as an earlier step could, or earlier in the same text). Each run
must leave ``victim`` in place and read back exactly the value; the only runs that may fail are
those the rules refuse: a value that would end the enclosing dollar quote, a quote inside a
bit-string literal, and a ``U&''`` literal while standard_conforming_strings is off, which
PostgreSQL itself refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from runtime_support import run

from dfc.compiler import compile_source
from dfc.diagnostics import DfcError
from dfc.runtime.substitute import SubstitutionError, substitute_sql
from dfc.source import SourceFile

pytestmark = [pytest.mark.db, pytest.mark.timeout(300)]

HOSTILE = [
    "\\'); DROP TABLE victim; --",
    "'); DROP TABLE victim; --",
    "' || (SELECT 'x' FROM victim) || '",
    "\\",
    "\\\\'",
    "\\'",
    "''",
    "'",
    '"; DROP TABLE victim; --',
    "$$",
    "$f$; DROP TABLE victim; $f$",
    "$$; DROP TABLE victim; $$",
    "*/ DROP TABLE victim; /*",
    "/* unclosed",
    "-- DROP TABLE victim",
    "\n; DROP TABLE victim; --",
    "\r DROP TABLE victim; --",
    ";",
    "\x01\x08\t\x1b\x7f control",
    "E'\\x41' U&'\\0041' \\u0041 \\x41",
    "é ‮ \u2028 ∑",
    "x" * 20_000 + "\\'); DROP TABLE victim; --",
]


@dataclass(frozen=True)
class Place:
    """Where a reference stands: the step text, and how the value is read back."""

    text: str
    expected: Callable[[str], str]
    read: str | None = None  # a query reading the value back, when the text does not return it
    column_name: bool = False  # the value comes back as the name of the result's column


PLACES = {
    "code": Place("SELECT $h AS v", lambda v: v),
    "code after a backslash literal": Place(r"SELECT 'a\' || $h AS v", lambda v: "a\\" + v),
    "plain literal": Place("SELECT 'x $h y' AS v", lambda v: f"x {v} y"),
    "plain literal with a backslash": Place(r"SELECT 'a\ $h' AS v", lambda v: f"a\\ {v}"),
    "continued literal": Place("SELECT 'x'\n'$h' AS v", lambda v: "x" + v),
    "escape literal": Place(r"SELECT E'x\t$h' AS v", lambda v: "x\t" + v),
    "unicode literal": Place(r"SELECT U&'x\0041 $h' AS v", lambda v: "xA " + v),
    "national literal": Place("SELECT N'x $h y'::text AS v", lambda v: f"x {v} y"),
    "quoted identifier": Place('SELECT 1 AS "x $h"', lambda v: f"x {v}", column_name=True),
    "line comment": Place("SELECT 'x' AS v -- $h\n", lambda v: "x"),
    "block comment": Place("SELECT 'x' /* $h /* $h */ */ AS v", lambda v: "x"),
    "dollar-quoted body": Place(
        "DO $f$ BEGIN PERFORM set_config('dfc.v', $h, false); END $f$",
        lambda v: v,
        read="SELECT current_setting('dfc.v')",
    ),
    "literal in a dollar-quoted body": Place(
        "DO $f$ BEGIN PERFORM set_config('dfc.v', 'x $h', false); END $f$",
        lambda v: "x " + v,
        read="SELECT current_setting('dfc.v')",
    ),
    "function body": Place(
        "CREATE OR REPLACE FUNCTION pg_temp.dfc_v() RETURNS text LANGUAGE sql "
        "AS $f$ SELECT $h::text $f$",
        lambda v: v,
        read="SELECT pg_temp.dfc_v()",
    ),
    "relation": Place("SELECT v FROM $h.*", lambda v: v),
    "relation column": Place("SELECT * FROM $k.*", lambda v: v, column_name=True),
    "bit string": Place("SELECT B'$h' AS v", lambda v: v),
}

SETTINGS = [
    (scs, bq) for scs in ("on", "off") for bq in ("on", "off", "safe_encoding")
]  # fmt: skip


@pytest.fixture(scope="module")
def session(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("CREATE TABLE victim (id int)")
        yield c


def _truncated(name: str) -> str:
    """A name as PostgreSQL keeps it: at most 63 bytes, cut at a character boundary."""
    return name.encode()[:63].decode("utf-8", errors="ignore")


def _refused(place: str, value: str, scs: str) -> bool:
    """Whether the rules refuse this run (it must then fail without running anything)."""
    if place in ("dollar-quoted body", "literal in a dollar-quoted body", "function body"):
        return "$f$" in value
    if place == "bit string":
        return True  # a quote is refused; anything else is not a binary digit
    return place == "unicode literal" and scs == "off"


@pytest.mark.parametrize(("scs", "bq"), SETTINGS)
@pytest.mark.parametrize("place", PLACES)
def test_no_value_changes_the_statement(
    session: psycopg.Connection[Any], place: str, scs: str, bq: str
) -> None:
    p = PLACES[place]
    session.execute(f"SET standard_conforming_strings = {scs}")
    session.execute(f"SET backslash_quote = {bq}")
    try:
        for value in HOSTILE:
            b = {
                "h": {"rows": [{"v": value}], "row_count": 1},
                "k": {"rows": [{value: 1}], "row_count": 1},
            }
            try:
                sql = substitute_sql(p.text, b, {})
                cur = session.execute(sql)
                if p.read is not None:
                    cur = session.execute(p.read)
            except (SubstitutionError, psycopg.Error) as e:
                assert _refused(place, value, scs), f"{place} / {value!r}: {e}"
                continue
            finally:
                victim = session.execute("SELECT to_regclass('victim')").fetchone()
                assert victim == ("victim",), f"{place} / {value!r} dropped the table"
            assert not _refused(place, value, scs), f"{place} / {value!r} ran"
            assert cur.description is not None and len(cur.description) == 1
            if p.column_name:
                assert cur.description[0].name == _truncated(p.expected(value))
            else:
                assert cur.fetchall() == [(p.expected(value),)], f"{place} / {value!r}"
    finally:
        session.execute("RESET standard_conforming_strings")
        session.execute("RESET backslash_quote")


def test_a_set_earlier_in_the_same_text_reaches_dollar_quoted_bodies(
    session: psycopg.Connection[Any],
) -> None:
    # PostgreSQL reads a whole multi-statement text at once, but a DO body only when it runs:
    # after the SET. The literal holding the value must mean the same then.
    value = "\\'); DROP TABLE victim; --"
    text = (
        "SET standard_conforming_strings = off; "
        "DO $f$ BEGIN PERFORM set_config('dfc.v', 'x $h', false); END $f$"
    )
    try:
        session.execute(substitute_sql(text, {"h": {"rows": [{"v": value}], "row_count": 1}}, {}))
        assert session.execute("SELECT current_setting('dfc.v')").fetchone() == ("x " + value,)
        assert session.execute("SELECT to_regclass('victim')").fetchone() == ("victim",)
    finally:
        session.execute("RESET standard_conforming_strings")


# -- through the worker ------------------------------------------------------------------------


def _plan(text: str) -> Any:
    comp = compile_source(SourceFile("inj.df", text))
    assert comp.plan is not None, [d.message for d in comp.sorted_diagnostics]
    return comp.plan


@pytest.mark.parametrize(
    "flow",
    [
        # the SET in the same step as the literal; then in an earlier step
        "$q$SELECT $v$\\'); DROP TABLE victim; --$v$ AS v$q$ |=> 'h'\n"
        "~> $q$SET standard_conforming_strings = off; SELECT 'x $h' AS v$q$\n",
        "$q$SELECT $v$\\'); DROP TABLE victim; --$v$ AS v$q$ |=> 'h'\n"
        "~> 'SET standard_conforming_strings = off'\n"
        "~> $q$SELECT 'x $h' AS v$q$\n",
    ],
)
def test_a_step_turning_standard_conforming_strings_off_cannot_be_injected(
    db_url: str, session: psycopg.Connection[Any], flow: str
) -> None:
    out = run(db_url, _plan(flow))
    assert out.status == "completed", out.error
    assert out.result["rows"] == [{"v": "x \\'); DROP TABLE victim; --"}]
    assert session.execute("SELECT to_regclass('victim')").fetchone() == ("victim",)


def test_ident_params_are_refused_at_start_when_they_could_end_a_context(
    db_url: str, session: psycopg.Connection[Any]
) -> None:
    plan = _plan("param t ident;\n'SELECT to_regclass(''{t}'')::text AS r'\n")
    with pytest.raises(DfcError, match="parameter t must be a SQL identifier"):
        run(db_url, plan, {"t": '"x\'); DROP TABLE victim; --"'})
    assert session.execute("SELECT to_regclass('victim')").fetchone() == ("victim",)
    session.execute('CREATE TABLE "Order Items" (id int)')
    out = run(db_url, plan, {"t": '"Order Items"'})
    assert out.status == "completed", out.error
    assert out.result["rows"] == [{"r": '"Order Items"'}]
