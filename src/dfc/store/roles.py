"""The roles instances run as, and the statements that run a step as one (SPEC §7).

Every SQL step runs with the privileges of the role that started its instance
(``dfc.instances.created_by``). When that is the worker's own role the step simply runs on the
worker's session. Otherwise it runs through the role's *executors* (migration 0004,
``dfc.create_executor``, called by ``df.grant_usage``): ``dfc_run.rows_<oid>(q)``, a SECURITY
DEFINER function owned by the role that returns the rows of ``q`` (``SETOF record``, so the
caller gives the column definition list), and ``dfc_run.exec_<oid>(q)`` for statements without
rows (it returns the affected row count). PostgreSQL refuses ``SET ROLE``, ``RESET ROLE`` and
``SET SESSION AUTHORIZATION`` inside a SECURITY DEFINER function, also in the DO blocks and
functions it calls, so a step cannot leave its role.

The column definition list comes from a protocol-level Describe of the statement (`describe`):
names, type OIDs and modifiers. A domain's column is described as its base type, which
``RETURN QUERY`` refuses for a domain value, so `rows_call` casts each column of the statement
to the type it declares, where the statement can be wrapped for that (`wrap`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import psycopg
from psycopg import errors, generators
from psycopg.pq import ExecStatus

from dfc.sqlquote import quote_ident, quote_literal
from dfc.store.inline import AConn, execute

FIRST_USER_OID = 16384
"""PostgreSQL's FirstNormalObjectId: types below it are built in, their names never change."""


@dataclass(frozen=True, slots=True)
class RunAs:
    """A role that steps run as, other than the worker's own.

    ``oid`` is None when no role of that name exists (any more); ``executors`` says whether
    both of its executors exist; ``can_set_role`` whether the worker may ``SET ROLE`` to it,
    which lets it read a statement's names as the role does (its ``"$user"`` schema).
    """

    name: str
    oid: int | None
    executors: bool
    can_set_role: bool

    @property
    def rows_function(self) -> str:
        return f'dfc_run."rows_{self.oid}"'

    @property
    def exec_function(self) -> str:
        return f'dfc_run."exec_{self.oid}"'


_ROLES = """
SELECT r.rolname, r.oid::int8,
       (SELECT count(*) = 2 FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'dfc_run' AND p.proname IN ('rows_' || r.oid, 'exec_' || r.oid)),
       -- PostgreSQL 16 made SET ROLE an option of a membership of its own.
       pg_catalog.pg_has_role(r.oid, CASE WHEN current_setting('server_version_num')::int >= 160000
                                          THEN 'SET' ELSE 'MEMBER' END)
  FROM pg_catalog.pg_roles r WHERE r.rolname = ANY(%s)
"""


async def lookup(conn: AConn, names: Collection[str]) -> dict[str, RunAs]:
    """What the worker knows of these roles, by name (one round trip)."""
    rows = await (await conn.execute(_ROLES, (list(names),))).fetchall()
    found = {r[0]: RunAs(r[0], int(r[1]), bool(r[2]), bool(r[3])) for r in rows}
    return {n: found.get(n, RunAs(n, None, False, False)) for n in names}


async def current_role(conn: AConn) -> str:
    """The role the connection runs as."""
    row = await (await conn.execute("SELECT current_user")).fetchone()
    assert row is not None
    return str(row[0])


def set_role(role: RunAs) -> str:
    """The statement that reads what follows as ``role`` until `RESET ROLE`, within the
    transaction."""
    return f"SET LOCAL ROLE {quote_ident(role.name)}"


def exec_call(role: RunAs, statement: str) -> str:
    """Run a statement that returns no rows as ``role``; the result is its affected rows."""
    return f"SELECT {role.exec_function}({quote_literal(statement)})"


# -- the column definition list -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a statement's result as Describe reports it."""

    name: str
    type_oid: int
    type_mod: int


