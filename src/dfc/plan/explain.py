"""Explain trees and graphs of a plan, like pg_durable's ``df.explain``.

One line per node: its type, its essentials (abbreviated SQL, seconds, cron, URL), its binding,
and, when statuses are given (a live instance), a mark and a timing. Chains of ``~>`` are shown
as one THEN with all their steps, since that is how people read them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import assert_never

from dfc.plan import nodes
from dfc.plan.model import Plan, PlanNode

MARKS = {
    "completed": "✓",
    "failed": "✗",
    "running": "⏳",
    "waiting": "⏳",
    "cancelled": "⊘",
    "skipped": "⊘",
    "pending": "·",
}


WIDTH = 60
"""How many characters of a step's SQL, URL or value a tree line shows (None: all)."""


@dataclass(frozen=True, slots=True)
class NodeMark:
    """The live state of a node for display: status, duration, loop iteration (or, in the body
    of a ``df.map``, the row: ``row``)."""

    status: str
    duration_ms: float | None = None
    iteration: int | None = None
    row: bool = False  # the iteration is a row of a df.map
    note: str | None = None


def abbreviate(text: str, width: int | None = WIDTH) -> str:
    """Collapse whitespace and cut to ``width`` characters with an ellipsis (None: no cut)."""
    flat = " ".join(text.split())
    return flat if width is None or len(flat) <= width else flat[: width - 1] + "…"


def describe(node: PlanNode, width: int | None = WIDTH) -> str:
    """The one-line description of a node, without children."""
    text = _essentials(node.config, len(node.children), width)
    if node.result_name:
        text += f" |=> {node.result_name}"
    return text


def _essentials(config: nodes.NodeConfig, n_children: int, width: int | None) -> str:
    match config:
        case nodes.Sql(query=query, autocommit=autocommit):
            text = f"SQL {abbreviate(query, width)}"
            return text + "  [autocommit: at-least-once]" if autocommit else text
        case nodes.Then():
            return "THEN"
        case nodes.Join():
            return f"JOIN ({n_children} branches)"
        case nodes.Race():
            return f"RACE ({n_children} branches)"
        case nodes.If():
            return "IF"
        case nodes.IfRows(result_name=rows_of):
            return f"IF_ROWS ${rows_of}"
        case nodes.Loop():
            return "LOOP while" if n_children > 1 else "LOOP forever"
        case nodes.Break(value=v):
            return "BREAK" if v is None else f"BREAK {abbreviate(v, width)}"
        case nodes.Sleep(seconds=seconds):
            return f"SLEEP {seconds}s"
        case nodes.WaitSchedule(cron=cron, timezone=zone):
            return f"WAIT_SCHEDULE '{cron}' ({zone})"
        case nodes.Signal(name=name, timeout=t):
            return f"SIGNAL '{name}'" + (f" timeout {t}s" if t is not None else "")
        case nodes.Http(method=method, url=url) | nodes.HttpMultipart(method=method, url=url):
            return f"{config.TYPE} {method} {abbreviate(url, width)}  [at-least-once]"
        case nodes.Retry():
            c = config
            return (
                f"RETRY attempts={c.attempts} backoff={c.backoff}s "
                f"factor={c.factor} max={c.max_backoff}s" + (" jitter" if c.jitter else "")
            )
        case nodes.Timeout(seconds=seconds):
            return f"TIMEOUT {seconds}s"
        case nodes.Call(workflow=workflow, version=version, args=passed):
            pinned = f" v{version}" if version is not None else ""
            shown = ", ".join(
                f"{k} => {json.dumps(v, ensure_ascii=False)}" for k, v in passed.items()
            )
            return f"{config.TYPE} {workflow}{pinned}" + (
                f" ({abbreviate(shown, width)})" if shown else ""
            )
        case nodes.Map(rows_from=source, concurrency=n, on_error=on_error, item=item):
            over = f" over ${source}" if source is not None else ""
            return f"MAP{over} as ${item}, {n} at a time, on error {on_error}"
    assert_never(config)


def _display_children(plan: Plan, node: PlanNode) -> list[tuple[str, str]]:
    """(label, child id) pairs as shown; THEN chains are flattened (iteratively: a long ``~>``
    chain is a tree as deep as it is long)."""
    if node.type == "THEN":
        out: list[tuple[str, str]] = []
        stack = list(reversed(node.children))
        while stack:
            cid = stack.pop()
            child = plan.node(cid)
            if child.type == "THEN" and child.result_name is None and child.undo is None:
                stack.extend(reversed(child.children))
            else:
                out.append(("", cid))
        return out
    if isinstance(node.config, nodes.If):
        return list(zip(("cond: ", "then: ", "else: "), node.children, strict=False))
    if isinstance(node.config, nodes.IfRows):
        return list(zip(("then: ", "else: "), node.children, strict=False))
    if node.type == "LOOP" and len(node.children) == 2:
        return [("body: ", node.children[0]), ("while: ", node.children[1])]
    if node.type == "MAP":
        labels = ("rows: ", "body: ") if len(node.children) == 2 else ("body: ",)
        return list(zip(labels, node.children, strict=True))
    return [("", c) for c in node.children]


