"""Commands that run and manage instances: run, start, worker, status, result, ls, history,
signal, cancel — and the live tree of ``dfc explain ID``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal as signals
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.text import Text

from dfc.cli import settings
from dfc.cli.options import DB, GRAMMAR, JSON_OUT
from dfc.diagnostics import DfcError
from dfc.plan.explain import WIDTH, explain_lines
from dfc.plan.model import Plan

if TYPE_CHECKING:
    from dfc.runtime.logs import StepLog

VARS = click.option(
    "--var",
    "var_items",
    multiple=True,
    metavar="NAME=VALUE",
    help="A workflow parameter (repeatable).",
)


INSTANCE = click.argument("instance_id", metavar="ID")


def _shows_an_instance(name: str) -> Callable[[Callable[..., None]], click.Command]:
    """The command ``dfc NAME ID [--db URL] [--json]``, which shows one instance."""

    def make(f: Callable[..., None]) -> click.Command:
        return click.command(name)(INSTANCE(DB(JSON_OUT(f))))

    return make


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _console_unless_json(as_json: bool, data: Any) -> Console | None:
    """With ``--json``, print ``data`` as JSON and return None; else the console for the text."""
    if as_json:
        _echo_json(data)
        return None
    return settings.current().console()


def _open(db: str | None) -> Any:
    from dfc.store.db import open_database

    return open_database(db)


# -- dfc run -----------------------------------------------------------------------------------


@click.command("run")
@click.argument("file", required=False)
@VARS
@DB
@click.option(
    "--resume",
    "resume_id",
    metavar="ID",
    help="Continue an interrupted instance (of FILE's workflow, or, without FILE, its own).",
)
@GRAMMAR
@click.option("--label", help="Label of the new instance (raw text in {sys_label}).")
@JSON_OUT
def run_cmd(
    file: str | None,
    var_items: tuple[str, ...],
    db: str | None,
    resume_id: str | None,
    grammar: str,
    label: str | None,
    as_json: bool,
) -> None:
    """Compile FILE, deploy it as a dev version, run an instance here and print its result.

    The instance runs in this process only, with its environment (`DFC_HTTP_ALLOW`, ...):
    workers running elsewhere take it over only if this process dies. Ctrl-C lets running
    steps finish (up to 10 s), a second Ctrl-C cancels them; either way the exit code is 130
    and the instance is resumable by a worker or `dfc run --resume ID`. Otherwise the exit code
    is 0 when it completes, 1 when it fails.

    `dfc run --resume ID` without FILE continues the instance on its own stored version.
    """
    from dfc.runtime import instances
    from dfc.store.db import resolve_url
    from dfc.store.registry import deploy

    opts = settings.current()
    err_console = opts.console(stderr=True)
    if file is None:
        if resume_id is None:
            raise click.UsageError("give a FILE to run, or --resume ID to continue an instance")
        if var_items or label is not None:
            raise click.UsageError(
                "--var and --label go with a FILE: a resumed instance has its own"
            )
    values = instances.parse_var_options(var_items)
    url = resolve_url(db)
    with _open(url) as conn:
        # An unknown or foreign instance is refused before anything is written (no dev version).
        info = None if resume_id is None else instances.status(conn, resume_id)
        if info is not None and file is None:
            name, version = info.workflow, info.version  # None: a graph started from SQL
        else:
            assert file is not None
            plan = _compiled_plan(file, grammar, err_console)
            if info is not None and info.workflow != plan.name:
                raise DfcError(
                    f"instance {resume_id} runs workflow {info.workflow}, not {plan.name}",
                    hint=f"pass the file the instance was started from, or none: "
                    f"`dfc run --resume {resume_id}`",
                )
            name, version = plan.name, deploy(conn, plan, dev=True).version

    def adopt(owner: str) -> str:
        """Start (or resume) the instance owned by this process's worker ``owner``."""
        with _open(url) as conn, conn.transaction():
            if resume_id is None:
                assert name is not None
                iid = instances.start(conn, name, version, values, label)
            else:
                iid = resume_id
            _own(conn, iid, owner)
        if not as_json:
            what = "a graph started from SQL" if name is None else f"{name} v{version}"
            err_console.print(f"[dim]instance {iid} of {what}[/]")
        return iid

    instance_id, code = _execute(url, adopt, live=sys.stdout.isatty() and not as_json)
    with _open(url) as conn:
        snap = instances.snapshot(conn, instance_id)
    if code == 130:
        err_console.print(
            f"interrupted; instance {instance_id} is resumable: `dfc run --resume {instance_id}` "
            "or any `dfc worker`"
        )
        sys.exit(130)
    if as_json:
        _echo_json(_info_json(snap.info, snap.plan))
    else:
        console = opts.console()
        for line in _tree(snap, _replay(snap)):
            console.print(Text(line))
        _print_outcome(console, err_console, snap.info, snap.plan)
    sys.exit(0 if snap.info.status == "completed" else 1)


