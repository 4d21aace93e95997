"""Commands that work on files alone: parse, check, fmt, explain, graph, compile."""

from __future__ import annotations

import difflib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dfc.cli import collection, deepjson, settings
from dfc.cli.options import GRAMMAR
from dfc.cli.render import print_diagnostics, summary, to_json
from dfc.compiler import (
    Compilation,
    Grammar,
    check_source,
    compile_source,
    parse_source,
    read_source,
    to_graph,
)
from dfc.diagnostics import DfcError, Diagnostic, Severity

# What only some commands need is imported inside them: `dfc check` (run by editors on every
# save) starts faster without the plan stage and the catalogue of codes.
if TYPE_CHECKING:
    from dfc.plan.model import Plan


def _report(comps: list[Compilation], fmt: str, *, summarise: bool = False) -> int:
    """Print diagnostics of compilations, and a summary line when there are some, several
    files or ``summarise`` (`dfc check`'s one consistent last line); return the exit code (1
    when any error)."""
    diags: list[Diagnostic] = [d for c in comps for d in c.sorted_diagnostics]
    if fmt == "json":
        click.echo(to_json(diags))
    else:
        console = settings.current().console()
        print_diagnostics(console, diags)
        if summarise or len(comps) > 1 or diags:
            console.print(summary(diags, len(comps)))
    return 1 if any(d.is_error for d in diags) else 0


def _compiled(file: str, grammar: Grammar) -> tuple[Compilation, Plan]:
    """Compile a file to its plan, or print the diagnostics and exit 1."""
    comp = compile_source(read_source(file), grammar=grammar)
    if comp.plan is None or comp.diagnostics.has_errors:
        if _report([comp], "text") == 0:
            raise DfcError(
                f"{comp.source.name} has no workflow to compile",
                hint="a file with only declarations is a module for import",
            )
        sys.exit(1)
    return comp, comp.plan


@click.command("check")
@click.argument("files", nargs=-1)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@GRAMMAR
@click.option(
    "--db",
    "db",
    metavar="URL",
    help="Also validate every SQL step against this database ('embedded' for the local one).",
)
@click.option(
    "--explain",
    "explain_code",
    metavar="CODE",
    help="Print the explanation of a diagnostic code and exit.",
)
def check_cmd(
    files: tuple[str, ...], fmt: str, grammar: Grammar, db: str | None, explain_code: str | None
) -> None:
    """Check workflow files or folders of them (- reads standard input); exit 1 on errors."""
    if explain_code:
        from dfc import catalogue

        text = catalogue.explain(explain_code)
        if text is None:
            raise click.UsageError(
                f"unknown diagnostic code {explain_code}; codes look like DFC201"
            )
        click.echo(text, nl=False)
        return
    if not files:
        raise click.UsageError("give at least one FILE (or - for standard input)")
    started = time.perf_counter()
    with collection.paused():  # the trees of a check live until it ends
        comps = [check_source(read_source(f), grammar=grammar) for f in _expand(files)]
    if db is not None:
        _check_live(comps, db)
    code = _report(comps, fmt, summarise=True)
    if fmt == "text" and settings.current().debug:
        click.echo(f"checked in {(time.perf_counter() - started) * 1000:.1f} ms", err=True)
    sys.exit(code)


def _expand(files: tuple[str, ...]) -> list[str]:
    """Files as given, with a directory standing for the .df files under it."""
    out: list[str] = []
    for f in files:
        p = Path(f)
        if f != "-" and p.is_dir():
            found = sorted(str(x) for x in p.rglob("*.df"))
            if not found:
                raise DfcError(
                    f"{f} contains no .df files", hint="pass workflow files or a folder with some"
                )
            out.extend(found)
        else:
            out.append(f)
    return out


def _check_live(comps: list[Compilation], db: str) -> None:
    from dfc.check import check_live
    from dfc.store.db import resolve_url

    url = resolve_url(db)
    for comp in comps:
        if comp.checked is not None and not comp.diagnostics.has_errors:
            check_live(comp.checked, url, comp.diagnostics)


@click.command("parse")
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Print the AST as JSON.")
@GRAMMAR
def parse_cmd(file: str, as_json: bool, grammar: Grammar) -> None:
    """Print the syntax tree of a file."""
    from dfc.syntax import dump
    from dfc.syntax import to_json as ast_json

    comp = parse_source(read_source(file), grammar=grammar)
    if comp.module is None or comp.diagnostics.has_errors:
        sys.exit(_report([comp], "text"))
    if as_json:
        click.echo(deepjson.dumps(ast_json(comp.module)))
    else:
        click.echo(dump(comp.module))


