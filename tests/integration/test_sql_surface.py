"""The SQL surface (migration 0005) agrees with the rest of dfc.

- A rule that both the checker of .df files and the SQL surface enforce fails with the same
  message and the same help in both (SQL raises the checker's message as its error and the
  help as its HINT), so that a graph refused by df.start and a file refused by `dfc check` read
  alike.
- The SQL cron check accepts and refuses what the checker (cronsim) does.
- A file becomes the graph the SQL builders would build (`dfc.plan.pg_graph`), so that
  ``dfc explain --format pg`` shows what ``df.explain`` shows.

The behaviour of each function is specified by the psql scripts in tests/sql.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import errors

from dfc.cli.main import main
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


# -- a file as pg_durable's graph (dfc explain --format pg) ----------------------------------

# (a .df workflow, the SQL builders' expression for the same graph)
SAME_GRAPH = [
    ("'SELECT 1'", "df.sql('SELECT 1')"),
    ("$$SELECT 'it''s', E'\\n' AS \"q\"$$", "df.sql($$SELECT 'it''s', E'\\n' AS \"q\"$$)"),
    (
        "'SELECT 1' |=> 'a' ~> 'SELECT $a' ~> 'SELECT 3'",
        "'SELECT 1' |=> 'a' ~> 'SELECT $a' ~> 'SELECT 3'",
    ),
    ("('SELECT 1' ~> 'SELECT 2') |=> 'b'", "('SELECT 1' ~> 'SELECT 2') |=> 'b'"),
    ("('SELECT 1' |=> 'a') |=> 'b'", "('SELECT 1' |=> 'a') |=> 'b'"),
    (
        "df.join3('SELECT 1', 'SELECT 2', 'SELECT 3')",
        "df.join3('SELECT 1', 'SELECT 2', 'SELECT 3')",
    ),
    (
        "df.join('SELECT 1', 'SELECT 2', 'SELECT 3', 'SELECT 4')",
        "df.join('SELECT 1', 'SELECT 2', 'SELECT 3', 'SELECT 4')",
    ),
    ("'SELECT 1' & 'SELECT 2'", "'SELECT 1' & 'SELECT 2'"),
    ("df.race('SELECT 1', df.sleep(10))", "df.race('SELECT 1', df.sleep(10))"),
    (
        "df.if('SELECT true', 'SELECT 1', 'SELECT 2')",
        "df.if('SELECT true', 'SELECT 1', 'SELECT 2')",
    ),
    ("'SELECT true' ?> 'SELECT 1' !> 'SELECT 2'", "'SELECT true' ?> 'SELECT 1' !> 'SELECT 2'"),
    (
        "'SELECT 1' |=> 'r' ~> df.if_rows('r', 'SELECT 2', 'SELECT 3')",
        "'SELECT 1' |=> 'r' ~> df.if_rows('r', 'SELECT 2', 'SELECT 3')",
    ),
    ("df.loop('SELECT 1' ~> df.break())", "df.loop('SELECT 1' ~> df.break())"),
    ("@> ('SELECT 1' ~> df.sleep(1))", "@> ('SELECT 1' ~> df.sleep(1))"),
    ("df.loop(df.sleep(1), 'SELECT true')", "df.loop(df.sleep(1), 'SELECT true')"),
    ("df.loop(df.break('{\"done\": true}'))", "df.loop(df.break('{\"done\": true}'))"),
    ("df.wait_for_schedule('*/5 * * * *')", "df.wait_for_schedule('*/5 * * * *')"),
    ("df.wait_for_signal('go')", "df.wait_for_signal('go')"),
    ("df.wait_for_signal('go', 60) |=> 's'", "df.wait_for_signal('go', 60) |=> 's'"),
    ("df.http('https://api.example.com/')", "df.http('https://api.example.com/')"),
    (
        "df.http('https://api.example.com/', 'get', '{\"a\": 1}', NULL, 5)",
        "df.http('https://api.example.com/', 'get', '{\"a\": 1}', NULL, 5)",
    ),
]


def _graph_text(source: str) -> str:
    from dfc.compiler import to_graph

    comp = check_source(SourceFile("t.df", source))
    assert comp.checked is not None, comp.sorted_diagnostics
    return to_graph(comp.checked.body).text


@pytest.mark.parametrize(("df_source", "sql"), SAME_GRAPH)
def test_a_file_becomes_the_graph_the_sql_builders_build(
    conn: psycopg.Connection[tuple[object, ...]], df_source: str, sql: str
) -> None:
    conn.execute("SET search_path = public, df")
    row = conn.execute(f"SELECT {sql}").fetchone()
    assert row is not None
    assert _graph_text(df_source) == row[0]


def test_json_arguments_become_json_values(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Headers and parts are JSON in the graph (the SQL side writes jsonb's spacing)."""
    import json

    parts = '[{"name": "f", "data_b64": "aGk="}]'
    source = f"df.http_multipart('https://api.example.com/u', 'put', '{parts}', '{{\"X\": \"y\"}}')"
    row = conn.execute(
        "SELECT df.http_multipart('https://api.example.com/u', 'put', %s, '{\"X\": \"y\"}')",
        (parts,),
    ).fetchone()
    assert row is not None
    ours, theirs = json.loads(_graph_text(source)), json.loads(row[0])
    assert json.loads(ours.pop("query")) == json.loads(theirs.pop("query"))
    assert ours == theirs


def test_explain_format_pg_of_a_file_is_df_explain_of_its_graph(
    conn: psycopg.Connection[tuple[object, ...]], db_url: str, tmp_path: Path
) -> None:
    f = tmp_path / "w.df"
    f.write_text(
        "'SELECT 1' |=> 'a'\n~> df.retry('SELECT 2', attempts => 3)\n~> df.if('SELECT $a', 'SELECT 3', 'SELECT 4')\n"
    )
    r = CliRunner().invoke(
        main, ["--no-color", "explain", "--format", "pg", str(f), "--db", db_url]
    )
    assert r.exit_code == 0, r.output
    conn.execute("SET search_path = public, df")
    row = conn.execute(
        "SELECT df.explain('SELECT 1' |=> 'a' ~> 'SELECT 2' ~> df.if('SELECT $a', 'SELECT 3', 'SELECT 4'))"
    ).fetchone()
    assert row is not None
    assert r.stdout == row[0] + "\n"
    assert (
        "w.df:2:4: note: pg_durable's graph has no df.retry; the step it wraps is shown" in r.stderr
    )


def test_explain_format_pg_of_an_instance(
    conn: psycopg.Connection[tuple[object, ...]], db_url: str
) -> None:
    row = conn.execute("SELECT df.start('SELECT 1', 'cli-pg')").fetchone()
    assert row is not None
    r = CliRunner().invoke(
        main, ["--no-color", "explain", "--format", "pg", row[0], "--db", db_url]
    )
    assert r.exit_code == 0, r.output
    assert r.stdout == f"Instance: {row[0]} (cli-pg)\nStatus:   ○ Pending\n\nSQL: SELECT 1 ○    \n"
    conn.execute("SELECT df.cancel(%s)", (row[0],))


def test_explain_format_pg_has_no_json() -> None:
    r = CliRunner().invoke(main, ["explain", "--format", "pg", "--json", "abcdef12"])
    assert r.exit_code == 2
    assert "--json goes with the tree format" in r.output
