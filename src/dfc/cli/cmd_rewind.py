"""Commands that go on from recorded progress: retry, fork, upgrade — and ``dfc diff --compat``
(docs/runtime.md, "Retry, fork and upgrade")."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from dfc.cli import settings
from dfc.cli.options import DB, JSON_OUT
from dfc.store.db import open_database

INSTANCE = click.argument("instance_id", metavar="ID")


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


@click.command("retry")
@INSTANCE
@DB
@JSON_OUT
def retry_cmd(instance_id: str, db: str | None, as_json: bool) -> None:
    """Run a failed instance again from the step that failed, keeping every completed step's
    result (fix the cause first: the data, a constraint, a service)."""
    from dfc.runtime import rewind

    with open_database(db) as conn, conn.transaction():
        done = rewind.retry(conn, instance_id)
    if as_json:
        _echo_json(done.to_dict())
        return
    where = f" ({done.at})" if done.at else ""
    step = f"step {done.node}{where}" if done.node else "the step that failed"
    click.echo(
        f"instance {instance_id} queued again: it resumes at {step}, keeping {done.kept} "
        f"completed step{'s' if done.kept != 1 else ''}"
    )


@click.command("fork")
@INSTANCE
@click.option(
    "--from",
    "step",
    required=True,
    metavar="STEP",
    help="The step to run again, as `dfc history` names it (n7, or n2#3/n7 in a loop).",
)
@click.option(
    "--version", "version", type=int, help="Run on this version (default: the instance's)."
)
@DB
@JSON_OUT
def fork_cmd(
    instance_id: str, step: str, version: int | None, db: str | None, as_json: bool
) -> None:
    """Start a new instance that reuses ID's recorded results of the steps before STEP and runs
    the rest, with the same variables and label; prints its id."""
    from dfc.runtime import rewind

    with open_database(db) as conn, conn.transaction():
        done = rewind.fork(conn, instance_id, step, version)
    if as_json:
        _echo_json(done.to_dict())
        return
    click.echo(done.instance_id)
    n = len(done.reused)
    click.echo(
        f"forked from {instance_id} at {step} on {done.workflow} version {done.version}, "
        f"reusing {n} recorded result{'s' if n != 1 else ''}",
        err=True,
    )


@click.command("upgrade")
@click.argument("name")
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--to", "to", type=int, required=True, help="The version to move instances to.")
@DB
@JSON_OUT
def upgrade_cmd(name: str, ids: tuple[str, ...], to: int, db: str | None, as_json: bool) -> None:
    """Move the unfinished instances of NAME (or only the IDs given) to version --to where their
    recorded steps are the same there; the others stay, with the reason. Exit 1 when an ID
    given could not move."""
    from dfc.runtime import rewind

    with open_database(db) as conn:
        rows = rewind.upgrade(conn, name, to, ids)
    stuck = bool(ids) and any(not r.ok for r in rows)
    if as_json:
        _echo_json([r.to_dict() for r in rows])
    else:
        console = settings.current().console()
        if not rows:
            console.print(f"no unfinished instance of {name}", highlight=False)
        for r in rows:
            if r.moved:
                text = f"{r.instance_id}  v{r.version} -> v{to}  moved"
            elif r.ok:
                text = f"{r.instance_id}  {r.reason}"
            else:
                was = f"v{r.version}" if r.version else "-"
                text = f"{r.instance_id}  {was}  stays: {r.reason}"
            console.print(text, highlight=False, markup=False)
    if stuck:
        sys.exit(1)


def show_compat(name: str, old: int, new: int, db: str | None, as_json: bool) -> None:
    """``dfc diff NAME OLD NEW --compat``: which nodes differ, and which unfinished instances of
    version OLD could move to NEW."""
    from dfc.plan import compat
    from dfc.runtime import rewind
    from dfc.store.registry import load_plan_txn

    with open_database(db) as conn, conn.transaction():
        _, a = load_plan_txn(conn, name, old)
        _, b = load_plan_txn(conn, name, new)
        rows = rewind.compatibility(conn, name, old, new)
    whole = compat.plan_difference(a, b)
    changed = compat.changes(a, b)
    if as_json:
        _echo_json(
            {
                "name": name,
                "from": old,
                "to": new,
                "incompatible": whole,
                "changed": changed,
                "instances": [r.to_dict() for r in rows],
            }
        )
        return
    console = settings.current().console()

    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False)

    if whole is not None:
        say(f"{name} v{old} -> v{new}: no instance can move: {whole}")
    elif not changed:
        say(f"{name} v{old} -> v{new}: every node of v{old} is the same in v{new}")
    else:
        n = len(changed)
        say(f"{name} v{old} -> v{new}: {n} node{' differs' if n == 1 else 's differ'}")
        for nid, reason in changed.items():
            span = a.where(nid)
            say(f"  {nid}  {reason}" + (f" ({span})" if span else ""))
    movable = sum(1 for r in rows if r.ok)
    say(
        f"unfinished instances of v{old}: {len(rows)}"
        + (f" ({movable} can move, {len(rows) - movable} cannot)" if rows else "")
    )
    for r in rows:
        say(f"  {r.instance_id}  " + ("can move" if r.ok else f"stays: {r.reason}"))


COMMANDS = [retry_cmd, fork_cmd, upgrade_cmd]
