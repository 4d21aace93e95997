"""A step whose text the server cannot parse fails as the user's error, and the steps before it
commit once (found by the runtime fuzzer, issue 11). A query string that does not parse runs
none of its statements, so a chained or batched step that does not parse used to take the
previous step's checkpoint down with it, again and again."""

from __future__ import annotations

import psycopg
import pytest
from runtime_support import B, run

from dfc.runtime.batch import BatchSettings

pytestmark = pytest.mark.db


@pytest.mark.parametrize("batch", [BatchSettings(), None], ids=["batched", "single-step"])
def test_an_unparsable_step_fails_its_instance_and_the_step_before_runs_once(
    db_url: str, conn: psycopg.Connection, batch: BatchSettings | None
) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS up_log (n int)")
    conn.execute("TRUNCATE up_log")
    b = B("unparsable")
    plan = b.plan(b.then(b.sql("INSERT INTO up_log VALUES (1)"), b.sql("SELECT 1 +")))
    out = run(db_url, plan, timeout=30, batch=batch)
    assert out.status == "failed"
    assert isinstance(out.error, dict) and "syntax error" in str(out.error.get("message"))
    assert conn.execute("SELECT count(*) FROM up_log").fetchone() == (1,)
