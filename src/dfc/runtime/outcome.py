"""What walking a subtree of the plan yields, and small helpers on results (for `machine`)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from dfc.json_types import JSON
from dfc.runtime.scope import Scope
from dfc.runtime.state import Action
from dfc.runtime.truth import is_row_set, truthy

# Outcome states of a walked subtree.
RUNNING, WAITING, DONE, FAILED, BROKEN = range(5)
STATUS = ("running", "waiting", "completed", "failed", "completed")
INF = math.inf  # "finished by a Store of this very evaluation": after every stored record


@dataclass(slots=True)
class Outcome:
    """What walking a subtree found: its state, result or error, the bindings visible after it,
    and when it finished (the seq of the record that finished it, for first-finisher races)."""

    state: int
    scope: Scope
    result: JSON = None  # DONE: the result; BROKEN: the break value
    error: JSON = None
    seq: float = 0


@dataclass(frozen=True, slots=True)
class Wake:
    """Marker: `key` waits until `at` (becomes `Evaluation.next_wake` unless discarded)."""

    key: str
    at: datetime


@dataclass(frozen=True, slots=True)
class SignalWait:
    """Marker: `key` waits for a signal."""

    key: str


Item = Action | Wake | SignalWait | None


def merge(base: Scope, outs: Sequence[Outcome]) -> Scope:
    """The bindings after concurrent branches: `base` plus each branch's own, in branch order."""
    scope = base
    for out in outs:
        added = out.scope.since(base)
        for name, value in added:
            scope = scope.bind(name, value)
    return scope


def has_rows(value: JSON) -> bool:
    """df.if_rows: a SQL result with at least one row; other results by their truthiness; an
    unbound or null name is false (so it can test a binding that only some race arms make)."""
    if is_row_set(value):
        return len(value["rows"]) > 0
    return truthy(value)


def json_or_text(text: str) -> JSON:
    """JSON if `text` parses as JSON that can be stored, else the text itself.

    NaN and Infinity do not count, nor a lone surrogate escape (``\\ud800``): no UTF-8 text can
    hold what it stands for, so a signal payload or break value holding one would fail every
    checkpoint of the node that received it, and the instance would never move again. Its text
    is kept as it is instead, as for any other text that is not JSON (PostgreSQL's jsonb refuses
    it too).
    """
    try:
        value = json.loads(text, parse_constant=_reject)
    except ValueError:
        return text
    if "\\u" in text and not _encodable(value):
        return text
    return value


def _reject(name: str) -> JSON:
    raise ValueError(name)


def _encodable(value: JSON) -> bool:
    """Whether no string in `value` (keys included) holds a lone surrogate."""
    if isinstance(value, str):
        return not any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    return True
