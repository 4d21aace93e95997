"""The workflow registry: deployed plans, one row per (name, version) (SPEC §4, §6).

Deploying a plan whose hash equals the latest version's changes nothing; a new hash creates the
next version. Functions named ``*_txn`` run inside the caller's transaction; the others open
their own.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from dfc import rates
from dfc.diagnostics import DfcError
from dfc.json_types import canonical
from dfc.plan.model import FORMAT, Plan, PlanFormatError
from dfc.store import schedules
from dfc.store.codes import UNKNOWN_VERSION, UNKNOWN_WORKFLOW, UNREADABLE_PLAN

Conn = psycopg.Connection[TupleRow]

# Deploys of one workflow name are serialised by pg_advisory_xact_lock(_LOCK_SPACE,
# hashtext(name)); the first key keeps these locks apart from an application's own.
_LOCK_SPACE = int.from_bytes(b"dfcw", "big")  # fits an int4


@dataclass(frozen=True, slots=True)
class DeployResult:
    """The outcome of a deploy: ``created`` is False when the latest version had this hash."""

    name: str
    version: int
    hash: str
    created: bool


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One deployed version of a workflow (without its plan)."""

    name: str
    version: int
    hash: str
    dev: bool
    deployed_at: datetime
    deployed_by: str
    default: bool = False  # the version a start that names none runs (see `load_plan_txn`)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "hash": self.hash,
            "dev": self.dev,
            "deployed_at": self.deployed_at.isoformat(),
            "deployed_by": self.deployed_by,
            "default": self.default,
        }


# -- deploy ---------------------------------------------------------------------------------

_LOCK_NAME = "SELECT pg_advisory_xact_lock(%s::int4, hashtext(%s))"
_LATEST = """
SELECT version, hash, dev FROM dfc.workflows WHERE name = %s ORDER BY version DESC LIMIT 1
"""
_PROMOTE = "UPDATE dfc.workflows SET dev = false WHERE name = %s AND version = %s"
_INSERT = """
INSERT INTO dfc.workflows (name, version, hash, plan, source, dev)
VALUES (%s, %s, %s, %s, %s, %s)
"""


_WITH_HASH = """
SELECT version FROM dfc.workflows WHERE name = %s AND hash = %s ORDER BY version DESC LIMIT 1
"""


def deploy_txn(
    conn: Conn, plan: Plan, *, dev: bool = False, any_version: bool = False
) -> DeployResult:
    """Store ``plan`` as the next version of its workflow unless the latest has its hash (any
    version, with ``any_version``: graphs started from SQL under one label alternate).

    Runs in the caller's transaction, which must be at READ COMMITTED (PostgreSQL's default)
    for the per-name lock to order concurrent deploys. A non-dev deploy of a plan equal to a
    latest version made by ``dfc run`` keeps that version and clears its ``dev`` mark.
    """
    digest = plan.hash
    conn.execute(_LOCK_NAME, (_LOCK_SPACE, plan.name))
    if any_version:
        found = conn.execute(_WITH_HASH, (plan.name, digest)).fetchone()
        if found is not None:
            return DeployResult(plan.name, found[0], digest, created=False)
    row = conn.execute(_LATEST, (plan.name,)).fetchone()
    if row is not None and row[1] == digest:
        version, _, was_dev = row
        if was_dev and not dev:
            conn.execute(_PROMOTE, (plan.name, version))
            _follow_deploy(conn, plan, version)
        return DeployResult(plan.name, version, digest, created=False)
    version = 1 if row is None else row[0] + 1
    conn.execute(_INSERT, (plan.name, version, digest, _stored_json(plan), plan.source, dev))
    if not dev:  # `dfc run` tries a workflow out: it starts no schedule, sets no rate
        _follow_deploy(conn, plan, version)
    return DeployResult(plan.name, version, digest, created=True)


_SET_RATE = """
INSERT INTO dfc.flow_rates (workflow, spacing) VALUES (%s, make_interval(secs => %s))
ON CONFLICT (workflow) DO UPDATE SET spacing = excluded.spacing
"""
_DROP_RATE = "DELETE FROM dfc.flow_rates WHERE workflow = %s"