def _compiled_plan(file: str, grammar: str, err_console: Console) -> Plan:
    """FILE's plan, or its diagnostics printed and exit 1."""
    from dfc.cli.render import print_diagnostics
    from dfc.compiler import compile_path

    comp = compile_path(file, grammar=grammar)  # type: ignore[arg-type]
    print_diagnostics(err_console, comp.sorted_diagnostics)
    if not comp.ok or comp.plan is None:
        if comp.ok:
            raise DfcError(
                f"{file} has no workflow to run", hint="a file with only declarations is a module"
            )
        sys.exit(1)
    plan: Plan = comp.plan
    return plan


def _own(conn: Any, instance_id: str, owner: str) -> None:
    """Make the worker ``owner`` the only one that may run the instance while it lives; refuse
    when a live `dfc run` elsewhere owns it (a finished instance needs no owner)."""
    from dfc.store import queue

    if queue.own_txn(conn, [instance_id], owner):
        return
    others = queue.owners_txn(conn, [instance_id], owner)
    if others:
        raise DfcError(
            f"instance {instance_id} is being run by another `dfc run` (worker {others[0]})",
            hint="wait for it to finish, or interrupt that one first",
        )


def _execute(url: str, adopt: Callable[[str], str], *, live: bool) -> tuple[str, int]:
    """Start the instance with ``adopt`` once this process's worker holds its lock and run it
    here until it finishes; returns its id and 0, or 130 when interrupted."""
    from dfc.compiler import graph_compiler
    from dfc.runtime.engine import InstanceRun
    from dfc.runtime.live import marks
    from dfc.runtime.logs import StepLog
    from dfc.runtime.state import Evaluation
    from dfc.runtime.worker import Worker, WorkerOptions

    options = WorkerOptions(concurrency=1, stop_when_done=True, retention_every=0, poll_seconds=0.5)
    log = StepLog(errors_only=True)
    interrupted = 0
    adopted: list[str] = []

    async def adopt_async(owner: str) -> list[str]:
        adopted.append(await asyncio.to_thread(adopt, owner))
        return adopted

    display: Any = None
    plan_holder: dict[str, Plan] = {}

    def on_evaluate(run: InstanceRun, ev: Evaluation) -> None:
        if display is None:
            return
        plan_holder["plan"] = run.claimed.plan
        m = marks(ev.statuses, run.records, durations_ms=run.durations, maps=ev.maps)
        display.update(Text("\n".join(explain_lines(run.claimed.plan, m, ids=True))))

    async def main() -> None:
        nonlocal interrupted
        worker = Worker(
            url,
            options,
            log=log,
            on_evaluate=on_evaluate,
            compile_graph=graph_compiler,
            adopt=adopt_async,
        )

        def stop() -> None:
            nonlocal interrupted
            interrupted += 1
            worker.request_stop()
            if not worker.runs:
                return
            if interrupted == 1:
                say = (
                    f"interrupted: letting running steps finish (up to "
                    f"{options.shutdown_grace:g} s); press Ctrl-C again to cancel them"
                )
            else:
                say = "cancelling running steps (their transactions roll back)"
            settings.current().console(stderr=True).print(say)

        loop = asyncio.get_running_loop()
        for sig in (signals.SIGINT, signals.SIGTERM):
            loop.add_signal_handler(sig, stop)
        await worker.run()

    with _traced(log):
        if live:
            from rich.live import Live

            with Live(
                Text(""),
                console=settings.current().console(),
                transient=True,
                refresh_per_second=10,
            ) as lv:
                display = lv
                asyncio.run(main())
        else:
            asyncio.run(main())
    return adopted[0], 130 if interrupted else 0


