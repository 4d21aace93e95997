"""Named fault-injection points, for crash and atomicity tests.

The engine calls `fault(point)` at a few chosen moments (``after_claim``; ``claim_lost``: a claim
committed but its answer is lost, as when its connection dies at that moment; ``after_step_sql``:
the user's statements ran but nothing is committed, ``before_commit``: the checkpoint is written
but not committed, ``after_commit``: the step committed, the worker has not yet moved on). A point
does nothing unless armed, either in-process with `arm` or for a whole process through the
environment, e.g. ``DFC_FAULT=after_step_sql:crash:0.05,after_commit:raise:1``:
``POINT:ACTION[:PROBABILITY]`` where ACTION is ``crash`` (the process dies at once, as with
SIGKILL) or ``raise`` (`FaultInjected` is raised, as an infrastructure error would be).
Disarmed, a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

ENV = "DFC_FAULT"
POINTS = (
    "after_claim",
    "claim_lost",
    "after_step_sql",
    "before_commit",
    "after_commit",
    "before_release",
    "after_child_start",  # a df.call/df.spawn started its child; the step is not recorded yet
)


class FaultInjected(RuntimeError):
    """Raised at an armed ``raise`` point; the engine treats it like a lost connection."""


@dataclass(slots=True)
class _Armed:
    action: str  # "crash" | "raise"
    probability: float = 1.0
    times: int | None = None  # None: every time


_armed: dict[str, _Armed] = {}


def arm(
    point: str, action: str = "raise", *, probability: float = 1.0, times: int | None = 1
) -> None:
    """Arm ``point`` in this process (``times`` hits, None for unlimited)."""
    if point not in POINTS:
        raise ValueError(f"unknown fault point {point!r}; known: {', '.join(POINTS)}")
    if action not in ("crash", "raise"):
        raise ValueError(f"unknown fault action {action!r}; use crash or raise")
    _armed[point] = _Armed(action, probability, times)


def disarm(point: str | None = None) -> None:
    """Disarm one point, or all of them."""
    if point is None:
        _armed.clear()
    else:
        _armed.pop(point, None)


def load_env(value: str | None = None) -> None:
    """Arm the points listed in ``DFC_FAULT`` (or ``value``); called when a worker starts."""
    text = os.environ.get(ENV, "") if value is None else value
    for item in filter(None, (s.strip() for s in text.split(","))):
        parts = item.split(":")
        point, action = parts[0], parts[1] if len(parts) > 1 else "raise"
        probability = float(parts[2]) if len(parts) > 2 else 1.0
        arm(point, action, probability=probability, times=None)


def armed(point: str) -> bool:
    """Whether ``point`` is armed (for points that change how the engine sends statements)."""
    return point in _armed


def fault(point: str) -> None:
    """The injection point itself: no-op unless armed."""
    armed = _armed.get(point)
    if armed is None:
        return
    if armed.probability < 1.0 and random.random() >= armed.probability:
        return
    if armed.times is not None:
        armed.times -= 1
        if armed.times <= 0:
            del _armed[point]
    if armed.action == "crash":
        os._exit(137)  # like SIGKILL: no cleanup, no flush, no finally blocks
    raise FaultInjected(f"fault injected at {point}")
