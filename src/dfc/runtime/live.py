"""Live trees: the statuses of an instance's nodes as `NodeMark`s for `dfc.plan.explain`.

The state machine reports a status per node *key* (``n2#3/n7``: node n7 in iteration 3 of loop
n2); a tree shows each plan node once, so each node gets the mark of its latest execution (the
highest iteration and attempt numbers along its key), with the iteration shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from dfc.plan.explain import NodeMark
from dfc.plan.model import Plan
from dfc.runtime.keys import node_id
from dfc.runtime.state import MapProgress, NodeRecord

_NUMBERS = re.compile(r"[#@](\d+)/")
_ITERATION = re.compile(r"#(\d+)/")


def _order(key: str) -> tuple[int, ...]:
    return tuple(int(n) for n in _NUMBERS.findall(key))


def marks(
    statuses: Mapping[str, str],
    records: Mapping[str, NodeRecord] | None = None,
    *,
    durations_ms: Mapping[str, float] | None = None,
    timings: Mapping[str, tuple[datetime | None, datetime | None]] | None = None,
    plan: Plan | None = None,
    now: datetime | None = None,
    children: Mapping[str, str] | None = None,
    maps: Mapping[str, MapProgress] | None = None,
) -> dict[str, NodeMark]:
    """One mark per plan node id, from the latest key that has a status.

    With ``timings`` and ``plan``, a composite node's record (a race's decision, a join's
    failure) is timed from the first start inside it, not from when its record was written.
    A timer due on another day than ``now`` shows its date. ``children`` maps the keys of
    ``df.call``/``df.spawn`` steps to their child's status, shown as a link. A ``df.map`` notes its
    progress (``maps``, from the evaluation) rather than one mark per row.
    """
    walls = _wall_times(plan, timings) if plan is not None and timings else {}
    latest: dict[str, str] = {}
    for key in statuses:
        nid = node_id(key)
        best = latest.get(nid)
        if best is None or _order(key) >= _order(best):
            latest[nid] = key
    out: dict[str, NodeMark] = {}
    for nid, key in latest.items():
        found = list(_ITERATION.finditer(key))
        last = found[-1] if found else None  # the innermost loop's (or map's) segment
        duration = None
        if key in walls:
            duration = walls[key]
        elif durations_ms is not None and key in durations_ms:
            duration = durations_ms[key]
        elif timings is not None and key in timings:
            started, finished = timings[key]
            if started is not None and finished is not None:
                duration = (finished - started).total_seconds() * 1000
        out[nid] = NodeMark(
            status=statuses[key],
            duration_ms=duration,
            iteration=int(last.group(1)) if last else None,
            row=last is not None and maps is not None and key[: last.start()] in maps,
            note=maps[key].describe()
            if maps and key in maps
            else _note(records.get(key) if records else None, statuses[key], now, children),
        )
    return out


def _wall_times(
    plan: Plan, timings: Mapping[str, tuple[datetime | None, datetime | None]]
) -> dict[str, float]:
    """Milliseconds from the earliest start inside each finished composite record's node (in
    the same loop iteration and attempt) to the record's end, by key."""
    out: dict[str, float] = {}
    for key, (_, finished) in timings.items():
        nid = node_id(key)
        if finished is None or nid not in plan.nodes or not plan.node(nid).children:
            continue
        prefix = key[: len(key) - len(nid)]
        inside = {n.id for n in plan.walk(nid)}
        starts = [
            started
            for k, (started, _) in timings.items()
            if started is not None and k.startswith(prefix) and _first_node(k, prefix) in inside
        ]
        if starts:
            out[key] = (finished - min(starts)).total_seconds() * 1000
    return out


_SEGMENT_NODE = re.compile(r"[^/#@~]*")


def _first_node(key: str, prefix: str) -> str:
    """The node id of the first segment of ``key`` after ``prefix``: ``n2`` of ``n2#3/...``,
    ``n9@2/...``, ``n5~/...`` or ``n7``."""
    m = _SEGMENT_NODE.match(key, len(prefix))
    return m.group(0) if m else ""


def _note(
    rec: NodeRecord | None,
    status: str,
    now: datetime | None = None,
    children: Mapping[str, str] | None = None,
) -> str | None:
    if rec is None:
        return None
    child = rec.detail.get("child")
    if isinstance(child, str):
        known = children.get(rec.key) if children is not None else None
        return f"→ child {child}" + (f" {known}" if known else "")
    if status == "failed" and isinstance(rec.error, Mapping) and rec.error.get("message"):
        msg = str(rec.error["message"])
        return msg if len(msg) <= 60 else msg[:59] + "…"
    if status == "waiting" and rec.wake_at is not None:
        due = rec.wake_at.astimezone()
        today = (now or datetime.now(due.tzinfo)).astimezone(due.tzinfo).date()
        return "until " + due.strftime("%H:%M:%S" if due.date() == today else "%Y-%m-%d %H:%M:%S")
    if rec.attempt > 1:
        return f"attempt {rec.attempt}"
    return None
