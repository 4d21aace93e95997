"""The SQL surface (migration 0005) agrees with the rest of dfc.

- A rule that both the checker of .df files and the SQL surface enforce fails with the same
  message and the same help in both (SQL raises the checker's message as its error and the
  help as its HINT), so that a graph refused by df.start and a file refused by `dfc check` read
  alike.
- The SQL cron check accepts and refuses what the checker (cronsim) does.

The behaviour of each function is specified by the psql scripts in tests/sql.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from dfc.compiler import check_source
from dfc.diagnostics import Diagnostic
from dfc.source import SourceFile

pytestmark = pytest.mark.db

# (a .df workflow, the SQL that builds or starts the same thing)
SAME_RULE = [
    ("df.sleep(-5)", "df.sleep(-5)"),
    ("'SELECT 1' |=> 'bad-name'", "'SELECT 1' OPERATOR(df.|=>) 'bad-name'"),
    ("'SELECT 1' |=> '$x'", "df.as('SELECT 1', '$x')"),
    ("'SELECT 1' |=> '1st'", "df.as('SELECT 1', '1st')"),
    ("'SELECT 1' |=> ''", "df.as('SELECT 1', '')"),
    (
        "df.if_rows('my rows', 'SELECT 1', 'SELECT 2')",
        "df.if_rows('my rows', 'SELECT 1', 'SELECT 2')",
    ),
    ("df.wait_for_schedule('61 * * * *')", "df.wait_for_schedule('61 * * * *')"),
    ("df.wait_for_schedule('* * *')", "df.wait_for_schedule('* * *')"),
    ("df.wait_for_schedule('0 25 * * *')", "df.wait_for_schedule('0 25 * * *')"),
    ("df.wait_for_schedule('0 0 32 * *')", "df.wait_for_schedule('0 0 32 * *')"),
    ("df.wait_for_schedule('0 0 * 13 *')", "df.wait_for_schedule('0 0 * 13 *')"),
    ("df.wait_for_schedule('0 0 * * FUNDAY')", "df.wait_for_schedule('0 0 * * FUNDAY')"),
    ("df.wait_for_schedule('*/0 * * * *')", "df.wait_for_schedule('*/0 * * * *')"),
    ("df.wait_for_schedule('5-1 * * * *')", "df.wait_for_schedule('5-1 * * * *')"),
    ("df.wait_for_schedule('0,, * * * *')", "df.wait_for_schedule('0,, * * * *')"),
    ("df.wait_for_schedule('0 0 ? * *')", "df.wait_for_schedule('0 0 ? * *')"),
    ("df.wait_for_schedule('0 0 15W * *')", "df.wait_for_schedule('0 0 15W * *')"),
    ("df.wait_for_schedule('0 0 * * 5#6')", "df.wait_for_schedule('0 0 * * 5#6')"),
    ("df.wait_for_schedule('')", "df.wait_for_schedule('')"),
    ("df.wait_for_signal('')", "df.wait_for_signal('')"),
    ("df.wait_for_signal('go', -1)", "df.wait_for_signal('go', -1)"),
    ("df.http('   ')", "df.http('   ')"),
    ("df.http('ftp://files.example.com/x')", "df.http('ftp://files.example.com/x')"),
    ("df.http('api.example.com/x')", "df.http('api.example.com/x')"),
    (
        "df.http('https://api.example.com/', 'FETCH')",
        "df.http('https://api.example.com/', 'FETCH')",
    ),
    (
        "df.http('https://api.example.com/', headers => '[1]')",
        "df.http('https://api.example.com/', headers => '[1]')",
    ),
    (
        "df.http('https://api.example.com/', 'GET', NULL, NULL, -1)",
        "df.http('https://api.example.com/', 'GET', NULL, NULL, -1)",
    ),
    (
        "df.http_multipart('https://api.example.com/', parts => '{}')",
        "df.http_multipart('https://api.example.com/', parts => '{}')",
    ),
    (
        """df.http_multipart('https://api.example.com/', parts => '[{"name": "a"}]')""",
        """df.http_multipart('https://api.example.com/', parts => '[{"name": "a"}]')""",
    ),
    (
        "df.http_multipart('https://api.example.com/', parts => '[1]')",
        "df.http_multipart('https://api.example.com/', parts => '[1]')",
    ),
    ("df.break()", "df.start(df.break())"),
    ("'SELECT 1' ~> df.break()", "df.start(df.seq('SELECT 1', df.break()))"),
    (
        "'SELECT 1' ?> 'SELECT 2'",
        """df.start('{"node_type":"IF","left_node":{"node_type":"SQL","query":"SELECT 2"},"condition_node":{"node_type":"SQL","query":"SELECT 1"}}')""",
    ),
]


def _checker(source: str) -> Diagnostic:
    """The first error the checker reports for a workflow."""
    comp = check_source(SourceFile("t.df", source))
    errors_ = [d for d in comp.sorted_diagnostics if d.is_error]
    assert errors_, f"the checker accepts {source}"
    return errors_[0]


def _sql_error(conn: psycopg.Connection[tuple[object, ...]], expression: str) -> errors.Error:
    with pytest.raises(psycopg.Error) as raised:
        conn.execute(f"SELECT {expression}")
    return raised.value


@pytest.mark.parametrize(("df_source", "sql"), SAME_RULE)
def test_sql_raises_the_checkers_message_and_help(
    conn: psycopg.Connection[tuple[object, ...]], df_source: str, sql: str
) -> None:
    expected = _checker(df_source)
    err = _sql_error(conn, sql)
    assert err.diag.message_primary == expected.message
    assert err.diag.message_hint == expected.help


@pytest.mark.parametrize(
    "cron",
    [
        "0 0 L * *",
        "0 0 LW * *",
        "0 0 * * 5L",
        "0 0 * * 7L",
        "0 0 * * FRI#3",
        "0 0 * * 5#3",
        "1/5 * * * *",
        "*/90 * * * *",
        "0 0 * jan *",
        "0 9 * JAN-MAR mon-fri",
        "0 0 * * 0-7",
        "0,15,30,45 */2 1-15 * *",
    ],
)
def test_sql_accepts_the_cron_expressions_the_checker_accepts(
    conn: psycopg.Connection[tuple[object, ...]], cron: str
) -> None:
    assert not [
        d
        for d in check_source(
            SourceFile("t.df", f"df.wait_for_schedule('{cron}')")
        ).sorted_diagnostics
        if d.is_error
    ]
    row = conn.execute("SELECT df.wait_for_schedule(%s)", (cron,)).fetchone()
    assert row is not None and cron in row[0]


def test_a_handwritten_graph_is_checked_like_a_built_one(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    """df.start applies the builders' rules to JSON that no builder wrote."""
    err = _sql_error(conn, """df.start('{"node_type":"SLEEP","query":"-5"}')""")
    assert err.diag.message_primary == _checker("df.sleep(-5)").message
