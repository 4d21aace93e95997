"""A failure compensates completed steps of earlier loop iterations too (SPEC §5.8; found by
the runtime fuzzer: the walk started at the newest iteration and never saw the older undos)."""

from __future__ import annotations

import psycopg
import pytest
from runtime_support import run

from dfc.compiler import compile_source
from dfc.source import SourceFile

pytestmark = pytest.mark.db

FLOW = """
(
    @> (
        'SELECT nextval(''lc_tick'') >= 3 AS stop'
        ?> df.break()
        !> ('INSERT INTO lc_log VALUES (''do'')' <-> 'INSERT INTO lc_log VALUES (''undo'')')
    )
)
~> 'SELECT 1 / 0';
"""


def test_undos_of_earlier_iterations_run_when_the_instance_fails(
    db_url: str, conn: psycopg.Connection
) -> None:
    conn.execute("CREATE SEQUENCE lc_tick; CREATE TABLE lc_log (what text)")
    comp = compile_source(SourceFile("loop_undo.df", FLOW))
    assert comp.plan is not None, [d.message for d in comp.sorted_diagnostics]
    out = run(db_url, comp.plan)
    assert out.status == "failed" and out.compensated
    rows = conn.execute("SELECT what, count(*) FROM lc_log GROUP BY what ORDER BY what")
    assert rows.fetchall() == [("do", 2), ("undo", 2)]
