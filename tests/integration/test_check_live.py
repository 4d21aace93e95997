"""``dfc check --db``: SQL steps prepared against the embedded PostgreSQL, rolled back after."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from dfc.check import check_file, check_live, codes
from dfc.diagnostics import DfcError, Diagnostic, Diagnostics
from dfc.source import SourceFile

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "check" / codes.LIVE_REJECTED


def live(
    text: str, db_url: str, name: str = "live.df"
) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """(static diagnostics, live diagnostics) of a workflow text."""
    static = Diagnostics()
    wf = check_file(SourceFile(name, text), diagnostics=static)
    assert wf is not None, static.sorted()
    sink = Diagnostics()
    check_live(wf, db_url, sink)
    return static.sorted(), sink.sorted()


def test_misspelled_column_only_the_database_can_know(db_url: str) -> None:
    text = (GOLDEN / "fail.df").read_text()
    static, found = live(text, db_url, str(GOLDEN / "fail.df"))
    assert [d for d in static if d.severity in ("error", "warning")] == []
    (d,) = found
    assert d.code == codes.LIVE_REJECTED
    assert 'column "emial" does not exist' in d.message
    assert d.span is not None and d.span.text == "emial"
    assert d.span.start_line_col == (3, 12)
    _, ok = live((GOLDEN / "pass.df").read_text(), db_url)
    assert ok == []


def test_everything_is_rolled_back(db_url: str) -> None:
    live("'CREATE TABLE live_made (id int)' ~> 'INSERT INTO live_made VALUES (1)'", db_url)
    with psycopg.connect(db_url) as c:
        assert c.execute("SELECT to_regclass('live_made')").fetchone() == (None,)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("'SELECT * FROM no_such_table'", 'relation "no_such_table" does not exist'),
        ("'SELECT no_such_function(1)'", "function no_such_function(integer) does not exist"),
        ("'SELECT 1::no_such_type'", 'type "no_such_type" does not exist'),
        ("'SELECT * FROM nope.t'", 'relation "nope.t" does not exist'),
        ("'SELECT * FROM pg_class WHERE oid = = 1'", "syntax error"),
    ],
)
def test_unknown_objects(db_url: str, text: str, problem: str) -> None:
    _, found = live(text, db_url)
    assert [d.code for d in found] == [codes.LIVE_REJECTED]
    assert problem in found[0].message


def test_references_become_typed_parameters(db_url: str) -> None:
    text = """
    'CREATE TABLE IF NOT EXISTS live_items (id bigint, name text, price numeric)'
    ~> 'SELECT id, name, price FROM live_items ORDER BY id LIMIT 10' |=> 'items'
    ~> 'SELECT count(*) FROM live_items WHERE id = $items.id AND name = $items.name?'
    ~> 'SELECT sum(price) AS total FROM live_items WHERE id IN (SELECT id FROM $items.*)' |=> 's'
    ~> df.http('https://example.com/x', 'POST', '$s.*') |=> 'resp'
    ~> 'SELECT $resp.status + 1, $resp.ok AND true, $resp.body'
    """
    _, found = live(text, db_url)
    assert found == []


def test_ddl_in_a_multi_statement_step_and_variables(db_url: str) -> None:
    text = """
    param tbl ident = 'live_orders';
    param n int;
    $$CREATE TABLE IF NOT EXISTS live_orders (id int, total numeric);
      INSERT INTO live_orders VALUES (1, 2)$$
    ~> 'SELECT id FROM {tbl} ORDER BY id LIMIT {n}' |=> 'o'
    ~> 'SELECT totl FROM {tbl} WHERE id = $o'
    """
    _, found = live(text, db_url)
    assert len(found) == 1 and 'column "totl" does not exist' in found[0].message
    assert found[0].span is not None and found[0].span.text == "totl"


def test_autocommit_and_utility_steps_are_skipped(db_url: str) -> None:
    _, found = live("'VACUUM no_such_table' ~> 'NOTIFY chan' ~> 'SELECT 1'", db_url)
    assert found == []


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.df")), ids=lambda p: p.name)
def test_examples_pass_the_live_check(db_url: str, path: Path) -> None:
    static = Diagnostics()
    wf = check_file(path, diagnostics=static)
    assert wf is not None
    sink = Diagnostics()
    check_live(wf, db_url, sink)
    assert sink.sorted() == []


def test_unreachable_server_is_one_clear_error() -> None:
    wf = check_file(SourceFile("x.df", "'SELECT 1'"), diagnostics=Diagnostics())
    assert wf is not None
    with pytest.raises(DfcError) as e:
        check_live(wf, "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", Diagnostics())
    assert e.value.message.startswith("cannot connect to the database")
    assert "\n" not in e.value.message