def _replay(snap: Any) -> Any:
    """The machine's evaluation of an instance snapshot, now (node statuses for the tree)."""
    from dfc.runtime import machine

    return machine.evaluate(
        snap.plan,
        instance_id=snap.info.id,
        label=snap.info.label,
        vars=snap.info.vars,
        records=snap.records,
        signals=snap.signals,
        now=_now(),
    )


def _tree(snap: Any, ev: Any, width: int | None = WIDTH, children: Sequence[Any] = ()) -> list[str]:
    """The plan tree of a snapshot with node ids, each node marked with its status in ``ev``
    (the calls with a link to their ``children``)."""
    from dfc.runtime.live import marks

    links = {c.key: c.status for c in children}
    m = marks(
        ev.statuses,
        snap.records,
        timings=snap.timings,
        plan=snap.plan,
        now=_now(),
        children=links,
        maps=ev.maps,
    )
    return explain_lines(snap.plan, m, width=width, ids=True)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _print_outcome(console: Console, err: Console, info: Any, plan: Plan | None) -> None:
    """A finished instance's result on ``console``, or how it failed or was cancelled on
    ``err``."""
    if info.status == "completed":
        console.print(Text(json.dumps(info.result, indent=2, ensure_ascii=False)))
        return
    if info.status == "cancelled":
        reason = f": {info.cancel_reason}" if info.cancel_reason else ""
        err.print(Text(f"instance {info.id} was cancelled{reason}", style="bold red"))
        return
    if plan is None:  # started from SQL, its graph did not compile: the diagnostics as text
        message = info.error.get("message") if isinstance(info.error, Mapping) else info.error
        err.print(Text(str(message).rstrip(), style="red"))
        return
    for line in error_lines(info.error, plan):
        err.print(line)


def error_lines(error: Any, plan: Plan) -> list[Text]:
    """A failed instance's error the way diagnostics look: message, location, source, caret."""
    err = error if isinstance(error, Mapping) else {"message": str(error)}
    msg = str(err.get("message", "failed"))
    if err.get("sqlstate"):
        msg += f" (SQLSTATE {err['sqlstate']})"
    head = Text()
    head.append("error", style="bold red")
    head.append(f": {msg}", style="bold")
    out = [head]
    span = plan.where(str(err.get("node"))) if err.get("node") else None
    if span is None:
        if err.get("at"):
            out.append(Text(f"  --> {err['at']}", style="bold blue"))
        return out
    out.append(Text.assemble(("  --> ", "bold blue"), f"{span.file}:{span.line}:{span.column}"))
    lines = plan.source.splitlines()
    if 1 <= span.line <= len(lines):
        text = lines[span.line - 1].expandtabs(1)
        gutter = len(str(span.line))
        width = (
            (span.end_column - span.column)
            if span.end_line == span.line
            else len(text) - span.column + 1
        )
        out.append(Text(f"{' ' * gutter} |", style="bold blue"))
        out.append(Text.assemble((f"{span.line} | ", "bold blue"), text))
        out.append(
            Text.assemble(
                (f"{' ' * gutter} | ", "bold blue"),
                " " * (span.column - 1),
                ("^" * max(1, width), "bold red"),
            )
        )
    for name in ("detail", "hint"):
        if err.get(name):
            out.append(Text.assemble((f"  = {name}: ", "bold"), str(err[name])))
    for step in span.trail:
        out.append(Text(f"  = note: expanded from {step}"))
    return out


