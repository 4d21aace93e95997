"""Options that several commands take, each defined once so that it reads the same everywhere."""

from __future__ import annotations

import click

DB = click.option(
    "--db",
    "db",
    metavar="URL",
    help="Database URL (default: DFC_DATABASE_URL, else the embedded server).",
)
JSON_OUT = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
GRAMMAR = click.option(
    "--grammar",
    type=click.Choice(["dfc", "pg"]),
    default="dfc",
    show_default=True,
    help="Operator precedence: dfc's table, or pg_durable's flat left-to-right parse.",
)
