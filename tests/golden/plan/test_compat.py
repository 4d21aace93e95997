"""Golden cases of the compatibility rule (`dfc.plan.compat`): two versions of a workflow and
the nodes an instance has records for; what differs, and whether the instance can move."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dfc.compiler import compile_source
from dfc.plan import compat
from dfc.plan.model import Plan
from dfc.source import SourceFile

BASE = """\
param n int = 1;
'SELECT {n} AS n' |=> 'a'
~> 'INSERT INTO t VALUES ($a.n)'
~> df.wait_for_signal('go')
~> 'SELECT 3'
"""


@dataclass(frozen=True)
class Case:
    old: str
    new: str
    recorded: tuple[str, ...]  # plan node ids of the old version the instance has records for


CASES = {
    "identical": Case(BASE, BASE, ("n4", "n5", "n6")),
    "later step changed": Case(BASE, BASE.replace("SELECT 3", "SELECT 4"), ("n4", "n5", "n6")),
    "later step changed, already run": Case(
        BASE, BASE.replace("SELECT 3", "SELECT 4"), ("n4", "n5", "n6", "n7")
    ),
    "recorded step changed": Case(
        BASE, BASE.replace("VALUES ($a.n)", "VALUES ($a.n + 1)"), ("n4", "n5", "n6")
    ),
    "step appended": Case(BASE, BASE + "~> 'SELECT 5'\n", ("n4", "n5", "n6")),
    "binding renamed": Case(
        BASE, BASE.replace("'a'", "'b'").replace("$a.n", "$b.n"), ("n4", "n5", "n6")
    ),
    "signal renamed": Case(BASE, BASE.replace("'go'", "'start'"), ("n4", "n5", "n6")),
    "parameter added": Case(BASE, "param m int = 2;\n" + BASE, ("n4",)),
    "branch added to a join": Case(
        "'SELECT 1' ~> ('SELECT 2' & df.sleep(60)) ~> 'SELECT 3'\n",
        "'SELECT 1' ~> ('SELECT 2' & df.sleep(60) & 'SELECT 9') ~> 'SELECT 3'\n",
        ("n3", "n5", "n6"),
    ),
    "a step without records changed before the wait": Case(
        "df.loop('SELECT 1' |=> 'x' ~> df.break()) ~> df.wait_for_signal('go') ~> 'SELECT 2'\n",
        "df.loop('SELECT 1' |=> 'x' ~> df.break('2')) ~> df.wait_for_signal('go') ~> 'SELECT 2'\n",
        ("n5", "n7"),
    ),
    "a step without records changed after the wait": Case(
        "df.wait_for_signal('go') ~> df.loop('SELECT 1' |=> 'x' ~> df.break())\n",
        "df.wait_for_signal('go') ~> df.loop('SELECT 1' |=> 'x' ~> df.break('2'))\n",
        ("n2",),
    ),
    "the arm an earlier if did not take changed": Case(
        "df.if('SELECT true', 'SELECT 1', 'SELECT 2') ~> df.wait_for_signal('go')\n",
        "df.if('SELECT true', 'SELECT 1', 'SELECT 3') ~> df.wait_for_signal('go')\n",
        ("n3", "n4", "n6"),
    ),
    "the arm an earlier if took changed": Case(
        "df.if('SELECT true', 'SELECT 1', 'SELECT 2') ~> df.wait_for_signal('go')\n",
        "df.if('SELECT true', 'SELECT 9', 'SELECT 2') ~> df.wait_for_signal('go')\n",
        ("n3", "n4", "n6"),
    ),
    "retry attempts changed around a recorded step": Case(
        "df.retry('SELECT 1', attempts => 3) ~> df.sleep(5) ~> 'SELECT 2'\n",
        "df.retry('SELECT 1', attempts => 5) ~> df.sleep(5) ~> 'SELECT 2'\n",
        ("n3", "n4", "n5"),
    ),
}


def _plan(text: str, version: str) -> Plan:
    comp = compile_source(SourceFile("flow.df", text))
    assert comp.plan is not None, (version, [d.message for d in comp.sorted_diagnostics])
    return comp.plan


def _render(case: Case) -> str:
    old, new = _plan(case.old, "old"), _plan(case.new, "new")
    lines = [f"recorded: {', '.join(case.recorded)}"]
    whole = compat.plan_difference(old, new)
    lines.append(f"whole plan: {whole or 'same shape'}")
    lines += [f"changed {nid}: {reason}" for nid, reason in compat.changes(old, new).items()]
    found = compat.verdict(old, new, case.recorded)
    if found.ok:
        lines.append("verdict: can move")
    else:
        at = f" at {found.node}" if found.node else ""
        lines.append(f"verdict: stays{at}: {found.reason}")
    return "\n".join(lines)


@pytest.mark.parametrize("name", list(CASES))
def test_compat_case(name: str, snapshot: object) -> None:
    assert _render(CASES[name]) == snapshot


def test_the_rule_in_brief() -> None:
    old = _plan(BASE, "old")
    later = _plan(BASE.replace("SELECT 3", "SELECT 4"), "new")
    assert compat.verdict(old, later, ["n4", "n5", "n6"]).ok
    assert compat.verdict(old, old, ["n7"]) == compat.COMPATIBLE
    stays = compat.verdict(old, later, ["n7"])
    assert (stays.ok, stays.node, stays.reason) == (False, "n7", "the SQL text of n7 changed")
    # Nothing recorded yet (a pending instance): only the plan as a whole matters.
    assert compat.verdict(old, later, []).ok
    params = compat.verdict(old, _plan("param m int = 2;\n" + BASE, "new"), [])
    assert not params.ok and params.node is None
    assert params.reason is not None and params.reason.startswith("the parameters differ")
