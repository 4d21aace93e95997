"""The storage layer: the embedded PostgreSQL, connections, migrations and every statement
about dfc's tables.

Besides `dfc.runtime` and the client, this is the only package that imports psycopg (the
import contracts in pyproject.toml say so). The names below are the public API; the modules
behind them are:

- `dfc.store.db`: which database (``--db`` > ``DFC_DATABASE_URL`` > embedded), connecting, and
  the worker's session settings;
- `dfc.store.embedded`: dfc's own PostgreSQL server (``dfc db start/stop/status/url``);
- `dfc.store.migrations`: the versioned ``dfc`` schema (``migrations/NNNN_name.sql``);
- `dfc.store.registry`: deployed workflow versions and their plans;
- `dfc.store.retention`: ``dfc.settings`` and purging finished instances;
- `dfc.store.instances`: instances and their event log;
- `dfc.store.queue`: the work queue, its leases and the workers;
- `dfc.store.node_state`: node records (the checkpoints);
- `dfc.store.signals`: signals buffered for instances;
- `dfc.store.inline`: statements sent as text with inlined literals (the worker's hot path).

The last five serve the runtime and are used as modules rather than through the names below.
Functions named ``*_txn`` run inside the caller's transaction; the others open their own, except
the asynchronous ones and the statement builders (``*_sql``), which the worker composes into
its own transactions.
Names are imported on first use, so that importing `dfc.store.codes` (as `dfc.codes` does)
does not load psycopg.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dfc.store.db import (
        EMBEDDED,
        ENV_DATA_DIR,
        ENV_DATABASE_URL,
        connect,
        connect_async,
        connect_kwargs,
        embedded_server,
        is_embedded,
        mask_url,
        open_database,
        resolve_url,
    )
    from dfc.store.embedded import EmbeddedServer, ServerStatus, default_data_dir
    from dfc.store.migrations import (
        Migration,
        SchemaStatus,
        available,
        ensure_schema,
        migrate,
        schema_status,
    )
    from dfc.store.registry import (
        DeployResult,
        VersionInfo,
        deploy,
        deploy_txn,
        load_plan,
        load_plan_txn,
        versions,
        versions_txn,
        workflows,
        workflows_txn,
    )
    from dfc.store.retention import get_setting, purge_finished, set_setting

_LAZY = {
    "DeployResult": "dfc.store.registry",
    "EMBEDDED": "dfc.store.db",
    "ENV_DATABASE_URL": "dfc.store.db",
    "ENV_DATA_DIR": "dfc.store.db",
    "EmbeddedServer": "dfc.store.embedded",
    "Migration": "dfc.store.migrations",
    "SchemaStatus": "dfc.store.migrations",
    "ServerStatus": "dfc.store.embedded",
    "VersionInfo": "dfc.store.registry",
    "available": "dfc.store.migrations",
    "connect": "dfc.store.db",
    "connect_async": "dfc.store.db",
    "connect_kwargs": "dfc.store.db",
    "default_data_dir": "dfc.store.embedded",
    "deploy": "dfc.store.registry",
    "deploy_txn": "dfc.store.registry",
    "embedded_server": "dfc.store.db",
    "ensure_schema": "dfc.store.migrations",
    "get_setting": "dfc.store.retention",
    "is_embedded": "dfc.store.db",
    "load_plan": "dfc.store.registry",
    "load_plan_txn": "dfc.store.registry",
    "mask_url": "dfc.store.db",
    "migrate": "dfc.store.migrations",
    "open_database": "dfc.store.db",
    "purge_finished": "dfc.store.retention",
    "resolve_url": "dfc.store.db",
    "schema_status": "dfc.store.migrations",
    "set_setting": "dfc.store.retention",
    "versions": "dfc.store.registry",
    "versions_txn": "dfc.store.registry",
    "workflows": "dfc.store.registry",
    "workflows_txn": "dfc.store.registry",
}

__all__ = [
    "EMBEDDED",
    "ENV_DATABASE_URL",
    "ENV_DATA_DIR",
    "DeployResult",
    "EmbeddedServer",
    "Migration",
    "SchemaStatus",
    "ServerStatus",
    "VersionInfo",
    "available",
    "connect",
    "connect_async",
    "connect_kwargs",
    "default_data_dir",
    "deploy",
    "deploy_txn",
    "embedded_server",
    "ensure_schema",
    "get_setting",
    "is_embedded",
    "load_plan",
    "load_plan_txn",
    "mask_url",
    "migrate",
    "open_database",
    "purge_finished",
    "resolve_url",
    "schema_status",
    "set_setting",
    "versions",
    "versions_txn",
    "workflows",
    "workflows_txn",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dfc.store' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
