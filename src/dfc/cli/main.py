"""The ``dfc`` command: a click group with rich output and one error policy.

Every failure a user can cause ends as one sentence plus a hint and exit code 1 (2 for usage
errors); a traceback is printed only with ``--debug``.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from dfc import __version__
from dfc.cli import collection, settings
from dfc.cli.settings import Settings
from dfc.diagnostics import DfcError

# Command name -> module. Commands load on first use, so `dfc check` does not pay for importing
# the database driver and the runtime (start-up time counts when editors run it on every save).
LAZY_COMMANDS = {
    "check": "dfc.cli.cmd_source",
    "parse": "dfc.cli.cmd_source",
    "fmt": "dfc.cli.cmd_source",
    "explain": "dfc.cli.cmd_source",
    "graph": "dfc.cli.cmd_source",
    "compile": "dfc.cli.cmd_source",
    "deploy": "dfc.cli.cmd_registry",
    "versions": "dfc.cli.cmd_registry",
    "diff": "dfc.cli.cmd_registry",
    "db": "dfc.cli.cmd_db",
    "run": "dfc.cli.cmd_run",
    "start": "dfc.cli.cmd_run",
    "worker": "dfc.cli.cmd_run",
    "status": "dfc.cli.cmd_run",
    "result": "dfc.cli.cmd_run",
    "wait": "dfc.cli.cmd_run",
    "ls": "dfc.cli.cmd_run",
    "history": "dfc.cli.cmd_run",
    "signal": "dfc.cli.cmd_run",
    "cancel": "dfc.cli.cmd_run",
    "schedule": "dfc.cli.cmd_schedule",
    "retry": "dfc.cli.cmd_rewind",
    "fork": "dfc.cli.cmd_rewind",
    "upgrade": "dfc.cli.cmd_rewind",
    "lsp": "dfc.cli.cmd_lsp",
    "ui": "dfc.cli.cmd_ui",
}


class DfcGroup(click.Group):
    """A group that loads commands lazily and turns user-facing errors into one clear sentence."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(LAZY_COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            with collection.paused():  # imports make objects that live until exit
                module = importlib.import_module(LAZY_COMMANDS[cmd_name])
            for cmd in module.COMMANDS:
                self.add_command(cmd)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DfcError as e:
            _fail(ctx, e.message, e.hint)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except BrokenPipeError:
            # The reader went away (`dfc explain big.df | head`): stop quietly, as cat would.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(141)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as e:
            if _debug(ctx):
                raise
            _fail(
                ctx,
                f"internal error: {type(e).__name__}: {e}",
                "this is a bug in dfc; run again with --debug for the traceback and report it",
            )


def _debug(ctx: click.Context) -> bool:
    return settings.current(ctx).debug or "--debug" in sys.argv


def _fail(ctx: click.Context, message: str, hint: str | None) -> None:
    console = settings.current(ctx).console(stderr=True)
    console.print(f"[bold red]error:[/] {_escape(message)}")
    if hint:
        console.print(f"[bold]hint:[/] {_escape(hint)}")
    sys.exit(1)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@click.group(cls=DfcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
@click.option(
    "--color/--no-color", default=None, help="Force or disable colour (default: on a terminal)."
)
@click.version_option(__version__, prog_name="dfc")
@click.pass_context
def main(ctx: click.Context, debug: bool, color: bool | None) -> None:
    """dfc: durable SQL workflows on PostgreSQL.

    Write workflows in pg_durable's DSL, check them, deploy them as versioned plans and run
    them durably: every step is checkpointed in PostgreSQL and resumes after a crash.
    """
    ctx.obj = Settings(debug=debug, color=color)
    collection.frozen_at_exit()


if __name__ == "__main__":
    main()
