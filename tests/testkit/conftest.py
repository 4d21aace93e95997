"""The kit's own tests make their databases on the session's embedded server (tests/conftest.py)
instead of starting a second one: `dfc_databases` is the fixture a project overrides for that."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from dfc.testing.databases import database_name


@dataclass(frozen=True)
class SessionDatabases:
    """`dfc.testing.databases.Databases` on the session's server, copies of its template."""

    pg: Any  # tests/conftest.py's PgServer

    def create(self, hint: str = "") -> str:
        return str(self.pg.create_database(database_name("kit", hint)))

    def drop(self, url: str) -> None:
        self.pg.drop_database(conninfo_to_dict(url)["dbname"])


@pytest.fixture(scope="session")
def dfc_databases(pg_server: Any) -> SessionDatabases:
    return SessionDatabases(pg_server)
