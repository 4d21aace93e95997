"""PostgreSQL values as JSON and the SQL step result shape, against a real server (SPEC §5.2)."""

from __future__ import annotations

import asyncio
import json
import re
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


def test_arrays_of_user_types_are_json_arrays(cur: psycopg.Cursor[Any]) -> None:
    cur.execute(
        "CREATE TYPE feeling AS ENUM ('fine', 'not, \"so\" fine', '{x}');"
        "CREATE DOMAIN positive AS int CHECK (VALUE > 0);"
        "CREATE DOMAIN stamp AS timestamptz;"
        "CREATE DOMAIN still_positive AS positive;"
        "CREATE TYPE pair AS (n int, s text);"
        "CREATE TYPE box_list AS (b box)"  # box's elements are ;-delimited
    )
    assert one(cur, "ARRAY['fine', NULL, 'not, \"so\" fine', '{x}']::feeling[]") == [
        "fine",
        None,
        'not, "so" fine',
        "{x}",
    ]
    assert one(cur, "ARRAY[['fine'], ['{x}']]::feeling[]") == [["fine"], ["{x}"]]
    assert one(cur, "ARRAY[1, 2]::positive[]") == [1, 2]
    assert one(cur, "ARRAY[3]::still_positive[]") == [3]  # domains peeled to the int under them
    assert one(cur, "ARRAY['2024-01-01 00:00+00']::stamp[]") == ["2024-01-01T00:00:00+00:00"]
    assert one(cur, "ARRAY[ROW(1, 'a b')::pair, NULL]") == ['(1,"a b")', None]
    assert one(cur, "'{}'::feeling[]") == []
    assert one(cur, "ARRAY['(1,1),(0,0)'::box, '(2,2),(1,1)'::box]") == [
        "(1,1),(0,0)",
        "(2,2),(1,1)",
    ]
    # The types are known now: the next results load them at once, on a new cursor too.
    with cur.connection.cursor() as again:
        again.execute("SELECT ARRAY['fine']::feeling[] AS v, 'fine'::feeling AS w")
        assert sql_result(again)["rows"] == [{"v": ["fine"], "w": "fine"}]


def test_arrays_of_user_types_in_a_worker_step(db_url: str) -> None:
    async def go() -> list[dict[str, Any]]:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            configure_loaders(conn)
            await conn.execute("CREATE TYPE level AS ENUM ('low', 'high')")
            cur = conn.cursor()  # one cursor used again and again, as the worker's
            await cur.execute("SELECT 1 AS one; SELECT ARRAY['high', 'low']::level[] AS v")
            first = await sql_result_async(cur)
            await cur.execute("SELECT ARRAY['low']::level[] AS v")
            return [first, await sql_result_async(cur)]

    assert asyncio.run(go()) == [
        {"rows": [{"v": ["high", "low"]}], "row_count": 1},
        {"rows": [{"v": ["low"]}], "row_count": 1},
    ]


def test_time_zone_offsets_follow_the_session(cur: psycopg.Cursor[Any]) -> None:
    cur.execute("SET TIME ZONE 'Asia/Kolkata'")
    assert one(cur, "'2024-05-01 12:00:00+00'::timestamptz") == "2024-05-01T17:30:00+05:30"


def test_offsets_with_seconds_become_utc(cur: psycopg.Cursor[Any]) -> None:
    # New York kept local mean time (-04:56:02) until 1883: RFC 3339 has no seconds in an
    # offset, so the same instant is given in UTC.
    cur.execute("SET TIME ZONE 'America/New_York'")
    cur.execute("SELECT '1850-01-01 00:00:00'::timestamptz::text AS v")
    assert sql_result(cur)["rows"] == [{"v": "1850-01-01 00:00:00-04:56:02"}]
    assert one(cur, "'1850-01-01 00:00:00'::timestamptz") == "1850-01-01T04:56:02+00:00"
    assert one(cur, "'1850-12-31 23:59:59.25'::timestamptz") == "1851-01-01T04:56:01.25+00:00"
    assert one(cur, "ARRAY['1850-01-01 12:00'::timestamptz]") == ["1850-01-01T16:56:02+00:00"]
    # Whatever the server's time zone data says about Amsterdam before 1900 (it had local mean
    # time then), the value is PostgreSQL's own instant, in UTC.
    cur.execute("SET TIME ZONE 'Europe/Amsterdam'")
    cur.execute(
        "SELECT t::text AS local, to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') AS utc"
        " FROM (VALUES ('1850-01-01 00:00:00'::timestamptz)) AS v(t)"
    )
    ((local, utc),) = (tuple(r.values()) for r in sql_result(cur)["rows"])
    assert re.search(r"[+-]\d\d:\d\d:\d\d$", local), local  # an offset with seconds
    assert one(cur, "'1850-01-01 00:00:00'::timestamptz") == utc + "+00:00"


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
    cur.execute(
        "WITH d AS (DELETE FROM items WHERE id > 3 RETURNING 1) SELECT count(*) AS n FROM d"
    )
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
