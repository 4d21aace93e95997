"""`dfc.sqlquote.dumps`, the one compact JSON encoder of the store and the substitution."""

from __future__ import annotations

import math

from dfc.sqlquote import dumps


def test_compact_keeps_key_order_and_unicode() -> None:
    assert dumps({"b": 1, "a": [True, None, "é"]}) == '{"b":1,"a":[true,null,"é"]}'


def test_non_finite_floats_become_null_at_any_depth() -> None:
    value = {"x": math.nan, "y": [1.5, math.inf, {"z": -math.inf}]}
    assert dumps(value) == '{"x":null,"y":[1.5,null,{"z":null}]}'
