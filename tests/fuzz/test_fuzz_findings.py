"""Bugs the fuzzers found, each pinned by the smallest workflow that showed it."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from fuzz_run import Case, run_case
from fuzz_workflows import Generated, Step, predict, sql_node
from test_fuzz_front_end import gives_diagnostics_only

from dfc import ast
from dfc.compiler import compile_source
from dfc.params import substitution_text
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


def test_a_chain_of_thousands_of_joins_is_checked_in_bounded_time() -> None:
    # Each join of `a & b & c ...` walked the whole branch holding the joins before it: 2,000
    # joins took 11 s in the binding checker, 5,000 more than a minute (now 2 s).
    started = time.monotonic()
    comp = compile_source(SourceFile("joins.df", " & ".join(["'SELECT 1'"] * 5000)))
    assert comp.plan is not None
    assert time.monotonic() - started < 20


_HUGE = "9" * 5000


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (f"df.loop(df.break({_HUGE}))", "DFC107"),
        (f"df.retry('SELECT 1', factor => {_HUGE})", "DFC107"),
        (f"param p int = {_HUGE}; 'SELECT {{p}}'", "DFC107"),
        (f"df.sleep('{_HUGE}')", "DFC407"),
        ("df.sleep(3153600001)", "DFC407"),
        ("df.wait_for_signal('go', 99999999999999)", "DFC407"),
        ("df.retry('SELECT 1', max_backoff => 1e300)", "DFC412"),
        (f"df.retry('SELECT 1', attempts => '{_HUGE}')", "DFC412"),
    ],
    ids=[
        "break",
        "factor",
        "param",
        "sleep text",
        "sleep",
        "signal timeout",
        "backoff",
        "attempts",
    ],
)
def test_huge_numbers_are_diagnosed_not_raised(text: str, code: str) -> None:
    # Python refuses int() of more than 4,300 digits (the emitter raised ValueError), and a
    # timer past year 9999 overflows the runtime's datetime arithmetic.
    gives_diagnostics_only(text)
    comp = compile_source(SourceFile("huge.df", text))
    assert [d.code for d in comp.diagnostics if d.is_error] == [code]


def test_an_int_parameter_of_thousands_of_digits_is_substituted() -> None:
    assert substitution_text("int", f" {_HUGE} ") == _HUGE
    assert substitution_text("int", "-0") == "0"
