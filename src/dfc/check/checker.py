"""The checker's driver: expand, then run every rule, then hand over a `CheckedWorkflow`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dfc import ast
from dfc.check.bindings import check_bindings
from dfc.check.calls import check_calls, sibling_finder
from dfc.check.expand import FileLoader, ModuleLoader, expand
from dfc.check.literals import check_literals, check_params, check_schedule, check_variables
from dfc.check.precedence import check_precedence
from dfc.check.report import Reporter
from dfc.check.result import CheckedWorkflow, SqlFacts
from dfc.check.steps import check_sql_steps
from dfc.check.structure import check_depth, check_structure
from dfc.diagnostics import DfcError, Diagnostics
from dfc.source import SourceFile, Span


@dataclass(slots=True)
class Insight:
    """What the checker derived about a workflow, kept even when it found errors: an editor
    asks about a file while it is being written (which names a step sees, a result's columns).

    ``body`` is the expanded workflow body (None without one, or when expansion failed);
    ``sql_facts`` and ``trails`` are keyed by ``id(node)`` of its nodes, as in `CheckedWorkflow`.
    """

    body: ast.Expr | None = None
    sql_facts: dict[int, SqlFacts] = field(default_factory=dict)
    trails: dict[int, tuple[Span, ...]] = field(default_factory=dict)


def check(
    module: ast.Module,
    source: SourceFile,
    diagnostics: Diagnostics,
    *,
    grammar: str = "dfc",
    loader: ModuleLoader | None = None,
    insight: Insight | None = None,
) -> CheckedWorkflow | None:
    """Expand imports and templates of ``module`` and run every rule of SPEC §3.

    Diagnostics go to ``diagnostics``. Returns the checked workflow when the module has one and
    no error was found (warnings allowed); None otherwise. ``grammar`` is the grammar the module
    was parsed with: the pg_durable-divergence warning applies only to ``"dfc"`` files. An
    ``insight``, when given, receives the expanded body and its facts whatever was found.
    """
    with ast.deep_recursion():
        return _check(
            module, source, diagnostics, grammar, loader or FileLoader(), insight or Insight()
        )


def _check(
    module: ast.Module,
    source: SourceFile,
    diagnostics: Diagnostics,
    grammar: str,
    loader: ModuleLoader,
    insight: Insight,
) -> CheckedWorkflow | None:
    errors_before = sum(1 for d in diagnostics.items if d.is_error)
    exp = expand(module, source, diagnostics, loader)
    plain = Reporter(diagnostics)
    for env in exp.envs:
        check_params(env.params, plain)
    var_types: dict[str, str | None] = {p.name: p.type for p in exp.params}
    declared = {p.name: p for p in exp.params}

    # Template bodies of this file, used or not (imported ones are checked where they expand).
    for d in module.decls:
        if isinstance(d, ast.Def) and check_depth(d.body, plain):
            nodes = list(ast.preorder(d.body))
            check_sql_steps(nodes, plain, var_types)
            check_structure(d.body, plain, in_template=True)
            check_literals(d.body, plain)
            check_variables(d.body, declared, plain)
    check_schedule(module, exp.params, plain)
    if grammar == "dfc":
        check_precedence(module, plain)
    if module.workflow is None or exp.body is None:
        return None

    body = exp.body
    rep = Reporter(diagnostics, exp.trails)
    if not check_depth(body, rep):
        return None
    facts = check_sql_steps(ast.preorder(body), rep, var_types)
    insight.body, insight.sql_facts, insight.trails = body, facts, exp.trails
    check_structure(body, rep)
    check_literals(body, rep)
    check_variables(body, declared, rep)
    check_bindings(body, rep, facts)
    label = module.workflow.label
    name = label.value if label is not None else source.stem
    check_calls(body, rep, sibling_finder(source, name, exp.params))

    errors = sum(1 for d in diagnostics.items if d.is_error)
    if errors > errors_before or any(_leftover(n) for n in ast.preorder(body)):
        return None
    return CheckedWorkflow(
        name=name,
        source=source,
        body=body,
        label=label.value if label is not None else None,
        params=exp.params,
        options=module.workflow.options,
        schedule=next((d for d in module.decls if isinstance(d, ast.Schedule)), None),
        sql_facts=facts,
        trails=exp.trails,
    )


def _leftover(n: ast.Expr) -> bool:
    return isinstance(n, ast.TemplateCall | ast.Name | ast.Invalid)


def check_file(
    path_or_source: str | Path | SourceFile,
    *,
    grammar: str = "dfc",
    diagnostics: Diagnostics,
    loader: ModuleLoader | None = None,
) -> CheckedWorkflow | None:
    """Read (unless given a `SourceFile`), parse and check one file."""
    from dfc.syntax import parse

    if isinstance(path_or_source, SourceFile):
        source = path_or_source
    else:
        try:
            source = SourceFile.read(path_or_source)
        except OSError as e:
            raise DfcError(f"cannot read {path_or_source}: {e.strerror}") from e
    module = parse(source, grammar=grammar, diagnostics=diagnostics)  # type: ignore[arg-type]
    if module is None or diagnostics.has_errors:
        return None
    return check(module, source, diagnostics, grammar=grammar, loader=loader)
