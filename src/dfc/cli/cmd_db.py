"""``dfc db``: the embedded PostgreSQL server and the ``dfc`` schema.

``start``, ``stop``, ``status`` and ``url`` manage the embedded server of a data directory
(``--data-dir`` > ``DFC_DATA_DIR`` > the default); ``migrate`` and ``status`` also work on any
database given with ``--db URL`` or ``DFC_DATABASE_URL``. Failures raise `DfcError`, which the
main command prints as one sentence and a hint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from dfc.cli.options import JSON_OUT
from dfc.store.db import connect, embedded_server, is_embedded, mask_url, resolve_url
from dfc.store.embedded import ServerStatus
from dfc.store.migrations import SchemaStatus, ensure_schema, schema_status

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The embedded server's directory (default: $DFC_DATA_DIR, else ~/.local/share/dfc, "
    "or /var/lib/dfc as root).",
)
db_option = click.option(
    "--db",
    "db_url",
    metavar="URL",
    default=None,
    help="PostgreSQL URL, or 'embedded' (default: $DFC_DATABASE_URL, else the embedded server).",
)


@click.group("db")
def db() -> None:
    """Manage the database: the embedded PostgreSQL server and the dfc schema."""


@db.command("start")
@data_dir_option
@JSON_OUT
def start_cmd(data_dir: Path | None, as_json: bool) -> None:
    """Start the embedded PostgreSQL server (a no-op when it runs)."""
    server = embedded_server(data_dir)
    was_running = server.status().running
    status = server.start()
    if as_json:
        _echo_json({**status.to_dict(), "started": not was_running})
        return
    verb = "is already running" if was_running else "started"
    click.echo(f"PostgreSQL {status.version} {verb} (pid {status.pid}, user {status.user})")
    _echo_fields(
        ("data dir", str(status.data_dir)),
        ("url", status.url() or ""),
    )


@db.command("stop")
@data_dir_option
@JSON_OUT
def stop_cmd(data_dir: Path | None, as_json: bool) -> None:
    """Stop the embedded PostgreSQL server; the next command that needs it starts it again."""
    server = embedded_server(data_dir)
    stopped = server.stop()
    if as_json:
        _echo_json({"data_dir": str(server.data_dir), "stopped": stopped})
    elif stopped:
        click.echo(f"stopped the embedded PostgreSQL in {server.data_dir}")
    else:
        click.echo(f"the embedded PostgreSQL in {server.data_dir} is not running")


@db.command("url")
@data_dir_option
@click.option(
    "--tcp", is_flag=True, help="The 127.0.0.1 URL with its password, not the unix socket's."
)
def url_cmd(data_dir: Path | None, tcp: bool) -> None:
    """Print the embedded server's URL, starting it if needed (e.g. psql "$(dfc db url)")."""
    click.echo(embedded_server(data_dir).url(tcp=tcp))


@db.command("migrate")
@db_option
@data_dir_option
@JSON_OUT
def migrate_cmd(db_url: str | None, data_dir: Path | None, as_json: bool) -> None:
    """Apply pending migrations of the dfc schema (every command also does this by itself)."""
    url = resolve_url(db_url, data_dir=data_dir)
    with connect(url) as conn:
        applied = ensure_schema(conn)
        status = schema_status(conn)
    if as_json:
        _echo_json(
            {
                "database": mask_url(url),
                "applied": [m.name for m in applied],
                "version": status.version,
            }
        )
        return
    for m in applied:
        click.echo(f"applied {m.name}")
    if not applied:
        click.echo(f"the dfc schema is up to date (version {status.version})")


@db.command("status")
@db_option
@data_dir_option
@JSON_OUT
def status_cmd(db_url: str | None, data_dir: Path | None, as_json: bool) -> None:
    """Show the embedded server and the schema of the database dfc would use.

    Starts nothing: with the embedded server stopped, the schema is not shown.
    """
    server = embedded_server(data_dir).status()
    embedded = is_embedded(db_url)
    url: str | None = server.url() if embedded else resolve_url(db_url)
    schema: SchemaStatus | None = None
    if url is not None:
        with connect(url) as conn:
            schema = schema_status(conn)
    if as_json:
        _echo_json(
            {
                "embedded": server.to_dict(),
                "database": {
                    "url": None if url is None else mask_url(url),
                    "embedded": embedded,
                    "schema": None if schema is None else schema.to_dict(),
                },
            }
        )
        return
    _echo_server(server)
    if not embedded and url is not None:
        click.echo(f"database: {mask_url(url)}")
    _echo_schema(schema)


# -- output ---------------------------------------------------------------------------------


def _echo_server(st: ServerStatus) -> None:
    if st.running:
        state = f"running (pid {st.pid})"
    elif st.initialized:
        state = "stopped"
    else:
        state = "not initialised (the first command that needs it will create it)"
    click.echo(f"embedded PostgreSQL: {state}")
    fields = [
        ("data dir", str(st.data_dir)),
        ("log", str(st.log_file)),
        ("version", f"PostgreSQL {st.version}" if st.version else "unknown"),
        ("runs as", st.user),
    ]
    if st.running:
        tcp = st.to_dict()["tcp_url"]
        fields += [("url", st.url() or ""), ("tcp url", str(tcp))]
    _echo_fields(*fields)


def _echo_schema(schema: SchemaStatus | None) -> None:
    if schema is None:
        click.echo("schema: unknown while the embedded server is stopped")
        return
    if not schema.applied:
        click.echo("schema: not installed (run `dfc db migrate`, or any command that needs it)")
    elif schema.unknown:
        click.echo(f"schema: version {schema.version}, newer than this dfc (upgrade dfc)")
    elif schema.pending:
        names = ", ".join(m.name for m in schema.pending)
        click.echo(f"schema: version {schema.version}, {len(schema.pending)} pending: {names}")
    else:
        click.echo(f"schema: version {schema.version}, up to date")
    every = [a.name for a in schema.applied] + [m.name for m in schema.pending]
    width = max(map(len, every), default=0)
    for a in schema.applied:
        mark = "  (file changed since)" if a in schema.modified else ""
        click.echo(f"  applied  {a.name.ljust(width)}  {a.applied_at:%Y-%m-%d %H:%M:%S %Z}{mark}")
    for m in schema.pending:
        click.echo(f"  pending  {m.name}")


def _echo_fields(*fields: tuple[str, str]) -> None:
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        click.echo(f"  {key.ljust(width)}  {value}")


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


__all__ = ["db"]


COMMANDS = [db]
