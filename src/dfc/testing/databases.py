"""Fresh databases for tests: copies of a template migrated once per session.

`ServerDatabases` makes them on a PostgreSQL server the kit may create databases on (a URL:
``--dfc-db`` or ``DFC_TEST_DATABASE_URL``); `embedded` starts an embedded server of its own
for the session when no URL is given. Copying a template (``CREATE DATABASE ... TEMPLATE``)
takes tens of milliseconds, migrating a database far longer.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dfc.store.db import connect
from dfc.store.embedded import EmbeddedServer
from dfc.store.migrations import ensure_schema

_names = itertools.count(1)


class Databases(Protocol):
    """Where ``dfc_env`` gets a fresh database for each test (the ``dfc_databases`` fixture,
    which a project may override to use a server it already runs)."""

    def create(self, hint: str = "") -> str:
        """A new database with dfc's schema, named after ``hint``; its URL."""
        ...

    def drop(self, url: str) -> None:
        """Drop the database of ``url`` (made by `create`)."""
        ...


def database_name(prefix: str, hint: str) -> str:
    """A new database name: ``prefix``, a number unique in this process, and ``hint``."""
    slug = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_")[-30:]
    return f"{prefix}_{next(_names)}_{slug}".rstrip("_")


class ServerDatabases:
    """Databases made on the server of ``url`` (any database of it; the role needs
    CREATEDB), each a copy of ``template``: an existing database with dfc's schema, or, when
    None, one this object migrates first and drops in `close`."""

    def __init__(self, url: str, *, template: str | None = None) -> None:
        self.url = url
        self._prefix = f"dfc_t{os.getpid()}"
        self._own_template = template is None
        self.template = template or f"{self._prefix}_template"
        if self._own_template:
            self._drop(self.template)
            self._create(self.template, None)
            with connect(self.url_of(self.template)) as conn:
                ensure_schema(conn)

    def url_of(self, database: str) -> str:
        """The URL of ``database`` on this server."""
        return make_conninfo(self.url, dbname=database)

    def create(self, hint: str = "") -> str:
        """A new database with dfc's schema, named after ``hint``; its URL."""
        name = database_name(self._prefix, hint)
        self._create(name, self.template)
        return self.url_of(name)

    def drop(self, url: str) -> None:
        """Drop the database of ``url`` (made by `create`), closing its sessions."""
        self._drop(str(conninfo_to_dict(url)["dbname"]))

    def close(self) -> None:
        """Drop the template this object made."""
        if self._own_template:
            self._drop(self.template)

    def _create(self, name: str, template: str | None) -> None:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(query)

    def _drop(self, name: str) -> None:
        query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(query)


@contextlib.contextmanager
def embedded() -> Iterator[ServerDatabases]:
    """An embedded PostgreSQL server for the session, in a temporary directory, stopped and
    removed at the end (never the user's own server or data directory)."""
    base = Path(tempfile.mkdtemp(prefix="dfc-testkit-"))
    if os.geteuid() == 0:
        base.chmod(0o711)  # run as root, the server's own user must traverse it
    server = EmbeddedServer(base / "server", initdb_sync=False)
    try:
        url = server.start().url("postgres")
        assert url is not None
        databases = ServerDatabases(url)
        try:
            yield databases
        finally:
            databases.close()
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)
