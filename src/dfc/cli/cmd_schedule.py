"""``dfc schedule``: set, replace, remove and list the schedules of deployed workflows."""

from __future__ import annotations

import json
from datetime import datetime

import click

from dfc.cli.options import DB, JSON_OUT
from dfc.diagnostics import DfcError
from dfc.plan.model import PlanSchedule
from dfc.runtime.schedules import next_fire_of, set_schedule
from dfc.runtime.timers import zone
from dfc.scheduling import (
    CATCHUP_POLICIES,
    DEFAULT_CATCHUP,
    DEFAULT_OVERLAP,
    DEFAULT_TIMEZONE,
    OVERLAP_POLICIES,
)
from dfc.store import schedules as stored
from dfc.store.db import open_database


@click.command("schedule")
@click.argument("name", required=False)
@click.argument("cron", required=False)
@click.option(
    "--timezone",
    default=DEFAULT_TIMEZONE,
    show_default=True,
    help="IANA time zone the cron expression is read in.",
)
@click.option(
    "--overlap",
    type=click.Choice(OVERLAP_POLICIES),
    default=DEFAULT_OVERLAP,
    show_default=True,
    help="While an instance it started is unfinished: skip, queue or allow a new one.",
)
@click.option(
    "--catchup",
    type=click.Choice(CATCHUP_POLICIES),
    default=DEFAULT_CATCHUP,
    show_default=True,
    help="Fire times missed while no worker ran: start none, the latest, or all.",
)
@click.option("--off", is_flag=True, help="Remove the schedule of NAME.")
@click.option("--list", "list_all", is_flag=True, help="Show every schedule and its next fire.")
@DB
@JSON_OUT
def schedule_cmd(
    name: str | None,
    cron: str | None,
    timezone: str,
    overlap: str,
    catchup: str,
    off: bool,
    list_all: bool,
    db: str | None,
    as_json: bool,
) -> None:
    """Start workflow NAME at every minute matching CRON (replacing its schedule), remove it
    with --off, or show all schedules with --list. Workers fire them."""
    if list_all:
        if name is not None or off:
            raise click.UsageError("--list takes no NAME, CRON or --off")
        _list(db, as_json)
        return
    if name is None:
        raise click.UsageError("give NAME and CRON, NAME --off, or --list")
    if off:
        if cron is not None:
            raise click.UsageError("--off takes no CRON")
        with open_database(db) as conn, conn.transaction():
            if not stored.remove_txn(conn, name):
                raise DfcError(
                    f"workflow {name!r} has no schedule",
                    hint="dfc schedule --list shows the schedules",
                )
        _say(as_json, {"workflow": name, "schedule": None}, f"removed the schedule of {name}")
        return
    if cron is None:
        raise click.UsageError("give the CRON expression, e.g. '0 3 * * *' (or --off)")
    schedule = PlanSchedule(
        cron=cron.strip(),
        timezone=timezone,
        overlap=overlap,  # type: ignore[arg-type]
        catchup=catchup,  # type: ignore[arg-type]
    )
    with open_database(db) as conn, conn.transaction():
        set_schedule(conn, name, schedule)
        row = next(r for r in stored.list_txn(conn) if r.workflow == name)
        nxt = next_fire_of(row, stored.now_txn(conn))
    _say(
        as_json,
        {**row.to_dict(), "next_fire_at": nxt.isoformat()},
        f"scheduled {name}: {schedule.describe()}; next fire {_local(nxt, schedule)}",
    )


def _list(db: str | None, as_json: bool) -> None:
    with open_database(db) as conn, conn.transaction():
        rows = stored.list_txn(conn)
        now = stored.now_txn(conn)
    if as_json:
        click.echo(
            json.dumps(
                [{**r.to_dict(), "next_fire_at": next_fire_of(r, now).isoformat()} for r in rows],
                indent=2,
            )
        )
        return
    if not rows:
        click.echo("no schedules")
        return
    for r in rows:
        origin = f"file v{r.version}" if r.origin == "file" else "dfc schedule"
        nxt = _local(next_fire_of(r, now), r.schedule)
        click.echo(f"{r.workflow}  {r.schedule.describe()}  ({origin})  next {nxt}")


def _local(at: datetime, schedule: PlanSchedule) -> str:
    """A fire time as wall-clock time in the schedule's zone, with its offset."""
    return at.astimezone(zone(schedule.timezone)).strftime("%Y-%m-%d %H:%M %z")


def _say(as_json: bool, data: dict[str, object], text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


COMMANDS = [schedule_cmd]