# -- start / worker ----------------------------------------------------------------------------


@click.command("start")
@click.argument("name")
@click.option(
    "--version",
    "version",
    type=int,
    help="Version to start (default: the latest deployed one; dev versions from `dfc run` "
    "only when none was deployed).",
)
@VARS
@click.option("--label", help="Label of the instance (raw text in {sys_label}).")
@click.option(
    "--idempotency-key",
    metavar="KEY",
    help="Start at most once per KEY for this workflow: a repeat prints the first instance.",
)
@click.option(
    "--concurrency-key",
    metavar="KEY",
    help="Run only while no other instance of this workflow with KEY runs (e.g. a customer id).",
)
@DB
@JSON_OUT
def start_cmd(
    name: str,
    version: int | None,
    var_items: tuple[str, ...],
    label: str | None,
    idempotency_key: str | None,
    concurrency_key: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Start an instance of deployed workflow NAME; prints its id (a worker runs it)."""
    from dfc.runtime import instances

    values = instances.parse_var_options(var_items)
    with _open(db) as conn, conn.transaction():
        started = instances.start_instance(
            conn,
            name,
            version,
            values,
            label,
            idempotency_key=idempotency_key,
            concurrency_key=concurrency_key,
        )
    if as_json:
        _echo_json({"id": started.id, "workflow": name, "existing": started.existing})
        return
    if started.existing:
        click.echo(
            f"idempotency key {idempotency_key!r} already started instance {started.id}: "
            "nothing was started",
            err=True,
        )
    click.echo(started.id)


@click.command("worker")
@DB
@click.option(
    "--concurrency",
    type=click.IntRange(1, 10_000),
    default=16,
    show_default=True,
    help="Instances run at once.",
)
@click.option(
    "--lease-seconds",
    type=click.FloatRange(1, 3600),
    default=15.0,
    show_default=True,
    help="Lease length; a dead worker's instances resume after it.",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--quiet", is_flag=True, help="Log only errors and worker events, not every step.")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Serve Prometheus metrics at http://ADDR:PORT/metrics (0: any free port, logged).",
)
@click.option(
    "--metrics-addr",
    metavar="ADDR",
    help="Address the metrics server listens on (default 127.0.0.1; 0.0.0.0: every interface).",
)
def worker_cmd(
    db: str | None,
    concurrency: int,
    lease_seconds: float,
    log_format: str,
    quiet: bool,
    metrics_port: int | None,
    metrics_addr: str | None,
) -> None:
    """Execute instances until SIGTERM or Ctrl-C (then finish or release in-flight steps)."""
    from dfc.runtime.engine import EngineSettings
    from dfc.runtime.logs import StepLog
    from dfc.runtime.schedules import Scheduler
    from dfc.runtime.worker import WorkerOptions, run_worker
    from dfc.store.db import resolve_url

    if metrics_addr is not None and metrics_port is None:
        raise click.UsageError("--metrics-addr goes with --metrics-port")
    url = resolve_url(db)
    with _open(url):
        pass  # connect once and migrate, so errors are one sentence before the loop starts
    options = WorkerOptions(
        concurrency=concurrency, lease_seconds=lease_seconds, engine=EngineSettings()
    )
    if metrics_port is None:
        log = StepLog(fmt=log_format, quiet=quiet)
    else:
        addr = metrics_addr or "127.0.0.1"
        log = _metered(url, metrics_port, addr, fmt=log_format, quiet=quiet)
    with _traced(log):
        run_worker(
            url,
            options,
            log=log,
            compile_graph=_graph_compiler,
            scheduler=Scheduler(url),
        )


@contextlib.contextmanager
def _traced(log: StepLog) -> Iterator[None]:
    """OpenTelemetry traces as the ``OTEL_*`` variables say, exported before this returns."""
    from dfc.runtime import tracing

    exporters = tracing.configure_from_env()
    if exporters:
        log.info("tracing", exporters=exporters)
    try:
        yield
    finally:
        tracing.shutdown()


def _metered(url: str, port: int, addr: str, **log_options: Any) -> StepLog:
    """The worker's log, counting into this process's metrics, which it serves on
    ``addr:port``."""
    from dfc.runtime.metrics import MeteredLog, serve

    try:
        metrics, bound = serve(url, port, addr)
    except OSError as e:
        raise DfcError(
            f"cannot serve metrics on {addr}:{port}: {e.strerror or e}",
            hint="choose another --metrics-port (0 picks a free one), or stop what uses it",
        ) from None
    metered = MeteredLog(metrics, **log_options)
    metered.info("metrics", url=f"http://{addr}:{bound}/metrics")
    return metered


def _graph_compiler(graph: str, label: str | None, options: Mapping[str, Any] | None) -> Any:
    """`dfc.compiler.graph_compiler`, imported when a graph first needs it: the front end
    takes a second to import, which would delay every worker start (and so recovery)."""
    from dfc.compiler import graph_compiler

    return graph_compiler(graph, label, options)


# -- inspection --------------------------------------------------------------------------------


@_shows_an_instance("status")
def status_cmd(instance_id: str, db: str | None, as_json: bool) -> None:
    """Show an instance's status, timing, error and what it waits for."""
    from dfc.runtime import instances

    with _open(db) as conn:
        info = instances.status(conn, instance_id)
        plan = _plan_of(conn, info)
    console = _console_unless_json(as_json, _info_json(info, plan))
    if console is None:
        return
    console.print(
        Text.assemble(
            ("instance ", ""),
            (info.id, "bold"),
            f"  {_workflow_text(info)}",
            f"  label {info.label}" if info.label else "",
        )
    )
    console.print(Text.assemble("status   ", (info.status, _STATUS_STYLE.get(info.status, ""))))
    console.print(f"created  {info.created_at:%Y-%m-%d %H:%M:%S}")
    if info.idempotency_key is not None:
        console.print(Text(f"key      {info.idempotency_key}"))
    if info.concurrency_key is not None:
        console.print(Text(f"concurrency key {info.concurrency_key}"))
    if info.parent_id is not None:
        console.print(Text(f"parent   {info.parent_id} (step {info.parent_key})"))
    if info.duration_s is not None:
        console.print(f"duration {info.duration_s:.3f} s")
    if info.waiting_for:
        console.print(Text(f"waiting  {info.waiting_for}"))
    if info.cancel_reason:
        console.print(Text(f"reason   {info.cancel_reason}"))
    if info.status == "failed":
        _print_outcome(console, console, info, plan)


def _workflow_text(info: Any) -> str:
    """``name vN``, or what an instance started from SQL has before its graph is compiled."""
    if info.workflow is None:
        return "sql graph (not compiled)"
    return f"{info.workflow} v{info.version}"


_STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "pending": "dim",
}


