"""Node keys: where a node runs, as a string (see `dfc.runtime.state`).

A key is the plan node id prefixed by the loop iterations and retry attempts it runs in,
outermost first, each segment ending in ``/``::

    n7                top level
    n2#3/n7           iteration 3 of loop n2
    n9@2/n2#1/n7      attempt 2 of retry n9, iteration 1 of loop n2 inside it

The undo subtree of a completed step (compensation, SPEC §5.8) runs under the step's key plus
``~/``: ``n2#3/n5~/n9`` is node n9 of the undo of n5 as it completed in iteration 3 of n2.

The rows of a ``df.map`` run like iterations, numbered from 1 in row order: ``n4#17/n6`` is
node n6 of row 17 of map n4. A map's summary records hold the results of a block of its rows
(`dfc.runtime.fanout`), keyed by the map's key and the block's number from 0: ``n4[0]``.

Composite nodes that keep a record of their own (race decisions, join failures, retry
counters, timeout deadlines) use their own key the same way (``n2#3/n9`` is retry n9's counter
in iteration 3 of n2). Node ids never contain ``/``, ``#``, ``@`` or ``~``.
"""

from __future__ import annotations

from collections.abc import Iterable


def iteration_prefix(prefix: str, loop_id: str, iteration: int) -> str:
    """The prefix of the keys of iteration `iteration` (from 1) of loop `loop_id`."""
    return f"{prefix}{loop_id}#{iteration}/"


def attempt_prefix(prefix: str, retry_id: str, attempt: int) -> str:
    """The prefix of the keys of attempt `attempt` (from 1) of retry `retry_id`."""
    return f"{prefix}{retry_id}@{attempt}/"


def row_prefix(prefix: str, map_id: str, row: int) -> str:
    """The prefix of the keys of row `row` (from 1) of map `map_id`: an iteration's."""
    return iteration_prefix(prefix, map_id, row)


def summary_key(map_key: str, block: int) -> str:
    """The key of the record summarising block `block` (from 0) of the rows of a map."""
    return f"{map_key}[{block}]"


def node_id(key: str) -> str:
    """The plan node id a key is for (its last segment)."""
    return key.rpartition("/")[2]


def idempotency_key(instance_id: str, key: str) -> str:
    """The ``Idempotency-Key`` of an HTTP step: instance, node and loop iterations.

    Retry attempt segments are left out, so that every execution of one logical request
    (after a crash, or a retry after a 5xx or timeout) carries the same key and a server that
    honours it performs the effect once — as Temporal activity ids and DBOS step ids stay the
    same across retries. Different loop iterations are different requests.
    """
    if "@" in key:
        key = "/".join(seg for seg in key.split("/") if "@" not in seg)
    return f"dfc-{instance_id}-{key}"


def loop_index(keys: Iterable[str]) -> dict[str, dict[int, list[str]]]:
    """Group keys by the loops they run in: loop key -> iteration -> keys inside it.

    A key inside nested loops is listed under each of them (``n2#3/n5#7/n8`` under ``n2``
    iteration 3 and under ``n2#3/n5`` iteration 7).
    """
    index: dict[str, dict[int, list[str]]] = {}
    for key in keys:
        if "#" not in key:
            continue
        segments = key.split("/")
        prefix = ""
        for segment in segments[:-1]:
            hash_at = segment.find("#")
            if hash_at >= 0:
                number = segment[hash_at + 1 :]
                if not number.isdigit():  # a malformed key: not ours to interpret
                    break
                loop = prefix + segment[:hash_at]
                by_iteration = index.get(loop)
                if by_iteration is None:
                    by_iteration = index[loop] = {}
                by_iteration.setdefault(int(number), []).append(key)
            prefix += segment + "/"
    return index
