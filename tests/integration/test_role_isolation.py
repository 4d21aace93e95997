"""Least privilege with real roles (SPEC §7, docs/sql.md "Roles", docs/operations.md "Roles
and privileges"): an instance belongs to the role that started it and its steps run as that
role; no other role can see, signal, cancel, read the result of, or act as it; a role without
usage cannot start anything; nothing a step leaves in the worker's session reaches another
role's steps; and a worker needs no superuser, only the privileges docs/operations.md lists.

Every role logs in over the test server's socket (trust), so ``session_user`` is the role, as
for an application."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from runtime_support import info, run_until_done

from dfc.compiler import graph_compiler

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]


@dataclass(frozen=True)
class Roles:
    """The module's roles and a URL to log in as each."""

    a: str  # granted usage; starts the instances under test
    b: str  # granted usage; tries to reach a's
    c: str  # no grant at all
    admin_url: str

    def url(self, role: str) -> str:
        return re.sub(r"//[^@/]*@", f"//{role}@", self.admin_url, count=1)


def _exec(url: str, *statements: str | sql.Composable) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        for s in statements:
            c.execute(s)


@pytest.fixture(scope="module")
def roles(db_url: str) -> Iterator[Roles]:
    tag = secrets.token_hex(3)
    r = Roles(f"iso_a_{tag}", f"iso_b_{tag}", f"iso_c_{tag}", db_url)
    ident = {n: sql.Identifier(n) for n in (r.a, r.b, r.c)}
    _exec(
        db_url,
        *(sql.SQL("CREATE ROLE {} LOGIN").format(i) for i in ident.values()),
        sql.SQL("SELECT df.grant_usage({})").format(sql.Literal(r.a)),
        sql.SQL("SELECT df.grant_usage({})").format(sql.Literal(r.b)),
        *(sql.SQL("CREATE SCHEMA AUTHORIZATION {}").format(ident[n]) for n in (r.a, r.b)),
        sql.SQL("CREATE TABLE {}.secrets (s text)").format(ident[r.b]),
        sql.SQL("ALTER TABLE {}.secrets OWNER TO {}").format(ident[r.b], ident[r.b]),
        "CREATE TABLE public.orders (item text)",
        "GRANT ALL ON public.orders TO PUBLIC",
    )
    yield r
    for n in (r.a, r.b, r.c):
        _exec(
            db_url,
            sql.SQL("DROP OWNED BY {} CASCADE").format(ident[n]),
            sql.SQL("DROP ROLE {}").format(ident[n]),
        )


def _one(url: str, query: str, *params: Any) -> Any:
    with psycopg.connect(url, autocommit=True) as c:
        row = c.execute(query, params).fetchone()
        return None if row is None else row[0]


def start_as(roles: Roles, role: str, graph: str, label: str | None = None) -> str:
    """``SELECT df.start(graph)`` in a session of ``role`` (``graph`` is SQL)."""
    return str(_one(roles.url(role), f"SELECT df.start({graph}, %s)", label))


def work(url: str, ids: list[str], **options: Any) -> None:
    """Run a worker (as the role of ``url``) until the instances end."""
    asyncio.run(run_until_done(url, ids, compile_graph=graph_compiler, **options))


# -- steps run as the starting role -------------------------------------------------------------


def test_every_step_runs_as_the_role_that_started_the_instance(roles: Roles) -> None:
    iid = start_as(
        roles,
        roles.a,
        "df.seq(df.as('SELECT current_user AS u', 'first'), "
        "$$SELECT $first AS first, current_user AS u, session_user AS s$$)",
    )
    work(roles.admin_url, [iid])
    done = info(roles.admin_url, iid)
    assert done.status == "completed", done.error
    assert done.result["rows"] == [{"first": roles.a, "u": roles.a, "s": "postgres"}]
    assert _one(roles.admin_url, "SELECT created_by FROM dfc.instances WHERE id = %s", iid) == (
        roles.a
    )


# -- another role cannot reach an instance -------------------------------------------------------