WAIT_EXIT_CODES = {"completed": 0, "failed": 1, "cancelled": 3}
"""The exit code of `dfc wait` and `dfc result --wait` by final status (failed is 1, as for
`dfc run`); `WAIT_TIMED_OUT` when the timeout ended the wait first."""
WAIT_TIMED_OUT = 4

TIMEOUT = click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help=f"Give up after SECONDS (exit {WAIT_TIMED_OUT}); default: wait as long as it takes.",
)


@click.command("result")
@INSTANCE
@click.option(
    "--wait",
    "wait_for",
    is_flag=True,
    help="Wait for the instance to finish first (exit codes as for `dfc wait`).",
)
@TIMEOUT
@DB
def result_cmd(instance_id: str, wait_for: bool, timeout: float | None, db: str | None) -> None:
    """Print a completed instance's result as JSON."""
    from dfc.runtime import instances

    if timeout is not None and not wait_for:
        raise click.UsageError("--timeout goes with --wait")
    if not wait_for:
        with _open(db) as conn:
            _echo_json(instances.result(conn, instance_id))
        return
    _wait(instance_id, timeout, db, as_json=False, print_result=True)


@click.command("wait")
@INSTANCE
@TIMEOUT
@DB
@JSON_OUT
def wait_cmd(instance_id: str, timeout: float | None, db: str | None, as_json: bool) -> None:
    """Wait until an instance finishes; the exit code says how it ended.

    0 completed, 1 failed, 3 cancelled, 4 still unfinished after --timeout. The database tells
    when an instance ends (LISTEN/NOTIFY): the wait costs no polling.
    """
    _wait(instance_id, timeout, db, as_json=as_json, print_result=False)


