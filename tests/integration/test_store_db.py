"""Database resolution, connecting, and connection failures as one-sentence errors."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from dfc.diagnostics import DfcError
from dfc.store import codes
from dfc.store.db import (
    ENV_DATABASE_URL,
    connect,
    connect_async,
    embedded_server,
    is_embedded,
    mask_url,
    open_database,
    resolve_url,
)
from dfc.store.migrations import applied_versions, available

if TYPE_CHECKING:  # conftest is not importable as a module under every pytest invocation
    from conftest import PgServer


def test_connection_refused_is_one_sentence_with_the_password_masked() -> None:
    with pytest.raises(DfcError) as err:
        connect("postgresql://bob:s3cret@127.0.0.1:1/app")
    e = err.value
    assert e.code == codes.CONNECT_FAILED
    assert "s3cret" not in e.message and "s3cret" not in (e.hint or "")
    assert e.message.startswith(
        "cannot connect to the database at postgresql://bob:***@127.0.0.1:1/app: "
    )
    assert "Connection refused" in e.message
    assert "\n" not in e.message
    assert e.hint is not None and ENV_DATABASE_URL in e.hint


def test_server_side_rejection_gives_the_servers_reason(pg_server: PgServer) -> None:
    url = pg_server.url("no_such_database")
    with pytest.raises(DfcError) as err:
        connect(url)
    assert err.value.message.endswith('database "no_such_database" does not exist')
    port = pg_server.server.status().port
    with pytest.raises(DfcError) as err:
        connect(f"postgresql://postgres:wrong-pw@127.0.0.1:{port}/postgres")
    assert "wrong-pw" not in err.value.message
    assert err.value.message.endswith('password authentication failed for user "postgres"')


def test_an_invalid_url_is_reported_as_such() -> None:
    with pytest.raises(DfcError) as err:
        connect("not a url password=hunter2")
    assert "is not a valid PostgreSQL URL" in err.value.message
    assert "hunter2" not in err.value.message


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u:p%40ss@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h1:5432,h2:5433/db", "postgresql://h1:5432,h2:5433/db"),
        ("postgresql:///db?host=/run/pg&password=x", "postgresql:///db?host=/run/pg&password=***"),
        ("host=h user=u password=secret dbname=d", "host=h user=u password=*** dbname=d"),
        ("host=h password='se cret' dbname=d", "host=h password=*** dbname=d"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_resolution_order(pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> None:
    embedded_url = pg_server.server.url()
    monkeypatch.delenv(ENV_DATABASE_URL, raising=False)
    assert is_embedded(None)
    assert resolve_url(None) == embedded_url
    assert resolve_url("postgresql://explicit/db") == "postgresql://explicit/db"
    monkeypatch.setenv(ENV_DATABASE_URL, "postgresql://from-env/db")
    assert not is_embedded(None)
    assert resolve_url(None) == "postgresql://from-env/db"
    assert resolve_url("postgresql://explicit/db") == "postgresql://explicit/db"
    assert is_embedded("embedded") and resolve_url("embedded") == embedded_url
    monkeypatch.setenv(ENV_DATABASE_URL, "EMBEDDED")
    assert resolve_url(None) == embedded_url
    # The session server is the one DFC_DATA_DIR names (set by conftest).
    assert embedded_server().data_dir == pg_server.server.data_dir


def test_connections_are_named_dfc_and_autocommit(db_url: str) -> None:
    with connect(db_url) as c:
        assert c.autocommit
        assert c.execute("SHOW application_name").fetchone() == ("dfc",)
    with connect(db_url + "&application_name=mine", autocommit=False) as c:
        assert not c.autocommit
        assert c.execute("SHOW application_name").fetchone() == ("mine",)


def test_connect_async(db_url: str) -> None:
    async def main() -> object:
        async with await connect_async(db_url) as c:
            cur = await c.execute("SELECT current_setting('application_name')")
            return await cur.fetchone()

    assert asyncio.run(main()) == ("dfc",)


def test_open_database_migrates(make_db: object) -> None:
    url = make_db(template=None)  # type: ignore[operator]
    with open_database(url) as c:
        assert applied_versions(c) == [m.version for m in available()]


def test_open_database_embedded_failure_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DfcError) as err:
        open_database("postgresql://nobody@127.0.0.1:1/x")
    assert err.value.hint is not None and "embedded" in err.value.hint
