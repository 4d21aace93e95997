"""Upgrading a database whose registry holds format-1 plans (migration 0003, the typed plan).

The plans are the fixtures of tests/unit/plan/fixtures/format1: every example and the standard
library's usage, as dfc deployed them before the typed plan. They are stored the way that dfc
stored them, in a database at schema version 2; then today's dfc migrates it and deploys the
same workflows again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from runtime_support import info, run_until_done

from dfc.compiler import compile_source
from dfc.diagnostics import DfcError
from dfc.json_types import canonical
from dfc.plan.model import FORMAT, Plan
from dfc.runtime import instances
from dfc.source import SourceFile
from dfc.store.codes import UNREADABLE_PLAN
from dfc.store.db import connect
from dfc.store.migrations import available, migrate
from dfc.store.registry import deploy, load_plan

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "unit" / "plan" / "fixtures" / "format1"
Conn = psycopg.Connection[TupleRow]

_STORE_AS_FORMAT1 = """
INSERT INTO dfc.workflows (name, version, hash, plan, source) VALUES (%s, %s, %s, %s, %s)
"""

_SIGNAL_NAMES = """
SELECT DISTINCT w.plan #>> ARRAY['nodes', n.id, 'config', 'name']
FROM dfc.workflows w, jsonb_object_keys(w.plan -> 'nodes') AS n(id)
WHERE w.name = %s AND w.plan #>> ARRAY['nodes', n.id, 'type'] = 'SIGNAL'
"""


def _fixtures() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))}


def _store_as_format1(conn: Conn, old: dict[str, Any], *, name: str | None = None) -> None:
    """What the format-1 registry wrote: the plan without its source, and its hash."""
    plan = {k: v for k, v in old.items() if k != "source"}
    if name is not None:
        plan["name"] = name
    conn.execute(
        _STORE_AS_FORMAT1,
        (plan["name"], 1, old["hash"], Jsonb(plan, dumps=canonical), old["source"]),
    )


def _compile_today(stem: str, old: dict[str, Any]) -> Plan:
    here = FIXTURES / f"{stem}.df"
    file = str(here.relative_to(ROOT)) if here.exists() else f"examples/{stem}.df"
    comp = compile_source(SourceFile(file, old["source"]))
    assert comp.plan is not None
    return comp.plan


@pytest.fixture
def at_version_2(make_db: Callable[..., str]) -> Iterator[tuple[str, Conn]]:
    """A database migrated as the dfc of format 1 left it: migrations 0001 and 0002."""
    url = make_db(template=None)
    with connect(url) as conn:
        before = [m for m in available() if m.version <= 2]
        assert [m.version for m in migrate(conn, before)] == [1, 2]
        yield url, conn


def test_every_workflow_deployed_before_is_unchanged_after(
    at_version_2: tuple[str, Conn],
) -> None:
    url, conn = at_version_2
    fixtures = _fixtures()
    with conn.transaction():
        for old in fixtures.values():
            _store_as_format1(conn, old)
        # An instance pinned to a format-1 version, started before the upgrade.
        pinned = instances.start(conn, fixtures["batch_etl"]["name"], 1)

    assert "0003_typed_plans" in [m.name for m in migrate(conn)]

    for stem, old in fixtures.items():
        stored_plan, stored_hash = conn.execute(
            "SELECT plan, hash FROM dfc.workflows WHERE name = %s AND version = 1", (old["name"],)
        ).fetchone() or (None, None)
        assert stored_plan is not None and stored_plan["format"] == FORMAT, stem
        assert stored_hash == Plan.from_json(old).hash != old["hash"], stem
        again = deploy(conn, _compile_today(stem, old))
        assert (again.version, again.created) == (1, False), stem
        assert again.hash == stored_hash, stem
        # Still explainable from the store, with the checker's analysis kept beside the plan.
        _, loaded = load_plan(conn, old["name"], 1)
        assert loaded.analysis == Plan.from_json(old).analysis, stem

    asyncio.run(run_until_done(url, [pinned]))
    assert info(url, pinned).status == "completed"
    assert info(url, pinned).result == {"rows": [{"events_loaded": 4}], "row_count": 1}
    # The monitoring views read the stored layout (0002_runtime.sql): node types and the names
    # of the signals waited for are where they were.
    types = conn.execute(
        "SELECT DISTINCT node_type FROM dfc.node_states WHERE instance_id = %s", (pinned,)
    ).fetchall()
    assert types == [("SQL",)]
    signals = conn.execute(_SIGNAL_NAMES, (fixtures["std_approval"]["name"],)).fetchall()
    assert signals == [("approve-42",)]


def test_a_format1_plan_left_in_the_store_still_runs(at_version_2: tuple[str, Conn]) -> None:
    url, conn = at_version_2
    migrate(conn)
    # A format-1 row the migration did not see (written by hand, or from an old compile).
    old = _fixtures()["queue_drain"]
    with conn.transaction():
        _store_as_format1(conn, old, name="legacy")
        iid = instances.start(conn, "legacy", 1)
    asyncio.run(run_until_done(url, [iid]))
    done = info(url, iid)
    assert done.status == "completed", done.error
    # Deploying its source now compares hashes under today's rules: the same behaviour.
    today = _compile_today("queue_drain", old)
    assert Plan.from_json(old).hash == today.hash


def test_a_plan_the_upgrade_cannot_read_is_left_as_it_was(at_version_2: tuple[str, Conn]) -> None:
    _, conn = at_version_2
    alien = {"format": 99, "name": "alien", "root": "n1", "nodes": {}}
    conn.execute(_STORE_AS_FORMAT1, ("alien", 1, "h", Jsonb(alien), ""))
    migrate(conn)
    row = conn.execute("SELECT plan, hash FROM dfc.workflows WHERE name = 'alien'").fetchone()
    assert row == (alien, "h")
    with pytest.raises(DfcError) as err:
        load_plan(conn, "alien")
    assert err.value.code == UNREADABLE_PLAN
