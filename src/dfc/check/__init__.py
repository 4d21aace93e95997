"""The static checker (SPEC §3): templates, bindings, SQL, structure, literals, precedence.

This is the only package that imports sqlglot. Its output is a `CheckedWorkflow` (see
`dfc.check.result`), the contract with the plan emitter.

- `check` runs every rule on a parsed module;
- `check_file` parses and checks a file;
- `check_live` validates the SQL steps of a checked workflow against a real server
  (``dfc check --db URL``).

The reference syntax of step text (``$name``, ``{var}``, ...) is defined once, in
`dfc.check.refs`, which the runtime's substitution follows.
"""

from __future__ import annotations

from dfc.check import codes as codes
from dfc.check.checker import Insight, check, check_file
from dfc.check.expand import FileLoader, LoadedModule, ModuleLoader
from dfc.check.result import CheckedWorkflow, SqlFacts
from dfc.diagnostics import Diagnostics


def check_live(workflow: CheckedWorkflow, conninfo: str, diagnostics: Diagnostics) -> None:
    """Prepare every SQL step of ``workflow`` on a real server (``dfc check --db URL``).

    Unknown tables, columns, functions, types and schemas are reported as DFC310 at the exact
    characters; everything runs in one transaction that is rolled back. Raises
    `dfc.diagnostics.DfcError` when the server cannot be reached. See `dfc.check.live`.
    """
    from dfc.check.live import check_live as run  # psycopg is imported only when needed

    run(workflow, conninfo, diagnostics)


__all__ = [
    "CheckedWorkflow",
    "FileLoader",
    "Insight",
    "LoadedModule",
    "ModuleLoader",
    "SqlFacts",
    "check",
    "check_file",
    "check_live",
]
