"""What the checker hands to the plan emitter: the expanded workflow and the facts it derived."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dfc import ast
from dfc.source import SourceFile, Span

StatementKind = Literal["query", "dml", "dml_returning", "ddl", "utility", "unknown"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlFacts:
    """What static analysis knows about one SQL step.

    ``columns`` is None when the output columns cannot be known statically; ``returns_rows`` is
    None when unknown. ``autocommit`` is True when a statement cannot run inside a transaction
    block (VACUUM, CREATE INDEX CONCURRENTLY, ...), which makes the step at-least-once.
    """

    statements: tuple[StatementKind, ...]
    autocommit: bool = False
    columns: tuple[str, ...] | None = None
    returns_rows: bool | None = None
    refs: tuple[str, ...] = ()  # "$name", "$name.col", "$name.*" as written (without "?")
    vars: tuple[str, ...] = ()  # "{var}" names used


@dataclass(slots=True, kw_only=True)
class CheckedWorkflow:
    """A workflow that passed the checker (possibly with warnings), ready to compile.

    ``body`` has templates expanded: it contains only built-in nodes (no TemplateCall, no Name,
    no Invalid), and every node object in it is distinct, so ``id(node)`` keys the maps below.
    """

    name: str
    source: SourceFile
    body: ast.Expr
    label: str | None
    params: tuple[ast.Param, ...]
    options: tuple[ast.Option, ...]
    schedule: ast.Schedule | None = None
    sql_facts: dict[int, SqlFacts] = field(default_factory=dict)  # id(ast.Sql) -> facts
    trails: dict[int, tuple[Span, ...]] = field(default_factory=dict)  # id(node) -> call spans

    def facts(self, node: ast.Sql) -> SqlFacts | None:
        return self.sql_facts.get(id(node))

    def trail(self, node: ast.Expr) -> tuple[Span, ...]:
        """Template calls that produced ``node``, outermost first (empty when written directly)."""
        return self.trails.get(id(node), ())
