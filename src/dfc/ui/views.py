"""What the dashboard's pages show, as plain data: each page renders it and `/api/...` returns it
as JSON, so the two never disagree."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from dfc.client import Client
from dfc.compiler import graph_compiler
from dfc.plan.explain import diff_lines, explain_lines, tree_rows
from dfc.plan.model import Plan
from dfc.runtime import instances, machine
from dfc.runtime.keys import node_id
from dfc.runtime.live import marks
from dfc.store import registry

Conn = psycopg.Connection[Any]

PREVIEW_CHARS = 2000
"""How much of a long value a page shows before the link to the whole value."""

TREE_ROWS = 2000
"""How many nodes of a tree a page shows (the JSON has them all): a page that refreshes every
second stays light for a 10,000-node plan."""


@dataclass(frozen=True, slots=True)
class Preview:
    """A JSON value as a page shows it: at most `PREVIEW_CHARS` of its text."""

    text: str
    truncated: bool
    size: int


def preview(value: Any, limit: int = PREVIEW_CHARS, indent: int | None = 2) -> Preview:
    """The value's JSON text (on one line with ``indent`` None), cut to ``limit`` characters."""
    text = json.dumps(value, indent=indent, ensure_ascii=False, default=str)
    if len(text) <= limit:
        return Preview(text, False, len(text))
    return Preview(text[:limit] + "…", True, len(text))


# -- workflows ----------------------------------------------------------------------------------


def workflows(conn: Conn) -> list[dict[str, Any]]:
    """Every deployed workflow with its latest version."""
    return [v.to_dict() for v in registry.workflows(conn)]


def versions(conn: Conn, name: str) -> list[dict[str, Any]]:
    """A workflow's versions, newest first (empty for an unknown name)."""
    return [v.to_dict() for v in reversed(Client(conn).versions(name))]


def plan_view(conn: Conn, name: str, version: int) -> dict[str, Any]:
    """A version's plan: its parameters, schedule and explain tree (full step text)."""
    _, plan = registry.load_plan(conn, name, version)
    return {
        "name": name,
        "version": version,
        "hash": plan.hash,
        "lines": diff_lines(plan),
        "source": plan.source,
    }


def diff_view(conn: Conn, name: str, old: int, new: int) -> dict[str, Any]:
    """What changed between two versions, as `dfc diff --json` says it."""
    _, p1 = registry.load_plan(conn, name, old)
    _, p2 = registry.load_plan(conn, name, new)
    lines = list(
        difflib.unified_diff(
            diff_lines(p1),
            diff_lines(p2),
            fromfile=f"{name} v{old}",
            tofile=f"{name} v{new}",
            lineterm="",
        )
    )
    return {
        "name": name,
        "from": old,
        "to": new,
        "same": p1.hash == p2.hash,
        "from_hash": p1.hash,
        "to_hash": p2.hash,
        "diff": lines,
    }


# -- an instance --------------------------------------------------------------------------------


def instance_view(conn: Conn, instance_id: str) -> dict[str, Any]:
    """An instance: its state, its tree with a status, duration and result per node, where it
    failed, and its history."""
    snap = instances.snapshot(conn, instance_id, graph_compiler)
    info = snap.info
    ev = machine.evaluate(
        snap.plan,
        instance_id=info.id,
        label=info.label,
        vars=info.vars,
        records=snap.records,
        signals=snap.signals,
        now=datetime.now(UTC),
    )
    node_marks = marks(ev.statuses, snap.records, timings=snap.timings)
    lines = explain_lines(snap.plan, node_marks)
    ids = [node.id for node, _ in tree_rows(snap.plan)]
    assert len(ids) == len(lines), "the explain tree shows each visible node on one line"
    latest = {node_id(key): rec for key, rec in snap.records.items()}
    nodes = []
    for nid, line in zip(ids, lines, strict=True):
        rec = latest.get(nid)
        mark = node_marks.get(nid)
        nodes.append(
            {
                "id": nid,
                "type": snap.plan.node(nid).type,
                "line": line,
                "status": "pending" if mark is None else mark.status,
                "duration_ms": None if mark is None else mark.duration_ms,
                "key": None if rec is None else rec.key,
                "result": None if rec is None else rec.result,
                "error": None if rec is None else rec.error,
                "wake_at": None if rec is None or rec.wake_at is None else rec.wake_at.isoformat(),
                "attempt": None if rec is None else rec.attempt,
            }
        )
    return {
        "instance": info.to_dict(),
        "finished": info.finished,
        "error_location": error_location(info.error, snap.plan),
        "nodes": nodes,
        "history": [e.to_dict() for e in Client(conn).history(instance_id)],
    }


def error_location(error: Any, plan: Plan) -> dict[str, Any] | None:
    """Where a failed instance's error points in its source: file, line, column, the line's
    text and the width of the failing construct on it (None when unknown)."""
    if not isinstance(error, Mapping) or not error.get("node"):
        return None
    span = plan.where(str(error["node"]))
    if span is None:
        return None
    lines = plan.source.splitlines()
    text = lines[span.line - 1].expandtabs(1) if 1 <= span.line <= len(lines) else ""
    width = (
        span.end_column - span.column if span.end_line == span.line else len(text) - span.column + 1
    )
    return {
        "file": span.file,
        "line": span.line,
        "column": span.column,
        "text": text,
        "width": max(1, width),
        "trail": [str(step) for step in span.trail],
    }


def node_value(view: Mapping[str, Any], nid: str) -> dict[str, Any] | None:
    """One node's whole record from an `instance_view` (None: no such node)."""
    return next((n for n in view["nodes"] if n["id"] == nid), None)
