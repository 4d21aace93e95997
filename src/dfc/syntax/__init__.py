"""The language front end: source text → `dfc.ast`, and back (SPEC §1–§2).

This is the only package that imports lark. Stages, one module each:

- `lexer` — hand-written tokenizer (PostgreSQL's lexical rules, exact string decoding);
- `parser` — lark LALR parser fed token by token, with error recovery (grammar in
  ``grammar/durable.lark``; ``grammar="pg"`` selects pg_durable's flat precedence);
- `errors` — expected-token sets translated into friendly messages;
- `builder` — parse tree → AST, with the checks the AST's shape needs: known functions, arity,
  named arguments, a node or a literal where each belongs (`builtins` holds the signatures of
  the ``df.*`` functions, `values` the builder's intermediate values). What a literal's value
  or kind must be is the checker's rule, so that it is one rule however the literal arrives;
- `sqlargs` — in pg_durable's grammar, a SQL expression where a built-in takes a literal
  becomes one token (`ast.SqlExpr`);
- `flat` — the precedence table, and pg_durable's flat reading of a body where it could group
  operators differently (handed to the checker in the AST: ``Workflow.pg_reading``);
- `printer` — the canonical pretty-printer (``dfc fmt``), keeping comments (`comments`); both
  lay nodes out as `layout` says;
- `dump` — ``to_json`` and the readable tree ``dump`` used by golden tests;
- `codes` — the DFC1xx diagnostic codes.

Identifiers (template, parameter and ``param`` names) keep their case and are matched exactly;
keywords, ``df.*`` names and named-argument names of built-ins are case-insensitive.

Diagnostics have codes DFC1xx (`dfc.syntax.codes`). ``cond ?> then`` without ``!>`` is *not*
reported here: it becomes ``If(orelse=None)`` and the checker reports it.
"""

from __future__ import annotations

from typing import Literal

from dfc import ast
from dfc.diagnostics import Diagnostic, Diagnostics, Severity
from dfc.source import SourceFile, Span
from dfc.syntax import codes
from dfc.syntax.builder import Builder
from dfc.syntax.dump import dump, to_json
from dfc.syntax.flat import with_pg_readings
from dfc.syntax.graph import read_graph
from dfc.syntax.lexer import lex
from dfc.syntax.parser import internal_error, parse_tokens
from dfc.syntax.printer import format_expression, format_module
from dfc.syntax.sqlargs import mark_sql_arguments

__all__ = [
    "dump",
    "format_expression",
    "format_module",
    "parse",
    "parse_expression",
    "parse_text",
    "to_json",
]


def parse(
    source: SourceFile,
    *,
    grammar: Literal["dfc", "pg"] = "dfc",
    diagnostics: Diagnostics,
) -> ast.Module | None:
    """Parse a whole file into a module, adding every problem found to ``diagnostics``.

    Returns None only when nothing usable was parsed (no declaration and no workflow that
    could be built). Never raises on any input.
    """
    diags: list[Diagnostic] = []
    try:
        lexed = lex(source)
        if grammar == "pg":
            mark_sql_arguments(lexed)
        diags.extend(lexed.diagnostics)
        tree, parse_diags = parse_tokens(lexed, grammar)
        diags.extend(parse_diags)
        module = None if tree is None else Builder(lexed, diags, grammar, read_graph).build(tree)
        if module is not None and grammar == "dfc" and not any(d.is_error for d in diags):
            module = with_pg_readings(module, lexed, _flat_reading)
    except Exception as exc:  # a bug: report it as a diagnostic rather than a traceback
        diags.append(internal_error(Span(source, 0, 0), exc))
        module = None
    diagnostics.extend(diags)
    return module


def _flat_reading(text: str) -> ast.Expr | None:
    """``text`` read with pg_durable's flat grammar; None when pg_durable could not parse it."""
    body, diags = parse_expression(text, "<pg_durable reading>", grammar="pg")
    if body is None or any(d.is_error for d in diags):
        return None
    return None if any(isinstance(n, ast.Invalid) for n in ast.preorder(body)) else body


def parse_text(
    text: str, name: str = "<input>", *, grammar: Literal["dfc", "pg"] = "dfc"
) -> tuple[ast.Module | None, list[Diagnostic]]:
    """Parse source text; return the module and its diagnostics in display order."""
    sink = Diagnostics()
    module = parse(SourceFile(name, text), grammar=grammar, diagnostics=sink)
    return module, sink.sorted()


def parse_expression(
    text: str, name: str = "<expression>", *, grammar: Literal["dfc", "pg"] = "dfc"
) -> tuple[ast.Expr | None, list[Diagnostic]]:
    """Parse one workflow expression (no declarations, no label), e.g. for the SQL surface.

    ``df.start(expr)`` without a label or options is accepted and gives ``expr``.
    """
    source = SourceFile(name, text)
    sink = Diagnostics()
    module = parse(source, grammar=grammar, diagnostics=sink)
    if module is None:
        return None, sink.sorted()
    extra = [d.span for d in module.decls]
    wf = module.workflow
    if wf is not None and (wf.label is not None or wf.options):
        extra.append(wf.span)
    for span in extra:
        sink.add(
            Diagnostic(
                code=codes.SYNTAX,
                severity=Severity.ERROR,
                message="expected a workflow expression only (no declarations, label or options)",
                span=span,
            )
        )
    return (None if wf is None else wf.body), sink.sorted()
