"""SQL analysis: statement kinds, columns, autocommit, certain errors, and no false errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfc.check import codes
from dfc.check.sql import (
    analyze,
    ends_statements,
    expression_issues,
    is_complete_statement,
    starts_statement,
)
from dfc.diagnostics import Severity
from dfc.sqllex import split, tokenize


def issues(text: str, **types: str | None) -> list[tuple[str, str]]:
    a = analyze(text, types)
    return [(i.code, text[i.start : i.end]) for i in a.issues]


@pytest.mark.parametrize(
    ("text", "kinds", "columns", "rows"),
    [
        ("SELECT id, content AS c FROM docs LIMIT {n}", ("query",), ("id", "c"), True),
        ('SELECT Id, "MixedCase", x AS Y FROM t', ("query",), ("id", "MixedCase", "y"), True),
        ("SELECT * FROM t", ("query",), None, True),
        (
            "SELECT count(*), max(x), 1 + 2, $a, x::int FROM t",
            ("query",),
            ("count", "max", "?column?", "?column?", "x"),
            True,
        ),
        ("SELECT now()", ("query",), None, True),
        ("UPDATE t SET x = 1", ("dml",), (), False),
        ("UPDATE t SET x = 1 RETURNING id, x AS y", ("dml_returning",), ("id", "y"), True),
        ("DELETE FROM t RETURNING *", ("dml_returning",), None, True),
        ("INSERT INTO t DEFAULT VALUES", ("dml",), (), False),
        ("WITH d AS (DELETE FROM t RETURNING id) SELECT id FROM d", ("query",), ("id",), True),
        ("VALUES (1, 2)", ("query",), ("column1", "column2"), True),
        ("SELECT 1 AS a UNION SELECT 2 AS b", ("query",), ("a",), True),
        ("CREATE TABLE t (id int)", ("ddl",), (), False),
        ("SELECT 1 INTO t2", ("ddl",), (), False),
        ("UPDATE a SET x = 1; SELECT 2 AS two", ("dml", "query"), ("two",), True),
        ("NOTIFY chan, 'x'", ("utility",), (), False),
        ("SHOW search_path", ("utility",), None, True),
        ("DO $$ BEGIN PERFORM 1; END $$", ("utility",), (), False),
    ],
)
def test_classification(text: str, kinds: tuple[str, ...], columns: object, rows: object) -> None:
    a = analyze(text)
    assert a.facts.statements == kinds
    assert a.facts.columns == columns
    assert a.facts.returns_rows == rows
    assert not [i for i in a.issues if i.severity is Severity.ERROR]


def test_facts_refs_and_vars() -> None:
    f = analyze("SELECT $a, $b.c?, x FROM $r.*, {t} WHERE y = $a AND z = '{v}'").facts
    assert f.refs == ("$a", "$b.c", "$r.*")
    assert f.vars == ("t", "v")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("completed", [(codes.NOT_A_STATEMENT, "completed")]),
        ("'completed'", [(codes.NOT_A_STATEMENT, "'completed'")]),
        ("OK", [(codes.NOT_A_STATEMENT, "OK")]),
        ("$x", [(codes.NOT_A_STATEMENT, "$x")]),
        ("SELEC 1 FROM t", [(codes.NOT_A_STATEMENT, "SELEC")]),
        ("SELECT count(* FROM jobs", [(codes.SQL_INVALID, "(")]),
        ("SELECT 1)", [(codes.SQL_INVALID, ")")]),
        ("SELECT a FROM t WHERE", [(codes.SQL_INVALID, "WHERE")]),
        ("UPDATE t SET a = 1,", [(codes.SQL_INVALID, ",")]),
        ("SELECT 'abc", [(codes.SQL_INVALID, "'")]),
        ("SELECT 1 /* never closed", [(codes.SQL_INVALID, "/*")]),
        ("", [(codes.EMPTY_SQL, "")]),
        (" ;; -- nothing", [(codes.EMPTY_SQL, " ;; -- nothing")]),
        ("SELECT 'hello $user'", [(codes.REF_IN_STRING, "$user")]),
        ("VACUUM ANALYZE jobs", [(codes.AUTOCOMMIT, "VACUUM ANALYZE jobs")]),
        (
            "CREATE UNIQUE INDEX CONCURRENTLY i ON t (x)",
            [(codes.AUTOCOMMIT, "CREATE UNIQUE INDEX CONCURRENTLY i ON t (x)")],
        ),
        ("SELECT 1 UPDATE t SET x = 1", [(codes.SQL_UNPARSED, "t")]),
    ],
)
def test_findings(text: str, found: list[tuple[str, str]]) -> None:
    assert issues(text) == found


@pytest.mark.parametrize(
    ("text", "help"),
    [
        # a condition written as a reference wants its value, not a text literal of it
        ("$batch.done", "to use the value, write the step 'SELECT $batch.done'"),
        ("$x = 'a'", "to use the value, write the step 'SELECT $x = ''a'''"),
        ("completed", "df.break('completed'), to produce it as a result SELECT 'completed'"),
    ],
)
def test_not_a_statement_helps_with_what_was_meant(text: str, help: str) -> None:
    (issue,) = analyze(text).issues
    assert issue.code == codes.NOT_A_STATEMENT
    assert issue.help is not None and issue.help.endswith(help)


def test_autocommit_among_other_statements() -> None:
    assert [c for c, _ in issues("DELETE FROM logs; VACUUM logs")] == [
        codes.AUTOCOMMIT,
        codes.AUTOCOMMIT_MULTI,
    ]
    assert analyze("DELETE FROM logs; VACUUM logs").facts.autocommit


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * FROM t FOR UPDATE",
        "SET enable_seqscan = on",
        "SELECT $sig::jsonb->>'timed_out'",
        "DO $$ BEGIN PERFORM $x; END $$",
        "SELECT embedding <-> '[1,2,3]'::vector FROM items ORDER BY 1 LIMIT 5",
        "SELECT E'it\\'s', U&'d\\0061t', $q$ ) $q$, \"weird ( name\" FROM t",
        "SELECT 1 -- trailing ( comment",
        "SELECT /* nested /* comment */ ( */ 1",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END",
        "SELECT {cols} FROM t",
        "{whole_statement}",
        "LISTEN jobs",
        "SELECT * FROM {tbl} WHERE x IN (SELECT id FROM $batch.*)",
    ],
)
def test_no_false_errors(text: str) -> None:
    a = analyze(text, {"tbl": "ident"})
    assert [i for i in a.issues if i.severity is Severity.ERROR] == []


def test_references_in_comments_are_not_substituted() -> None:
    a = analyze("SELECT $a -- not $b\n/* nor $c */ , {v} -- but {w}")
    assert a.facts.refs == ("$a",)
    assert a.facts.vars == ("v", "w")


DOLLAR_QUOTED = [
    "CREATE FUNCTION add_one(i int) RETURNS int AS $$SELECT i + 1$$ LANGUAGE sql",
    "DO $$BEGIN PERFORM 1; END$$",
    "SELECT $$it's$$ AS a",  # only the outer lexing decides structural errors
    "DO $$ BEGIN PERFORM 1; -- see $missing\nEND $$",
    "SELECT $q$ $$ unterminated inside $q$ AS a",
]


@pytest.mark.parametrize("text", DOLLAR_QUOTED)
def test_dollar_quotes_are_not_references(text: str) -> None:
    a = analyze(text)
    assert a.refs == ()
    assert a.issues == ()
    assert a.neutral == text


def test_references_in_dollar_quoted_bodies_are_neutralized_in_place() -> None:
    a = analyze("DO $f$ BEGIN PERFORM $x /* $y */; END $f$")
    assert a.facts.refs == ("$x",)
    assert a.neutral == "DO $f$ BEGIN PERFORM _x /* $y */; END $f$"


def test_text_variables_make_structure_unprovable() -> None:
    # `{frag}` may hold ") OR (" ...: the parentheses cannot be judged.
    assert issues("SELECT count(* {frag}") == []
    assert issues("SELECT count(* {n}", n="int") == [(codes.SQL_INVALID, "(")]


def test_complete_statements() -> None:
    assert is_complete_statement("UPDATE a SET x = 1")
    assert not is_complete_statement("FROM t")
    assert not is_complete_statement("completed")


@pytest.mark.parametrize(
    ("text", "ends"),
    [
        ("SELECT 1", True),
        ("UPDATE a SET x = 1", True),
        ("SELECT * FROM t FOR UPDATE", True),
        ("INSERT INTO t VALUES (1)", True),
        ("INSERT INTO t DEFAULT VALUES", True),
        ("SELECT 1 -- done", True),
        ("SELECT 1;", False),  # several statements in one step, on purpose
        ("SELECT a, b ", True),  # whether the next text goes on is the next text's business
        ("CREATE TABLE t AS", False),
        ("CREATE VIEW v AS ", False),
        ("SELECT * FROM t WHERE id IN", False),
        ("SELECT 1 UNION ALL", False),
        ("INSERT INTO t (a)", False),
        ("UPDATE t", False),
        ("EXPLAIN", False),
        ("SELECT a,", False),
        ("SELECT a ||", False),
        ("SELECT coalesce(", False),
        ("", False),
    ],
)
def test_ends_statements(text: str, ends: bool) -> None:
    assert ends_statements(text) is ends


def test_starts_statement() -> None:
    assert starts_statement("SELECT 1")
    assert starts_statement("  -- a comment\n  delete from t")
    assert not starts_statement("FROM t")
    assert not starts_statement("(SELECT 1)")
    assert not starts_statement("")


def test_split_keeps_atomic_bodies() -> None:
    toks = tokenize("CREATE FUNCTION f() BEGIN ATOMIC SELECT 1; END; SELECT 2")
    assert len(split(toks)) == 2


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("SELECT FROMWHERE()[];,'\"$x{}*-/\n1=")), max_size=40))
def test_analysis_never_crashes(text: str) -> None:
    a = analyze(text)
    for i in a.issues:
        assert 0 <= i.start <= i.end <= len(text)


def test_expression_issues_point_into_the_expression() -> None:
    # A --grammar pg argument is checked as the statement that evaluates it, SELECT (<text>).
    assert expression_issues("jsonb_build_object('a', encode('hi', 'base64'))") == []
    ((issue,),) = [expression_issues("coalesce(1, (2 +))")]
    assert issue.code == codes.SQL_UNPARSED and issue.start == 16
    ((issue,),) = [expression_issues("(1")]
    assert (issue.code, issue.start, issue.end) == (codes.SQL_INVALID, 0, 1)
