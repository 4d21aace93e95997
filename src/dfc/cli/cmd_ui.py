"""``dfc ui``: serve the web dashboard."""

from __future__ import annotations

import socket

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
    sock = _listen(host, port)
    click.echo(
        f"dfc ui on http://{_address(host, sock.getsockname()[1])} over {mask_url(url)} "
        "(Ctrl-C stops)",
        err=True,
    )
    config = uvicorn.Config(create_app(url), log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, or a `DfcError` saying why not (bound here rather than
    by uvicorn, whose failure is a log line and an exit, not one sentence)."""
    sock: socket.socket | None = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        if sock is not None:
            sock.close()
        raise DfcError(
            f"cannot listen on {_address(host, port)}: {e.strerror or e}",
            hint="choose another --port (or --host), or stop what uses it",
        ) from e
    return sock


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


COMMANDS = [ui_cmd]
