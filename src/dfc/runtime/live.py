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
    maps: Mapping[str, MapProgress] | None = None,
) -> dict[str, NodeMark]:
    """One mark per plan node id, from the latest key that has a status; a ``df.map`` notes
    its progress (``maps``, from the evaluation) rather than one mark per row."""
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
        if durations_ms is not None and key in durations_ms:
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
            else _note(records.get(key) if records else None, statuses[key]),
        )
    return out


def _note(rec: NodeRecord | None, status: str) -> str | None:
    if rec is None:
        return None
    if status == "failed" and isinstance(rec.error, Mapping) and rec.error.get("message"):
        msg = str(rec.error["message"])
        return msg if len(msg) <= 60 else msg[:59] + "…"
    if status == "waiting" and rec.wake_at is not None:
        return "until " + rec.wake_at.astimezone().strftime("%H:%M:%S")
    if rec.attempt > 1:
        return f"attempt {rec.attempt}"
    return None
