"""The plan: a checked workflow as a flat, versioned, JSON-serialisable step graph (SPEC §4).

Plans are pure data. The emitter (`dfc.plan.emit`) builds them from a checked AST; the store saves
them; the runtime executes them without ever seeing the front end. A plan read back from JSON
(`Plan.from_json`) is equal to the one that was written.

A node is its id, its configuration (`dfc.plan.nodes`: one frozen dataclass per kind, whose
class is the node's kind), its ``children`` (ordered ids), the ``result_name`` it is bound to,
and ``undo``: the id of the root of its compensation subtree (``a <-> undo``), which is not
among the node's children and runs only during compensation (SPEC §5.8).

What the hash covers: exactly what decides behaviour (`Plan.behaviour_json`). Beside it, and
stored with it, are the source text, the source map (node id → span) and the analysis (node id →
what the checker learnt about a SQL step: statement kinds, output columns, references), which
describe the plan for people and tools but change nothing it does: a new version of sqlglot
that classifies a statement differently does not make a new version of the workflow.

Formats. Format 2 is this one; format 3 is format 2 with start-time expressions
(`PlanExpression`), written only for plans that have some; format 4 is format 3 with a
schedule (`PlanSchedule`), written only for plans that have one; format 5 is format 4 with MAP
nodes (``df.map``), written only for plans that have one. Format 1 (dfc before the typed plan) had the same layout, except
that a SQL node's ``config`` also held the analysis (``statements``, ``columns``,
``returns_rows``, ``refs``, ``vars``), so its hash covered them. `Plan.from_json` reads both:
a format-1 plan becomes the format-2 plan the same source compiles to today (its analysis moved
beside it, its values read by the same `dfc.plan.nodes.read` the emitter uses), so the two have
one hash. The store's migration 0003 rewrites every stored plan that way, with its hash, once
(`dfc.store.registry.upgrade_plans_txn`): deploying an unchanged workflow again after the
upgrade then finds the same hash and says "unchanged", instances pinned to a stored version run
it as before (node ids do not change), and a dfc too old for format 2 refuses the upgraded
database rather than misreading it. The JSON layout the monitoring views read (``nodes.ID.type``,
``nodes.ID.config.name``) is the same in both formats. Format-1 plans found anywhere else (a file
written by an old ``dfc compile``, a row the migration could not read) still run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from dfc.json_types import JSON, canonical
from dfc.plan.nodes import NODE_TYPES, Call, NodeConfig, NodeType, read_node
from dfc.scheduling import (
    CATCHUP_POLICIES,
    DEFAULT_CATCHUP,
    DEFAULT_OVERLAP,
    DEFAULT_TIMEZONE,
    OVERLAP_POLICIES,
    CatchupPolicy,
    OverlapPolicy,
)

FORMAT = 2
"""The plan format this code writes; bump on any incompatible change."""

FORMAT_EXPRESSIONS = 3
"""The format of a plan with start-time expressions (`PlanExpression`): format 2 plus them. A
plan without any is still written as format 2, so its hash is what it always was; one with
them needs a dfc that evaluates them, and an older one refuses it."""

FORMAT_SCHEDULE = 4
"""The format of a plan with a schedule (`PlanSchedule`): format 3 plus it. A plan without one
is written as before; an older dfc refuses one with it rather than deploy it and never fire."""

FORMAT_MAP = 5
"""The format of a plan with a ``df.map`` (a MAP node): format 4 plus that node type. A plan
without one is written as before; an older dfc refuses one with it (it has no MAP node)."""


FORMAT_CHILDREN = 6
"""The format of a plan with a child workflow node (``df.call``, ``df.spawn``): format 5 plus
them, written only for plans that have one (a plan's format is the highest its contents need),
so an older dfc refuses to run a step it does not know."""

READS = (1, FORMAT, FORMAT_EXPRESSIONS, FORMAT_SCHEDULE, FORMAT_MAP, FORMAT_CHILDREN)
"""The plan formats this code reads (older ones are upgraded as they are read)."""

# The keys of a format-1 SQL configuration that were analysis, not behaviour.
_FORMAT1_ANALYSIS = ("statements", "columns", "returns_rows", "refs", "vars")


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
    """One node of the step graph; its kind is the class of its ``config``."""

    id: str
    config: NodeConfig
    children: tuple[str, ...] = ()
    result_name: str | None = None
    undo: str | None = None

    @property
    def type(self) -> NodeType:
        """The node's type as plan JSON names it (SQL, THEN, ...)."""
        return self.config.TYPE

    def to_json(self) -> dict[str, JSON]:
        d: dict[str, JSON] = {"type": self.type}
        if self.children:
            d["children"] = list(self.children)
        if self.result_name is not None:
            d["result_name"] = self.result_name
        config = self.config.to_json()
        if config:
            d["config"] = config
        if self.undo is not None:
            d["undo"] = self.undo
        return d

    @classmethod
    def from_json(cls, node_id: str, d: Mapping[str, JSON]) -> PlanNode:
        """Read a node of the current format; raises `PlanFormatError` when it is malformed."""
        type_ = d.get("type")
        if type_ not in NODE_TYPES:
            raise PlanFormatError(f"node {node_id} has unknown type {type_!r}")
        try:
            config = read_node(type_, d.get("config") or {})
        except ValueError as e:
            raise PlanFormatError(f"malformed plan: node {node_id}: {e}") from e
        return cls(
            id=node_id,
            config=config,
            children=tuple(d.get("children", ())),
            result_name=d.get("result_name"),
            undo=d.get("undo"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlAnalysis:
    """What the checker learnt about a SQL step, kept for people and tools (not hashed).

    ``statements`` are the kinds of its statements ("query", "dml", "dml_returning", "ddl",
    "utility", "unknown"); ``columns`` its output columns (None: not known statically);
    ``returns_rows`` whether it returns rows (None: not known); ``refs`` the references it uses
    as written (``$name``, ``$name.col``, ``$name.*``) and ``vars`` the ``{var}`` names.
    """

    statements: tuple[str, ...]
    columns: tuple[str, ...] | None = None
    returns_rows: bool | None = None
    refs: tuple[str, ...] = ()
    vars: tuple[str, ...] = ()

    def to_json(self) -> dict[str, JSON]:
        return {
            "statements": list(self.statements),
            "columns": None if self.columns is None else list(self.columns),
            "returns_rows": self.returns_rows,
            "refs": list(self.refs),
            "vars": list(self.vars),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, JSON]) -> SqlAnalysis:
        columns = d.get("columns")
        return cls(
            statements=tuple(d.get("statements", ())),
            columns=None if columns is None else tuple(columns),
            returns_rows=d.get("returns_rows"),
            refs=tuple(d.get("refs", ())),
            vars=tuple(d.get("vars", ())),
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
class PlanExpression:
    """A SQL expression written as an argument (``--grammar pg``), evaluated once when an
    instance starts, by the database, as the role that starts it (``SELECT (<sql>)::text``).
    Its value is the instance's hidden variable ``name``; the configuration of ``node`` holds
    ``{name}`` in ``argument``, where the runtime puts the value before substituting anything
    else (`dfc.references.EXPRESSION_VAR`)."""

    name: str
    sql: str
    node: str
    argument: str

    def to_json(self) -> dict[str, JSON]:
        return {"name": self.name, "sql": self.sql, "node": self.node, "argument": self.argument}

    @classmethod
    def from_json(cls, d: Mapping[str, JSON]) -> PlanExpression:
        return cls(name=d["name"], sql=d["sql"], node=d["node"], argument=d["argument"])


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSchedule:
    """When instances of the workflow start by themselves (SPEC §5.9): at each minute matching
    ``cron`` as wall-clock time in ``timezone``, with the overlap and catch-up policies of
    `dfc.scheduling` (whose defaults fill what the source left out)."""

    cron: str
    timezone: str = DEFAULT_TIMEZONE
    overlap: OverlapPolicy = DEFAULT_OVERLAP
    catchup: CatchupPolicy = DEFAULT_CATCHUP

    def to_json(self) -> dict[str, JSON]:
        return {
            "cron": self.cron,
            "timezone": self.timezone,
            "overlap": self.overlap,
            "catchup": self.catchup,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, JSON]) -> PlanSchedule:
        """Read a schedule; raises `PlanFormatError` for a policy this dfc does not know."""
        overlap, catchup = d.get("overlap", DEFAULT_OVERLAP), d.get("catchup", DEFAULT_CATCHUP)
        if overlap not in OVERLAP_POLICIES or catchup not in CATCHUP_POLICIES:
            raise PlanFormatError(f"unknown schedule policy in {dict(d)!r}")
        return cls(
            cron=d["cron"],
            timezone=d.get("timezone", DEFAULT_TIMEZONE),
            overlap=overlap,
            catchup=catchup,
        )

    def describe(self) -> str:
        """``'0 3 * * *' Europe/Paris, overlap skip, catchup latest`` (explain, dfc schedule)."""
        return f"'{self.cron}' {self.timezone}, overlap {self.overlap}, catchup {self.catchup}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A compiled workflow. ``hash`` covers behaviour only (not source, layout, positions or
    analysis)."""

    name: str
    root: str
    nodes: Mapping[str, PlanNode]
    params: tuple[PlanParam, ...] = ()
    options: Mapping[str, JSON] = field(default_factory=dict)
    expressions: tuple[PlanExpression, ...] = ()
    schedule: PlanSchedule | None = None
    source: str = ""
    source_map: Mapping[str, SourceSpan] = field(default_factory=dict)
    analysis: Mapping[str, SqlAnalysis] = field(default_factory=dict)

    @property
    def format(self) -> int:
        """The plan format: a plan in memory is always of the current one (with a child workflow
        node, `FORMAT_CHILDREN`; with a map node, `FORMAT_MAP`; with a schedule,
        `FORMAT_SCHEDULE`; with expressions, `FORMAT_EXPRESSIONS`): the highest its contents
        need."""
        if any(isinstance(n.config, Call) for n in self.nodes.values()):
            return FORMAT_CHILDREN
        if any(n.type == "MAP" for n in self.nodes.values()):
            return FORMAT_MAP
        if self.schedule is not None:
            return FORMAT_SCHEDULE
        return FORMAT_EXPRESSIONS if self.expressions else FORMAT

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
        if self.expressions:
            d["expressions"] = [e.to_json() for e in self.expressions]
        if self.schedule is not None:
            d["schedule"] = self.schedule.to_json()
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
        d["analysis"] = {k: v.to_json() for k, v in self.analysis.items()}
        return d

    def dumps(self, *, pretty: bool = False) -> str:
        if pretty:
            return json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False)
        return canonical(self.to_json())

    @classmethod
    def from_json(cls, d: Mapping[str, JSON]) -> Plan:
        """Read a plan of any format in `READS` (see the module docstring); raises
        `PlanFormatError` for a format this dfc does not know or a malformed plan."""
        fmt = d.get("format")
        if fmt not in READS:
            raise PlanFormatError(
                f"plan format {fmt!r} is not supported by this dfc (it reads formats "
                f"{', '.join(map(str, READS))}); upgrade dfc or redeploy the workflow"
            )
        try:
            raw_nodes: Mapping[str, Mapping[str, JSON]] = d["nodes"]
            analysis = {k: SqlAnalysis.from_json(v) for k, v in d.get("analysis", {}).items()}
            if fmt == 1:
                raw_nodes, analysis = _from_format1(raw_nodes)
            schedule = d.get("schedule")
            plan = cls(
                name=d["name"],
                root=d["root"],
                nodes={k: PlanNode.from_json(k, v) for k, v in raw_nodes.items()},
                params=tuple(PlanParam.from_json(p) for p in d.get("params", ())),
                options=dict(d.get("options", {})),
                expressions=tuple(PlanExpression.from_json(e) for e in d.get("expressions", ())),
                schedule=None if schedule is None else PlanSchedule.from_json(schedule),
                source=d.get("source", ""),
                source_map={k: SourceSpan.from_json(v) for k, v in d.get("source_map", {}).items()},
                analysis=analysis,
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise PlanFormatError(f"malformed plan: {e}") from e
        if plan.root not in plan.nodes:
            raise PlanFormatError(f"malformed plan: root {plan.root!r} is not a node")
        return plan

    @classmethod
    def loads(cls, text: str) -> Plan:
        return cls.from_json(json.loads(text))


def _from_format1(
    nodes: Mapping[str, Mapping[str, JSON]],
) -> tuple[dict[str, Mapping[str, JSON]], dict[str, SqlAnalysis]]:
    """The nodes of a format-1 plan in format 2, and the analysis their SQL configs held."""
    out: dict[str, Mapping[str, JSON]] = {}
    analysis: dict[str, SqlAnalysis] = {}
    for nid, node in nodes.items():
        config = node.get("config")
        if node.get("type") == "SQL" and config:
            if "statements" in config:
                analysis[nid] = SqlAnalysis.from_json(config)
            config = {k: v for k, v in config.items() if k not in _FORMAT1_ANALYSIS}
            node = {**node, "config": config}
        out[nid] = node
    return out, analysis
