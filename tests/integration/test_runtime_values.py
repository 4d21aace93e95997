"""PostgreSQL values as JSON and the SQL step result shape, against a real server (SPEC §5.2)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dfc.runtime.values import configure_loaders, sql_result, sql_result_async

pytestmark = pytest.mark.db


@pytest.fixture
def cur(db_url: str) -> Iterator[psycopg.Cursor[Any]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        configure_loaders(conn)
        conn.execute("SET TIME ZONE 'UTC'")
        with conn.cursor() as c:
            yield c


def one(cur: psycopg.Cursor[Any], expr: str) -> Any:
    cur.execute(f"SELECT {expr} AS v")
    result = sql_result(cur)
    assert result["row_count"] == 1
    return result["rows"][0]["v"]


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("true", True),
        ("false", False),
        ("1::int2", 1),
        ("(-2147483648)::int4", -2147483648),
        ("9223372036854775807::int8", 9223372036854775807),
        ("1.5::float4", 1.5),
        ("0.1::float8", 0.1),
        ("'NaN'::float8", None),
        ("'Infinity'::float8", None),
        ("'-Infinity'::float4", None),
        ("123456.78900000::numeric", "123456.78900000"),
        ("0.1::numeric(10, 4)", "0.1000"),
        ("'NaN'::numeric", "NaN"),
        ("99999999999999999999999999.1::numeric", "99999999999999999999999999.1"),
        ("'x'::text", "x"),
        ("'y'::varchar(3)", "y"),
        ("'z'::char(3)", "z  "),
        ("'a'::name", "a"),
        ("'00000000-0000-0000-0000-000000000001'::uuid", "00000000-0000-0000-0000-000000000001"),
        ("'2024-05-01 12:00:00+02'::timestamptz", "2024-05-01T10:00:00+00:00"),
        ("'2024-05-01 12:00:00.123456+00'::timestamptz", "2024-05-01T12:00:00.123456+00:00"),
        ("'infinity'::timestamptz", "infinity"),
        ("'2024-05-01 12:00:00.5'::timestamp", "2024-05-01T12:00:00.5"),
        ("'2024-05-01'::date", "2024-05-01"),
        ("""'{"a": [1, 2.5, null], "b": "s"}'::jsonb""", {"a": [1, 2.5, None], "b": "s"}),
        ("""'"text"'::json""", "text"),
        ("'null'::jsonb", None),
        ("'\\x0a1b'::bytea", "\\x0a1b"),
        ("ARRAY[1, NULL, 3]", [1, None, 3]),
        ("ARRAY[[1.5, 2], [3, 4]]::numeric[]", [["1.5", "2"], ["3", "4"]]),
        ("ARRAY['a b', 'c,d', NULL]::text[]", ["a b", "c,d", None]),
        ("ARRAY['2024-01-01 00:00+00']::timestamptz[]", ["2024-01-01T00:00:00+00:00"]),
        ("""ARRAY['{"k": 1}']::jsonb[]""", [{"k": 1}]),
        ("'{}'::int[]", []),
        ("'1 day 02:03:04'::interval", "1 day 02:03:04"),
        ("'10.1.2.3/8'::inet", "10.1.2.3/8"),
        ("int4range(1, 5)", "[1,5)"),
        ("'12:34:56'::time", "12:34:56"),
        ("5::oid", "5"),
        ("12.5::money", "$12.50"),
        ("ROW(1, 'a')", "(1,a)"),
        ("'(1,2)'::point", "(1,2)"),
        ("NULL::int", None),
    ],
)
def test_values(cur: psycopg.Cursor[Any], expr: str, value: Any) -> None:
    got = one(cur, expr)
    assert got == value and type(got) is type(value)
    json.dumps(got, allow_nan=False)  # always JSON


def test_user_types_come_back_as_text(cur: psycopg.Cursor[Any]) -> None:
    cur.execute(
        "CREATE TYPE mood AS ENUM ('ok', 'sad'); CREATE DOMAIN pos AS int CHECK (VALUE > 0)"
    )
    assert one(cur, "'sad'::mood") == "sad"
    assert one(cur, "3::pos") == 3  # a domain is reported as its base type


def test_time_zone_offsets_follow_the_session(cur: psycopg.Cursor[Any]) -> None:
    cur.execute("SET TIME ZONE 'Asia/Kolkata'")
    assert one(cur, "'2024-05-01 12:00:00+00'::timestamptz") == "2024-05-01T17:30:00+05:30"


def test_result_shape_keeps_row_and_column_order(cur: psycopg.Cursor[Any]) -> None:
    cur.execute("SELECT * FROM (VALUES (2, 'b'), (1, 'a'), (3, NULL)) AS t(z, a)")
    result = sql_result(cur)
    assert result == {
        "rows": [{"z": 2, "a": "b"}, {"z": 1, "a": "a"}, {"z": 3, "a": None}],
        "row_count": 3,
    }
    assert [list(r) for r in result["rows"]] == [["z", "a"]] * 3


def test_duplicate_column_names_keep_the_last_value(cur: psycopg.Cursor[Any]) -> None:
    cur.execute("SELECT 1 AS a, 2 AS b, 3 AS a")
    assert sql_result(cur) == {"rows": [{"a": 3, "b": 2}], "row_count": 1}


def test_row_count_counts_the_rows_returned(cur: psycopg.Cursor[Any]) -> None:
    # pg_durable's shape: DML without RETURNING returns no rows, whatever it affected.
    cur.execute("CREATE TABLE items (id int)")
    assert sql_result(cur) == {"rows": [], "row_count": 0}
    cur.execute("INSERT INTO items SELECT generate_series(1, 3)")
    assert sql_result(cur) == {"rows": [], "row_count": 0}
    cur.execute("UPDATE items SET id = id + 1 WHERE id > 1")
    assert sql_result(cur) == {"rows": [], "row_count": 0}
    cur.execute("UPDATE items SET id = id + 1 WHERE id > 2 RETURNING id")
    assert sql_result(cur) == {"rows": [{"id": 4}, {"id": 5}], "row_count": 2}
    cur.execute("WITH d AS (DELETE FROM items WHERE id > 3 RETURNING 1) SELECT count(*) AS n FROM d")
    assert sql_result(cur) == {"rows": [{"n": 2}], "row_count": 1}
    cur.execute("SELECT * FROM items WHERE false")
    assert sql_result(cur) == {"rows": [], "row_count": 0}
    cur.execute("DELETE FROM items WHERE id = 1 RETURNING id")
    assert sql_result(cur) == {"rows": [{"id": 1}], "row_count": 1}


def test_several_statements_give_the_last_result(cur: psycopg.Cursor[Any]) -> None:
    cur.execute(
        "CREATE TEMP TABLE t (x int); INSERT INTO t VALUES (1), (2); SELECT sum(x) AS s FROM t"
    )
    assert sql_result(cur) == {"rows": [{"s": 3}], "row_count": 1}
    cur.execute("SELECT 1; UPDATE t SET x = 0")
    assert sql_result(cur) == {"rows": [], "row_count": 0}


def test_async(db_url: str) -> None:
    async def go() -> dict[str, Any]:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            configure_loaders(conn)
            cur = await conn.execute("SELECT 1.50::numeric AS n, now()::date = current_date AS d")
            return await sql_result_async(cur)

    assert asyncio.run(go()) == {"rows": [{"n": "1.50", "d": True}], "row_count": 1}


def test_binary_cursors_are_refused(db_url: str) -> None:
    with psycopg.connect(db_url) as conn, conn.cursor(binary=True) as c:
        configure_loaders(conn)
        c.execute("SELECT 1")
        with pytest.raises(ValueError, match="text-format"):
            sql_result(c)
