"""The workflow registry: versions by hash, listing, loading, errors, concurrent deploys."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg.rows import TupleRow

from dfc.diagnostics import DfcError
from dfc.plan.model import Plan, PlanNode, SourceSpan
from dfc.plan.nodes import Sql
from dfc.store import codes
from dfc.store.db import connect
from dfc.store.registry import (
    deploy,
    deploy_txn,
    load_plan,
    versions,
    workflows,
)


def make_plan(name: str, query: str = "SELECT 1", *, source: str | None = None) -> Plan:
    """A one-step plan; ``source`` changes only what the hash does not cover."""
    text = source if source is not None else f"df.start({query!r}, {name!r})"
    return Plan(
        name=name,
        root="n1",
        nodes={"n1": PlanNode(id="n1", config=Sql(query=query))},
        source=text,
        source_map={
            "n1": SourceSpan(
                file=f"{name}.df", line=1, column=10, end_line=1, end_column=20, start=9, end=19
            )
        },
    )


def test_deploy_creates_versions_by_hash(conn: psycopg.Connection[TupleRow]) -> None:
    first = deploy(conn, make_plan("orders"))
    assert (first.name, first.version, first.created) == ("orders", 1, True)
    assert first.hash == make_plan("orders").hash

    again = deploy(conn, make_plan("orders"))
    assert (again.version, again.created) == (1, False)

    # A change of layout only (source text, positions) is not a new version.
    relaid = deploy(conn, make_plan("orders", source="-- comment\n" + make_plan("orders").source))
    assert (relaid.version, relaid.created) == (1, False)

    changed = deploy(conn, make_plan("orders", "SELECT 2"))
    assert (changed.version, changed.created) == (2, True)
    assert changed.hash != first.hash

    # Going back to the first plan is a change relative to the latest: version 3.
    back = deploy(conn, make_plan("orders"))
    assert (back.version, back.created) == (3, True)


def test_versions_and_workflows_listing(conn: psycopg.Connection[TupleRow]) -> None:
    deploy(conn, make_plan("listing"))
    deploy(conn, make_plan("listing", "SELECT 2"), dev=True)
    deploy(conn, make_plan("listing-other"))
    found = versions(conn, "listing")
    assert [(v.name, v.version, v.dev) for v in found] == [
        ("listing", 1, False),
        ("listing", 2, True),
    ]
    assert found[0].hash == make_plan("listing").hash
    assert found[0].deployed_by == conn.info.user
    assert found[0].to_dict()["version"] == 1
    assert versions(conn, "never-deployed") == []
    latest = {w.name: w.version for w in workflows(conn)}
    assert latest["listing"] == 2 and latest["listing-other"] == 1


def test_non_dev_deploy_of_a_dev_version_promotes_it(conn: psycopg.Connection[TupleRow]) -> None:
    deploy(conn, make_plan("promote"), dev=True)
    result = deploy(conn, make_plan("promote"))
    assert (result.version, result.created) == (1, False)
    assert [v.dev for v in versions(conn, "promote")] == [False]


def test_load_plan_round_trips(conn: psycopg.Connection[TupleRow]) -> None:
    p1, p2 = make_plan("load"), make_plan("load", "SELECT 'two'")
    deploy(conn, p1)
    deploy(conn, p2)
    assert load_plan(conn, "load") == (2, p2)
    assert load_plan(conn, "load", 1) == (1, p1)
    loaded = load_plan(conn, "load", 1)[1]
    assert loaded.source == p1.source and loaded.hash == p1.hash
    # The source lives in its column, not twice in the row.
    row = conn.execute(
        "SELECT plan ? 'source', source, plan->>'hash' FROM dfc.workflows WHERE name = 'load' AND version = 1"
    ).fetchone()
    assert row == (False, p1.source, p1.hash)


def test_load_plan_unknown_name(conn: psycopg.Connection[TupleRow]) -> None:
    deploy(conn, make_plan("known"))
    with pytest.raises(DfcError) as err:
        load_plan(conn, "unknown")
    assert err.value.code == codes.UNKNOWN_WORKFLOW
    assert err.value.message == "no workflow named 'unknown' is deployed"
    assert (
        err.value.hint is not None and "dfc deploy" in err.value.hint and "known" in err.value.hint
    )


def test_load_plan_unknown_version(conn: psycopg.Connection[TupleRow]) -> None:
    deploy(conn, make_plan("versioned"))
    deploy(conn, make_plan("versioned", "SELECT 2"))
    with pytest.raises(DfcError) as err:
        load_plan(conn, "versioned", 7)
    assert err.value.code == codes.UNKNOWN_VERSION
    assert err.value.message == "workflow 'versioned' has no version 7"
    assert err.value.hint == "it has versions 1–2"


def test_load_plan_of_an_unknown_format(conn: psycopg.Connection[TupleRow]) -> None:
    deploy(conn, make_plan("future"))
    conn.execute(
        "UPDATE dfc.workflows SET plan = jsonb_set(plan, '{format}', '99') WHERE name = 'future'"
    )
    with pytest.raises(DfcError) as err:
        load_plan(conn, "future")
    assert err.value.code == codes.UNREADABLE_PLAN
    assert "format 99" in err.value.message


def test_deploy_txn_joins_the_callers_transaction(conn: psycopg.Connection[TupleRow]) -> None:
    with conn.transaction(force_rollback=True):
        assert deploy_txn(conn, make_plan("rolled-back")).created
    assert versions(conn, "rolled-back") == []


def test_deploy_inside_an_open_transaction(db_url: str) -> None:
    with connect(db_url, autocommit=False) as c:
        c.execute("SELECT 1")
        assert deploy(c, make_plan("nested")).created
        c.rollback()
        assert versions(c, "nested") == []


def test_concurrent_deploys_make_one_version(db_url: str) -> None:
    """Eight sessions deploy the same new plan at once: one creates it, seven find it."""
    barrier = threading.Barrier(8)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def worker(query: str) -> None:
        try:
            with connect(db_url) as c:
                barrier.wait()
                r = deploy(c, make_plan("racy", query))
                results.append((r.version, r.created))
        except BaseException as e:  # collected: an assert in a thread would be lost
            errors.append(e)

    threads = [threading.Thread(target=worker, args=("SELECT 1",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(results) == [(1, False)] * 7 + [(1, True)]

    # Different plans at once: each gets its own version, numbered without gaps.
    barrier = threading.Barrier(8)
    results.clear()
    threads = [threading.Thread(target=worker, args=(f"SELECT {i + 10}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(v for v, _ in results) == list(range(2, 10))
    with connect(db_url) as c:
        assert [v.version for v in versions(c, "racy")] == list(range(1, 10))
