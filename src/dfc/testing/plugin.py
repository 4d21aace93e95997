"""The pytest plugin of the test kit (registered as ``dfc`` in ``pytest11``: installing dfc
is enough): the ``--dfc-db`` option and the ``dfc_databases`` and ``dfc_env`` fixtures.

Nothing heavy is imported until a test asks for a fixture: every pytest run of a project that
has dfc installed loads this module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from dfc.testing.databases import Databases
    from dfc.testing.env import Env

ENV_URL = "DFC_TEST_DATABASE_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dfc", "dfc test kit")
    group.addoption(
        "--dfc-db",
        default=None,
        metavar="URL",
        help="PostgreSQL server on which dfc_env creates a fresh database per test (the role "
        f"needs CREATEDB); default: ${ENV_URL}, else an embedded server for the session",
    )


@pytest.fixture(scope="session")
def dfc_databases(request: pytest.FixtureRequest) -> Iterator[Databases]:
    """Where ``dfc_env`` makes its databases: the server of ``--dfc-db`` or
    ``DFC_TEST_DATABASE_URL``, else an embedded server started for the session."""
    from dfc.testing.databases import ServerDatabases, embedded

    url = request.config.getoption("--dfc-db") or os.environ.get(ENV_URL)
    if url:
        databases = ServerDatabases(url)
        try:
            yield databases
        finally:
            databases.close()
    else:
        with embedded() as databases:
            yield databases


@pytest.fixture
def dfc_env(
    dfc_databases: Databases, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Env]:
    """A fresh dfc database and a worker on a virtual clock (`dfc.testing.Env`), for one
    test; the database is dropped afterwards."""
    from dfc.testing.env import Env

    url = dfc_databases.create(request.node.name)
    try:
        with Env(url, workdir=tmp_path) as env:
            yield env
    finally:
        dfc_databases.drop(url)
