"""Commands over the workflow registry: deploy, versions, diff."""

from __future__ import annotations

import difflib
import json
import sys

import click

from dfc.cli.cmd_source import _report
from dfc.cli.options import DB, GRAMMAR, JSON_OUT
from dfc.compiler import Compilation, Grammar, compile_path
from dfc.plan.explain import diff_lines
from dfc.store.db import open_database
from dfc.store.registry import deploy, load_plan, versions


@click.command("deploy")
@click.argument("files", nargs=-1, required=True)
@DB
@JSON_OUT
@GRAMMAR
def deploy_cmd(files: tuple[str, ...], db: str | None, as_json: bool, grammar: Grammar) -> None:
    """Check, compile and store workflows as new versions (unchanged plans are not stored again)."""
    comps: list[Compilation] = [compile_path(f, grammar=grammar) for f in files]
    failed = [c for c in comps if c.plan is None]
    if failed:
        # Refuse the whole batch: deploying half of a set of related workflows is worse than none.
        _report(failed, "json" if as_json else "text")
        if not as_json:
            click.echo("nothing deployed: fix the errors above and deploy again", err=True)
        sys.exit(1)
    results = []
    with open_database(db) as conn:
        for comp in comps:
            assert comp.plan is not None
            results.append(deploy(conn, comp.plan))
    if as_json:
        click.echo(
            json.dumps(
                [
                    {"name": r.name, "version": r.version, "hash": r.hash, "created": r.created}
                    for r in results
                ],
                indent=2,
            )
        )
        return
    for r in results:
        if r.created:
            click.echo(f"deployed {r.name} version {r.version} (hash {r.hash[:12]})")
        else:
            click.echo(f"{r.name} unchanged, version {r.version} (hash {r.hash[:12]})")


@click.command("versions")
@click.argument("name")
@DB
@JSON_OUT
def versions_cmd(name: str, db: str | None, as_json: bool) -> None:
    """List the versions of a workflow: deployed, or dev versions made by `dfc run` (which
    `dfc start` uses only while no version was deployed)."""
    with open_database(db) as conn:
        rows = versions(conn, name)
        if not rows and not as_json:  # JSON's answer is the empty list
            load_plan(conn, name)  # raises the error that names the workflows deployed
    if as_json:
        click.echo(json.dumps([v.to_dict() for v in rows], indent=2))
        return
    for v in rows:
        kind = "dev (dfc run)" if v.dev else "deployed"
        click.echo(
            f"{'*' if v.default else ' '}{v.version:>4}  {v.hash[:12]}  "
            f"{v.deployed_at:%Y-%m-%d %H:%M:%S%z}  {kind:<13}  {v.deployed_by}"
        )
    if rows:
        click.echo(f"* the version `dfc start {name}` starts")


@click.command("diff")
@click.argument("name")
@click.argument("v1", type=int)
@click.argument("v2", type=int)
@click.option(
    "--compat",
    is_flag=True,
    help="Say which nodes differ and which unfinished instances of V1 could move to V2.",
)
@DB
@JSON_OUT
def diff_cmd(name: str, v1: int, v2: int, compat: bool, db: str | None, as_json: bool) -> None:
    """Show what changed between two versions of a workflow, as a diff of their plan trees."""
    if compat:
        from dfc.cli.cmd_rewind import show_compat

        show_compat(name, v1, v2, db, as_json)
        return
    with open_database(db) as conn:
        _, p1 = load_plan(conn, name, v1)
        _, p2 = load_plan(conn, name, v2)
    a, b = diff_lines(p1), diff_lines(p2)
    lines = list(
        difflib.unified_diff(a, b, fromfile=f"{name} v{v1}", tofile=f"{name} v{v2}", lineterm="")
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "name": name,
                    "from": v1,
                    "to": v2,
                    "same": p1.hash == p2.hash,
                    "from_hash": p1.hash,
                    "to_hash": p2.hash,
                    "diff": lines,
                },
                indent=2,
            )
        )
        return
    if p1.hash == p2.hash:
        click.echo(f"{name} v{v1} and v{v2} have the same plan (hash {p1.hash[:12]})")
        return
    for line in lines:
        click.echo(line)


COMMANDS = [deploy_cmd, versions_cmd, diff_cmd]
