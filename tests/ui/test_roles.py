"""Connected as an ordinary role, the dashboard shows only that role's instances: it reads them
through the SQL surface's security-barrier views (docs/sql.md, "Roles and what each may do")."""

from __future__ import annotations

import re
import secrets
import warnings
from collections.abc import Iterator
from urllib.parse import unquote_plus

import psycopg
import pytest
from psycopg import sql
from ui_support import run_to_end

from dfc.client import connect
from dfc.ui.app import create_app

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]


@pytest.fixture
def role_url(ui_db: str) -> Iterator[str]:
    """A URL logging in as a new role granted usage (trust over the test server's socket)."""
    role = f"ui_{secrets.token_hex(3)}"
    with psycopg.connect(ui_db, autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        c.execute("SELECT df.grant_usage(%s)", (role,))
    yield re.sub(r"//[^@/]*@", f"//{role}@", ui_db, count=1)
    with psycopg.connect(ui_db, autocommit=True) as c:
        c.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
        c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_an_ordinary_role_sees_only_its_instances(ui_db: str, role_url: str) -> None:
    with connect(ui_db) as admin:
        theirs = admin.start("greet")
    with psycopg.connect(role_url, autocommit=True) as c:
        row = c.execute("SELECT df.start('SELECT 7 AS mine', 'mine')").fetchone()
        assert row is not None
        mine = str(row[0])
    with TestClient(create_app(role_url)) as web:
        listed = {i["id"] for i in web.get("/api/instances").json()["instances"]}
        assert mine in listed and theirs not in listed
        assert web.get(f"/api/instances/{theirs}").status_code == 404
        # Its own instance's details need read access to schema dfc, which it has not: a
        # sentence that says so, not a traceback.
        refused = web.get(f"/api/instances/{mine}")
        assert refused.status_code == 403 and "schema dfc" in refused.json()["hint"]
        web.get("/instances")
        r = web.post(
            f"/instances/{theirs}/cancel",
            data={"csrf": web.cookies["dfc_csrf"]},
            follow_redirects=False,
        )
        assert "no instance" in unquote_plus(r.headers["location"])
    with connect(ui_db) as admin:
        assert admin.status(theirs).status == "pending"
    run_to_end(ui_db, [theirs])