# What role b runs against role a's instance (`{id}`, `{a}`), and what it must get: a value (a
# role sees nothing of another's) or an error starting with the text.
VALUE, ERROR = "value", "error"
REACH: list[tuple[str, str, object]] = [
    ("SELECT count(*) FROM df.instances WHERE id = '{id}'", VALUE, 0),
    ("SELECT count(*) FROM df.nodes WHERE instance_id = '{id}'", VALUE, 0),
    ("SELECT count(*) FROM df._instances WHERE id = '{id}'", VALUE, 0),
    ("SELECT count(*) FROM df._node_state WHERE instance_id = '{id}'", VALUE, 0),
    ("SELECT count(*) FROM df.list_instances() WHERE instance_id = '{id}'", VALUE, 0),
    ("SELECT count(*) FROM df.instance_info('{id}')", VALUE, 0),
    ("SELECT count(*) FROM df.instance_nodes('{id}')", VALUE, 0),
    ("SELECT df.status('{id}')", VALUE, None),
    ("SELECT df.result('{id}')", VALUE, None),
    (
        "SELECT df.signal('{id}', 'go', '{{\"by\": \"b\"}}')",
        ERROR,
        "Instance not found or access denied",
    ),
    ("SELECT df.cancel('{id}')", ERROR, "Instance not found or access denied"),
    ("SELECT df.explain('{id}')", VALUE, "Instance '{id}' not found"),
    ("SELECT df.await_instance('{id}', 1)", ERROR, "Instance not found"),
    (
        "SELECT df._signal('{a}', '{id}', 'go', '{{}}')",
        ERROR,
        'session user "{b}" cannot act as role',
    ),
    ("SELECT df._cancel('{a}', '{id}', 'x')", ERROR, 'session user "{b}" cannot act as role'),
    ("SELECT count(*) FROM dfc.instances", ERROR, "permission denied for schema dfc"),
    ("SELECT count(*) FROM dfc.node_state", ERROR, "permission denied for schema dfc"),
    ("SELECT count(*) FROM dfc.signals", ERROR, "permission denied for schema dfc"),
    ("SELECT count(*) FROM dfc.history", ERROR, "permission denied for schema dfc"),
    ("SELECT dfc.signal_instance('{id}', 'go', '{{}}')", ERROR, "permission denied for schema dfc"),
    ("SELECT dfc.cancel_instance('{id}', 'x')", ERROR, "permission denied for schema dfc"),
]


def _waiting(roles: Roles) -> str:
    """An instance of role a that waits for a signal, then reads what it got, as a (no worker
    has claimed it yet)."""
    return start_as(
        roles,
        roles.a,
        "df.seq(df.as(df.wait_for_signal('go', 60), 's'), "
        "$$SELECT $s.data AS data, current_user AS u$$)",
        "a-secret-label",
    )


@pytest.fixture(scope="module")
def waiting(roles: Roles) -> str:
    return _waiting(roles)


@pytest.mark.parametrize(("query", "kind", "expected"), REACH)
def test_another_role_cannot_read_signal_cancel_or_await(
    roles: Roles, waiting: str, query: str, kind: str, expected: object
) -> None:
    text = query.format(id=waiting, a=roles.a, b=roles.b)
    if isinstance(expected, str):
        expected = expected.format(id=waiting, b=roles.b)
    with psycopg.connect(roles.url(roles.b), autocommit=True) as c:
        if kind == ERROR:
            with pytest.raises(psycopg.Error) as e:
                c.execute(text)
            assert str(e.value).startswith(str(expected)), str(e.value)
        else:
            row = c.execute(text).fetchone()
            assert row is not None and row[0] == expected
    # Nothing b did reached the instance.
    assert _one(roles.url(roles.a), "SELECT df.status(%s)", waiting) == "pending"


