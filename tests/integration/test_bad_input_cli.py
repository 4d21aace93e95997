"""Bad input at every command (issue 11): one clear sentence, the documented exit code, no
traceback, nothing written.

The commands are enumerated from the click group itself, and every parameter of every command
must have a role in `ROLES` (what kind of value it takes), so a new command or parameter fails
`test_every_parameter_has_a_role` until its bad inputs are covered. Cases are derived from the
roles and from the parameters' click types (integers, ranges, choices), each run against a
base invocation that works, with one parameter replaced by a bad value. Most run in-process
with click's CliRunner; `test_console_script` runs a representative few as real processes.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import psycopg
import pytest
from click.testing import CliRunner

from dfc.cli.main import main
from dfc.store.db import ENV_DATA_DIR

# A PostgreSQL URL nothing listens on (port 1 is tcpmux, never a PostgreSQL server).
DEAD_URL = "postgresql://dfc@127.0.0.1:1/dfc?connect_timeout=2"
GOOD = "param n int = 3;\n\n'SELECT {n} AS n' |=> 'row' ~> 'SELECT $row AS again';\n"
MALFORMED = "'SELECT 1' ~~~ (\n"
UNKNOWN_ID = "0badf00d"

# What each parameter of each command takes. Options with a click type that checks values
# (integers, ranges, choices, paths) need no role beyond "typed"; flags need none.
ROLES: dict[tuple[str, ...], dict[str, str]] = {
    ("check",): {"files": "paths", "db": "db", "explain_code": "code"},
    ("parse",): {"file": "file"},
    ("fmt",): {"files": "files"},
    ("explain",): {"target": "file_or_instance", "db": "db"},
    ("graph",): {"file": "file"},
    ("compile",): {"file": "file"},
    ("deploy",): {"files": "files", "db": "db"},
    ("versions",): {"name": "workflow", "db": "db"},
    ("diff",): {"name": "workflow", "v1": "version", "v2": "version", "db": "db"},
    ("run",): {
        "file": "file",
        "var_items": "var",
        "db": "db",
        "resume_id": "instance",
        "label": "free",
    },
    ("start",): {
        "name": "workflow",
        "version": "version",
        "var_items": "var",
        "label": "free",
        "idempotency_key": "key",
        "concurrency_key": "key",
        "db": "db",
    },
    ("worker",): {"db": "db", "metrics_addr": "metrics_addr"},
    ("status",): {"instance_id": "instance", "db": "db"},
    ("result",): {"instance_id": "instance", "db": "db"},
    ("wait",): {"instance_id": "instance", "db": "db"},
    ("ls",): {"workflow": "filter", "db": "db"},
    ("history",): {"instance_id": "instance", "db": "db"},
    ("signal",): {"instance_id": "instance", "name": "signal", "data": "free", "db": "db"},
    ("cancel",): {"instance_id": "instance", "reason": "free", "db": "db"},
    ("schedule",): {"name": "workflow", "cron": "cron", "timezone": "timezone", "db": "db"},
    ("retry",): {"instance_id": "instance", "db": "db"},
    ("fork",): {"instance_id": "instance", "step": "step", "version": "version", "db": "db"},
    ("upgrade",): {"name": "workflow", "ids": "instance", "to": "version", "db": "db"},
    ("lsp",): {},
    ("ui",): {"db": "db", "host": "free"},
    ("db", "start"): {},
    ("db", "stop"): {},
    ("db", "status"): {"db_url": "db"},
    ("db", "url"): {},
    ("db", "migrate"): {"db_url": "db"},
}

# Commands that run until stopped when given good input: their cases run as processes with a
# time limit, so a case that wrongly succeeds fails instead of hanging the suite.
LONG_RUNNING = {("worker",), ("lsp",), ("ui",)}


def commands(
    group: click.Group = main, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command of the ``dfc`` group, subcommands of groups included."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        if isinstance(cmd, click.Group):
            yield from commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def needs_role(param: click.Parameter) -> bool:
    """Whether the parameter's bad values must be chosen by hand (free text, not a checked type)."""
    if isinstance(param, click.Option) and param.is_flag:
        return False
    return isinstance(param.type, click.types.StringParamType)