def _follow_deploy(conn: Conn, plan: Plan, version: int) -> None:
    """Make the schedule and the rate limit of ``plan``, deployed as ``version`` (the latest),
    the ones in force for its workflow (a plan without a rate limit removes it)."""
    schedules.follow_deploy_txn(conn, plan, version)
    limit = plan.options.get("rate_limit")
    spacing = rates.spacing(limit) if isinstance(limit, str) else None
    if spacing is None:
        conn.execute(_DROP_RATE, (plan.name,))
    else:
        conn.execute(_SET_RATE, (plan.name, spacing))


def deploy(conn: Conn, plan: Plan, *, dev: bool = False, any_version: bool = False) -> DeployResult:
    """`deploy_txn` in a transaction of its own (a savepoint inside the caller's)."""
    outermost = conn.info.transaction_status == TransactionStatus.IDLE
    with conn.transaction():
        if outermost:
            # The per-name lock orders deploys only if each reads after acquiring it.
            conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return deploy_txn(conn, plan, dev=dev, any_version=any_version)


def _stored_json(plan: Plan) -> Jsonb:
    # The source text lives in its own column; storing it in the jsonb as well would double
    # the size of every row for nothing.
    d = plan.to_json()
    d.pop("source", None)
    return Jsonb(d, dumps=canonical)


# -- reading --------------------------------------------------------------------------------

# The version a start that names none runs: the latest deployed one, else (only `dfc run` made
# some) the latest dev version. A dev version tries an edit out; it must not replace what was
# deployed for `dfc start`, schedules and the client.
_DEFAULT_FIRST = "ORDER BY dev, version DESC LIMIT 1"

_VERSIONS = f"""
SELECT name, version, hash, dev, deployed_at, deployed_by,
       version = (SELECT version FROM dfc.workflows WHERE name = %(name)s {_DEFAULT_FIRST})
FROM dfc.workflows WHERE name = %(name)s ORDER BY version
"""


def versions_txn(conn: Conn, name: str) -> list[VersionInfo]:
    """Every version of workflow ``name``, oldest first; empty when it was never deployed."""
    return [VersionInfo(*r) for r in conn.execute(_VERSIONS, {"name": name}).fetchall()]


def versions(conn: Conn, name: str) -> list[VersionInfo]:
    """`versions_txn` in a transaction of its own."""
    with conn.transaction():
        return versions_txn(conn, name)


_WORKFLOWS = """
SELECT DISTINCT ON (name) name, version, hash, dev, deployed_at, deployed_by
FROM dfc.workflows ORDER BY name, version DESC
"""


def workflows_txn(conn: Conn) -> list[VersionInfo]:
    """The latest version of every deployed workflow, by name."""
    return [VersionInfo(*r) for r in conn.execute(_WORKFLOWS).fetchall()]


def workflows(conn: Conn) -> list[VersionInfo]:
    """`workflows_txn` in a transaction of its own."""
    with conn.transaction():
        return workflows_txn(conn)


_LOAD_DEFAULT = f"SELECT version, plan, source FROM dfc.workflows WHERE name = %s {_DEFAULT_FIRST}"
_LOAD_VERSION = "SELECT version, plan, source FROM dfc.workflows WHERE name = %s AND version = %s"


def load_plan_txn(conn: Conn, name: str, version: int | None = None) -> tuple[int, Plan]:
    """The plan of ``name`` at ``version`` and that version's number. Without ``version``, the
    latest deployed version's, else (when `dfc run` made every version) the latest dev one's.

    Raises `DfcError` for an unknown workflow or version (saying which exist) and for a plan
    this dfc cannot read (an unknown plan format).
    """
    if version is None:
        row = conn.execute(_LOAD_DEFAULT, (name,)).fetchone()
    else:
        row = conn.execute(_LOAD_VERSION, (name, version)).fetchone()
    if row is None:
        raise _not_found(conn, name, version)
    found, data, source = row
    return found, _plan_from_row(name, found, data, source)


def load_plan(conn: Conn, name: str, version: int | None = None) -> tuple[int, Plan]:
    """`load_plan_txn` in a transaction of its own."""
    with conn.transaction():
        return load_plan_txn(conn, name, version)


