"""The plan's JSON form, its hash, and format refusal."""

from __future__ import annotations

import dataclasses
import json

import pytest

from dfc.plan.explain import NodeMark, dot, explain_lines, mermaid
from dfc.plan.model import READS, Plan, PlanFormatError, PlanNode, SourceSpan, SqlAnalysis
from dfc.plan.nodes import Sleep, Sql, Then


def _plan(
    query: str = "SELECT 1",
    source: str = "'SELECT 1' ~> df.sleep(1)",
    columns: tuple[str, ...] = ("?column?",),
) -> Plan:
    nodes = {
        "n1": PlanNode(id="n1", config=Then(), children=("n2", "n3")),
        "n2": PlanNode(id="n2", config=Sql(query=query), result_name="one"),
        "n3": PlanNode(id="n3", config=Sleep(seconds=1)),
    }
    span = SourceSpan(file="x.df", line=1, column=1, end_line=1, end_column=10, start=0, end=9)
    facts = SqlAnalysis(statements=("query",), columns=columns, returns_rows=True)
    return Plan(
        name="x",
        root="n1",
        nodes=nodes,
        source=source,
        source_map={"n2": span},
        analysis={"n2": facts},
    )


def test_json_round_trip_keeps_everything() -> None:
    plan = _plan()
    again = Plan.loads(plan.dumps())
    assert again == plan
    assert again.hash == plan.hash


def test_hash_ignores_source_and_layout_but_not_behaviour() -> None:
    plan = _plan()
    assert _plan(source="-- other comments\n'SELECT 1' ~>  df.sleep(1)").hash == plan.hash
    assert dataclasses.replace(plan, source_map={}).hash == plan.hash
    assert _plan(query="SELECT 2").hash != plan.hash


def test_hash_ignores_the_analysis() -> None:
    # What the checker learnt (a newer sqlglot may learn more) describes the plan; it changes
    # nothing the plan does, so it makes no new version.
    plan = _plan()
    assert _plan(columns=("one",)).hash == plan.hash
    assert dataclasses.replace(plan, analysis={}).hash == plan.hash
    assert "analysis" not in plan.behaviour_json()
    assert plan.to_json()["analysis"] == {
        "n2": {
            "statements": ["query"],
            "columns": ["?column?"],
            "returns_rows": True,
            "refs": [],
            "vars": [],
        }
    }


def test_unknown_format_is_refused_with_a_clear_message() -> None:
    data = json.loads(_plan().dumps())
    data["format"] = max(READS) + 1
    with pytest.raises(PlanFormatError, match="upgrade dfc or redeploy"):
        Plan.from_json(data)


def test_unknown_node_type_is_refused() -> None:
    data = json.loads(_plan().dumps())
    data["nodes"]["n3"]["type"] = "TELEPORT"
    with pytest.raises(PlanFormatError, match="TELEPORT"):
        Plan.from_json(data)


def test_explain_tree_with_and_without_marks() -> None:
    plan = _plan()
    assert explain_lines(plan) == ["THEN", "├── SQL SELECT 1 |=> one", "└── SLEEP 1s"]
    marks = {"n1": NodeMark("running"), "n2": NodeMark("completed", duration_ms=1.25)}
    assert explain_lines(plan, marks) == [
        "⏳ THEN",
        "├── ✓ SQL SELECT 1 |=> one  (1.2 ms)",
        "└── · SLEEP 1s",
    ]


def test_graphs_name_every_node_and_edge() -> None:
    plan = _plan()
    m = mermaid(plan)
    assert 'n2["SQL SELECT 1 |=#gt; one"]' in m and "n1 -->|1| n2" in m and "n1 -->|2| n3" in m
    d = dot(plan)
    assert d.startswith('digraph "x" {') and 'n1 -> n3 [label="2"];' in d