def test_every_parameter_has_a_role() -> None:
    found = {path: cmd for path, cmd in commands()}
    missing = sorted(" ".join(p) for p in set(found) - set(ROLES))
    stale = sorted(" ".join(p) for p in set(ROLES) - set(found))
    assert not missing, f"commands without bad-input cases (add them to ROLES): {missing}"
    assert not stale, f"ROLES names commands that no longer exist: {stale}"
    unroled = [
        f"{' '.join(path)} {p.name}"
        for path, cmd in found.items()
        for p in cmd.params
        if needs_role(p) and p.name not in ROLES[path]
    ]
    assert not unroled, f"parameters without a role in ROLES: {unroled}"


# -- the world the cases run in -------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """Files and database objects the base invocations use."""

    dir: Path
    good: str  # a workflow file, deployed as workflow "good" (version 1), param n int
    malformed: str
    binary: str
    unreadable: str  # a path that exists but cannot be read (a unix socket)
    folder: str
    empty_folder: str
    db_url: str
    pending: str  # a pending instance of "good" (no worker runs it)
    done: str  # a completed instance of "good"
    failed: str  # a failed instance of "bad"
    dead_data_dir: str  # an embedded data directory whose server cannot start


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> Iterator[World]:
    d = tmp_path_factory.mktemp("badinput")
    (d / "good.df").write_text(GOOD)
    (d / "malformed.df").write_text(MALFORMED)
    (d / "binary.df").write_bytes(b"\xff\xfe\x00\x01 \x80garbage")
    (d / "folder").mkdir()
    (d / "folder" / "inside.df").write_text(GOOD)
    (d / "empty").mkdir()
    # Outside pytest's 0700 base directory: run as root, the server's account must reach it.
    dead = Path(tempfile.mkdtemp(prefix="dfc-dead-", dir="/tmp")) / "data"
    dead.parent.chmod(0o711)
    (dead / "pgdata").mkdir(parents=True)
    (dead / "pgdata" / "PG_VERSION").write_text("99\n")  # a server no installed PostgreSQL runs
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "socket.df"))
    assert invoke("deploy", str(d / "good.df"), "--db", db_url).exit_code == 0
    started = invoke("start", "good", "--db", db_url)
    assert started.exit_code == 0, started.output
    ran = invoke("run", str(d / "good.df"), "--db", db_url, "--json")
    assert ran.exit_code == 0, ran.output
    (d / "bad.df").write_text("'SELECT 1/0'\n")
    failed = invoke("run", str(d / "bad.df"), "--db", db_url, "--json")
    assert failed.exit_code == 1, failed.output
    try:
        yield World(
            dir=d,
            good=str(d / "good.df"),
            malformed=str(d / "malformed.df"),
            binary=str(d / "binary.df"),
            unreadable=str(d / "socket.df"),
            folder=str(d / "folder"),
            empty_folder=str(d / "empty"),
            db_url=db_url,
            pending=started.output.strip(),
            done=json.loads(ran.stdout)["id"],
            failed=json.loads(failed.stdout)["id"],
            dead_data_dir=str(dead),
        )
    finally:
        sock.close()
        shutil.rmtree(dead.parent)


def invoke(*args: str, env: dict[str, str] | None = None) -> click.testing.Result:
    return CliRunner().invoke(main, ["--no-color", *args], env=env)


def base(path: tuple[str, ...], w: World) -> dict[str, list[str]]:
    """A working invocation of each command, by parameter: the values each parameter gets."""
    db = {"db": ["--db", w.db_url]} if "db" in ROLES[path] else {}
    by_command: dict[tuple[str, ...], dict[str, list[str]]] = {
        ("check",): {"files": [w.good]},
        ("parse",): {"file": [w.good]},
        ("fmt",): {"files": [w.good], "check_only": ["--check"]},
        ("explain",): {"target": [w.done]},
        ("graph",): {"file": [w.good]},
        ("compile",): {"file": [w.good]},
        ("deploy",): {"files": [w.good]},
        ("versions",): {"name": ["good"]},
        ("diff",): {"name": ["good"], "v1": ["1"], "v2": ["1"]},
        ("run",): {"file": [w.good]},
        ("start",): {"name": ["good"]},
        ("worker",): {},
        ("status",): {"instance_id": [w.done]},
        ("result",): {"instance_id": [w.done]},
        ("wait",): {"instance_id": [w.done]},
        ("ls",): {},
        ("history",): {"instance_id": [w.done]},
        ("signal",): {"instance_id": [w.pending], "name": ["go"]},
        ("cancel",): {"instance_id": [w.pending]},
        ("schedule",): {"name": ["good"], "cron": ["0 3 * * *"]},
        ("retry",): {"instance_id": [w.failed]},
        ("fork",): {"instance_id": [w.done], "step": ["--from", "n3"]},
        ("upgrade",): {"name": ["good"], "to": ["--to", "1"]},
        ("db", "status"): {"db_url": ["--db", w.db_url]},
        ("db", "migrate"): {"db_url": ["--db", w.db_url]},
    }
    return {**db, **by_command.get(path, {})}