class DescribeError(Exception):
    """The server refused to parse the statement: ``error`` is why, as for any step."""

    def __init__(self, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.error = error


async def describe(conn: AConn, statement: str) -> list[Column] | None:
    """The columns ``statement`` returns (None when it returns no rows), from a protocol-level
    Parse and Describe of it on ``conn`` (inside the step's transaction, after the statements
    before it ran). Raises `DescribeError` when the server refuses to parse it."""
    pgconn = conn.pgconn
    encoding = conn.info.encoding
    async with conn.lock:
        pgconn.send_prepare(b"", statement.encode(encoding))
        (parsed,) = await conn.wait(generators.execute(pgconn))
        if parsed.status != ExecStatus.COMMAND_OK:
            raise DescribeError(errors.error_from_result(parsed, encoding=encoding))
        pgconn.send_describe_prepared(b"")
        (described,) = await conn.wait(generators.execute(pgconn))
    if described.status != ExecStatus.COMMAND_OK:
        raise DescribeError(errors.error_from_result(described, encoding=encoding))
    if described.nfields == 0:
        return None
    return [
        Column(
            (described.fname(i) or b"").decode(encoding),
            described.ftype(i),
            described.fmod(i),
        )
        for i in range(described.nfields)
    ]


_BUILT_IN_NAMES: dict[tuple[int, int], str] = {}


async def type_names(conn: AConn, columns: Sequence[Column]) -> list[str]:
    """The SQL names of the columns' types with their modifiers (``numeric(10,2)``, ``bit(8)``),
    as the session reads names now: run it as the role the names are for. Built-in types are
    looked up once per process."""
    keys = [(c.type_oid, c.type_mod) for c in columns]
    missing = sorted({k for k in keys if k not in _BUILT_IN_NAMES})
    names: dict[tuple[int, int], str] = dict(_BUILT_IN_NAMES)
    if missing:
        oids = ",".join(str(o) for o, _ in missing)
        mods = ",".join(str(m) for _, m in missing)
        cur = await execute(
            conn,
            f"SELECT pg_catalog.format_type(o, m) FROM unnest('{{{oids}}}'::oid[], "
            f"'{{{mods}}}'::int4[]) WITH ORDINALITY AS u(o, m, i) ORDER BY i",
        )
        for key, (name,) in zip(missing, await cur.fetchall(), strict=True):
            names[key] = name
            if key[0] < FIRST_USER_OID:
                _BUILT_IN_NAMES[key] = name
    return [names[k] for k in keys]


Wrapping = Literal["subquery", "cte", "none"]

_NO_ROWS = frozenset(
    [
        "ALTER",
        "ANALYZE",
        "CHECKPOINT",
        "CLUSTER",
        "COMMENT",
        "CREATE",
        "DISCARD",
        "DO",
        "DROP",
        "GRANT",
        "IMPORT",
        "LISTEN",
        "LOAD",
        "LOCK",
        "NOTIFY",
        "REASSIGN",
        "REFRESH",
        "REINDEX",
        "RESET",
        "REVOKE",
        "SECURITY",
        "SET",
        "TRUNCATE",
        "UNLISTEN",
        "VACUUM",
    ]
)
_DML = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})


def returns_no_rows(first_word: str, words: frozenset[str]) -> bool:
    """Whether a statement surely returns no rows (DML without RETURNING, DDL, SET, DO ...),
    from its first keyword and the words in it: it needs no Describe. When unsure, False."""
    return first_word in _NO_ROWS or (first_word in _DML and "RETURNING" not in words)


def wrap(first_word: str, has_data_modifying_cte: bool) -> Wrapping:
    """How a statement returning rows can be wrapped to cast its columns: a query (SELECT,
    VALUES, TABLE, a WITH query) as a subquery, an INSERT/UPDATE/DELETE ... RETURNING as a
    CTE; a WITH holding a data-modifying statement (which must stay at the top level), MERGE
    and utility statements (SHOW, EXPLAIN, CALL, FETCH) not at all."""
    if first_word in ("SELECT", "VALUES", "TABLE") or (
        first_word == "WITH" and not has_data_modifying_cte
    ):
        return "subquery"
    if first_word in ("INSERT", "UPDATE", "DELETE"):
        return "cte"
    return "none"


@dataclass(frozen=True, slots=True)
class RowsCall:
    """The statement that runs a query as a role, and where the query sits inside it (to map
    an error position inside the query back to the step's text)."""

    sql: str
    query: str
    offset: int  # where the user's statement starts in ``query``


def rows_call(role: RunAs, statement: str, types: Sequence[str], wrapping: Wrapping) -> RowsCall:
    """Run a statement returning rows as ``role``; its columns come back as ``c1``, ``c2``...
    (a column definition list cannot repeat a name; the caller knows the real ones)."""
    cols = [f"c{i}" for i in range(1, len(types) + 1)]
    casts = ", ".join(f"_t.{c}::{t}" for c, t in zip(cols, types, strict=True))
    if wrapping == "subquery":
        prefix, suffix = "SELECT " + casts + " FROM (", f") AS _t({', '.join(cols)})"
    elif wrapping == "cte":
        prefix, suffix = f"WITH _t({', '.join(cols)}) AS (", f") SELECT {casts} FROM _t"
    else:
        prefix, suffix = "", ""
    query = prefix + statement + suffix
    definition = ", ".join(f"{c} {t}" for c, t in zip(cols, types, strict=True))
    sql = f"SELECT * FROM {role.rows_function}({quote_literal(query)}) AS _r({definition})"
    return RowsCall(sql, query, len(prefix))


def is_missing_executor(error: psycopg.Error) -> bool:
    """Whether ``error`` says a role's executor does not exist (revoked while it ran)."""
    return error.sqlstate == "42883" and "dfc_run." in (error.diag.message_primary or "")


def no_executor_message(role: str) -> str:
    """Why an instance of a role without executors cannot run, and what to do."""
    return (
        f"role {role!r} started this instance but cannot run workflow steps: it has not been "
        f"granted the use of dfc; an administrator can grant it with "
        f"SELECT df.grant_usage({quote_literal(role)})"
    )


def no_role_message(role: str) -> str:
    """Why an instance whose role was dropped cannot run."""
    return f"role {role!r}, which started this instance, does not exist (any more)"
