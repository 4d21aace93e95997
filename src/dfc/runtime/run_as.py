"""SQL steps of an instance started by another role than the worker's: run through that role's
executors (`dfc.store.roles`), so that a step has the role's privileges and cannot leave it.

Round trips of a transactional step (the step, its checkpoint and the session reset commit
together, as for steps the worker runs directly: exactly once):

1. ``BEGIN; [SET LOCAL statement_timeout]; SELECT exec(s1); ... SELECT exec(s(n-1));
   [SET LOCAL ROLE role]``: the statements before the last one (split with `dfc.sqllex`) run
   through the role's ``exec`` executor; then, when the worker may, the session reads names as
   the role does for what follows. When the last statement surely returns no rows (DML
   without RETURNING, DDL, SET, DO), it runs here too, and 2-5 are skipped;
2. a protocol-level Parse and 3. Describe of the last statement (after the ones before it
   ran, so it may use what they created);
4. for user-defined column types only: their names, as the role reads them;
5. ``RESET ROLE; SELECT * FROM rows(<statement>) AS _r(c1 type1, ...)`` (or ``SELECT
   exec(<statement>)`` when it returns no rows);
6. the session reset, the checkpoint and ``COMMIT`` (`dfc.runtime.steps.commit`).

Values are read with the same loaders as a direct step's, from columns of the same types, so
results are the same JSON. An error keeps the server's message and SQLSTATE, with its position
mapped back into the step's text where the server gives one. An autocommit step runs its
statements through ``exec`` too, outside a transaction (at-least-once, as any autocommit
step); statements that PostgreSQL refuses inside a function (VACUUM, CREATE DATABASE) fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from dfc import sqllex
from dfc.json_types import JSON
from dfc.runtime import faults, steps
from dfc.runtime.state import NodeRecord, RunSql
from dfc.runtime.steps import Lease, Written
from dfc.runtime.values import rows_async, shaped
from dfc.store import roles
from dfc.store.db import RESET_SESSION, reads_text_as_opened
from dfc.store.inline import AConn, execute
from dfc.store.roles import DescribeError, RunAs


@dataclass(frozen=True, slots=True)
class _Statement:
    """One statement of a step: its text, where it starts in the step, how to wrap it."""

    text: str
    start: int
    wrapping: roles.Wrapping
    no_rows: bool  # surely returns no rows: no Describe needed


_DATA_MODIFYING = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})


def statements(sql: str) -> list[_Statement]:
    """The statements of a step's text, in order (comments and empty statements dropped)."""
    out = []
    for st in sqllex.split(sqllex.lex(sql)):
        first = st.first_word
        words = frozenset(t.upper for t in st.tokens if t.kind == "word")
        wrapping = roles.wrap(first, first == "WITH" and bool(words & _DATA_MODIFYING))
        no_rows = roles.returns_no_rows(first, words)
        out.append(_Statement(sql[st.start : st.end], st.start, wrapping, no_rows))
    return out