def _wait(
    instance_id: str, timeout: float | None, db: str | None, *, as_json: bool, print_result: bool
) -> None:
    """Wait for the instance, print how it ended (its result, with ``print_result``) and exit
    with its `WAIT_EXIT_CODES` code."""
    from dfc.runtime import instances

    with _open(db) as conn:
        info = instances.wait(conn, instance_id, timeout)
        plan = _plan_of(conn, info)
    code = WAIT_EXIT_CODES[info.status] if info.finished else WAIT_TIMED_OUT
    err = settings.current().console(stderr=True)
    if as_json:
        _echo_json({**_info_json(info, plan), "timed_out": not info.finished})
    elif not info.finished:
        err.print(
            Text(f"instance {instance_id} is still {info.status} after {timeout:g} s"),
            Text.assemble(("hint:", "bold"), " a worker must be running (`dfc worker`)"),
            sep="\n",
        )
    elif print_result or info.status != "completed":
        _print_outcome(settings.current().console(), err, info, plan)
    else:
        click.echo(f"instance {info.id} completed in {info.duration_s or 0:.3f} s")
    sys.exit(code)


def _plan_of(conn: Any, info: Any) -> Plan | None:
    """The plan of an instance's version (None for a graph started from SQL and not compiled)."""
    from dfc.store.registry import load_plan_txn

    if info.workflow is None or info.version is None:
        return None
    with conn.transaction():
        return load_plan_txn(conn, info.workflow, info.version)[1]


def _info_json(info: Any, plan: Plan | None) -> dict[str, Any]:
    """An instance as JSON, its variables typed as its plan declares them (an ``int``
    parameter is a number, not the text it is substituted as)."""
    from dfc.params import typed_value

    out: dict[str, Any] = info.to_dict()
    if plan is not None:
        types = {p.name: p.type for p in plan.params}
        out["vars"] = {
            k: typed_value(types[k], v) if k in types else v for k, v in out["vars"].items()
        }
    return out


@click.command("ls")
@click.option(
    "--status", type=click.Choice(["pending", "running", "completed", "failed", "cancelled"])
)
@click.option("--workflow", metavar="NAME")
@click.option("--limit", type=click.IntRange(1, 100_000), default=20, show_default=True)
@DB
@JSON_OUT
def ls_cmd(
    status: str | None, workflow: str | None, limit: int, db: str | None, as_json: bool
) -> None:
    """List recent instances, newest first."""
    from dfc.runtime import instances

    with _open(db) as conn:
        rows = instances.list_instances(conn, status=status, workflow=workflow, limit=limit)
    console = _console_unless_json(as_json, [r.to_dict() for r in rows])
    if console is None:
        return
    if not rows:
        console.print("no instances")
        return
    for r in rows:
        dur = "" if r.duration_s is None else f"{r.duration_s:.2f}s"
        line = Text.assemble(
            (r.id, "bold"),
            "  ",
            (f"{r.status:<9}", _STATUS_STYLE.get(r.status, "")),
            f"  {_workflow_text(r)}",
            f"  [{r.label}]" if r.label else "",
            f"  key {r.idempotency_key}" if r.idempotency_key is not None else "",
            f"  {r.created_at:%Y-%m-%d %H:%M:%S}",
            f"  {dur}" if dur else "",
            f"  {r.waiting_for}" if r.waiting_for and not r.finished else "",
        )
        console.print(line)


