"""Helpers for the runtime tests: a small plan builder and an in-process worker harness.

Plans are built directly (not compiled from text) so that engine tests exercise the engine, not
the front end; every node gets a source line of its own in a synthetic source, so error
locations can be checked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg

from dfc.plan.model import Plan, PlanNode, PlanParam, SourceSpan
from dfc.runtime import instances
from dfc.runtime.engine import EngineSettings
from dfc.runtime.logs import StepLog
from dfc.runtime.worker import Worker, WorkerOptions
from dfc.store.db import connect
from dfc.store.registry import deploy


class B:
    """Builds a plan node by node; each method returns the new node's id."""

    def __init__(self, name: str = "wf") -> None:
        self.name = name
        self.nodes: dict[str, PlanNode] = {}
        self.lines: list[str] = []

    def _add(
        self, type_: str, children: Sequence[str] = (), *, bind: str | None = None, **config: Any
    ) -> str:
        nid = f"n{len(self.nodes) + 1}"
        self.nodes[nid] = PlanNode(
            id=nid,
            type=type_,
            children=tuple(children),
            result_name=bind,
            config=config,  # type: ignore[arg-type]
        )
        self.lines.append(f"  {type_.lower()} {config.get('query', '')}".rstrip())
        return nid

    def sql(self, query: str, name: str | None = None, *, autocommit: bool = False) -> str:
        return self._add(
            "SQL",
            bind=name,
            query=query,
            autocommit=autocommit,
            statements=["unknown"],
            columns=None,
            returns_rows=None,
            refs=[],
            vars=[],
        )

    def seq(self, *ids: str) -> str:
        out = ids[0]
        for nxt in ids[1:]:
            out = self._add("THEN", (out, nxt))
        return out

    def join(self, *ids: str, name: str | None = None) -> str:
        return self._add("JOIN", ids, bind=name)

    def race(self, *ids: str, name: str | None = None) -> str:
        return self._add("RACE", ids, bind=name)

    def if_(self, cond: str, then: str, orelse: str, name: str | None = None) -> str:
        return self._add("IF", (cond, then, orelse), bind=name, test="truthy")

    def if_rows(self, result_name: str, then: str, orelse: str) -> str:
        return self._add("IF", (then, orelse), test="rows", result_name=result_name)

    def loop(self, body: str, cond: str | None = None, name: str | None = None) -> str:
        return self._add("LOOP", (body,) if cond is None else (body, cond), bind=name)

    def brk(self, value: str | None = None) -> str:
        return self._add("BREAK", value=value)

    def sleep(self, seconds: int, name: str | None = None) -> str:
        return self._add("SLEEP", bind=name, seconds=seconds)

    def signal(self, sig: str, timeout: int | None = None, name: str | None = None) -> str:
        return self._add("SIGNAL", bind=name, **{"name": sig, "timeout": timeout})

    def http(
        self,
        url: str,
        method: str = "GET",
        body: str | None = None,
        name: str | None = None,
        timeout: int = 30,
    ) -> str:
        return self._add(
            "HTTP", bind=name, url=url, method=method, body=body, headers=None, timeout=timeout
        )

    def multipart(self, url: str, parts: str, name: str | None = None) -> str:
        return self._add(
            "HTTP_MULTIPART",
            bind=name,
            url=url,
            method="POST",
            parts=parts,
            headers=None,
            timeout=10,
        )

    def schedule(self, cron: str) -> str:
        return self._add("WAIT_SCHEDULE", cron=cron, timezone="UTC")

    def retry(
        self,
        x: str,
        attempts: int = 3,
        backoff: float = 0,
        factor: float = 1,
        name: str | None = None,
    ) -> str:
        return self._add(
            "RETRY",
            (x,),
            bind=name,
            attempts=attempts,
            backoff=backoff,
            factor=factor,
            max_backoff=300,
            jitter=False,
        )

    def timeout(self, x: str, seconds: int, name: str | None = None) -> str:
        return self._add("TIMEOUT", (x,), bind=name, seconds=seconds)

    def undo(self, nid: str, undo_id: str) -> str:
        from dataclasses import replace

        self.nodes[nid] = replace(self.nodes[nid], undo=undo_id)
        return nid

    def plan(self, root: str, params: Iterable[PlanParam] = ()) -> Plan:
        file = f"{self.name}.df"
        source = "\n".join(self.lines) + "\n"
        smap: dict[str, SourceSpan] = {}
        offset = 0
        for i, (nid, line) in enumerate(zip(self.nodes, self.lines, strict=True)):
            smap[nid] = SourceSpan(
                file=file,
                line=i + 1,
                column=3,
                end_line=i + 1,
                end_column=len(line) + 1,
                start=offset + 2,
                end=offset + len(line),
            )
            offset += len(line) + 1
        return Plan(
            name=self.name,
            root=root,
            nodes=dict(self.nodes),
            params=tuple(params),
            source=source,
            source_map=smap,
        )


def start(url: str, plan: Plan, vars: Mapping[str, Any] | None = None, n: int = 1) -> list[str]:
    """Deploy ``plan`` and start ``n`` instances of it."""
    with connect(url) as conn:
        result = deploy(conn, plan)
        with conn.transaction():
            return [instances.start(conn, plan.name, result.version, vars) for _ in range(n)]


FAST = EngineSettings(hold_seconds=0.5, retry_delay=0.2)


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
) -> list[Worker]:
    """Run in-process workers until every instance in ``ids`` has finished."""
    opts = WorkerOptions(
        concurrency=concurrency,
        only=frozenset(ids) if only else None,
        stop_when_done=only,
        poll_seconds=0.2,
        retention_every=0,
        engine=engine,
        lease_seconds=lease_seconds,
    )
    ws = [Worker(url, opts, log=StepLog(quiet=True)) for _ in range(workers)]
    tasks = [asyncio.create_task(w.run()) for w in ws]
    try:
        if only:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout)
        else:
            await asyncio.wait_for(_wait_finished(url, ids), timeout)
    finally:
        for w in ws:
            w.request_stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)
    return ws


async def _wait_finished(url: str, ids: Sequence[str]) -> None:
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
    url: str, plan: Plan, vars: Mapping[str, Any] | None = None, *, timeout: float = 30
) -> instances.InstanceInfo:
    """Start one instance, run it to its end in-process, return its final state."""
    (iid,) = start(url, plan, vars)
    asyncio.run(run_until_done(url, [iid], timeout=timeout))
    return info(url, iid)


def info(url: str, iid: str) -> instances.InstanceInfo:
    with connect(url) as conn:
        return instances.status(conn, iid)
