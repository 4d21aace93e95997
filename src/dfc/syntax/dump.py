"""The AST as JSON (``dfc parse --json``) and as a readable indented tree (golden snapshots).

Both walk the tree with an explicit stack: a sequence of 10,000 steps is a left-nested chain
10,000 levels deep, which recursion would not survive.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dfc.source import Span


def _fields(node: Any) -> list[tuple[str, Any]]:
    """The fields that make a node's meaning (spans, text maps and other layout are excluded
    from equality, and from the dumps)."""
    return [(f.name, getattr(node, f.name)) for f in dataclasses.fields(node) if f.compare]


def _is_node(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _span_json(span: Span | None) -> dict[str, object] | None:
    if span is None:
        return None
    d = span.to_dict()
    del d["file"]
    return d


def to_json(node: Any) -> dict[str, Any]:
    """The node as JSON-ready data: ``{"kind": "Seq", "span": {...}, "left": {...}, ...}``.

    Every field of the node's meaning appears under its own name (tuples as lists, absent
    optional fields as null; layout such as spelling is left out); spans give 1-based lines/columns and 0-based character offsets. The top-level
    object also names the file.
    """
    done: dict[int, dict[str, Any]] = {}
    stack: list[tuple[Any, bool]] = [(node, False)]
    while stack:
        n, visited = stack.pop()
        if id(n) in done:
            continue
        fields = _fields(n)
        if not visited:
            stack.append((n, True))
            for _name, v in fields:
                for item in v if isinstance(v, tuple) else (v,):
                    if _is_node(item) and id(item) not in done:
                        stack.append((item, False))
            continue
        out: dict[str, Any] = {
            "kind": type(n).__name__,
            "span": _span_json(getattr(n, "span", None)),
        }
        for name, v in fields:
            if isinstance(v, tuple):
                out[name] = [done[id(x)] if _is_node(x) else x for x in v]
            elif _is_node(v):
                out[name] = done[id(v)]
            else:
                out[name] = v
        done[id(n)] = out
    result = done[id(node)]
    span = getattr(node, "span", None)
    if isinstance(span, Span):
        result = {"file": span.file.name, **result}
    return result


def _pos(span: Span | None) -> str:
    if span is None:
        return ""
    (l1, c1), (l2, c2) = span.start_line_col, span.end_line_col
    return f" @{l1}:{c1}-{l2}:{c2}"


def dump(node: Any, *, spans: bool = True) -> str:
    """A readable indented tree, one node per line with its scalar fields and its span::

    Seq @3:5-4:20
      left: Sql @3:5-3:15
        query: Str 'SELECT 1' @3:5-3:15
    """
    lines: list[str] = []
    stack: list[tuple[Any, int, str]] = [(node, 0, "")]
    while stack:
        n, depth, label = stack.pop()
        scalars: list[str] = []
        kids: list[tuple[str, Any]] = []
        for name, v in _fields(n):
            if isinstance(v, tuple):
                if any(_is_node(x) for x in v) or not v:
                    kids.extend((f"{name}[{i}]", x) for i, x in enumerate(v))
                    if not v:
                        scalars.append(f"{name}=()")
                else:
                    scalars.append(f"{name}={v!r}")
            elif _is_node(v):
                kids.append((name, v))
            elif v is not None:
                scalars.append(
                    repr(v)
                    if name in ("value", "text") and len(_fields(n)) <= 2
                    else f"{name}={v!r}"
                )
        head = "  " * depth + (f"{label}: " if label else "") + type(n).__name__
        if scalars:
            head += " " + " ".join(scalars)
        if spans:
            head += _pos(getattr(n, "span", None))
        lines.append(head)
        for name, child in reversed(kids):
            stack.append((child, depth + 1, name))
    return "\n".join(lines) + "\n"
