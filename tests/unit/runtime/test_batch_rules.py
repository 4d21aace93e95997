"""Which steps may run in a batch with other instances' steps (`dfc.runtime.batch.batchable`)."""

from __future__ import annotations

import pytest

from dfc.runtime.batch import batchable


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("SELECT 1", 1),
        ("UPDATE t SET v = v + 1 WHERE id = $id", 1),
        ("INSERT INTO t VALUES (1); SELECT count(*) FROM t;", 2),
        ("WITH d AS (DELETE FROM t RETURNING 1) SELECT count(*) FROM d", 1),
        ("(SELECT 1) UNION (SELECT 2)", 1),
        ("SELECT 1 -- a comment; COMMIT", 1),
        ("SELECT 'a;b'; VALUES (1); TABLE t", 3),
        ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", 1),
    ],
)
def test_data_statements_batch(query: str, count: int) -> None:
    assert batchable(query) == count


@pytest.mark.parametrize(
    "query",
    [
        "COMMIT",
        "INSERT INTO t VALUES (1); COMMIT",
        "ROLLBACK",
        "SAVEPOINT a; SELECT 1; RELEASE a",
        "CALL p()",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SELECT 1",
        "SET search_path = x",
        "LOCK TABLE t",
        "CREATE TABLE x (a int)",
        "DO $$ BEGIN PERFORM 1; END $$",
        "VACUUM t",
        "DEALLOCATE ALL",
        "",
        "-- only a comment",
    ],
)
def test_anything_else_runs_alone(query: str) -> None:
    assert batchable(query) is None