def heading_lines(plan: Plan) -> list[str]:
    """What a plan says beside its tree: its schedule, if it has one."""
    return [] if plan.schedule is None else [f"schedule {plan.schedule.describe()}"]


def diff_lines(plan: Plan) -> list[str]:
    """The lines `dfc diff` and the dashboard compare: declared parameters, the heading (the
    schedule) and the explain tree with every step's text in full."""
    params = [
        f"param {p.name} {p.type}" + (f" = {p.default!r}" if p.has_default else "")
        for p in plan.params
    ]
    return params + heading_lines(plan) + explain_lines(plan, width=None)


def explain_lines(
    plan: Plan,
    marks: Mapping[str, NodeMark] | None = None,
    *,
    width: int | None = WIDTH,
    ids: bool = False,
) -> list[str]:
    """The explain tree as lines of text (no colour); with ``ids``, each line starts with its
    node's id (``n3``, as `dfc history` and `dfc fork --from` name nodes)."""
    lines: list[str] = []
    shown: list[str] = []  # the node id of each line

    def mark_text(nid: str) -> str:
        if marks is None:
            return ""
        m = marks.get(nid)
        if m is None:
            return MARKS["pending"] + " "
        return MARKS.get(m.status, "?") + " "

    def suffix(nid: str) -> str:
        if marks is None or nid not in marks:
            return ""
        m = marks[nid]
        bits = []
        if m.iteration is not None:
            bits.append(f"{'row' if m.row else 'iteration'} {m.iteration}")
        if m.duration_ms is not None:
            bits.append(_duration(m.duration_ms))
        if m.note:
            bits.append(m.note)
        return f"  ({', '.join(bits)})" if bits else ""

    # (node id, prefix, label, last child?, top?) in display order, without recursion.
    stack: list[tuple[str, str, str, bool, bool]] = [(plan.root, "", "", True, True)]
    while stack:
        nid, prefix, label, last, top = stack.pop()
        node = plan.node(nid)
        branch = "" if top else ("└── " if last else "├── ")
        lines.append(f"{prefix}{branch}{mark_text(nid)}{label}{describe(node, width)}{suffix(nid)}")
        shown.append(nid)
        kids = _display_children(plan, node)
        if node.undo is not None:
            kids.append(("undo: ", node.undo))
        child_prefix = prefix if top else prefix + ("    " if last else "│   ")
        for i in reversed(range(len(kids))):
            lab, cid = kids[i]
            stack.append((cid, child_prefix, lab, i == len(kids) - 1, False))
    if ids:
        pad = max(map(len, shown))
        return [f"{nid:<{pad}}  {line}" for nid, line in zip(shown, lines, strict=True)]
    return lines


def _duration(ms: float) -> str:
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
    s = ms / 1000
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


# -- graphs -------------------------------------------------------------------------------------


def tree_rows(plan: Plan) -> list[tuple[PlanNode, list[tuple[str, str]]]]:
    """Nodes as the explain tree shows them (THEN chains flattened), each with labelled edges."""
    out: list[tuple[PlanNode, list[tuple[str, str]]]] = []
    stack = [plan.root]
    while stack:
        node = plan.node(stack.pop())
        kids = _display_children(plan, node)
        if node.type == "THEN":
            edges = [(str(i + 1), cid) for i, (_, cid) in enumerate(kids)]
        else:
            edges = [(lab.rstrip(": "), cid) for lab, cid in kids]
        if node.undo is not None:
            edges.append(("undo", node.undo))
        out.append((node, edges))
        stack.extend(cid for _, cid in reversed(edges))
    return out


def mermaid(plan: Plan) -> str:
    """The plan as a Mermaid flowchart (tree edges, labelled by role)."""
    visible = tree_rows(plan)
    out = ["flowchart TD"]
    out += [f'    {node.id}["{_escape_mermaid(describe(node, 40))}"]' for node, _ in visible]
    for node, edges in visible:
        for lab, cid in edges:
            arrow = "-.->|undo|" if lab == "undo" else f"-->|{lab}|" if lab else "-->"
            out.append(f"    {node.id} {arrow} {cid}")
    return "\n".join(out) + "\n"


def dot(plan: Plan) -> str:
    """The plan as a Graphviz DOT digraph."""
    visible = tree_rows(plan)
    out = [f"digraph {_dot_string(plan.name)} {{", "    node [shape=box, fontname=monospace];"]
    out += [f"    {node.id} [label={_dot_string(describe(node, 40))}];" for node, _ in visible]
    for node, edges in visible:
        for lab, cid in edges:
            attrs = ""
            if lab:
                attrs = f" [label={_dot_string(lab)}" + (
                    ", style=dashed]" if lab == "undo" else "]"
                )
            out.append(f"    {node.id} -> {cid}{attrs};")
    out.append("}")
    return "\n".join(out) + "\n"


def _dot_string(text: str) -> str:
    """A DOT string literal (DOT's quoting rules are JSON's for our labels)."""
    return json.dumps(text, ensure_ascii=False)


def _escape_mermaid(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
