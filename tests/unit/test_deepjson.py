"""The deep JSON encoder matches json.dumps, and survives nesting json.dumps cannot."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dfc.cli.deepjson import dumps

JSONS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=30,
)


@given(JSONS)
def test_same_text_as_json_dumps(value: Any) -> None:
    assert dumps(value) == json.dumps(value, indent=2, ensure_ascii=False)


def test_nesting_deeper_than_the_recursion_limit() -> None:
    value: Any = "leaf"
    for _ in range(5000):
        value = {"kind": "Seq", "left": value}
    text = dumps(value)  # json.loads cannot read it back either: count instead
    assert text.count('"kind": "Seq"') == 5000 == text.count("{") == text.count("}")
    assert '"left": "leaf"' in text
