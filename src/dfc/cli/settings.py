"""Global command-line options, shared by every command module (kept apart from main.py so
command modules never import the module that registers them)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import click
from rich.console import Console


@dataclass(slots=True)
class Settings:
    """Global options, available to every command as ``ctx.obj``."""

    debug: bool = False
    color: bool | None = None

    def console(self, *, stderr: bool = False) -> Console:
        no_color = self.color is False or "NO_COLOR" in os.environ
        return Console(
            stderr=stderr,
            no_color=no_color,
            highlight=False,
            soft_wrap=True,
            force_terminal=True if self.color else None,
        )


def current(ctx: click.Context | None = None) -> Settings:
    """The settings of ``ctx``, by default the running command's (defaults outside a click
    context)."""
    ctx = ctx or click.get_current_context(silent=True)
    found = ctx.find_object(Settings) if ctx is not None else None
    return found or Settings()
