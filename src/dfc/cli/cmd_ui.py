"""``dfc ui``: serve the web dashboard."""

from __future__ import annotations

import click

from dfc.cli.options import DB
from dfc.diagnostics import DfcError

DEFAULT_PORT = 8471


@click.command("ui")
@DB
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; the dashboard can cancel instances, so keep it private.",
)
def ui_cmd(db: str | None, port: int, host: str) -> None:
    """Serve the web dashboard: instances, workflows, health, and their JSON under /api."""
    try:
        import uvicorn

        from dfc.ui.app import create_app
    except ImportError as e:
        raise DfcError(
            f"the dashboard needs the ui extra ({e.name} is not installed)",
            hint="pip install 'dfc[ui]'",
        ) from e
    from dfc.store.db import mask_url, open_database, resolve_url

    url = resolve_url(db)
    open_database(url).close()  # bring the schema up to date before serving
    click.echo(f"dfc ui on http://{host}:{port} over {mask_url(url)} (Ctrl-C stops)", err=True)
    uvicorn.run(create_app(url), host=host, port=port, log_level="warning")


COMMANDS = [ui_cmd]
