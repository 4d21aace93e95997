"""Plans of format 1 (as dfc deployed them before the typed plan) read as today's plans.

The fixtures are the format-1 plans of every example and of the standard library's usage, as
the code of that time compiled them (see fixtures/format1/README.md). Read back, each must be
the plan its source compiles to today: same nodes, same hash (so deploying it again says
"unchanged"), same explain tree, with the checker's analysis moved beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dfc.compiler import compile_source
from dfc.plan.explain import explain_lines
from dfc.plan.model import FORMAT, Plan
from dfc.plan.nodes import Sql
from dfc.source import SourceFile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
FIXTURES = sorted((HERE / "fixtures" / "format1").glob("*.json"))


def _old(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    assert data["format"] == 1
    return data


def _compiled_today(path: Path, old: dict[str, Any]) -> Plan:
    """The plan today's dfc makes of the same source, under the file name it had then (the
    workflow's name is the file's, when df.start gives none)."""
    here = path.with_suffix(".df")
    file = str(here.relative_to(ROOT)) if here.exists() else f"examples/{path.stem}.df"
    comp = compile_source(SourceFile(file, old["source"]))
    assert comp.plan is not None, [d.to_dict() for d in comp.sorted_diagnostics if d.is_error]
    return comp.plan


# The examples there were when dfc last wrote format 1 (fixtures/format1/README.md): the
# fixtures are frozen, so examples added since have none and need none.
FORMAT1_EXAMPLES = frozenset(
    {
        "batch_etl",
        "embed_documents",
        "export_polling",
        "nightly_maintenance",
        "order_approval",
        "order_saga",
        "payment_race",
        "queue_drain",
        "regional_report",
        "webhook_callback",
    }
)


def test_there_is_a_fixture_per_example_of_format1_days() -> None:
    stems = {p.stem for p in FIXTURES}
    assert stems >= FORMAT1_EXAMPLES
    assert len(stems - FORMAT1_EXAMPLES) >= 10  # and the standard library's usage
    # Still examples today: each fixture is compared with what its example compiles to now.
    assert {p.stem for p in (ROOT / "examples").glob("*.df")} >= FORMAT1_EXAMPLES


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_format1_plan_reads_as_the_plan_compiled_today(path: Path) -> None:
    old = _old(path)
    plan = Plan.from_json(old)
    today = _compiled_today(path, old)
    assert plan.nodes == today.nodes
    assert plan.hash == today.hash
    assert plan.format == FORMAT
    assert explain_lines(plan) == explain_lines(today)
    assert Plan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_format1_analysis_moves_beside_the_plan(path: Path) -> None:
    old = _old(path)
    plan = Plan.from_json(old)
    sql = {nid for nid, node in plan.nodes.items() if isinstance(node.config, Sql)}
    assert set(plan.analysis) == sql
    for nid in sql:
        config = old["nodes"][nid]["config"]
        assert plan.analysis[nid].to_json() == {
            k: config[k] for k in ("statements", "columns", "returns_rows", "refs", "vars")
        }
        assert plan.nodes[nid].config.to_json() == {k: config[k] for k in ("query", "autocommit")}


def test_format1_hash_was_over_the_analysis_and_the_new_one_is_not() -> None:
    old = _old(FIXTURES[0])
    edited = json.loads(json.dumps(old))
    for node in edited["nodes"].values():
        if node["type"] == "SQL":
            node["config"]["statements"] = ["unknown"]
            node["config"]["columns"] = None
    assert Plan.from_json(edited).hash == Plan.from_json(old).hash
    assert Plan.from_json(old).hash != old["hash"]  # the format and the hashed fields changed
