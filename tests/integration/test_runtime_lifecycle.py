"""Instances from outside the worker: start validation, signals, cancel, HTTP steps, atomicity."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import psycopg
import pytest
from runtime_support import B, info, run, run_until_done, start

from dfc.diagnostics import DfcError
from dfc.plan.model import PlanParam
from dfc.runtime import faults, instances
from dfc.runtime.engine import EngineSettings
from dfc.runtime.logs import StepLog
from dfc.runtime.worker import Worker, WorkerOptions
from dfc.testing import Env

pytestmark = [pytest.mark.db, pytest.mark.timeout(60)]


# -- start --------------------------------------------------------------------------------------


def _typed_plan() -> B:
    return B("typed")


def test_start_validates_vars(db_url: str, conn: psycopg.Connection) -> None:
    b = _typed_plan()
    plan = b.plan(
        b.sql("SELECT {n} AS n, {t} AS t"),
        params=[
            PlanParam(name="n", type="int"),
            PlanParam(name="t", type="ident", default="public.x", has_default=True),
            PlanParam(name="flag", type="bool", default=False, has_default=True),
            PlanParam(name="doc", type="json", default={"a": 1}, has_default=True),
        ],
    )
    from dfc.store.registry import deploy

    deploy(conn, plan)
    with pytest.raises(DfcError, match="parameter n of workflow typed has no value"):
        instances.start(conn, "typed")
    with pytest.raises(DfcError, match="parameter n must be an integer"):
        instances.start(conn, "typed", vars={"n": "ten"})
    with pytest.raises(DfcError, match="must be a SQL identifier"):
        instances.start(conn, "typed", vars={"n": 1, "t": "x; DROP TABLE y"})
    with pytest.raises(DfcError, match="has no parameter nn"):
        instances.start(conn, "typed", vars={"n": 1, "nn": 2})
    with pytest.raises(DfcError, match="must be a boolean"):
        instances.start(conn, "typed", vars={"n": 1, "flag": "maybe"})
    with pytest.raises(DfcError, match="valid JSON"):
        instances.start(conn, "typed", vars={"n": 1, "doc": "{oops"})
    iid = instances.start(conn, "typed", vars={"n": " 5 ", "flag": "yes"}, label="L")
    got = instances.status(conn, iid)
    assert len(iid) == 8 and all(c in "0123456789abcdef" for c in iid)
    assert got.status == "pending" and got.label == "L"
    assert got.vars == {"n": "5", "t": "public.x", "flag": "true", "doc": '{"a":1}'}
    assert [e.event for e in instances.history(conn, iid)] == ["started"]


def test_start_joins_the_callers_transaction(db_url: str, conn: psycopg.Connection) -> None:
    b = B("txn")
    from dfc.store.registry import deploy

    deploy(conn, b.plan(b.sql("SELECT 1")))
    with pytest.raises(RuntimeError), conn.transaction():
        iid = instances.start(conn, "txn")
        raise RuntimeError("roll back")
    assert conn.execute("SELECT count(*) FROM dfc.instances WHERE id = %s", (iid,)).fetchone() == (
        0,
    )


# -- signals ------------------------------------------------------------------------------------


def test_signal_sent_before_the_wait_is_buffered(dfc_env: Env) -> None:
    b = B("sig")
    dfc_env.deploy(
        b.plan(b.then(b.sleep(1), b.signal("go", name="s"), b.sql("SELECT $s.data AS d")))
    )
    iid = dfc_env.start("sig")
    dfc_env.signal(iid, "go", '{"x": 1}')  # before any worker runs it
    assert dfc_env.result(iid) == {"rows": [{"d": '{"x":1}'}], "row_count": 1}


def test_signal_sent_while_waiting_wakes_the_instance(
    db_url: str, conn: psycopg.Connection
) -> None:
    b = B("sig2")
    plan = b.plan(b.signal("go"))
    (iid,) = start(db_url, plan)

    async def scenario() -> None:
        runner = asyncio.create_task(run_until_done(db_url, [iid], timeout=20))
        await asyncio.sleep(1.0)
        assert info(db_url, iid).status == "running"
        assert "signal" in (info(db_url, iid).waiting_for or "")
        t0 = time.monotonic()
        instances.signal(conn, iid, "go", "hello")
        await runner
        assert time.monotonic() - t0 < 1.5  # woken by the notification, not a slow poll

    asyncio.run(scenario())
    assert info(db_url, iid).result == {"signal_name": "go", "timed_out": False, "data": "hello"}


def test_signal_without_data_gives_an_empty_object(db_url: str, conn: psycopg.Connection) -> None:
    # pg_durable's df.signal sends '{}' when no data is given; JSON null must be asked for.
    b = B("sig_default")
    plan = b.plan(b.join(b.signal("go"), b.signal("stop")))
    (iid,) = start(db_url, plan)
    instances.signal(conn, iid, "go")
    instances.signal(conn, iid, "stop", "null")
    asyncio.run(run_until_done(db_url, [iid]))
    assert info(db_url, iid).result == [
        {"signal_name": "go", "timed_out": False, "data": {}},
        {"signal_name": "stop", "timed_out": False, "data": None},
    ]


def test_signal_timeout(dfc_env: Env) -> None:
    b = B("sig3")
    dfc_env.deploy(b.plan(b.signal("never", timeout=3600)))
    iid = dfc_env.start("sig3")
    assert dfc_env.result(iid) == {"signal_name": "never", "timed_out": True, "data": None}


def test_signal_errors(db_url: str, conn: psycopg.Connection) -> None:
    with pytest.raises(DfcError, match="no instance 0000abcd"):
        instances.signal(conn, "0000abcd", "go")
    b = B("sig4")
    out = run(db_url, b.plan(b.sql("SELECT 1")))
    with pytest.raises(DfcError, match=f"instance {out.id} is completed"):
        instances.signal(conn, out.id, "go")
    with pytest.raises(DfcError, match="not an instance id"):
        instances.signal(conn, "nope", "go")


# -- cancel -------------------------------------------------------------------------------------


def test_cancel_stops_a_running_statement(db_url: str, conn: psycopg.Connection) -> None:
    b = B("cancel")
    (iid,) = start(db_url, b.plan(b.then(b.sql("SELECT pg_sleep(30)"), b.sql("SELECT 'never'"))))

    async def scenario() -> float:
        runner = asyncio.create_task(run_until_done(db_url, [iid], timeout=20))
        await asyncio.sleep(1.0)
        t0 = time.monotonic()
        assert instances.cancel(conn, iid, "test") == f"instance {iid} cancelled"
        await runner
        return time.monotonic() - t0

    assert asyncio.run(scenario()) < 3
    out = info(db_url, iid)
    assert out.status == "cancelled" and out.cancel_reason == "test"
    busy = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%%pg_sleep(30)%%' AND state = 'active' AND pid <> pg_backend_pid()"
    ).fetchone()
    assert busy == (0,)
    assert "already cancelled" in instances.cancel(conn, iid)
    with pytest.raises(DfcError, match="no instance"):
        instances.cancel(conn, "0000abcd")


def test_cancel_a_waiting_instance(dfc_env: Env) -> None:
    b = B("cancel2")
    dfc_env.deploy(b.plan(b.sleep(3600)))
    iid = dfc_env.start("cancel2")
    dfc_env.advance(0)  # runs what is due, and the timer is left waiting
    assert "timer until" in (dfc_env.status(iid).waiting_for or "")
    dfc_env.cancel(iid)
    assert dfc_env.status(iid).status == "cancelled"
    assert dfc_env.sql("SELECT count(*) FROM dfc.queue WHERE instance_id = %s", (iid,)) == [(0,)]


# -- atomicity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("point", ["after_step_sql", "before_commit"])
def test_step_that_fails_before_commit_leaves_no_effect(
    db_url: str, conn: psycopg.Connection, point: str
) -> None:
    conn.execute(f"CREATE TABLE atom_{point} (k text PRIMARY KEY)")
    b = B(f"atom_{point}")
    plan = b.plan(
        b.then(
            b.sql(f"INSERT INTO atom_{point} VALUES ('{{sys_instance_id}}') RETURNING k"),
            b.sql("SELECT 1"),
        )
    )
    (iid,) = start(db_url, plan)
    faults.arm(point, "raise", times=1)
    try:
        asyncio.run(run_until_done(db_url, [iid], timeout=20))
    finally:
        faults.disarm()
    assert info(db_url, iid).status == "completed"
    # The first execution rolled back with its checkpoint; the rerun inserted the row once.
    assert conn.execute(f"SELECT count(*) FROM atom_{point}").fetchone() == (1,)
    assert conn.execute(
        "SELECT count(*) FROM dfc.node_state WHERE instance_id = %s AND node_id = 'n1'", (iid,)
    ).fetchone() == (1,)


@pytest.mark.parametrize("point", ["claim_lost", "before_release"])
def test_a_lease_no_run_holds_is_given_back_at_once(
    db_url: str, conn: psycopg.Connection, point: str
) -> None:
    """A claim that committed but whose answer was lost with its connection, and a run that
    could not give its lease back, leave a lease that no run holds: the worker gives it back
    before it claims again, instead of leaving the instance until the lease lapses (60 s)."""
    b = B(f"orphan_{point}")
    (iid,) = start(db_url, b.plan(b.then(b.sql("SELECT 1"), b.sleep(1), b.sql("SELECT 2"))))
    # before_release: the release after the sleep's start and the abandoned run's own fail.
    faults.arm(point, "raise", times=1 if point == "claim_lost" else 2)
    try:
        asyncio.run(run_until_done(db_url, [iid], timeout=20, lease_seconds=60))
    finally:
        faults.disarm()
    assert info(db_url, iid).status == "completed"
    resumed = conn.execute(
        "SELECT count(*) FROM dfc.history WHERE instance_id = %s AND event = 'resumed'", (iid,)
    ).fetchone()
    assert resumed == (0,)  # given back, not taken over after its lease lapsed


def test_second_execution_of_a_step_is_fenced(db_url: str, conn: psycopg.Connection) -> None:
    """A worker whose lease was lost cannot commit a step another worker already ran."""
    conn.execute("CREATE TABLE fence_t (k text)")
    b = B("fence")
    (iid,) = start(db_url, b.plan(b.sql("INSERT INTO fence_t VALUES ('x')")))
    asyncio.run(run_until_done(db_url, [iid]))
    from dfc.runtime.state import RunSql
    from dfc.runtime.steps import Lease, LeaseLost, run_sql

    async def stale() -> None:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
            from dfc.runtime.values import configure_loaders

            configure_loaders(c)
            plan = b.plan("n1")
            with pytest.raises(LeaseLost):
                await run_sql(
                    c,
                    Lease(iid, "someone", plan),
                    RunSql(key="n1", node_id="n1", sql="INSERT INTO fence_t VALUES ('x')"),
                )

    asyncio.run(stale())
    assert conn.execute("SELECT count(*) FROM fence_t").fetchone() == (1,)


# -- HTTP ---------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    hits: ClassVar[dict[str, int]] = {}

    def do_GET(self) -> None:
        n = _Handler.hits[self.path] = _Handler.hits.get(self.path, 0) + 1
        if self.path == "/flaky" and n == 1:
            self.send_response(503)
            self.end_headers()
            return
        body = json.dumps({"path": self.path, "key": self.headers.get("Idempotency-Key")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(length)
        body = json.dumps(
            {
                "type": self.headers.get("Content-Type", "").split(";")[0],
                "size": len(data),
                "has_part": b'name="doc"' in data and b"hello" in data,
            }
        ).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("DFC_HTTP_ALLOW", "127.0.0.1")
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_step_and_retry_after_5xx(db_url: str, http_server: str) -> None:
    b = B("http")
    root = b.then(
        b.retry(b.http(f"{http_server}/flaky", method="GET"), attempts=3, backoff=0),
        b.http(f"{http_server}/ok", method="GET", name="r"),
        b.sql("SELECT $r.status AS s"),
    )
    out = run(db_url, b.plan(root))
    assert out.status == "completed", out.error
    assert out.result == {"rows": [{"s": 200}], "row_count": 1}


def test_http_failure_fails_the_node(db_url: str, http_server: str) -> None:
    b = B("http2")
    out = run(db_url, b.plan(b.http("http://127.0.0.1:9/nothing-listens", method="GET", timeout=2)))
    assert out.status == "failed"
    assert out.error["node"] == "n1"
    assert out.error["at"] == "http2.df:1:3"


# -- scheduling ---------------------------------------------------------------------------------


def test_a_hot_loop_does_not_starve_other_instances(db_url: str, conn: psycopg.Connection) -> None:
    b = B("hot")
    (hot,) = start(db_url, b.plan(b.loop(b.sql("SELECT 1"))))
    quick_plan = B("quick")
    quick_plan_root = quick_plan.plan(quick_plan.sql("SELECT 'done' AS d"))
    opts = WorkerOptions(
        concurrency=1,
        poll_seconds=0.2,
        retention_every=0,
        engine=EngineSettings(slice_steps=50, slice_ms=200),
    )

    async def scenario() -> float:
        worker = Worker(db_url, opts, log=StepLog(quiet=True))
        task = asyncio.create_task(worker.run())
        await asyncio.sleep(0.8)  # the endless loop holds the only slot
        (quick,) = start(db_url, quick_plan_root)
        t0 = time.monotonic()
        while info(db_url, quick).status != "completed" and time.monotonic() - t0 < 10:
            await asyncio.sleep(0.05)
        waited = time.monotonic() - t0
        instances.cancel(conn, hot)
        worker.request_stop()
        await task
        return waited

    assert asyncio.run(scenario()) < 3
    assert info(db_url, hot).status == "cancelled"


def test_retention_deletes_old_finished_instances(db_url: str, conn: psycopg.Connection) -> None:
    b = B("old")
    done = run(db_url, b.plan(b.sql("SELECT 1")))
    conn.execute("UPDATE dfc.settings SET value = '0' WHERE key = 'retention_days'")
    try:
        worker = Worker(db_url, WorkerOptions(retention_every=0), log=StepLog(quiet=True))
        assert asyncio.run(worker.purge()) >= 1
    finally:
        conn.execute("UPDATE dfc.settings SET value = '30' WHERE key = 'retention_days'")
    assert conn.execute(
        "SELECT count(*) FROM dfc.instances WHERE id = %s", (done.id,)
    ).fetchone() == (0,)
    assert conn.execute(
        "SELECT count(*) FROM dfc.node_state WHERE instance_id = %s", (done.id,)
    ).fetchone() == (0,)


def test_http_multipart_step(db_url: str, http_server: str) -> None:
    b = B("multipart")
    parts = '[{"name": "doc", "data_b64": "aGVsbG8=", "filename": "a.txt", "content_type": "text/plain"}]'
    out = run(db_url, b.plan(b.multipart(f"{http_server}/upload", parts)))
    assert out.status == "completed", out.error
    assert out.result["status"] == 201 and out.result["ok"] is True
    body = json.loads(out.result["body"])
    assert body["type"] == "multipart/form-data" and body["has_part"] is True


def test_wait_for_schedule_releases_until_the_next_minute(dfc_env: Env) -> None:
    b = B("cron")
    dfc_env.deploy(b.plan(b.schedule("* * * * *")))
    iid = dfc_env.start("cron")
    dfc_env.advance(0)
    ((run_at,),) = dfc_env.sql("SELECT run_at FROM dfc.queue WHERE instance_id = %s", (iid,))
    assert run_at is not None and run_at > dfc_env.now - timedelta(seconds=1)
    assert run_at.second == 0 and run_at.microsecond == 0  # the next minute boundary
    dfc_env.cancel(iid)
