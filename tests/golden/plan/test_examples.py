"""Golden plans and explain trees for every example, and the hash's promises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dfc.compiler import compile_source
from dfc.plan.explain import explain_lines
from dfc.plan.model import Plan
from dfc.source import SourceFile
from dfc.syntax import format_module, parse_text

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.df"))


def _compile(path: Path, text: str | None = None) -> Plan:
    source = SourceFile(f"examples/{path.name}", path.read_text() if text is None else text)
    comp = compile_source(source)
    assert comp.plan is not None, [d.to_dict() for d in comp.sorted_diagnostics if d.is_error]
    return comp.plan


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_plan(path: Path, snapshot: object) -> None:
    plan = _compile(path)
    shown = plan.to_json()
    del shown["source"]  # the example file itself; the snapshot is about what it compiles to
    assert json.dumps(shown, indent=2, sort_keys=True, ensure_ascii=False) == snapshot(name="plan")
    assert "\n".join(explain_lines(plan)) == snapshot(name="explain")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_same_source_gives_same_plan_and_formatting_keeps_the_hash(path: Path) -> None:
    plan = _compile(path)
    assert _compile(path).dumps() == plan.dumps()
    module, diags = parse_text(path.read_text(), f"examples/{path.name}")
    assert module is not None and not diags
    formatted = format_module(module)
    assert _compile(path, formatted).hash == plan.hash
    # Comments and blank lines only describe layout: they must not change the hash either.
    assert _compile(path, "-- a new comment\n\n" + path.read_text()).hash == plan.hash


def test_any_behaviour_change_changes_the_hash() -> None:
    base = _compile(EXAMPLES[0])
    text = EXAMPLES[0].read_text()
    edited = text.replace("SELECT", "SELECT  ", 1)  # whitespace inside SQL text is behaviour
    assert _compile(EXAMPLES[0], edited).hash != base.hash


def test_plan_round_trips_through_json() -> None:
    for path in EXAMPLES:
        plan = _compile(path)
        assert Plan.loads(plan.dumps()) == plan
