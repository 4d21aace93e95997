"""JSON output for values nested deeper than Python's recursion limit.

The AST of a long ``~>`` chain is as deep as the chain is long, and `json.dumps` recurses once
per level; this encoder keeps its own stack. Output matches ``json.dumps(v, indent=2,
ensure_ascii=False)``.
"""

from __future__ import annotations

import json
from typing import Any

_Frame = tuple[str, Any, int]  # ("value", v, depth) | ("text", s, 0)


def dumps(value: Any, indent: int = 2) -> str:
    """``value`` (dicts, lists, str, numbers, bool, None) as indented JSON text."""
    out: list[str] = []
    stack: list[_Frame] = [("value", value, 0)]
    while stack:
        kind, v, depth = stack.pop()
        if kind == "text":
            out.append(v)
            continue
        if isinstance(v, dict) and v:
            pad, inner = " " * (indent * depth), " " * (indent * (depth + 1))
            out.append("{\n")
            items = list(v.items())
            stack.append(("text", "\n" + pad + "}", 0))
            for i in reversed(range(len(items))):
                k, item = items[i]
                if i < len(items) - 1:
                    stack.append(("text", ",\n", 0))
                stack.append(("value", item, depth + 1))
                stack.append(("text", inner + json.dumps(str(k), ensure_ascii=False) + ": ", 0))
        elif isinstance(v, list | tuple) and v:
            pad, inner = " " * (indent * depth), " " * (indent * (depth + 1))
            out.append("[\n")
            stack.append(("text", "\n" + pad + "]", 0))
            for i in reversed(range(len(v))):
                if i < len(v) - 1:
                    stack.append(("text", ",\n", 0))
                stack.append(("value", v[i], depth + 1))
                stack.append(("text", inner, 0))
        else:
            out.append(json.dumps(v, ensure_ascii=False))
    return "".join(out)