def test_the_owner_still_gets_its_instance_and_only_its_own_signal(roles: Roles) -> None:
    waiting = _waiting(roles)
    for query, _, _ in REACH:  # b tried all of it first
        text = query.format(id=waiting, a=roles.a, b=roles.b)
        with (
            psycopg.connect(roles.url(roles.b), autocommit=True) as c,
            contextlib.suppress(psycopg.Error),
        ):
            c.execute(text)
    assert _one(roles.url(roles.a), "SELECT df.signal(%s, 'go', '{\"by\": \"a\"}')", waiting)
    work(roles.admin_url, [waiting])
    assert _one(roles.url(roles.a), "SELECT df.status(%s)", waiting) == "completed"
    result = _one(roles.url(roles.a), "SELECT df.result(%s)::jsonb", waiting)
    assert result["rows"] == [{"data": '{"by":"a"}', "u": roles.a}]
    assert _one(roles.url(roles.b), "SELECT df.result(%s)", waiting) is None
    assert _one(roles.url(roles.b), "SELECT count(*) FROM df.list_instances('completed')") == 0


# -- another role cannot start steps that run as a ------------------------------------------------

ACT_AS: list[tuple[str, str]] = [
    ("SELECT df._start('{a}', 'SELECT 1', NULL, NULL, 'caller', 1, '1s', 'fail')", "cannot act"),
    ("SELECT dfc.start_instance(NULL, NULL, NULL, '{{}}', '{a}', '\"x\"', NULL)", "permission"),
    ("SET ROLE {a}", 'permission denied to set role "{a}"'),
    ("SET SESSION AUTHORIZATION {a}", "permission denied to set session authorization"),
    ("SELECT * FROM dfc_run.\"rows_{a_oid}\"('SELECT 1') AS t(x int)", "permission denied for"),
    ("SELECT dfc_run.\"exec_{a_oid}\"('SELECT 1')", "permission denied for schema"),
    ("INSERT INTO df.vars (name, value, owner) VALUES ('v', '1', '{a}')", "new row violates"),
    ("SELECT df._grant_usage('{b}', '{b}', true, true, false)", 'role "{b}" may not grant'),
    ("SELECT df._revoke_usage('{b}', '{a}')", 'role "{b}" may not revoke'),
]


@pytest.mark.parametrize(("query", "error"), ACT_AS)
def test_another_role_cannot_start_or_run_anything_as_a(
    roles: Roles, query: str, error: str
) -> None:
    a_oid = _one(roles.admin_url, "SELECT %s::regrole::oid::int", roles.a)
    before = _one(roles.admin_url, "SELECT count(*) FROM dfc.instances")
    text = query.format(a=roles.a, b=roles.b, a_oid=a_oid)
    with (
        psycopg.connect(roles.url(roles.b), autocommit=True) as c,
        pytest.raises(psycopg.Error) as e,
    ):
        c.execute(text)
    assert error.format(a=roles.a, b=roles.b) in str(e.value), str(e.value)
    assert _one(roles.admin_url, "SELECT count(*) FROM dfc.instances") == before


# -- no usage, no start ---------------------------------------------------------------------------


def test_a_role_without_the_grants_cannot_start(roles: Roles, db_url: str) -> None:
    c_url = roles.url(roles.c)
    with psycopg.connect(c_url, autocommit=True) as c, pytest.raises(psycopg.Error) as e:
        c.execute("SELECT df.start('SELECT 1')")
    assert str(e.value).startswith("permission denied for schema df")
    # USAGE on df given by hand, not by df.grant_usage: still no start, and the hint says how.
    _exec(db_url, sql.SQL("GRANT USAGE ON SCHEMA df TO {}").format(sql.Identifier(roles.c)))
    try:
        with psycopg.connect(c_url, autocommit=True) as c, pytest.raises(psycopg.Error) as e:
            c.execute("SELECT df.start('SELECT 1')")
        assert e.value.diag.message_primary == (
            f'role "{roles.c}" may not start workflows: it has not been granted usage of the df '
            "schema"
        )
        assert e.value.diag.message_hint == (
            f"an administrator can grant it: SELECT df.grant_usage('{roles.c}')"
        )
    finally:
        _exec(db_url, sql.SQL("REVOKE USAGE ON SCHEMA df FROM {}").format(sql.Identifier(roles.c)))


# -- what a step leaves in the worker's session ---------------------------------------------------


