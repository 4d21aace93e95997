"""Session fixtures: one embedded PostgreSQL per test process, and fresh databases cut from a
migrated template.

- ``pg_server`` (session): the embedded server of this test process, started once, with a
  database ``dfc_template`` migrated to the current schema. Under pytest-xdist each worker
  process runs its own server in its own temporary directory: initdb plus start costs about a
  second, and a shared server would need cross-process reference counting to know who stops it.
- ``db_url`` (module): the URL of a fresh database for the test module, a copy of the template
  (``CREATE DATABASE ... TEMPLATE dfc_template``, tens of milliseconds), dropped afterwards.
- ``conn`` (function): an autocommit psycopg connection to the module's database.
- ``make_db`` (function): a factory for more databases, empty (``template=None``) or from the
  template, dropped at the end of the test.
- ``dfc_databases`` (session): the test kit's (`dfc.testing`) databases come from this server
  too, so a test that takes ``dfc_env`` starts no second server.

For the whole session ``DFC_DATA_DIR`` points at the test server's directory and
``DFC_DATABASE_URL`` is unset, so code under test that resolves the default database (CLI
commands, `dfc.store.db.resolve_url`) uses the test server, never the user's own. The directory
lives under /tmp (not pytest's 0700 base directory): run as root, the server runs as
``dfc-postgres``, which must be able to traverse it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import TupleRow

from dfc.store.db import ENV_DATA_DIR, ENV_DATABASE_URL, connect
from dfc.store.embedded import EmbeddedServer
from dfc.store.migrations import ensure_schema
from dfc.testing.databases import ServerDatabases

TEMPLATE = "dfc_template"

_saved_env: dict[str, str | None] = {}
_base_dir: Path | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        help="run the long modes: the fault suite's soak and the fuzzers' 30-minute runs "
        "(tests marked `long` run only then; see docs/reliability.md)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason="long mode only: run with --long (docs/reliability.md)")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def long_mode(request: pytest.FixtureRequest) -> bool:
    """Whether the session runs the long modes (``--long``)."""
    return bool(request.config.getoption("--long"))


def pytest_configure(config: pytest.Config) -> None:
    global _base_dir
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    _base_dir = Path(tempfile.mkdtemp(prefix=f"dfc-test-{worker}-", dir="/tmp"))
    if os.geteuid() == 0:
        _base_dir.chmod(0o711)  # our own fresh directory: let dfc-postgres traverse it
    for key in (ENV_DATA_DIR, ENV_DATABASE_URL):
        _saved_env[key] = os.environ.get(key)
    os.environ[ENV_DATA_DIR] = str(_base_dir / "server")
    os.environ.pop(ENV_DATABASE_URL, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _base_dir is None:
        return
    try:
        EmbeddedServer(_base_dir / "server").stop()
    except Exception:
        # Never leave a server running on a directory about to be deleted: stop it the hard way.
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((_base_dir / "server" / "pgdata" / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)
        raise
    finally:
        shutil.rmtree(_base_dir, ignore_errors=True)
        for key, value in _saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class PgServer:
    """The session's embedded server and helpers to make databases on it."""

    server: EmbeddedServer
    socket_url: str  # of the "postgres" database

    def url(self, database: str) -> str:
        """The unix-socket URL of ``database`` on this server."""
        return re.sub(r"/postgres\?", f"/{database}?", self.socket_url, count=1)

    def create_database(self, name: str, *, template: str | None = TEMPLATE) -> str:
        """Create ``name`` (a copy of ``template``, or empty) and return its URL."""
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
        with psycopg.connect(self.socket_url, autocommit=True) as c:
            c.execute(query)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.socket_url, autocommit=True) as c:
            c.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    """The embedded server of this test process, with ``dfc_template`` migrated."""
    server = EmbeddedServer(os.environ[ENV_DATA_DIR], initdb_sync=False)
    status = server.start()
    socket_url = status.url("postgres")
    assert socket_url is not None
    pg = PgServer(server, socket_url)
    pg.drop_database(TEMPLATE)
    with connect(pg.create_database(TEMPLATE, template=None)) as c:
        ensure_schema(c)
    return pg


_names = count(1)


def _db_name(hint: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_")[-40:]
    return f"t{next(_names)}_{slug}"


@pytest.fixture(scope="module")
def db_url(pg_server: PgServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database with the current dfc schema, one per test module."""
    name = _db_name(request.module.__name__.rsplit(".", 1)[-1])
    url = pg_server.create_database(name)
    yield url
    pg_server.drop_database(name)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[TupleRow]]:
    """An autocommit connection to the module's database."""
    with connect(db_url) as c:
        yield c


@pytest.fixture
def make_db(pg_server: PgServer, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """``make_db(template=TEMPLATE) -> url``: extra databases for this test, dropped after it."""
    made: list[str] = []

    def make(*, template: str | None = TEMPLATE) -> str:
        name = _db_name(request.node.name)
        made.append(name)
        return pg_server.create_database(name, template=template)

    yield make
    for name in made:
        pg_server.drop_database(name)


@pytest.fixture(scope="session")
def dfc_databases(pg_server: PgServer) -> ServerDatabases:
    """The test kit's fresh databases (``dfc_env``), copies of this server's template."""
    return ServerDatabases(pg_server.socket_url, template=TEMPLATE)
