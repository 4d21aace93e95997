"""Which database dfc talks to, and opening connections to it.

Resolution order: an explicit ``--db URL`` > the ``DFC_DATABASE_URL`` environment variable >
the embedded server (started on demand). ``embedded`` as a value of either means the embedded
server explicitly. The embedded server's data directory is ``--data-dir`` > ``DFC_DATA_DIR`` >
`dfc.store.embedded.default_data_dir`.

Connection failures become one-sentence `DfcError`s that show the URL with its password masked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from dfc.diagnostics import DfcError
from dfc.store.codes import CONNECT_FAILED
from dfc.store.embedded import EmbeddedServer
from dfc.store.migrations import ensure_schema

ENV_DATABASE_URL = "DFC_DATABASE_URL"
ENV_DATA_DIR = "DFC_DATA_DIR"
EMBEDDED = "embedded"
"""The ``--db`` value that names the embedded server explicitly."""

APPLICATION_NAME = "dfc"
CONNECT_TIMEOUT = 10
"""Seconds before giving up on an unreachable host (libpq waits forever by default)."""


def embedded_server(data_dir: str | Path | None = None) -> EmbeddedServer:
    """The embedded server of ``data_dir``, else of ``DFC_DATA_DIR``, else the default one."""
    chosen = data_dir or os.environ.get(ENV_DATA_DIR) or None
    return EmbeddedServer(chosen)


def is_embedded(db: str | None = None) -> bool:
    """Whether `resolve_url` with this ``--db`` value would use the embedded server."""
    return _choice(db) == EMBEDDED


def resolve_url(db: str | None = None, *, data_dir: str | Path | None = None) -> str:
    """The URL to connect to: ``db`` > ``DFC_DATABASE_URL`` > the embedded server.

    Starts the embedded server when it is the choice and is not running.
    """
    choice = _choice(db)
    if choice == EMBEDDED:
        return embedded_server(data_dir).url()
    return choice


def _choice(db: str | None) -> str:
    for value in (db, os.environ.get(ENV_DATABASE_URL)):
        if value is not None and value.strip():
            value = value.strip()
            return EMBEDDED if value.lower() == EMBEDDED else value
    return EMBEDDED


def connect_kwargs(url: str) -> dict[str, Any]:
    """Connection parameters dfc adds to a URL (for psycopg_pool's ``kwargs`` as well).

    ``application_name`` (so ``pg_stat_activity`` shows dfc's sessions) and a connect timeout,
    each only when the URL does not set it itself.

    Raises `DfcError` when ``url`` is not a valid connection string.
    """
    try:
        given = conninfo_to_dict(url)
    except psycopg.ProgrammingError as e:
        raise DfcError(
            f"{mask_url(url)!r} is not a valid PostgreSQL URL: {_reason(str(e))}",
            hint="write it as postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
            code=CONNECT_FAILED,
        ) from e
    extra: dict[str, Any] = {}
    if "application_name" not in given:
        extra["application_name"] = APPLICATION_NAME
    if "connect_timeout" not in given and "PGCONNECT_TIMEOUT" not in os.environ:
        extra["connect_timeout"] = CONNECT_TIMEOUT
    return extra


# -- worker sessions ----------------------------------------------------------------------------

_WORKER_SESSION = {"standard_conforming_strings": "on", "client_encoding": "UTF8"}
"""Settings a worker's session starts with, which `RESET_SESSION` returns to: standard strings
(the statements the worker writes are plain text) and UTF-8 (the text psycopg sends)."""

_REPORTED = tuple((k.encode(), v.encode()) for k, v in _WORKER_SESSION.items())

IN_WORKFLOW = "dfc.in_workflow"
"""A setting that is ``on`` in every worker session (a startup option, so `RESET_SESSION`
keeps it): the SQL surface's ``df.setvar``, ``df.await_instance`` and ``df.start(...,
transaction_mode => 'new')`` refuse to run inside a workflow step by looking at it."""

RESET_SETTINGS = "RESET SESSION AUTHORIZATION;RESET ROLE;RESET ALL"
"""`RESET_SESSION` without ``DISCARD TEMP``: for connections that only ever run steps of the
worker's own role (the batch lanes), where a temporary table can reach no other role, and
``DISCARD TEMP`` would cost about a tenth of the throughput (measured: 2,487–2,693 against
2,927–3,040 steps/s at concurrency 32, 20 µs of server CPU per step)."""

RESET_SESSION = RESET_SETTINGS + ";DISCARD TEMP"
"""Statements that give a session back its opening settings after a user's step: ``RESET ALL``
leaves the role and the session authorization alone (PostgreSQL exempts both), so they are
reset first. ``DISCARD TEMP`` drops the step's temporary tables: they are found before any
schema on the search path (types too), so one left behind would stand in for the tables and
types of later steps on the connection, of other roles (a temporary table with a trigger runs
its owner's function with their privileges) and of the worker's own statements. Transactional:
inside a transaction, a rollback undoes the reset too."""


def worker_kwargs(url: str) -> dict[str, Any]:
    """`connect_kwargs` plus what the worker's connections need: autocommit, the settings
    `RESET_SESSION` returns to, and `IN_WORKFLOW`."""
    kwargs = connect_kwargs(url)
    kwargs["autocommit"] = True
    kwargs["client_encoding"] = _WORKER_SESSION["client_encoding"]
    kwargs["options"] = (
        f"-c standard_conforming_strings={_WORKER_SESSION['standard_conforming_strings']}"
        f" -c {IN_WORKFLOW}=on"
    )
    return kwargs


def reads_text_as_opened(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether the server still reads query text as when the session was opened.

    A simple-protocol query is decoded and lexed as a whole before its first statement runs, so
    a ``RESET_SESSION`` at its start comes too late for the rest of that text when a step
    changed ``client_encoding`` or ``standard_conforming_strings``. The server reports both
    (no round trip needed to look).
    """
    status = conn.pgconn.parameter_status
    return all(status(name) == value for name, value in _REPORTED)


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[TupleRow]:
    """Open a connection, or raise a `DfcError` that says why not (password masked).

    Connections are in autocommit mode by default: store functions open their transactions
    explicitly (``with conn.transaction()``), so no session sits idle in a transaction.
    """
    kwargs = connect_kwargs(url)
    try:
        return psycopg.connect(url, autocommit=autocommit, **kwargs)
    except psycopg.Error as e:
        raise connection_error(url, e) from e


async def connect_async(url: str, *, autocommit: bool = True) -> psycopg.AsyncConnection[TupleRow]:
    """`connect` for asyncio code."""
    kwargs = connect_kwargs(url)
    try:
        return await psycopg.AsyncConnection.connect(url, autocommit=autocommit, **kwargs)
    except psycopg.Error as e:
        raise connection_error(url, e) from e


def open_database(
    db: str | None = None, *, data_dir: str | Path | None = None, migrate: bool = True
) -> psycopg.Connection[TupleRow]:
    """Resolve, connect, and bring the ``dfc`` schema up to date: what every command needs.

    The caller closes the connection (``with open_database(db) as conn: ...``).
    """
    url = resolve_url(db, data_dir=data_dir)
    try:
        conn = connect(url)
    except DfcError as e:
        if is_embedded(db):
            e.hint = "run `dfc db status` to see the embedded server's state and its log"
        raise
    if migrate:
        try:
            ensure_schema(conn)
        except BaseException:
            conn.close()
            raise
    return conn


def connection_error(url: str, error: psycopg.Error) -> DfcError:
    """The `DfcError` for a failed connection attempt to ``url``."""
    return DfcError(
        f"cannot connect to the database at {mask_url(url)}: {_reason(str(error))}",
        hint="check that the server is running and the URL is right (--db or "
        f"{ENV_DATABASE_URL}); leave both unset to use the embedded PostgreSQL",
        code=CONNECT_FAILED,
    )


_SERVER_PREFIX = re.compile(r"^connection to server (?:at|on) .*? failed: ")


def _reason(message: str) -> str:
    """The server's or network's reason from a libpq error, as one short clause."""
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    if not lines:
        return "unknown error"
    first = lines[0].removeprefix("connection failed: ")
    first = _SERVER_PREFIX.sub("", first)
    first = re.sub(r"^(?:FATAL|ERROR):\s+", "", first)
    return first.rstrip(".") or "unknown error"


_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")
_URL_USERINFO = re.compile(r"^(postgres(?:ql)?://)([^@/?#]*)@")
_URL_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&#]*")


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (URL or ``key=value`` form).

    Everything else is kept verbatim, so the masked URL still shows which server was meant.
    """
    if not re.match(r"^postgres(?:ql)?://", url):
        return _KV_PASSWORD.sub(r"\1***", url)

    def userinfo(m: re.Match[str]) -> str:
        user, colon, _password = m.group(2).partition(":")
        return f"{m.group(1)}{user}:***@" if colon else m.group(0)

    return _URL_PASSWORD_PARAM.sub(r"\1***", _URL_USERINFO.sub(userinfo, url, count=1))
