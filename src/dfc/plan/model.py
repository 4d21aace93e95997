"""The plan: a checked workflow as a flat, versioned, JSON-serialisable step graph (SPEC §4).

Plans are pure data. The emitter (`dfc.plan.emit`) builds them from a checked AST; the store saves
them; the runtime executes them without ever seeing the front end. A plan read back from JSON
(`Plan.from_json`) is equal to the one that was written.

Node configuration per type (``config`` keys):

=============== ====================================================================================
SQL             query (text), autocommit (bool), statements (list of kinds: "query", "dml",
                "dml_returning", "ddl", "utility", "unknown"), columns (list or null), returns_rows
                (bool or null: null = unknown), refs (list of ``$name[.col]`` used), vars (``{v}``)
THEN            children [a, b]
JOIN            children [b1, b2, ...] (n-ary, result is a JSON array in branch order)
RACE            children [b1, b2, ...]
IF              test "truthy": children [cond, then, else]
                test "rows":   children [then, else], config result_name (df.if_rows)
LOOP            children [body] or [body, cond]
BREAK           value (text or null)
SLEEP           seconds (int)
WAIT_SCHEDULE   cron (text), timezone (text, "UTC")
SIGNAL          name (text), timeout (int or null)
HTTP            url, method, body (text or null), headers (text or null), timeout (int seconds)
HTTP_MULTIPART  url, method, parts (text), headers (text or null), timeout (int seconds)
RETRY           children [x]; attempts, backoff, factor, max_backoff, jitter
TIMEOUT         children [x]; seconds
=============== ====================================================================================

Any node may carry ``undo``: the id of the root of its compensation subtree (``a <-> undo``);
that subtree is not among the node's children and runs only during compensation (SPEC §5.8).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from dfc.json_types import JSON

FORMAT = 1
"""The plan format this code reads and writes; bump on any incompatible change."""

NodeType = Literal[
    "SQL",
    "THEN",
    "JOIN",
    "RACE",
    "IF",
    "LOOP",
    "BREAK",
    "SLEEP",
    "WAIT_SCHEDULE",
    "SIGNAL",
    "HTTP",
    "HTTP_MULTIPART",
    "RETRY",
    "TIMEOUT",
]

NODE_TYPES: tuple[str, ...] = NodeType.__args__  # type: ignore[attr-defined]


class PlanFormatError(ValueError):
    """A stored plan this version of dfc cannot execute (unknown format or malformed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSpan:
    """Where a plan node came from: file and 1-based positions, plus the template trail."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int
    start: int
    end: int
    trail: tuple[str, ...] = ()  # "template NAME at file:line:col", outermost first

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def to_json(self) -> dict[str, JSON]:
        d: dict[str, JSON] = {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "start": self.start,
            "end": self.end,
        }
        if self.trail:
            d["trail"] = list(self.trail)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, JSON]) -> SourceSpan:
        return cls(
            file=d["file"],
            line=d["line"],
            column=d["column"],
            end_line=d["end_line"],
            end_column=d["end_column"],
            start=d["start"],
            end=d["end"],
            trail=tuple(d.get("trail", ())),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanNode:
    """One node of the step graph."""

    id: str
    type: NodeType
    children: tuple[str, ...] = ()
    result_name: str | None = None
    config: Mapping[str, JSON] = field(default_factory=dict)
    undo: str | None = None

    def to_json(self) -> dict[str, JSON]:
        d: dict[str, JSON] = {"type": self.type}
        if self.children:
            d["children"] = list(self.children)
        if self.result_name is not None:
            d["result_name"] = self.result_name
        if self.config:
            d["config"] = dict(self.config)
        if self.undo is not None:
            d["undo"] = self.undo
        return d

    @classmethod
    def from_json(cls, node_id: str, d: Mapping[str, JSON]) -> PlanNode:
        if d.get("type") not in NODE_TYPES:
            raise PlanFormatError(f"node {node_id} has unknown type {d.get('type')!r}")
        return cls(
            id=node_id,
            type=d["type"],
            children=tuple(d.get("children", ())),
            result_name=d.get("result_name"),
            config=dict(d.get("config", {})),
            undo=d.get("undo"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanParam:
    """A declared workflow parameter (SPEC §1.5)."""

    name: str
    type: str = "text"
    default: JSON = None
    has_default: bool = False

    def to_json(self) -> dict[str, JSON]:
        d: dict[str, JSON] = {"name": self.name, "type": self.type}
        if self.has_default:
            d["default"] = self.default
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, JSON]) -> PlanParam:
        return cls(
            name=d["name"],
            type=d.get("type", "text"),
            default=d.get("default"),
            has_default="default" in d,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A compiled workflow. ``hash`` covers behaviour only (not source, layout or positions)."""

    name: str
    root: str
    nodes: Mapping[str, PlanNode]
    params: tuple[PlanParam, ...] = ()
    options: Mapping[str, JSON] = field(default_factory=dict)
    source: str = ""
    source_map: Mapping[str, SourceSpan] = field(default_factory=dict)
    format: int = FORMAT

    # -- traversal --------------------------------------------------------------------------

    def node(self, node_id: str) -> PlanNode:
        return self.nodes[node_id]

    def walk(self, start: str | None = None) -> Iterator[PlanNode]:
        """Pre-order over the nodes reachable from ``start`` (default: root), undo trees included."""
        stack = [start or self.root]
        while stack:
            n = self.nodes[stack.pop()]
            yield n
            kids = list(n.children)
            if n.undo is not None:
                kids.append(n.undo)
            stack.extend(reversed(kids))

    def where(self, node_id: str) -> SourceSpan | None:
        """The source location of a node, if known."""
        return self.source_map.get(node_id)

    # -- serialisation ----------------------------------------------------------------------

    def behaviour_json(self) -> dict[str, JSON]:
        """The part of the plan that determines behaviour: what the hash covers."""
        d: dict[str, JSON] = {
            "format": self.format,
            "name": self.name,
            "root": self.root,
            "nodes": {k: v.to_json() for k, v in self.nodes.items()},
            "params": [p.to_json() for p in self.params],
        }
        if self.options:
            d["options"] = dict(self.options)
        return d

    @property
    def hash(self) -> str:
        return hashlib.sha256(canonical(self.behaviour_json()).encode()).hexdigest()

    def to_json(self) -> dict[str, JSON]:
        """The full plan as stored and printed by ``dfc compile``."""
        d = self.behaviour_json()
        d["hash"] = self.hash
        d["source"] = self.source
        d["source_map"] = {k: v.to_json() for k, v in self.source_map.items()}
        return d

    def dumps(self, *, pretty: bool = False) -> str:
        if pretty:
            return json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False)
        return canonical(self.to_json())

    @classmethod
    def from_json(cls, d: Mapping[str, JSON]) -> Plan:
        """Read a stored plan; raises `PlanFormatError` for a format this dfc does not know."""
        fmt = d.get("format")
        if fmt != FORMAT:
            raise PlanFormatError(
                f"plan format {fmt!r} is not supported by this dfc (it reads format {FORMAT}); "
                "upgrade dfc or redeploy the workflow"
            )
        try:
            nodes = {k: PlanNode.from_json(k, v) for k, v in d["nodes"].items()}
            plan = cls(
                name=d["name"],
                root=d["root"],
                nodes=nodes,
                params=tuple(PlanParam.from_json(p) for p in d.get("params", ())),
                options=dict(d.get("options", {})),
                source=d.get("source", ""),
                source_map={k: SourceSpan.from_json(v) for k, v in d.get("source_map", {}).items()},
            )
        except (KeyError, TypeError) as e:
            raise PlanFormatError(f"malformed plan: {e}") from e
        if plan.root not in plan.nodes:
            raise PlanFormatError(f"malformed plan: root {plan.root!r} is not a node")
        return plan

    @classmethod
    def loads(cls, text: str) -> Plan:
        return cls.from_json(json.loads(text))


def canonical(value: JSON) -> str:
    """Canonical JSON: sorted keys, no insignificant whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
