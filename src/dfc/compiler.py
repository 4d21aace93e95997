"""The façade over the stages: text → AST → checked workflow → plan, with all diagnostics.

The CLI, the Python client and the tests use this instead of wiring the stages themselves.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dfc import ast
from dfc.check import check
from dfc.check.result import CheckedWorkflow
from dfc.diagnostics import DfcError, Diagnostic, Diagnostics
from dfc.plan.emit import emit
from dfc.plan.model import Plan
from dfc.source import SourceFile
from dfc.syntax import parse

Grammar = Literal["dfc", "pg"]


@dataclass(slots=True)
class Compilation:
    """Everything known about one input after as many stages as its errors allowed."""

    source: SourceFile
    module: ast.Module | None = None
    checked: CheckedWorkflow | None = None
    plan: Plan | None = None
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

    @property
    def ok(self) -> bool:
        return not self.diagnostics.has_errors

    @property
    def sorted_diagnostics(self) -> list[Diagnostic]:
        return self.diagnostics.sorted()


def read_source(path: str) -> SourceFile:
    """Read a file, or standard input for ``-``; a missing file is a `DfcError`."""
    if path == "-":
        return SourceFile("<stdin>", sys.stdin.read())
    p = Path(path)
    if not p.exists():
        raise DfcError(f"file {path} does not exist", hint="check the path and try again")
    if p.is_dir():
        raise DfcError(f"{path} is a directory, not a workflow file", hint="pass a .df file")
    try:
        return SourceFile.read(p)
    except OSError as e:
        raise DfcError(f"cannot read {path}: {e.strerror}") from e


def parse_source(source: SourceFile, *, grammar: Grammar = "dfc") -> Compilation:
    """Parse only (``dfc parse``, ``dfc fmt``)."""
    comp = Compilation(source)
    comp.module = parse(source, grammar=grammar, diagnostics=comp.diagnostics)
    return comp


def check_source(source: SourceFile, *, grammar: Grammar = "dfc") -> Compilation:
    """Parse and check (``dfc check``)."""
    comp = parse_source(source, grammar=grammar)
    if comp.module is not None and not comp.diagnostics.has_errors:
        comp.checked = check(comp.module, source, comp.diagnostics, grammar=grammar)
    return comp


def compile_source(source: SourceFile, *, grammar: Grammar = "dfc") -> Compilation:
    """Parse, check and emit the plan (``dfc compile``, ``deploy``, ``run``)."""
    comp = check_source(source, grammar=grammar)
    if comp.checked is not None and not comp.diagnostics.has_errors:
        comp.plan = emit(comp.checked)
    return comp


def compile_path(path: str, *, grammar: Grammar = "dfc") -> Compilation:
    return compile_source(read_source(path), grammar=grammar)
