"""Truthiness of results (SPEC §5.2 IF)."""

from __future__ import annotations

from typing import Any

import pytest

from dfc.runtime.truth import truthy


def rows(*values: Any) -> dict[str, Any]:
    return {"rows": [{"c": v, "d": "ignored"} for v in values], "row_count": len(values)}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # SQL results: the first column of the first row; no rows is false
        (rows(), False),
        (rows(True), True),
        (rows(False, True), False),
        (rows(None), False),
        (rows(0), False),
        (rows(2), True),
        (rows("0.00"), False),  # numeric comes as a string: compared by value
        (rows("0.01"), True),
        ({"rows": [{}], "row_count": 1}, False),  # a row without columns
        # JSON values
        (None, False),
        (True, True),
        (False, False),
        (0, False),
        (-1, True),
        (0.0, False),
        (0.5, True),
        ("", False),
        ("  ", False),
        ("false", False),
        (" FALSE ", False),
        ("f", False),
        ("F", False),
        ("no", False),
        ("No", False),
        ("0", False),
        ("00", False),
        ("-0.0", False),
        ("1e-3", True),
        ("+2", True),
        ("nan", True),  # a word, not a number
        ("off", True),
        ("yes", True),
        ("true", True),
        ("x", True),
        ([], False),
        ([0], True),
        ({}, False),
        ({"a": None}, True),
        ({"status": 200, "ok": True}, True),  # an HTTP envelope is a non-empty object
    ],
)
def test_truthiness(value: Any, expected: bool) -> None:
    assert truthy(value) is expected
