"""Truthiness of node results, as `df.if` sees its condition (SPEC §5.2 IF)."""

from __future__ import annotations

import re

from dfc.json_types import JSON

_FALSE_WORDS = frozenset({"", "false", "f", "no", "0"})
# A plain decimal number: compared by value ("0.00" is false), while "nan" or "inf" are just words.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def is_row_set(result: JSON) -> bool:
    """Whether a result is a SQL result (``{"rows": [...], "row_count": n}``)."""
    return type(result) is dict and type(result.get("rows")) is list


def truthy(result: JSON) -> bool:
    """Truthiness of a node result: a SQL result by the first column of its first row (no rows
    or no columns: false), anything else as a JSON value (`truthy_value`)."""
    if is_row_set(result):
        rows = result["rows"]
        if not rows or not isinstance(rows[0], dict) or not rows[0]:
            return False
        return truthy_value(next(iter(rows[0].values())))
    return truthy_value(result)


def truthy_value(value: JSON) -> bool:
    """Truthiness of one JSON value: null false; booleans as they are; numbers when non-zero;
    strings false when empty or ``false``/``f``/``no``/``0`` (any case, trimmed), numeric strings
    by value, any other string true; arrays and objects when non-empty."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _FALSE_WORDS:
            return False
        if _NUMBER.fullmatch(text):
            return float(text) != 0
        return True
    if isinstance(value, list | dict):
        return len(value) > 0
    return bool(value)
