"""How a step run as another role is split and wrapped (dfc.runtime.run_as, dfc.store.roles)."""

from __future__ import annotations

import pytest

from dfc.runtime.run_as import statements
from dfc.store.roles import RunAs, rows_call

ROLE = RunAs("alice", 16384, executors=True, can_set_role=True)


def test_statements_keep_their_place_in_the_step() -> None:
    sql = "SELECT 1; -- note\n INSERT INTO t VALUES ('a;b') ;; UPDATE t SET x = 1 RETURNING x"
    sts = statements(sql)
    assert [st.text for st in sts] == [
        "SELECT 1",
        "INSERT INTO t VALUES ('a;b')",
        "UPDATE t SET x = 1 RETURNING x",
    ]
    assert [sql[st.start : st.start + len(st.text)] for st in sts] == [st.text for st in sts]
    assert statements("  -- only a comment\n") == []


@pytest.mark.parametrize(
    ("sql", "wrapping", "no_rows"),
    [
        ("SELECT 1", "subquery", False),
        ("(SELECT 1) UNION (SELECT 2)", "subquery", False),
        ("VALUES (1)", "subquery", False),
        ("TABLE t", "subquery", False),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "subquery", False),
        ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "none", False),
        ("INSERT INTO t VALUES (1) RETURNING id", "cte", False),
        ("INSERT INTO t VALUES (1)", "cte", True),
        ("UPDATE t SET returning_x = 1", "cte", True),
        ("DELETE FROM t", "cte", True),
        ("MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", "none", True),
        ("CREATE TABLE t (x int)", "none", True),
        ("DO $$BEGIN RETURN; END$$", "none", True),
        ("SET work_mem = '1MB'", "none", True),
        ("SHOW work_mem", "none", False),
        ("EXPLAIN SELECT 1", "none", False),
        ("CALL p()", "none", False),
    ],
)
def test_what_each_statement_needs(sql: str, wrapping: str, no_rows: bool) -> None:
    (st,) = statements(sql)
    assert (st.wrapping, st.no_rows) == (wrapping, no_rows)


def test_rows_calls_cast_every_column_where_they_can() -> None:
    sub = rows_call(ROLE, "SELECT id FROM t", ["integer", "numeric(10,2)"], "subquery")
    assert sub.query == (
        "SELECT _t.c1::integer, _t.c2::numeric(10,2) FROM (SELECT id FROM t) AS _t(c1, c2)"
    )
    assert sub.query[sub.offset :].startswith("SELECT id FROM t")
    assert sub.sql == (
        'SELECT * FROM dfc_run."rows_16384"(\''
        + sub.query
        + "') AS _r(c1 integer, c2 numeric(10,2))"
    )
    cte = rows_call(ROLE, "DELETE FROM t RETURNING id", ["integer"], "cte")
    assert cte.query == "WITH _t(c1) AS (DELETE FROM t RETURNING id) SELECT _t.c1::integer FROM _t"
    raw = rows_call(ROLE, "SHOW work_mem", ["text"], "none")
    assert (raw.query, raw.offset) == ("SHOW work_mem", 0)
    quoted = rows_call(ROLE, "SELECT 'it''s'", ["text"], "none")
    assert "('SELECT ''it''''s''')" in quoted.sql
