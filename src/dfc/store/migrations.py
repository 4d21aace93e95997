"""Versioned schema migrations of the ``dfc`` schema (SPEC §6).

A migration is a file ``migrations/NNNN_name.sql`` shipped inside the package; adding a file is
all it takes to add one (a data change that needs dfc's own code, such as rewriting the stored
plans, is also a function named in ``_THEN_RUN``, run right after its file). Each is applied in
its own transaction together with its row in ``dfc.schema_migrations``, under a
transaction-level advisory lock, so any number of processes may race to migrate a fresh
database: one applies each migration, the others wait and find it applied. Every command that
needs the database calls `ensure_schema`, which costs one query when the schema is current;
``dfc db migrate`` calls `migrate`.

Migrations are applied by the set of versions missing from the database, in version order, so
two migrations written on parallel branches both apply after a merge. A database holding a
version this dfc does not know was migrated by a newer dfc, and is refused.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import psycopg
from psycopg import errors
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow

from dfc.diagnostics import DfcError
from dfc.store.codes import MIGRATION_FAILED, SCHEMA_TOO_NEW
from dfc.store.registry import upgrade_plans_txn

_FILENAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

# One fixed key ("dfc_migr" as an int8) serialises migrations per database; the two-int4 key
# space used by the registry's per-workflow locks is separate from the int8 one.
_LOCK_KEY = int.from_bytes(b"dfc_migr", "big")

Conn = psycopg.Connection[TupleRow]


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: ``version`` from its number, ``name`` is the file stem."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """sha256 of the file text, recorded when applied, to notice later edits."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    """A row of ``dfc.schema_migrations``."""

    version: int
    name: str
    checksum: str
    applied_at: datetime


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where a database's schema stands relative to the migrations this dfc ships."""

    applied: tuple[AppliedMigration, ...]
    pending: tuple[Migration, ...]
    unknown: tuple[AppliedMigration, ...]  # applied by a newer dfc
    modified: tuple[AppliedMigration, ...]  # applied, but the file has changed since

    @property
    def version(self) -> int:
        """The highest applied version (0 for a database without the schema)."""
        return max((m.version for m in self.applied), default=0)

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.unknown

    def to_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "up_to_date": self.up_to_date,
            "applied": [
                {"version": m.version, "name": m.name, "applied_at": m.applied_at.isoformat()}
                for m in self.applied
            ],
            "pending": [{"version": m.version, "name": m.name} for m in self.pending],
            "unknown": [{"version": m.version, "name": m.name} for m in self.unknown],
            "modified": [{"version": m.version, "name": m.name} for m in self.modified],
        }


# -- discovery ------------------------------------------------------------------------------


def load_migrations(directory: Traversable | Path) -> tuple[Migration, ...]:
    """The migrations in ``directory``, in version order.

    A ``.sql`` file whose name does not match ``NNNN_name.sql``, or two files with one number,
    is a packaging bug and raises `ValueError` rather than being skipped.
    """
    found: dict[int, Migration] = {}
    for entry in directory.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        m = _FILENAME.match(entry.name)
        if m is None:
            raise ValueError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        version = int(m["version"])
        if version in found:
            raise ValueError(f"two migration files have number {version:04d}")
        found[version] = Migration(
            version, entry.name.removesuffix(".sql"), entry.read_text("utf-8")
        )
    return tuple(found[v] for v in sorted(found))


@cache
def available() -> tuple[Migration, ...]:
    """The migrations shipped with this dfc (package data ``dfc/store/migrations/*.sql``)."""
    return load_migrations(files("dfc.store") / "migrations")


# -- reading the database's state -----------------------------------------------------------

_APPLIED_VERSIONS = (
    "SELECT coalesce(array_agg(version ORDER BY version), '{}') FROM dfc.schema_migrations"
)


def applied_versions(conn: Conn) -> list[int] | None:
    """The versions applied to this database, or None when it has no dfc schema yet.

    One round trip on an idle connection; inside a transaction it uses a savepoint so that a
    missing table does not abort the caller's transaction.
    """
    status = conn.info.transaction_status
    try:
        if status == TransactionStatus.IDLE:
            was = conn.autocommit
            conn.autocommit = True  # a bare query, not BEGIN/query/COMMIT
            try:
                row = conn.execute(_APPLIED_VERSIONS).fetchone()
            finally:
                conn.autocommit = was
        else:
            with conn.transaction():
                row = conn.execute(_APPLIED_VERSIONS).fetchone()
    except errors.UndefinedTable:
        return None
    assert row is not None
    return list(row[0])


_APPLIED_ROWS = """
SELECT version, name, checksum, applied_at FROM dfc.schema_migrations ORDER BY version
"""


