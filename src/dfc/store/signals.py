"""Signals sent to instances (``dfc.signals``): buffered until a wait consumes them (SPEC §5.2).

Signals are stored by ``dfc.signal_instance`` (`dfc.store.instances.signal_txn`) and consumed,
one per wait and in order of arrival, in the transaction that writes the wait's record. A
*signal row* is ``(instance_id, seq, name, payload)``.
"""

from __future__ import annotations

from typing import Any

import psycopg

from dfc.store.inline import literal

Conn = psycopg.Connection[Any]

UNCONSUMED = """
SELECT instance_id, seq, name, payload FROM dfc.signals
 WHERE instance_id = ANY(%s) AND consumed_by IS NULL ORDER BY instance_id, seq
"""
"""The unconsumed signal rows of instances (parameter: their ids), oldest first."""


def unconsumed_txn(conn: Conn, instance_id: str) -> list[tuple[Any, ...]]:
    """The instance's unconsumed signal rows, oldest first."""
    return conn.execute(UNCONSUMED, ([instance_id],)).fetchall()


_CONSUME = "UPDATE dfc.signals SET consumed_by = {}, consumed_at = now() WHERE instance_id = {} AND seq = {}"


def consume_sql(instance_id: str, seq: int, key: str) -> str:
    """The statement that marks signal ``seq`` as consumed by the record ``key``."""
    return _CONSUME.format(literal(key), literal(instance_id), literal(seq))