async def find_plan(
    conn: psycopg.AsyncConnection[Any], name: str, version: int | None = None
) -> tuple[int, Plan] | None:
    """`load_plan_txn` for a worker: None for an unknown workflow or version (it raises
    `DfcError` only for a plan this dfc cannot read)."""
    if version is None:
        cur = await conn.execute(_LOAD_DEFAULT, (name,))
    else:
        cur = await conn.execute(_LOAD_VERSION, (name, version))
    row = await cur.fetchone()
    if row is None:
        return None
    found, data, source = row
    return found, _plan_from_row(name, found, data, source)


def _plan_from_row(name: str, version: int, data: dict[str, Any], source: str | None) -> Plan:
    data = dict(data)
    data["source"] = source or ""
    try:
        return Plan.from_json(data)
    except PlanFormatError as e:
        raise DfcError(
            f"workflow {name!r} version {version} cannot be read by this dfc: {e}",
            hint="upgrade dfc, or deploy the workflow again to store it in the current format",
            code=UNREADABLE_PLAN,
        ) from e


# -- upgrading stored plans ------------------------------------------------------------------

_OLDER_FORMATS = """
SELECT name, version, plan, source FROM dfc.workflows
WHERE plan -> 'format' IS DISTINCT FROM to_jsonb(%s::int)
ORDER BY name, version
"""
_REWRITE = "UPDATE dfc.workflows SET plan = %s, hash = %s WHERE name = %s AND version = %s"


def upgrade_plans_txn(conn: Conn) -> int:
    """Store every plan of an older format in the current one, with the hash the current rules
    give it, and return how many were rewritten (migration 0003; see "Formats" in
    `dfc.plan.model`). Node ids stay, so the instances of those versions run on as before.

    A plan this dfc cannot read is left as it is: running or loading it reports why, as before.
    """
    rewritten = 0
    for name, version, data, source in conn.execute(_OLDER_FORMATS, (FORMAT,)).fetchall():
        try:
            plan = _plan_from_row(name, version, data, source)
        except DfcError:
            continue
        conn.execute(_REWRITE, (_stored_json(plan), plan.hash, name, version))
        rewritten += 1
    return rewritten


_NAMES_LIKE = """
SELECT DISTINCT name FROM dfc.workflows ORDER BY name LIMIT 10
"""


def _not_found(conn: Conn, name: str, version: int | None) -> DfcError:
    existing = [v.version for v in versions_txn(conn, name)]
    if not existing:
        names = [r[0] for r in conn.execute(_NAMES_LIKE).fetchall()]
        hint = "deploy it with `dfc deploy FILE`"
        if names:
            hint += "; deployed workflows: " + ", ".join(names) + ("…" if len(names) == 10 else "")
        return DfcError(f"no workflow named {name!r} is deployed", hint=hint, code=UNKNOWN_WORKFLOW)
    return DfcError(
        f"workflow {name!r} has no version {version}",
        hint=f"it has {_describe_versions(existing)}",
        code=UNKNOWN_VERSION,
    )


def _describe_versions(nums: list[int]) -> str:
    """'version 1', 'versions 1–4', or 'versions 1, 2, 5'."""
    if len(nums) == 1:
        return f"version {nums[0]}"
    if nums == list(range(nums[0], nums[-1] + 1)):
        return f"versions {nums[0]}–{nums[-1]}"
    return "versions " + ", ".join(map(str, nums))


_PLAN_ROWS = """
SELECT name, version, plan, source FROM dfc.workflows
 WHERE (name, version) IN (SELECT * FROM unnest(%s::text[], %s::int[]))
"""


async def plan_rows(
    conn: psycopg.AsyncConnection[Any], keys: Collection[tuple[str, int]]
) -> list[tuple[str, int, dict[str, Any], str | None]]:
    """The stored plans of these (name, version) pairs as ``(name, version, plan json,
    source)`` rows, for a worker that reads them with `Plan.from_json` itself (an unreadable
    plan fails its instances rather than the worker)."""
    cur = await conn.execute(_PLAN_ROWS, ([k[0] for k in keys], [k[1] for k in keys]))
    return await cur.fetchall()