def test_temporary_objects_of_one_role_never_reach_another_roles_steps(roles: Roles) -> None:
    # Role a leaves a temporary table named like one b writes to behind on the worker's
    # connections, with a trigger running a's function. Temporary tables are found before any
    # schema on the search path, so b's later steps on those connections would insert into it
    # and run a's function with b's privileges (here: copying b's secrets where a reads them).
    a, b = roles.a, roles.b
    _exec(
        roles.url(a),
        "CREATE TABLE loot (s text)",
        f"GRANT USAGE ON SCHEMA {a} TO PUBLIC",
        "GRANT INSERT ON loot TO PUBLIC",
        "CREATE FUNCTION steal() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN "
        f"INSERT INTO {a}.loot SELECT s FROM {b}.secrets; RETURN NEW; END $f$",
    )
    _exec(roles.url(b), f"INSERT INTO {b}.secrets VALUES ('s3cret')")
    trap = (
        "$$CREATE TEMP TABLE IF NOT EXISTS orders (item text); GRANT ALL ON orders TO PUBLIC; "
        f"CREATE OR REPLACE TRIGGER t BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION "
        f"{a}.steal()$$"
    )
    # As many branches at once as the worker has connections: every one gets the trap.
    width = 12
    steal = start_as(roles, a, "df.join(" + ", ".join([trap] * width) + ")")
    # b's steps come later, on the same worker (so on the same connections).
    insert = "$$INSERT INTO orders VALUES ('book')$$"
    victim = start_as(roles, b, "df.seq(df.sleep(1), df.join(" + ", ".join([insert] * width) + "))")
    work(roles.admin_url, [steal, victim], concurrency=2)
    assert info(roles.admin_url, steal).status == "completed", info(roles.admin_url, steal).error
    done = info(roles.admin_url, victim)
    assert done.status == "completed", done.error
    assert _one(roles.admin_url, f"SELECT count(*) FROM {a}.loot") == 0
    assert _one(roles.admin_url, "SELECT count(*) FROM public.orders") == width


# -- the worker's minimum privileges --------------------------------------------------------------


DOCS = Path(__file__).parents[2] / "docs" / "operations.md"


def _minimal_worker(db_url: str, name: str, serves: str) -> None:
    """Create the worker role of docs/operations.md ("Roles and privileges") by running the
    statements written there, so that the documentation is what is tested."""
    block = next(
        b for b in re.findall(r"```sql\n(.*?)```", DOCS.read_text(), re.S) if "dfc_worker" in b
    )
    text = re.sub(r"\bdfc_worker\b", name, block).replace("GRANT app TO", f"GRANT {serves} TO")
    _exec(db_url, text)


def test_a_worker_needs_no_superuser(roles: Roles, db_url: str) -> None:
    worker = f"iso_w_{secrets.token_hex(3)}"
    _minimal_worker(db_url, worker, roles.a)
    try:
        assert (
            _one(roles.url(worker), "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            is False
        )
        ids = [
            start_as(
                roles,
                roles.a,
                "df.seq(df.as('SELECT current_user AS u', 'x'), "
                "df.seq(df.wait_for_signal('go', 1), $$SELECT $x AS u, current_user AS v$$))",
            ),
            # a graph the worker must compile and deploy, with a sleep and a join
            start_as(roles, roles.a, "df.join(df.sleep(1), 'SELECT 2 AS two')"),
        ]
        work(roles.url(worker), ids)
        first, second = (info(db_url, i) for i in ids)
        assert first.status == "completed", first.error
        assert first.result["rows"] == [{"u": roles.a, "v": roles.a}]
        assert second.status == "completed", second.error
        # A role the worker was not made a member of: its steps fail, saying why.
        other = start_as(roles, roles.b, "'SELECT 1'")
        work(roles.url(worker), [other])
        failed = info(db_url, other)
        assert failed.status == "failed"
        assert "permission denied for function" in failed.error["message"], failed.error
    finally:
        ident = sql.Identifier(worker)
        _exec(
            db_url,
            sql.SQL("DROP OWNED BY {} CASCADE").format(ident),
            sql.SQL("DROP ROLE {}").format(ident),
        )