@_shows_an_instance("history")
def history_cmd(instance_id: str, db: str | None, as_json: bool) -> None:
    """Print an instance's event log with timestamps."""
    from dfc.runtime import instances

    with _open(db) as conn:
        events = instances.history(conn, instance_id)
    console = _console_unless_json(as_json, [e.to_dict() for e in events])
    if console is None:
        return
    for e in events:
        where = f" {e.key}" if e.key else ""
        detail = ""
        if isinstance(e.detail, Mapping) and e.detail:
            detail = "  " + " ".join(f"{k}={v}" for k, v in e.detail.items() if v is not None)
        console.print(Text(f"{e.at:%Y-%m-%d %H:%M:%S.%f}"[:-3] + f"  {e.event}{where}{detail}"))


@click.command("signal")
@INSTANCE
@click.argument("name")
@click.argument("data", required=False)
@DB
@JSON_OUT
def signal_cmd(
    instance_id: str, name: str, data: str | None, db: str | None, as_json: bool
) -> None:
    """Send signal NAME with optional DATA (JSON or text; without it, {}) to an instance."""
    from dfc.runtime import instances

    with _open(db) as conn, conn.transaction():
        instances.signal(conn, instance_id, name, data)
    if as_json:
        _echo_json({"id": instance_id, "signal": name, "sent": True})
    else:
        click.echo(f"signal {name} sent to {instance_id}")


@click.command("cancel")
@INSTANCE
@click.option("--reason", help="Why (stored with the instance).")
@DB
@JSON_OUT
def cancel_cmd(instance_id: str, reason: str | None, db: str | None, as_json: bool) -> None:
    """Cancel an instance: stop its running steps, discard its waits, run nothing more."""
    from dfc.runtime import instances

    with _open(db) as conn, conn.transaction():
        message = instances.cancel(conn, instance_id, reason)
    if as_json:
        _echo_json({"id": instance_id, "message": message})
    else:
        click.echo(message)


def explain_instance(
    instance_id: str, db: str | None, as_json: bool, *, width: int | None = WIDTH
) -> None:
    """``dfc explain ID``: the plan tree of a live instance with a status mark per node."""
    from dfc.compiler import graph_compiler
    from dfc.runtime import instances

    with _open(db) as conn:
        snap = instances.snapshot(conn, instance_id, graph_compiler)
        kids = instances.children(conn, instance_id)
    ev = _replay(snap)
    console = _console_unless_json(
        as_json, {"instance": _info_json(snap.info, snap.plan), "nodes": dict(ev.statuses)}
    )
    if console is None:
        return
    info = snap.info
    console.print(
        Text.assemble(
            (f"instance {info.id}", "bold"),
            f"  {_workflow_text(info) if info.workflow else snap.plan.name + ' (not compiled yet)'}  ",
            (info.status, _STATUS_STYLE.get(info.status, "")),
        )
    )
    if info.parent_id is not None:
        console.print(Text(f"called by {info.parent_id} (step {info.parent_key})"))
    for line in _tree(snap, ev, width, kids):
        console.print(Text(line))


def explain_pg(target: str, db: str | None) -> None:
    """``dfc explain --format pg``: pg_durable's text for an instance id or a graph, rendered by
    the database's ``df.explain`` (one renderer for SQL and the CLI)."""
    with _open(db) as conn:
        row = conn.execute("SELECT df.explain(%s)", (target,)).fetchone()
    click.echo(row[0] if row else "")


COMMANDS = [
    run_cmd,
    start_cmd,
    worker_cmd,
    status_cmd,
    result_cmd,
    wait_cmd,
    ls_cmd,
    history_cmd,
    signal_cmd,
    cancel_cmd,
]
