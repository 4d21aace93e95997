"""Bugs the fuzzers found, each pinned by the smallest workflow that showed it."""

from __future__ import annotations

from collections import Counter

import pytest
from fuzz_run import Case, run_case
from fuzz_workflows import Generated, Step, predict, sql_node

from dfc import ast
from dfc.compiler import compile_source
from dfc.source import SourceFile

_SP = SourceFile("<test>", "").span(0, 0)


def _nested_undos() -> Generated:
    """``(s1 <-> s2 <-> s3) ~> boom``: the compensated step has two undos."""
    steps = [Step("s1", "step"), Step("s2", "step"), Step("s3", "step"), Step("s4", "boom")]
    s1, s2, s3, s4 = (sql_node(s) for s in steps)
    inner = ast.Compensate(node=s1, undo=s2, span=_SP)
    body = ast.Seq(left=ast.Compensate(node=inner, undo=s3, span=_SP), right=s4, span=_SP)
    return Generated(body=body, steps={s.label: s for s in steps}, sent=frozenset())


def test_nested_compensations_compile_to_both_undos_outermost_first() -> None:
    # The emitter kept only the outermost undo of a node (`a <-> u1 <-> u2` lost u1).
    plan = compile_source(
        SourceFile("undo.df", "('SELECT 1' <-> 'SELECT 2' <-> 'SELECT 3') ~> 'SELECT 4'")
    ).plan
    assert plan is not None
    first = plan.nodes[plan.nodes[plan.root].children[0]]
    assert first.undo is not None
    undo = plan.nodes[first.undo]
    queries = [plan.nodes[c].config.query for c in undo.children]  # type: ignore[union-attr]
    assert queries == ["SELECT 3", "SELECT 2"]


@pytest.mark.db
@pytest.mark.parametrize("batch", [False, True])
def test_nested_compensations_both_run(fuzz_url: str, batch: bool) -> None:
    wf = _nested_undos()
    assert predict(wf).effects == Counter({"s1": 1, "s2": 1, "s3": 1})
    run_case(fuzz_url, Case(workflows=[(wf, 1)], batch=batch))