class _StepError(Exception):
    """A user error of the step, with where it is in the step's text."""

    def __init__(self, error: psycopg.Error, position: int | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.position = position


def _at(st: _Statement, offset: int, pos: int | None) -> int | None:
    """A server's 1-based position ``pos`` in a text where ``st`` begins at ``offset``, as a
    position in the step's text (None when it falls outside the statement)."""
    if pos is None:
        return None
    inside = pos - 1 - offset
    return st.start + inside + 1 if 0 <= inside <= len(st.text) else None


def _internal(error: psycopg.Error) -> int | None:
    pos = error.diag.internal_position
    return int(pos) if pos else None


def _in_executor(sts: list[_Statement]) -> Callable[[psycopg.Error], int | None]:
    """The position of an error raised by an executor running one of ``sts`` (the one whose
    text the server names as its internal query)."""

    def position(error: psycopg.Error) -> int | None:
        where = next((st for st in sts if st.text == error.diag.internal_query), None)
        return None if where is None else _at(where, 0, _internal(error))

    return position


async def _last_result(conn: AConn, sql: str) -> psycopg.AsyncCursor[Any]:
    """Run ``sql`` (several statements) and leave the cursor at its last result."""
    cur = await execute(conn, sql)
    while cur.nextset():
        pass
    return cur


async def _run(conn: AConn, role: RunAs, action: RunSql, sts: list[_Statement]) -> dict[str, JSON]:
    """Steps 1-5 of the module docstring; the last statement's result."""
    prelude = ["BEGIN"]
    if action.timeout_s is not None:
        prelude.append(f"SET LOCAL statement_timeout = {max(1, int(action.timeout_s * 1000))}")
    if not sts or sts[-1].no_rows:  # no Describe: every statement in this round trip
        prelude += [roles.exec_call(role, st.text) for st in sts]
        try:
            cur = await _last_result(conn, ";".join(prelude))
        except psycopg.Error as e:
            raise _StepError(e, _in_executor(sts)(e)) from e
        return shaped(None, None)
    prelude += [roles.exec_call(role, st.text) for st in sts[:-1]]
    if role.can_set_role:
        prelude.append(roles.set_role(role))
    try:
        await execute(conn, ";".join(prelude))
    except psycopg.Error as e:
        raise _StepError(e, _in_executor(sts)(e)) from e
    last = sts[-1]
    try:
        columns = await roles.describe(conn, last.text)
    except DescribeError as e:
        raise _StepError(e.error, _at(last, 0, steps.statement_position(e.error))) from e
    reset = "RESET ROLE;" if role.can_set_role else ""
    if columns is None:
        try:
            cur = await _last_result(conn, reset + roles.exec_call(role, last.text))
        except psycopg.Error as e:
            raise _StepError(e, _at(last, 0, _internal(e))) from e
        return shaped(None, None)
    try:
        types = await roles.type_names(conn, columns)
    except psycopg.Error as e:
        raise _StepError(e, None) from e
    call = roles.rows_call(role, last.text, types, last.wrapping)
    try:
        cur = await _last_result(conn, reset + call.sql)
        rows = await rows_async(cur)
    except psycopg.Error as e:
        raise _StepError(e, _at(last, call.offset, _internal(e))) from e
    return shaped([c.name for c in columns], rows)


async def run_sql(conn: AConn, lease: Lease, action: RunSql) -> Written:
    """Run a SQL step as ``lease.run_as`` and checkpoint its result or its failure (see the
    module docstring). Raises what `dfc.runtime.steps.run_sql` raises."""
    role = lease.run_as
    assert role is not None
    sts = statements(action.sql)
    if action.autocommit:
        return await steps.run_autocommit(
            conn, lease, action, lambda c, a: _autocommit(c, role, sts), _in_executor(sts)
        )
    started = time.perf_counter()
    try:
        try:
            result = await _run(conn, role, action, sts)
        except _StepError as e:
            if not steps.is_step_error(conn, e.error):
                raise e.error from e
            at = e.position
            return await _fail(conn, lease, action, e.error, started, lambda _: at)
        faults.fault("after_step_sql")
        if not reads_text_as_opened(conn):
            await execute(conn, RESET_SESSION)  # before the text that follows is read
        rec = NodeRecord(key=action.key, node_id=action.node_id, status="completed", result=result)
        seq, pokes = await steps.commit(conn, steps.checkpoint(lease, rec))
    except BaseException:
        await steps.rollback(conn)
        raise
    faults.fault("after_commit")
    return Written(steps.with_seq(rec, seq), pokes, (time.perf_counter() - started) * 1000)


async def _autocommit(conn: AConn, role: RunAs, sts: list[_Statement]) -> dict[str, JSON]:
    for st in sts:  # each its own transaction, as the statements of an autocommit step
        await execute(conn, roles.exec_call(role, st.text))
    return shaped(None, None)


async def _fail(
    conn: AConn,
    lease: Lease,
    action: RunSql,
    error: psycopg.Error,
    started: float,
    position: Callable[[psycopg.Error], int | None],
) -> Written:
    role = lease.run_as
    assert role is not None
    message = roles.no_executor_message(role.name) if roles.is_missing_executor(error) else None
    return await steps.fail(conn, lease, action, error, started, position, message)
