"""Shared pieces of the fault-injection suite (docs/reliability.md): a workload whose every
effect can be counted, a pool of real `dfc worker` processes, a local HTTP server that records
every request, a PostgreSQL server of the test's own (to restart), and the checks every run ends
with (`verify`).

The workload: each instance runs SQL steps that insert a row keyed on (instance, step) into
``fx_effects`` (a second execution would hit the key and fail the instance), SQL steps that add 1
to the instance's counter in ``fx_counter`` (a second execution would count twice, silently),
HTTP steps to the recording server, and a timer (``df.sleep``); it ends with a step that reads
its own effects back, so the result says what the instance saw. A share of the instances is
*designed* to fail: their last step divides by zero after all their effects.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
from test_crash import WorkerProcess

from dfc.plan import nodes
from dfc.plan.model import Plan
from dfc.runtime import instances
from dfc.store.embedded import EmbeddedServer
from dfc.store.migrations import ensure_schema
from dfc.store.pginstall import installed_binaries, server_account
from dfc.store.registry import deploy
from plan_builder import Build

# -- the stall bound ----------------------------------------------------------------------------

LEASE_SECONDS = 4.0
"""Lease of the workers the suite kills: longer than `MAX_STALL_SECONDS` will be, so that a
stall under that bound shows the dead worker's instances were taken over without waiting for
the lease."""

MAX_STALL_SECONDS = 3.0
"""The longest an instance may stand still between two of its steps after a worker is killed
(issue 11): its instances are taken over when its life lock is free, without waiting for the
lease, which is longer."""

MAX_STALL_AFTER_OUTAGE = LEASE_SECONDS + 4.0
"""The bound after faults that cut connections rather than kill a worker (a PostgreSQL restart,
terminated backends): every worker reconnects with back-off, so the lease plus a margin."""


def assert_stall(
    stall: float,
    *,
    bound: float = MAX_STALL_SECONDS,
    allowance: float = 0.0,
    what: str = "",
    detail: str = "",
) -> None:
    """Fail when the longest stall exceeds ``bound`` plus ``allowance`` (the time a fault
    itself holds an instance by design, such as a worker frozen with its row locks);
    ``detail`` (the stalled instance's timeline) goes into the failure message.

    The bound holds as written unless the machine is oversubscribed more than twice over
    (`overload`): every step of a takeover — noticing the dead worker, claiming, loading —
    waits for a core, so on a machine shared with other test sessions the bound grows with
    the load rather than fail on the machine's account."""
    factor = overload()
    bound = (bound + allowance) * factor
    print(
        f"{what}: longest stall per fault {stall:.2f} s (bound {bound:.1f} s"
        + (
            f", scaled ×{factor:.2f} for a load average of {os.getloadavg()[0]:.1f})"
            if factor > 1
            else ")"
        )
    )
    assert stall < bound, (
        f"{what}: an instance stood still {stall:.2f} s (bound {bound:.1f} s)\n{detail}"
    )


def overload() -> float:
    """How far beyond twice its cores the machine is loaded (1-minute load average), at least 1:
    1 on an idle machine or one running only this suite with ``-n 2``."""
    cores = os.cpu_count() or 1
    return max(1.0, os.getloadavg()[0] / (2 * cores))


def timeline(conn: psycopg.Connection[Any], iid: str) -> str:
    """An instance's events, one a line, with the seconds since the previous one."""
    rows = conn.execute(
        "SELECT at, event, key, detail FROM dfc.events WHERE instance_id = %s ORDER BY at",
        (iid,),
    ).fetchall()
    lines, prev = [], None
    for at, event, key, detail in rows:
        gap = 0.0 if prev is None else (at - prev).total_seconds()
        lines.append(f"{at:%H:%M:%S.%f} +{gap:6.3f} {event} {key or ''} {detail or ''}")
        prev = at
    return "\n".join(lines)


# -- the workload -------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE fx_effects (instance text NOT NULL, step text NOT NULL, PRIMARY KEY (instance, step));
CREATE TABLE fx_counter (instance text PRIMARY KEY, n int NOT NULL);
"""

SLEEP_SECONDS = 1


def _insert(step: str, hold: float = 0.05) -> str:
    # pg_sleep makes the step last long enough for a fault to land inside it. A longer hold
    # also sets a statement timeout, which makes the step run alone: in a batch the lanes'
    # short statement timeout would cut it (docs/runtime.md, Batches).
    timeout = "SET LOCAL statement_timeout = 0; " if hold > 0.1 else ""
    return (
        f"{timeout}SELECT pg_sleep({hold}); INSERT INTO fx_effects (instance, step) "
        f"VALUES ('{{sys_instance_id}}', '{step}')"
    )


_COUNT = (
    "INSERT INTO fx_counter AS c (instance, n) VALUES ('{sys_instance_id}', 1) "
    "ON CONFLICT (instance) DO UPDATE SET n = c.n + 1"
)

_READ_BACK = (
    "SELECT (SELECT count(*) FROM fx_effects WHERE instance = '{sys_instance_id}') AS effects, "
    "(SELECT n FROM fx_counter WHERE instance = '{sys_instance_id}') AS counted"
)


@dataclass(frozen=True)
class Workload:
    """The workflows of a run: ``fx_ok`` completes, ``fx_fail`` fails after all its effects."""

    http_base: str
    inserts: int = 4
    counts: int = 3
    https: int = 2
    hold: float = 0.05
    """How long the first insert step lasts (seconds)."""

    def plan(self, name: str, *, fail: bool) -> Plan:
        """The sequence: inserts, counts and HTTP calls interleaved, a timer in the middle,
        then the read-back (and, for ``fail``, a division by zero)."""
        b = Build(name)
        steps: list[str] = []
        # Interleaved (i h c i h c i ...), so that every kind of step runs early as late.
        left = {"i": self.inserts, "h": self.https, "c": self.counts}
        kinds: list[str] = []
        while any(left.values()):
            for kind in [k for k, n in left.items() if n]:
                kinds.append(kind)
                left[kind] -= 1
        for n, kind in enumerate(kinds, 1):
            if kind == "i":
                steps.append(b.sql(_insert(f"s{n}", self.hold if n == 1 else 0.05)))
            elif kind == "c":
                steps.append(b.sql(_COUNT))
            else:
                url = f"{self.http_base}/hook/{{sys_instance_id}}/h{n}"
                steps.append(b.http(url, body='{"n": 1}'))
            if n == len(kinds) // 2:
                steps.append(b.sleep(SLEEP_SECONDS))
        steps.append(b.sql(_READ_BACK))
        if fail:
            steps.append(b.sql("SELECT 1 / 0"))
        return b.plan(b.then(*steps))

    def expected_result(self) -> dict[str, Any]:
        """What ``fx_ok`` ends with, faults or not."""
        return {"rows": [{"effects": self.inserts, "counted": self.counts}], "row_count": 1}


@dataclass
class Run:
    """The instances of one run and what each is designed to end as."""

    workload: Workload
    plans: dict[str, Plan]
    designed: dict[str, str] = field(default_factory=dict)  # id -> completed | failed
    workflow_of: dict[str, str] = field(default_factory=dict)


def prepare(conn: psycopg.Connection[Any], workload: Workload) -> Run:
    """Create the effect tables and deploy the two workflows."""
    conn.execute(SCHEMA)
    plans = {
        "fx_ok": workload.plan("fx_ok", fail=False),
        "fx_fail": workload.plan("fx_fail", fail=True),
    }
    for plan in plans.values():
        deploy(conn, plan)
    return Run(workload, plans)


def start_instances(
    conn: psycopg.Connection[Any], run: Run, count: int, rng: random.Random
) -> None:
    """Start ``count`` instances, about one in five designed to fail."""
    with conn.transaction():
        for _ in range(count):
            name = "fx_fail" if rng.random() < 0.2 else "fx_ok"
            iid = instances.start(conn, name)
            run.designed[iid] = "failed" if name == "fx_fail" else "completed"
            run.workflow_of[iid] = name


# -- the HTTP server ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    path: str
    key: str | None
    at: float


class HttpRecorder:
    """A local HTTP server that answers 200 after a short random delay (so that kills land
    during calls) and records every request with its ``Idempotency-Key``."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.in_flight: set[str] = set()
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with recorder._lock:
                    recorder.requests.append(
                        Request(self.path, self.headers.get("Idempotency-Key"), time.monotonic())
                    )
                    recorder.in_flight.add(self.path)
                try:
                    time.sleep(random.uniform(0.05, 0.3))
                    body = b'{"ok": true}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the worker was killed mid-call: that is the point
                finally:
                    with recorder._lock:
                        recorder.in_flight.discard(self.path)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def busy_path(self) -> str | None:
        """A request being answered right now, if any."""
        with self._lock:
            return next(iter(self.in_flight), None)

    def by_step(self) -> dict[tuple[str, str], list[Request]]:
        """Requests grouped by (instance, step), read from the path."""
        out: dict[tuple[str, str], list[Request]] = {}
        with self._lock:
            for r in self.requests:
                m = re.fullmatch(r"/hook/([^/]+)/([^/]+)", r.path)
                assert m is not None, r.path
                out.setdefault((m[1], m[2]), []).append(r)
        return out

    def __enter__(self) -> HttpRecorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- workers ------------------------------------------------------------------------------------


def with_app_name(url: str, name: str) -> str:
    """``url`` with an ``application_name``, so that pg_stat_activity tells workers apart."""
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


class WorkerPool:
    """Several `dfc worker` processes on one database; dead ones are restarted by `tend`."""

    def __init__(
        self,
        url: str,
        size: int,
        *extra: str,
        lease: float = LEASE_SECONDS,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workers = [
            WorkerProcess(
                with_app_name(url, f"fxw{i}"),
                "--lease-seconds",
                str(lease),
                *extra,
                env={"DFC_HTTP_ALLOW": "127.0.0.1", **(env or {})},
            )
            for i in range(size)
        ]
        self.kills: dict[str, int] = {}
        self.restarts = 0

    def start(self, timeout: float = 60) -> None:
        """Start every worker and wait until each says it started (a loaded machine can take
        seconds to import dfc: faults must strike running workers, not starting ones)."""
        for w in self.workers:
            w.start()
        deadline = time.monotonic() + timeout
        while self.ready() < len(self.workers):
            assert time.monotonic() < deadline, self.logs()
            time.sleep(0.05)

    def tend(self) -> None:
        """Restart every worker that died (killed by the test or crashed by a fault point), as
        a service manager would."""
        for w in self.workers:
            if w.proc is not None and not w.alive():
                w.start()
                self.restarts += 1

    def ready(self) -> int:
        """How many workers run and have said they started since their last (re)start."""
        up = 0
        for w in self.workers:
            if w.alive():
                up += self.full_log(w).count("started") >= w.starts
        return up

    def by_pid(self, pid: int) -> WorkerProcess | None:
        return next((w for w in self.workers if w.proc is not None and w.proc.pid == pid), None)

    def kill(self, w: WorkerProcess, why: str) -> None:
        w.kill()
        self.kills[why] = self.kills.get(why, 0) + 1

    def logs(self) -> str:
        """The last lines of every worker's log."""
        return "\n".join(w.stderr() for w in self.workers)

    @staticmethod
    def full_log(w: WorkerProcess) -> str:
        """All of a worker's log, across its restarts (`WorkerProcess.stderr` keeps the end)."""
        w.log.flush()
        with open(w.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def close(self) -> None:
        for w in self.workers:
            w.close()


def lease_holder(conn: psycopg.Connection[Any], iid: str) -> int | None:
    """The pid of the worker holding ``iid``'s lease (worker ids are ``host:pid:random``)."""
    row = conn.execute(
        "SELECT lease_owner FROM dfc.queue WHERE instance_id = %s AND lease_expires > now()",
        (iid,),
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return int(str(row[0]).split(":")[-2])


# -- a server of the test's own -----------------------------------------------------------------


class OwnServer:
    """An embedded PostgreSQL in a temporary directory, for faults that hit the whole server
    (the session's server is shared with the rest of the suite)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dfc-faults-", dir="/tmp"))
        if os.geteuid() == 0:
            self.dir.chmod(0o711)  # the server runs as dfc-postgres, which must traverse it
        self.server = EmbeddedServer(self.dir / "server", initdb_sync=False)
        self.restarts = 0

    def start(self) -> str:
        """Start it, migrate its ``dfc`` database, return that database's URL."""
        self.server.start()
        url = self.server.url()
        with psycopg.connect(url, autocommit=True) as c:
            ensure_schema(c)
        return url

    def restart_immediate(self) -> None:
        """``pg_ctl restart -m immediate``: every backend dies without a checkpoint, the server
        recovers from its WAL, then accepts connections again on the same socket."""
        account = server_account()
        pg_ctl = installed_binaries(account).exe("pg_ctl")
        switch: dict[str, Any] = {}
        if account.switch:
            switch = {"user": account.uid, "group": account.gid, "extra_groups": []}
        with tempfile.TemporaryFile("w+") as out:
            # A file, not a pipe: the new postmaster inherits pg_ctl's output and would hold a
            # pipe open.
            proc = subprocess.run(
                [
                    pg_ctl,
                    "restart",
                    "-D",
                    str(self.server.pgdata),
                    "-m",
                    "immediate",
                    "-w",
                    "-l",
                    str(self.server.log_file),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd="/",
                timeout=60,
                check=False,
                **switch,
            )
            out.seek(0)
            assert proc.returncode == 0, out.read()
        self.restarts += 1

    def close(self) -> None:
        try:
            self.server.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# -- the checks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """Figures of one run, printed by the tests (``pytest -s``) and recorded as properties."""

    instances: int
    steps: int
    http_sends: int
    http_repeats: int
    longest_stall: float
    longest_stall_per_fault: float
    stalled_instance: str
    timeline: str = field(repr=False)
    """The stalled instance's events (for the failure message; not printed with the figures)."""


def verify(conn: psycopg.Connection[Any], run: Run, http: HttpRecorder | None) -> Report:
    """Assert that the run ended as it would have without faults; return its figures.

    Every instance reached its designed state with the expected result (or error); every SQL
    effect exists exactly once; every HTTP step was sent at least once and all its sends carry
    one idempotency key (and no two steps share a key); history is consistent."""
    ids = list(run.designed)
    w = run.workload
    rows = conn.execute(
        "SELECT id, status, result, error FROM dfc.instances WHERE id = ANY(%s)", (ids,)
    ).fetchall()
    assert len(rows) == len(ids)
    for iid, status, result, error in rows:
        assert status == run.designed[iid], (iid, status, error)
        if status == "completed":
            assert result == w.expected_result(), (iid, result)
        else:
            assert error["sqlstate"] == "22012", (iid, error)  # the designed division by zero

    # SQL effects: every insert once (the key would refuse a second), every count once.
    effects = conn.execute(
        "SELECT instance, count(*), count(DISTINCT step) FROM fx_effects GROUP BY instance"
    ).fetchall()
    assert {i: (n, d) for i, n, d in effects} == {i: (w.inserts, w.inserts) for i in ids}
    counters = dict(conn.execute("SELECT instance, n FROM fx_counter").fetchall())
    assert counters == dict.fromkeys(ids, w.counts)

    sends = repeats = 0
    if http is not None:
        by_step = http.by_step()
        http_nodes = {
            key
            for plan in run.plans.values()
            for key, node in plan.nodes.items()
            if isinstance(node.config, nodes.Http)
        }
        keys_seen: dict[str, tuple[str, str]] = {}
        for iid in ids:
            steps = {s for (i, s) in by_step if i == iid}
            assert len(steps) == w.https, (iid, steps)
            for step in steps:
                reqs = by_step[(iid, step)]
                keys = {r.key for r in reqs}
                assert len(keys) == 1 and None not in keys, (iid, step, keys)
                key = keys.pop()
                assert key is not None
                assert keys_seen.setdefault(key, (iid, step)) == (iid, step), key
                sends += len(reqs)
                repeats += len(reqs) - 1
        assert len(http_nodes) >= 1

    history_is_consistent(conn, ids)
    stall, per_fault, who = longest_stall(conn, run)
    steps = conn.execute(
        "SELECT count(*) FROM dfc.node_state WHERE instance_id = ANY(%s) AND status = 'completed'",
        (ids,),
    ).fetchone()
    assert steps is not None
    return Report(
        len(ids), int(steps[0]), sends, repeats, stall, per_fault, who, timeline(conn, who)
    )


def history_is_consistent(conn: psycopg.Connection[Any], ids: list[str]) -> None:
    """Per instance: its events in order of time, a single end event and nothing after it, no
    node with two final records, none finished before it started, none left unfinished."""
    rows = conn.execute(
        "SELECT instance_id, seq, at, event FROM dfc.history WHERE instance_id = ANY(%s) "
        "ORDER BY instance_id, seq",
        (ids,),
    ).fetchall()
    by_instance: dict[str, list[tuple[datetime, str]]] = {}
    for iid, _, at, event in rows:
        by_instance.setdefault(iid, []).append((at, event))
    ends = {"completed", "failed", "cancelled"}
    for iid in ids:
        events = by_instance.get(iid, [])
        times = [at for at, _ in events]
        assert times == sorted(times), (iid, events)
        finals = [e for _, e in events if e in ends]
        assert len(finals) == 1 and events[-1][1] in ends, (iid, events)
    twice = conn.execute(
        "SELECT instance_id, key, count(*) FROM dfc.events WHERE instance_id = ANY(%s) "
        "AND event = 'node_completed' GROUP BY 1, 2 HAVING count(*) > 1",
        (ids,),
    ).fetchall()
    assert twice == []
    # Node times come from the workers' clocks and the instance's end from the server's, so
    # they are not compared with each other; a finished instance leaves no record unfinished.
    bad = conn.execute(
        "SELECT ns.instance_id, ns.key, ns.status FROM dfc.node_state ns JOIN dfc.instances i "
        "ON i.id = ns.instance_id WHERE ns.instance_id = ANY(%s) AND ("
        "ns.finished_at < ns.started_at OR ns.status IN ('running', 'waiting'))",
        (ids,),
    ).fetchall()
    assert bad == []


def longest_stall(conn: psycopg.Connection[Any], run: Run) -> tuple[float, float, str]:
    """The largest gap between consecutive step completions of any instance (from its start to
    its end), not counting the time its timers were designed to wait: as it is, and per fault,
    that is divided by the number of takeovers of the instance in that gap (``resumed``
    events: a second fault may strike the worker that has just taken an instance over, and
    each recovery is bounded on its own). Returns (longest, longest per fault, its instance)."""
    ids = list(run.designed)
    starts = dict(
        conn.execute(
            "SELECT id, started_at FROM dfc.instances WHERE id = ANY(%s)", (ids,)
        ).fetchall()
    )
    takeovers: dict[str, list[datetime]] = {}
    for iid, at in conn.execute(
        "SELECT instance_id, at FROM dfc.history WHERE instance_id = ANY(%s) AND event = 'resumed'",
        (ids,),
    ).fetchall():
        takeovers.setdefault(iid, []).append(at)
    rows = conn.execute(
        "SELECT instance_id, node_id, finished_at FROM dfc.node_state "
        "WHERE instance_id = ANY(%s) AND finished_at IS NOT NULL ORDER BY instance_id, finished_at",
        (ids,),
    ).fetchall()
    worst = per_fault = 0.0
    who = ""
    last: dict[str, datetime] = {}
    for iid, node_id, finished in rows:
        prev = last.get(iid) or starts[iid]
        config = run.plans[run.workflow_of[iid]].nodes[node_id].config
        designed = config.seconds if isinstance(config, nodes.Sleep) else 0
        gap = (finished - prev).total_seconds() - designed
        faults = sum(1 for at in takeovers.get(iid, ()) if prev <= at <= finished)
        worst = max(worst, gap)
        if gap / max(1, faults) > per_fault:
            per_fault, who = gap / max(1, faults), iid
        last[iid] = finished
    return worst, per_fault, who


def wait_until(pred: Any, timeout: float, step: float = 0.02) -> Any:
    """Poll ``pred()`` until it returns something truthy (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    return None