@click.command("fmt")
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--check", "check_only", is_flag=True, help="Change nothing; exit 1 if a file is not formatted."
)
@click.option("--diff", "show_diff", is_flag=True, help="Print a diff instead of rewriting files.")
def fmt_cmd(files: tuple[str, ...], check_only: bool, show_diff: bool) -> None:
    """Rewrite files in canonical form (- prints the formatted standard input)."""
    from dfc.syntax import format_module

    unformatted = 0
    for file in files:
        source = read_source(file)
        comp = parse_source(source)
        if comp.module is None or comp.diagnostics.has_errors:
            _report([comp], "text")
            sys.exit(1)
        out = format_module(comp.module)
        if file == "-":
            click.echo(out, nl=False)
            continue
        if out == source.text:
            continue
        unformatted += 1
        if show_diff or check_only:
            if show_diff:
                diff = difflib.unified_diff(
                    source.text.splitlines(keepends=True),
                    out.splitlines(keepends=True),
                    fromfile=file,
                    tofile=f"{file} (formatted)",
                )
                click.echo("".join(diff), nl=False)
            else:
                click.echo(f"would reformat {file}")
        else:
            Path(file).write_text(out, encoding="utf-8")
            click.echo(f"reformatted {file}")
    if (check_only or show_diff) and unformatted:
        sys.exit(1)


@click.command("explain")
@click.argument("target")
@GRAMMAR
@click.option(
    "--db", "db", metavar="URL", help="Database of the instance (when TARGET is an instance id)."
)
@click.option("--json", "as_json", is_flag=True, help="Node statuses as JSON (instances only).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["tree", "pg"]),
    default="tree",
    show_default=True,
    help="tree: dfc's tree; pg: pg_durable's df.explain text, rendered by the database.",
)
@click.option("--full", is_flag=True, help="Show every step's SQL, URL and value in full.")
def explain_cmd(
    target: str, grammar: Grammar, db: str | None, as_json: bool, fmt: str, full: bool
) -> None:
    """Show the plan tree of a FILE, or the live tree of an instance ID.

    Each line starts with its node's id, the name `dfc history` and `dfc fork --from` use.
    """
    instance = not Path(target).exists() and target != "-" and _looks_like_instance(target)
    if fmt == "pg":
        if as_json or full:
            given = "--json" if as_json else "--full"
            raise click.UsageError(f"{given} goes with the tree format, not --format pg")
        _explain_pg(target, instance, grammar, db)
        return
    from dfc.plan.explain import WIDTH, explain_lines, heading_lines

    width = None if full else WIDTH
    if instance:
        from dfc.cli.cmd_run import explain_instance

        explain_instance(target, db, as_json, width=width)
        return
    comp, plan = _compiled(target, grammar)
    _warnings(comp)
    for line in [*heading_lines(plan), *explain_lines(plan, width=width, ids=True)]:
        click.echo(line)


def _explain_pg(target: str, instance: bool, grammar: Grammar, db: str | None) -> None:
    """Ask the database's df.explain: for a FILE, about the graph its workflow builds in SQL."""
    from dfc.cli.cmd_run import explain_pg

    if instance:
        explain_pg(target, db)
        return
    comp, _ = _compiled(target, grammar)
    _warnings(comp)
    assert comp.checked is not None  # a compiled workflow was checked
    try:
        graph = to_graph(comp.checked.body)
    except ValueError as e:
        raise DfcError(
            f"{target} has no pg_durable graph: {e}", hint="use dfc explain without --format pg"
        ) from e
    console = settings.current().console(stderr=True)
    for o in graph.omitted:
        console.print(
            f"{o.span}: note: pg_durable's graph has no {o.construct}; the step it wraps is shown"
        )
    explain_pg(graph.text, db)


def _warnings(comp: Compilation) -> None:
    """Warnings go to stderr beside a tree or plan on stdout (hints and infos: see `dfc check`)."""
    warnings = [d for d in comp.sorted_diagnostics if d.severity is Severity.WARNING]
    print_diagnostics(settings.current().console(stderr=True), warnings)


def _looks_like_instance(target: str) -> bool:
    return len(target) == 8 and all(c in "0123456789abcdef" for c in target)


@click.command("graph")
@click.argument("file")
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
@GRAMMAR
def graph_cmd(file: str, fmt: str, grammar: Grammar) -> None:
    """Print the step graph as Mermaid or Graphviz DOT."""
    from dfc.plan.explain import dot, mermaid

    _, plan = _compiled(file, grammar)
    click.echo(mermaid(plan) if fmt == "mermaid" else dot(plan), nl=False)


@click.command("compile")
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Print the full plan as JSON.")
@GRAMMAR
def compile_cmd(file: str, as_json: bool, grammar: Grammar) -> None:
    """Compile a file to its plan (the JSON that `dfc deploy` stores)."""
    from dfc.plan.explain import explain_lines, heading_lines

    comp, plan = _compiled(file, grammar)
    if as_json:
        click.echo(plan.dumps(pretty=True))
        return
    _warnings(comp)
    click.echo(f"workflow {plan.name}: {len(plan.nodes)} nodes, format {plan.format}")
    click.echo(f"hash {plan.hash}")
    for line in [*heading_lines(plan), *explain_lines(plan)]:
        click.echo(line)


COMMANDS = [check_cmd, parse_cmd, fmt_cmd, explain_cmd, graph_cmd, compile_cmd]