@dataclass(frozen=True)
class Case:
    """One bad value for one parameter, and what the command must answer."""

    param: str
    values: list[str]  # what replaces the parameter's base values
    exit_code: int
    says: str  # a regular expression the one-sentence error matches
    env: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.param}={' '.join(self.values)[-40:]}"


def option_flag(param: click.Parameter) -> str:
    assert isinstance(param, click.Option)
    return max(param.opts, key=len)


def cases(path: tuple[str, ...], cmd: click.Command, w: World) -> list[Case]:
    """The bad inputs for one command, from its parameters' roles and types."""
    out: list[Case] = []
    roles = ROLES[path]
    for p in cmd.params:
        role = roles.get(p.name or "")
        flag = option_flag(p) if isinstance(p, click.Option) else None

        def add(
            values: list[str],
            code: int,
            says: str,
            name: str = p.name or "",
            flag: str | None = flag,
        ) -> None:
            out.append(Case(name, [flag, *values] if flag else values, code, says))

        if isinstance(p, click.Option) and p.is_flag:
            continue
        ptype = p.type
        if isinstance(ptype, click.IntRange | click.FloatRange):
            add(["abc"], 2, r"Invalid value for '--[a-z-]+': 'abc' is not a valid")
            add(["-1"], 2, r"is not in the range")
        elif isinstance(ptype, click.types.IntParamType):
            add(["abc"], 2, r"'abc' is not a valid integer")
        elif isinstance(ptype, click.Choice):
            add(["bogus"], 2, r"'bogus' is not one of")
        elif isinstance(ptype, click.Path):
            add([w.good], 2, r"Directory '.*' is a file")
        if role in ("file", "files", "paths", "file_or_instance"):
            add([str(w.dir / "missing.df")], 1, r"does not exist")
            add([w.malformed], 1, r"^error\[DFC\d{3}\]: ")
            add([w.binary], 1, r"^error\[DFC\d{3}\]: ")
            add([w.unreadable], 1, r"cannot read .*socket\.df")
            if role == "paths":
                add([w.empty_folder], 1, r"contains no \.df files")
            else:
                add([w.folder], 1, r"is a directory, not a workflow file")
        if role == "file_or_instance":
            add([UNKNOWN_ID], 1, rf"no instance {UNKNOWN_ID}")
        if role == "instance":
            add([UNKNOWN_ID], 1, rf"no instance {UNKNOWN_ID}")
            add(["not-an-id"], 1, r"'not-an-id' is not an instance id")
            add([""], 1, r"'' is not an instance id")
        if role == "workflow":
            add(["no_such_flow"], 1, r"no workflow named '?no_such_flow'? is deployed")
        if role == "version":
            add(["99"], 1, r"workflow 'good' has no version 99")
            add(["0"], 1, r"workflow 'good' has no version 0")
        if role == "var":
            add(["n"], 1, r"--var 'n' is not NAME=VALUE")
            if path == ("start",):
                add(["n=abc"], 1, r"parameter n")
                add(["nope=1"], 1, r"no parameter nope")
        if role == "signal":
            add([""], 1, r"signal name")
        if role == "key":
            add([""], 1, r"key must not be empty")
            add(["k" * 1001], 1, r"key must be at most 1000 bytes, not 1001")
        if role == "cron":
            add(["0 25 * * *"], 1, r"invalid cron expression '0 25 \* \* \*'")
            add(["* * *"], 1, r"invalid cron expression")
        if role == "timezone":
            add(["Mars/Olympus"], 1, r"unknown time zone 'Mars/Olympus'")
        if role == "step":
            add(["n99"], 1, r"the workflow has no step n99")
        if role == "metrics_addr":
            add(["0.0.0.0"], 2, r"--metrics-addr goes with --metrics-port")
        if role == "code":
            add(["DFC000"], 2, r"unknown diagnostic code DFC000")
        if role == "db":
            add([DEAD_URL], 1, r"cannot connect to the database.*127\.0\.0\.1.*refused")
            add(["nonsense://"], 1, r"nonsense://")
            # `dfc db status` starts nothing: it reports the stopped server.
            starts = path != ("db", "status")
            out.append(
                Case(
                    p.name or "",
                    [flag or "--db", "embedded"],
                    1 if starts else 0,
                    r"for PostgreSQL 99, but the installed server is PostgreSQL"
                    if starts
                    else r"^schema: unknown while the embedded server is stopped",
                    env=((ENV_DATA_DIR, w.dead_data_dir),),
                )
            )
    return out


