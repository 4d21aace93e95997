"""Bad input to every function of the SQL surface (issue 11): NULLs and garbage in every
argument give one clear error - a documented SQLSTATE, a message that is one sentence of dfc's
or pg_durable's, never an internal error - or a documented answer, and an error writes nothing.

The functions are enumerated from pg_catalog (schema df, names without a leading underscore),
so a new function fails `test_every_function_has_base_arguments` until it is covered here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg.rows import TupleRow

Conn = psycopg.Connection[TupleRow]

# Arguments that work, by function (regprocedure text); INSTANCE / PENDING are replaced by the
# ids of a cancelled and a pending instance.
BASE: dict[str, list[str]] = {
    'df."as"(text,text)': ["'SELECT 1'", "'r'"],
    "df.as_op(text,text)": ["'SELECT 1'", "'r'"],
    "df.await_instance(text,integer)": ["INSTANCE", "5"],
    "df.break(text)": ["'{}'"],
    "df.cancel(text,text)": ["PENDING", "'why'"],
    "df.clearvars()": [],
    "df.explain(text)": ["INSTANCE"],
    "df.getvar(text)": ["'v'"],
    "df.grant_usage(text,boolean,boolean,boolean)": ["'badinput_role'", "false", "false", "false"],
    "df.http(text,text,text,jsonb,integer)": [
        "'https://example.com/x'",
        "'POST'",
        "'{}'",
        "'{}'::jsonb",
        "30",
    ],
    "df.http_multipart(text,text,jsonb,jsonb,integer)": [
        "'https://example.com/x'",
        "'POST'",
        "'[]'::jsonb",
        "'{}'::jsonb",
        "30",
    ],
    "df.if(text,text,text)": ["'SELECT true'", "'SELECT 1'", "'SELECT 2'"],
    "df.if_else_op(text,text)": ["df.if_then_op('SELECT true', 'SELECT 1')", "'SELECT 2'"],
    "df.if_rows(text,text,text)": ["'r'", "'SELECT 1'", "'SELECT 2'"],
    "df.if_then_op(text,text)": ["'SELECT true'", "'SELECT 1'"],
    "df.instance_info(text)": ["INSTANCE"],
    "df.instance_nodes(text)": ["INSTANCE"],
    "df.instance_nodes(text,integer)": ["INSTANCE", "1"],
    'df."join"(text,text)': ["'SELECT 1'", "'SELECT 2'"],
    'df."join"(text,text,text[])': ["'SELECT 1'", "'SELECT 2'", "VARIADIC ARRAY['SELECT 3']"],
    "df.join3(text,text,text)": ["'SELECT 1'", "'SELECT 2'", "'SELECT 3'"],
    "df.list_instances(text,integer)": ["'cancelled'", "10"],
    "df.list_instances(text,integer,text,text)": ["'cancelled'", "10", "NULL", "NULL"],
    "df.loop(text,text,boolean)": ["'SELECT 1'", "'SELECT false'", "false"],
    "df.loop_prefix_op(text)": ["'SELECT 1'"],
    "df.metrics()": [],
    "df.race(text,text)": ["'SELECT 1'", "'SELECT 2'"],
    "df.result(text)": ["INSTANCE"],
    "df.revoke_usage(text)": ["'badinput_role'"],
    "df.run(text)": ["INSTANCE"],
    "df.seq(text,text)": ["'SELECT 1'", "'SELECT 2'"],
    "df.setvar(text,text)": ["'v'", "'1'"],
    "df.signal(text,text,text)": ["PENDING", "'go'", "'{}'"],
    "df.sleep(bigint)": ["1"],
    "df.sql(text)": ["'SELECT 1'"],
    "df.start(text,text,text,text,integer,interval,text,text)": [
        "'SELECT 1'",
        "'l'",
        "NULL",
        "'caller'",
        "1",
        "'16 seconds'",
        "'fail'",
        "NULL",
    ],
    "df.status(text)": ["INSTANCE"],
    "df.target_database()": [],
    'df."then"(text,text)': ["'SELECT 1'", "'SELECT 2'"],
    "df.unsetvar(text)": ["'v'"],
    "df.version()": [],
    "df.wait_for_completion(text,integer)": ["INSTANCE", "5"],
    "df.wait_for_schedule(text)": ["'0 3 * * *'"],
    "df.wait_for_signal(text,integer)": ["'go'", "60"],
    "df.with_http_options(text,jsonb)": ["'SELECT 1'", "NULL"],
}

# Functions that write or wait: a NULL where they need a value must be an error (22004), never a
# NULL answer that did nothing. Arguments whose NULL means "the default" are listed as optional.
WRITES_OR_WAITS: dict[str, set[int]] = {
    "df.start(text,text,text,text,integer,interval,text,text)": {1, 2, 3, 6, 7},
    "df.signal(text,text,text)": set(),
    "df.cancel(text,text)": set(),
    "df.setvar(text,text)": set(),
    "df.unsetvar(text)": set(),
    "df.await_instance(text,integer)": set(),
    "df.wait_for_completion(text,integer)": set(),
    "df.grant_usage(text,boolean,boolean,boolean)": {1, 2, 3},
    "df.revoke_usage(text)": set(),
}

GARBAGE: dict[str, list[str]] = {
    "text": [
        "''",
        "'garbage'",
        """'{"node_type": "NOPE"}'""",
        """'{"node_type": "THEN"}'""",
        "'{'",
        "repeat('x', 100000)",
        "'0badf00d'",
        "E'\\x01\\t'",
    ],
    "integer": ["-1", "0", "2147483647"],
    "bigint": ["-1", "0", "9223372036854775807"],
    "jsonb": ["'[]'::jsonb", "'\"x\"'::jsonb", """'{"a": 1}'::jsonb""", "'null'::jsonb"],
    "interval": ["'-1 second'", "'0'", "'1000 years'"],
    "text[]": ["'{}'::text[]", "'{NULL}'::text[]"],
    "boolean": [],
}

# The SQLSTATEs bad input may give (docs/sql.md "Bad input"): invalid parameter value, NULL
# not allowed, no such instance, access denied / not found, unknown role or database, not
# supported by dfc. Anything else (internal error, syntax error, constraint violation, ...) is
# a bug.
DOCUMENTED = {"22023", "22004", "P0002", "42501", "42704", "3D000", "0A000"}
TABLES = ("instances", "queue", "history", "signals", "variables", "grants", "workflows")


def counts(conn: Conn) -> dict[str, int]:
    return {
        t: conn.execute(f"SELECT count(*) FROM dfc.{t}").fetchone()[0]  # type: ignore[index]
        for t in TABLES
    }


@dataclass(frozen=True)
class Function:
    signature: str
    types: list[str]
    setof: bool

    @property
    def name(self) -> str:
        return self.signature.split("(")[0]


def functions(conn: Conn) -> list[Function]:
    rows = conn.execute(
        """SELECT p.oid::regprocedure::text,
                  array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t), p.proretset
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'df' AND p.proname !~ '^_' ORDER BY 1"""
    ).fetchall()
    return [Function(sig, list(types), setof) for sig, types, setof in rows]


def test_every_function_has_base_arguments(conn: Conn) -> None:
    found = {f.signature for f in functions(conn)}
    assert not found - set(BASE), f"df functions without bad-input cases: {found - set(BASE)}"
    assert not set(BASE) - found, f"BASE names functions that do not exist: {set(BASE) - found}"


@pytest.fixture(scope="module")
def ids(db_url: str) -> Iterator[dict[str, str]]:
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("DROP ROLE IF EXISTS badinput_role")
        c.execute("CREATE ROLE badinput_role")
        done = c.execute("SELECT df.start('SELECT 1')").fetchone()[0]  # type: ignore[index]
        c.execute("SELECT df.cancel(%s)", (done,))
        pending = c.execute("SELECT df.start('SELECT 1')").fetchone()[0]  # type: ignore[index]
    yield {"INSTANCE": f"'{done}'", "PENDING": f"'{pending}'"}
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("SELECT df.revoke_usage('badinput_role')")
        c.execute("DROP OWNED BY badinput_role")
        c.execute("DROP ROLE badinput_role")


def call(conn: Conn, f: Function, args: list[str]) -> psycopg.Error | None:
    typed = [f"NULL::{t}" if a == "NULL" else a for a, t in zip(args, f.types, strict=True)]
    if f.types and f.types[-1] == "text[]" and not typed[-1].startswith("VARIADIC"):
        typed[-1] = f"VARIADIC {typed[-1]}"
    query = f"SELECT {'* FROM ' if f.setof else ''}{f.name}({', '.join(typed)})"
    try:
        conn.execute(query).fetchall()
    except psycopg.Error as e:
        return e
    return None


def cases(f: Function, base: list[str]) -> Iterator[tuple[str, list[str], int | None]]:
    """(description, arguments, the argument made NULL or None)."""
    if f.types:
        yield "all NULL", ["NULL"] * len(f.types), -1
    for i, t in enumerate(f.types):
        yield f"argument {i + 1} NULL", [*base[:i], "NULL", *base[i + 1 :]], i
        for g in GARBAGE[t]:
            yield f"argument {i + 1} = {g[:30]}", [*base[:i], g, *base[i + 1 :]], None


def check_error(e: psycopg.Error) -> str | None:
    """What is wrong with an error as an answer to bad input, or None."""
    d = e.diag
    message = d.message_primary or ""
    if d.sqlstate not in DOCUMENTED:
        return f"SQLSTATE {d.sqlstate} is not a documented answer to bad input: {message}"
    if "PL/pgSQL" in message or "line " in message or 'relation "' in message:
        return f"internal text in the message: {message}"
    if len(message) > 300:
        return f"a message of {len(message)} characters"
    return None


def test_null_and_garbage_in_every_argument(conn: Conn, ids: dict[str, str]) -> None:
    conn.execute("SET client_min_messages = error")
    failures: list[str] = []
    total = 0
    for f in functions(conn):
        base = [ids.get(a, a) for a in BASE[f.signature]]
        assert call(conn, f, base) is None, f"{f.signature} fails with its base arguments"
        optional = WRITES_OR_WAITS.get(f.signature)
        for what, args, null_at in cases(f, base):
            total += 1
            before = counts(conn)
            error = call(conn, f, args)
            where = f"{f.signature}, {what}"
            if error is None:
                needs = optional is not None and null_at is not None
                if needs and (null_at == -1 or null_at not in (optional or set())):
                    failures.append(f"{where}: returned without an error")
                continue
            problem = check_error(error)
            if problem:
                failures.append(f"{where}: {problem}")
            if counts(conn) != before:
                failures.append(f"{where}: failed, yet wrote rows")
    assert not failures, f"{len(failures)} of {total} cases:\n" + "\n".join(failures)
