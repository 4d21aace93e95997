"""``dfc lsp``: run the language server over stdio (src/dfc/lsp, docs/editors.md)."""

from __future__ import annotations

import importlib.util

import click

from dfc.diagnostics import DfcError


@click.command("lsp")
@click.option(
    "--stdio", is_flag=True, help="Talk over standard input and output (the default and only way)."
)
def lsp_cmd(stdio: bool) -> None:
    """Run the language server for .df files over stdio (for editors)."""
    if importlib.util.find_spec("pygls") is None or importlib.util.find_spec("lsprotocol") is None:
        raise DfcError(
            "the language server needs the packages pygls and lsprotocol, which are not installed",
            hint="install them with: pip install 'dfc[lsp]'",
        )
    from dfc.lsp.server import serve

    serve()


COMMANDS = [lsp_cmd]