def schema_status(conn: Conn, migrations: Sequence[Migration] | None = None) -> SchemaStatus:
    """Applied, pending, unknown and modified migrations of the database ``conn`` is on."""
    migrations = available() if migrations is None else migrations
    if applied_versions(conn) is None:
        return SchemaStatus(applied=(), pending=tuple(migrations), unknown=(), modified=())
    with conn.transaction():
        rows = [AppliedMigration(*r) for r in conn.execute(_APPLIED_ROWS).fetchall()]
    known = {m.version: m for m in migrations}
    done = {a.version for a in rows}
    return SchemaStatus(
        applied=tuple(rows),
        pending=tuple(m for m in migrations if m.version not in done),
        unknown=tuple(a for a in rows if a.version not in known),
        modified=tuple(
            a for a in rows if a.version in known and known[a.version].checksum != a.checksum
        ),
    )


# -- applying -------------------------------------------------------------------------------


def ensure_schema(conn: Conn, migrations: Sequence[Migration] | None = None) -> list[Migration]:
    """Bring the schema up to date; one query when it already is. Returns what was applied.

    Raises `DfcError` when the database was migrated by a newer dfc, or a migration fails.
    The connection must not be inside a transaction when migrations are pending.
    """
    migrations = available() if migrations is None else migrations
    applied = set(applied_versions(conn) or ())
    _refuse_unknown(applied, migrations)
    if all(m.version in applied for m in migrations):
        return []
    return migrate(conn, migrations)


_LOCK = "SELECT pg_advisory_xact_lock(%s::int8)"
_HAS_TABLE = "SELECT to_regclass('dfc.schema_migrations') IS NOT NULL"
_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS dfc;
CREATE TABLE dfc.schema_migrations (
    version    int         PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    applied_by text        NOT NULL DEFAULT current_user
);
COMMENT ON TABLE dfc.schema_migrations IS 'Schema migrations applied by dfc (dfc db status).';
"""
_RECORD = "INSERT INTO dfc.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"
# What df.version() reports (migration 0005): the dfc that last brought the schema up to date.
_RECORD_VERSION = """
INSERT INTO dfc.settings (key, value) VALUES ('dfc_version', to_jsonb(%s::text))
ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""

# Data changes that need dfc's own code, by migration: each runs right after its file's SQL, in
# the same transaction, so both commit or neither does.
_THEN_RUN: Mapping[str, Callable[[Conn], object]] = {"0003_typed_plans": upgrade_plans_txn}


def migrate(conn: Conn, migrations: Sequence[Migration] | None = None) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; returns those applied.

    Safe to run from several processes at once. The connection must be idle (not inside a
    transaction), since each migration commits on its own.
    """
    migrations = available() if migrations is None else migrations
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise RuntimeError("migrate() needs a connection that is not inside a transaction")
    done: list[Migration] = []
    while True:
        step: Migration | None = None
        try:
            with conn.transaction():
                # A later snapshot than the lock wait: see what the lock holder committed,
                # whatever the session's default isolation level.
                conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                conn.execute(_LOCK, (_LOCK_KEY,))
                row = conn.execute(_HAS_TABLE).fetchone()
                if row is None or not row[0]:
                    conn.execute(_BOOTSTRAP)
                    applied: set[int] = set()
                else:
                    versions = conn.execute(_APPLIED_VERSIONS).fetchone()
                    applied = set(versions[0]) if versions else set()
                _refuse_unknown(applied, migrations)
                todo = [m for m in migrations if m.version not in applied]
                if not todo:
                    _record_version(conn)
                    return done
                step = todo[0]
                conn.execute(step.sql.encode())  # bytes: the file's % signs are not placeholders
                then_run = _THEN_RUN.get(step.name)
                if then_run is not None:
                    then_run(conn)
                conn.execute(_RECORD, (step.version, step.name, step.checksum))
        except psycopg.Error as e:
            raise _migration_error(conn, e, step) from e
        assert step is not None
        done.append(step)


def _record_version(conn: Conn) -> None:
    row = conn.execute("SELECT to_regclass('dfc.settings') IS NOT NULL").fetchone()
    if row is not None and row[0]:  # not so for a test's own migrations
        conn.execute(_RECORD_VERSION, (importlib.metadata.version("dfc"),))


def _refuse_unknown(applied: set[int], migrations: Sequence[Migration]) -> None:
    unknown = applied - {m.version for m in migrations}
    if unknown:
        latest = max((m.version for m in migrations), default=0)
        raise DfcError(
            f"this database's dfc schema is at version {max(applied)}, which is newer than this "
            f"dfc knows (version {latest})",
            hint="upgrade dfc to the version that migrated this database, or newer",
            code=SCHEMA_TOO_NEW,
        )


def _migration_error(conn: Conn, error: psycopg.Error, step: Migration | None) -> DfcError:
    what = "preparing the dfc schema" if step is None else f"migration {step.name}"
    message = (error.diag.message_primary or str(error)).strip().splitlines()[0]
    hint = "the migration was rolled back; fix the cause and run `dfc db migrate` again"
    if isinstance(error, errors.InsufficientPrivilege):
        hint = (
            f"connect once as a role that may create the dfc schema (user {conn.info.user!r} "
            "may not), e.g. the database owner, and run `dfc db migrate`"
        )
    return DfcError(f"{what} failed: {message}", hint=hint, code=MIGRATION_FAILED)
