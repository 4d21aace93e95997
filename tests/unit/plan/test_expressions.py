"""Start-time SQL expressions in plans (``--grammar pg`` arguments): named in the node's
configuration, listed with their SQL, hashed, written as format 3."""

from __future__ import annotations

from dfc.compiler import compile_source
from dfc.plan.model import FORMAT, FORMAT_EXPRESSIONS, Plan, PlanExpression
from dfc.source import SourceFile


def _plan(text: str) -> Plan:
    comp = compile_source(SourceFile("x.df", text), grammar="pg")
    assert comp.plan is not None, [d.message for d in comp.diagnostics]
    return comp.plan


FLOW = (
    "df.http('https://x.test', 'POST', 'at ' || now()::text, jsonb_build_object('a', 1))\n"
    "~> df.loop(df.break(jsonb_build_object('n', 2)))\n"
)


def test_expressions_are_named_in_order_and_listed() -> None:
    plan = _plan(FLOW)
    assert plan.expressions == (
        PlanExpression(name="__expr_1", sql="'at ' || now()::text", node="n2", argument="body"),
        PlanExpression(
            name="__expr_2", sql="jsonb_build_object('a', 1)", node="n2", argument="headers"
        ),
        PlanExpression(
            name="__expr_3", sql="jsonb_build_object('n', 2)", node="n4", argument="value"
        ),
    )
    http = plan.node("n2").config.to_json()
    assert http["body"] == "{__expr_1}" and http["headers"] == "{__expr_2}"
    assert plan.node("n4").config.to_json() == {"value": "{__expr_3}"}
    assert plan.format == FORMAT_EXPRESSIONS
    assert Plan.loads(plan.dumps()) == plan


def test_the_hash_covers_the_sql() -> None:
    assert _plan(FLOW).hash != _plan(FLOW.replace("'n', 2", "'n', 3")).hash
    # Layout of the SQL is part of it too: it is the text the database evaluates.
    assert _plan(FLOW).hash == _plan("-- a comment\n" + FLOW).hash


def test_plans_without_expressions_keep_format_2() -> None:
    plan = _plan("df.http('https://x.test', 'POST', 'literal')")
    assert plan.format == FORMAT and "expressions" not in plan.behaviour_json()
