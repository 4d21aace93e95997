"""Whether an instance's recorded progress on one plan means the same on another (SPEC §5.9).

An instance's state is its node records, keyed by plan node id (`dfc.runtime.keys`). Those
records keep their meaning on another plan — another version of the workflow — when every node
they were recorded for, every node on the way from the root to it, and every step of a sequence
on that way that comes before it, is the same node there: the same id, kind, configuration (SQL
text and all), children, binding and undo. Then replaying the records on the new plan settles
exactly the steps they settled on the old one, and whatever the records do not cover runs as
the new plan says. Node ids are positions in the plan (the
emitter numbers nodes in pre-order), so a step inserted or removed before a recorded one moves
its id and makes the instance incompatible: that is the safe answer, never a wrong replay.

The parameters and start-time expressions must be the same too: an instance's variables were
captured against them when it started.

This is the one definition of the rule: `dfc diff --compat`, `dfc upgrade` and `dfc fork
--version` all ask `verdict`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dfc.plan import nodes
from dfc.plan.model import Plan, PlanNode


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """Whether recorded progress maps onto the other plan; when not, the first node (in plan
    order) that differs and why, as a sentence fragment (``"the SQL text of n7 changed"``)."""

    ok: bool
    node: str | None = None
    reason: str | None = None


COMPATIBLE = Verdict(ok=True)


def changes(old: Plan, new: Plan) -> dict[str, str]:
    """Every node of ``old`` that is not the same node in ``new``, with the reason, in plan
    order (pre-order from the root; nodes no longer reachable are not listed)."""
    out: dict[str, str] = {}
    for node in old.walk():
        reason = _difference(node, new.nodes.get(node.id))
        if reason is not None:
            out[node.id] = reason
    return out


def plan_difference(old: Plan, new: Plan) -> str | None:
    """Why no instance of ``old`` can move to ``new`` whatever it recorded, or None."""
    if old.params != new.params:
        return "the parameters differ (an instance's variables were captured for the old ones)"
    if old.expressions != new.expressions:
        return "the start-time expressions differ"
    if old.root != new.root:
        return f"the root node is {old.root} in one and {new.root} in the other"
    return None


def verdict(old: Plan, new: Plan, recorded: Iterable[str]) -> Verdict:
    """Whether the records of the nodes ``recorded`` (plan node ids of ``old``) keep their
    meaning on ``new``: the part of ``old`` they show ran must be the same in both plans (see
    the module docstring)."""
    whole = plan_difference(old, new)
    if whole is not None:
        return Verdict(ok=False, reason=whole)
    ran = _ran(old, recorded)
    for nid, reason in changes(old, new).items():  # plan order: the first difference is reported
        if nid in ran:
            return Verdict(ok=False, node=nid, reason=reason)
    return COMPATIBLE


def _ran(plan: Plan, recorded: Iterable[str]) -> set[str]:
    """The nodes that records of ``recorded`` show ran: each of them, every node on the path
    from the root to it, and, where that path enters the second step of a sequence, the first
    step — it finished, whether or not all its nodes keep records (a ``df.break`` keeps none:
    changed, it would run differently on replay). Of an if in a finished step only the arm
    that has records counts (both when neither has): the other was not taken and will not be."""
    parents = _parents(plan)
    paths: set[str] = set()
    finished: list[str] = []
    for nid in recorded:
        while nid not in paths:
            paths.add(nid)
            parent = parents.get(nid)
            if parent is None:
                break
            node = plan.nodes[parent]
            if node.type == "THEN" and node.children[1:] == (nid,):
                finished.append(node.children[0])
            nid = parent
    out = set(paths)
    while finished:
        node = plan.nodes[finished.pop()]
        out.add(node.id)
        kids = list(node.children)
        if isinstance(node.config, nodes.If | nodes.IfRows):
            cond = kids[:1] if isinstance(node.config, nodes.If) else []
            arms = kids[len(cond) :]
            taken = [a for a in arms if a in paths]
            kids = cond + (taken or arms)
        if node.undo is not None:
            kids.append(node.undo)
        finished.extend(kids)
    return out


def _parents(plan: Plan) -> Mapping[str, str]:
    """Node id -> the id of the node it is a child (or the undo) of."""
    out: dict[str, str] = {}
    for node in plan.walk():
        for child in node.children:
            out[child] = node.id
        if node.undo is not None:
            out[node.undo] = node.id
    return out


def _difference(old: PlanNode, new: PlanNode | None) -> str | None:
    """Why ``new`` (the node with ``old``'s id in the other plan) is not the same node."""
    nid = old.id
    if new is None:
        return f"{nid} is not in the new version"
    if old.type != new.type:
        return f"{nid} is {old.type} in the old version and {new.type} in the new one"
    if old.config != new.config:
        if (
            isinstance(old.config, nodes.Sql)
            and isinstance(new.config, nodes.Sql)
            and old.config.query != new.config.query
        ):
            return f"the SQL text of {nid} changed"
        return f"the configuration of {nid} changed"
    if old.children != new.children:
        return f"the children of {nid} changed (steps were added, removed or moved)"
    if old.result_name != new.result_name:
        return f"the binding of {nid} changed"
    if old.undo != new.undo:
        return f"the undo of {nid} changed"
    return None