def argv(path: tuple[str, ...], cmd: click.Command, w: World, case: Case) -> list[str]:
    """The base invocation with the case's parameter replaced by its bad values."""
    values = {**base(path, w), case.param: case.values}
    args: list[str] = [*path]
    for p in cmd.params:  # arguments in their order, options after them
        if isinstance(p, click.Argument):
            args += values.get(p.name or "", [])
    for name, vals in values.items():
        param = next((p for p in cmd.params if p.name == name), None)
        if not isinstance(param, click.Argument):
            args += vals
    return args


ALL = [(path, cmd) for path, cmd in commands()]


def counts(url: str) -> dict[str, int]:
    tables = ("workflows", "instances", "queue", "history", "signals", "node_state")
    with psycopg.connect(url) as c:
        return {t: c.execute(f"SELECT count(*) FROM dfc.{t}").fetchone()[0] for t in tables}  # type: ignore[index]


def check_answer(output: str, exit_code: int, case: Case) -> None:
    """The answer to bad input: the documented exit code, one sentence naming the problem."""
    assert "Traceback" not in output and "internal error" not in output, output
    assert exit_code == case.exit_code, output
    assert re.search(case.says, output, re.MULTILINE), output
    if exit_code == 0:
        return
    if exit_code == 2:
        assert re.search(r"^Error: .+", output, re.MULTILINE), output
    else:
        first = output.strip().splitlines()[0]
        assert re.match(r"error(\[DFC\d{3}\])?: \S", first), output


@pytest.mark.parametrize(("path", "cmd"), ALL, ids=[" ".join(p) for p, _ in ALL])
def test_bad_input(path: tuple[str, ...], cmd: click.Command, world: World) -> None:
    """Every bad value of every parameter: clear error, documented exit code, nothing written."""
    failures: list[str] = []
    for case in cases(path, cmd, world):
        before = counts(world.db_url)
        args = argv(path, cmd, world, case)
        env = dict(case.env)
        if path in LONG_RUNNING:
            proc = subprocess.run(
                [sys.executable, "-m", "dfc", "--no-color", *args],
                capture_output=True,
                text=True,
                timeout=60,
                env={**_environ(), **env},
            )
            output, code = proc.stdout + proc.stderr, proc.returncode
        else:
            result = invoke(*args, env=env or None)
            output, code = result.output, result.exit_code
        try:
            check_answer(output, code, case)
            assert counts(world.db_url) == before, f"{case.id} wrote to the database"
        except AssertionError as e:
            failures.append(
                f"dfc {' '.join(args)}\n  -> exit {code}: {output.strip()[:400]}\n  {e}"
            )
    assert not failures, "\n\n".join(failures)


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_the_base_invocations_work(world: World) -> None:
    """The cases above fail because of their one bad value: the base they change works."""
    # cancel last: the others' base instance is the one it cancels.
    for path, cmd in sorted(ALL, key=lambda pc: pc[0] == ("cancel",)):
        if path in LONG_RUNNING or (path[0] == "db" and path != ("db", "status")):
            continue
        args = argv(path, cmd, world, Case("-", [], 0, ""))
        result = invoke(*args)
        assert result.exit_code == 0, f"dfc {' '.join(args)}: {result.output}"
