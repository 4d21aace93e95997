"""Helpers for the runtime tests: a plan builder and an in-process worker harness.

`B` is the shared `plan_builder.Build` (plans made node by node, not compiled from text, so that
engine tests exercise the engine, not the front end); `start`, `run` and `run_until_done` deploy
its plans and run them with in-process workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

from dfc.plan.model import Plan
from dfc.runtime import instances
from dfc.runtime.batch import BatchSettings
from dfc.runtime.engine import EngineSettings
from dfc.runtime.logs import StepLog
from dfc.runtime.worker import GraphCompiler, Worker, WorkerOptions
from dfc.store.db import connect
from dfc.store.instances import InstanceInfo
from dfc.store.registry import deploy
from plan_builder import Build


class B(Build):
    """The shared plan builder with this suite's defaults: plan ``wf``, each node's source line
    indented two spaces (errors point at column 3)."""

    def __init__(self, name: str = "wf") -> None:
        super().__init__(name, indent=2)


def start(url: str, plan: Plan, vars: Mapping[str, Any] | None = None, n: int = 1) -> list[str]:
    """Deploy ``plan`` and start ``n`` instances of it."""
    with connect(url) as conn:
        result = deploy(conn, plan)
        with conn.transaction():
            return [instances.start(conn, plan.name, result.version, vars) for _ in range(n)]


FAST = EngineSettings(hold_seconds=0.5, retry_delay=0.2)
BATCHES = BatchSettings()  # the worker's default


async def run_until_done(
    url: str,
    ids: Sequence[str],
    *,
    timeout: float = 30,
    workers: int = 1,
    concurrency: int = 8,
    only: bool = True,
    engine: EngineSettings = FAST,
    lease_seconds: float = 15,
    compile_graph: GraphCompiler | None = None,
    log: StepLog | None = None,
    batch: BatchSettings | None = BATCHES,
) -> list[Worker]:
    """Run in-process workers until every instance in ``ids`` has finished (``batch``: how
    their steps are batched, None for none)."""
    opts = WorkerOptions(
        concurrency=concurrency,
        only=frozenset(ids) if only else None,
        stop_when_done=only,
        poll_seconds=0.2,
        retention_every=0,
        engine=engine,
        lease_seconds=lease_seconds,
        batch=batch,
    )
    ws = [
        Worker(url, opts, log=log or StepLog(quiet=True), compile_graph=compile_graph)
        for _ in range(workers)
    ]
    tasks = [asyncio.create_task(w.run()) for w in ws]
    try:
        if only:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout)
        else:
            await asyncio.wait_for(wait_finished(url, ids), timeout)
    finally:
        for w in ws:
            w.request_stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)
    return ws


async def wait_finished(url: str, ids: Sequence[str]) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while True:
            cur = await conn.execute(
                "SELECT count(*) FROM dfc.instances WHERE id = ANY(%s) AND status IN ('pending','running')",
                (list(ids),),
            )
            row = await cur.fetchone()
            if row and row[0] == 0:
                return
            await asyncio.sleep(0.1)


def run(
    url: str,
    plan: Plan,
    vars: Mapping[str, Any] | None = None,
    *,
    timeout: float = 30,
    batch: BatchSettings | None = BATCHES,
) -> InstanceInfo:
    """Start one instance, run it to its end in-process, return its final state."""
    (iid,) = start(url, plan, vars)
    asyncio.run(run_until_done(url, [iid], timeout=timeout, batch=batch))
    return info(url, iid)


def info(url: str, iid: str) -> InstanceInfo:
    with connect(url) as conn:
        return instances.status(conn, iid)


def stop_gracefully(procs: Sequence[subprocess.Popen[Any]], timeout: float = 30) -> None:
    """SIGTERM every process (a worker's graceful stop), then wait for each; SIGKILL the ones
    still running after ``timeout`` seconds."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class QuietHandler(BaseHTTPRequestHandler):
    """A handler for test servers that logs nothing and answers with `reply`."""

    def reply(self, status: int, body: bytes = b"{}") -> None:
        """Answer ``status`` with ``body``."""
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def local_http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free port of 127.0.0.1 from a thread; yields ``http://host:port``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
