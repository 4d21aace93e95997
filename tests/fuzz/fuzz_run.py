"""Running generated workflows on the real runtime and comparing them with the evaluator.

A `Case` is a few generated workflows (`fuzz_workflows`), one or two instances of each, run
together by one in-process worker (batched or not), so that their steps also share batches and
connections. For every instance: the final status, the result, whether it was compensated, and
how many times each step's effect exists must be what the evaluator predicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count

from fuzz_workflows import Generated, Outcome, predict, workflows
from hypothesis import strategies as st
from psycopg import sql

from dfc.compiler import compile_source
from dfc.runtime import instances
from dfc.runtime.batch import BatchSettings
from dfc.runtime.engine import EngineSettings
from dfc.runtime.logs import StepLog
from dfc.runtime.worker import Worker, WorkerOptions
from dfc.source import SourceFile
from dfc.store.db import connect
from dfc.store.registry import deploy
from dfc.syntax import parse_text

RUN_TIMEOUT = 90  # seconds for one example's instances (a race loser sleeps 60 s: never waited)


@dataclass(frozen=True, slots=True)
class Case:
    """One example: workflows, how many instances of each, and whether steps are batched."""

    workflows: Sequence[tuple[Generated, int]]
    batch: bool


cases = st.builds(
    Case,
    st.lists(st.tuples(workflows(), st.integers(1, 2)), min_size=1, max_size=3),
    st.booleans(),
)
_names = count(1)


async def _work(url: str, ids: list[str], batch: bool) -> None:
    opts = WorkerOptions(
        concurrency=8,
        only=frozenset(ids),
        stop_when_done=True,
        poll_seconds=0.2,
        retention_every=0,
        engine=EngineSettings(hold_seconds=0.5, retry_delay=0.2),
        batch=BatchSettings() if batch else None,
    )
    worker = Worker(url, opts, log=StepLog(quiet=True))
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(asyncio.shield(task), RUN_TIMEOUT)
    finally:
        worker.request_stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)


def run_case(url: str, case: Case) -> None:
    """Deploy, start, signal and run the case's instances; compare each with its prediction."""
    started: list[tuple[str, Generated, Outcome, str]] = []
    with connect(url) as conn:
        for wf, n in case.workflows:
            text = wf.text()
            back, diags = parse_text(text, "fz.df")
            assert not diags and back is not None and back.workflow is not None, text
            assert back.workflow.body == wf.body, text
            comp = compile_source(SourceFile(f"fz_{next(_names)}.df", text))
            errors = [d for d in comp.sorted_diagnostics if d.is_error]
            assert comp.plan is not None and not errors, (text, [d.message for d in errors])
            version = deploy(conn, comp.plan).version
            expected = predict(wf)
            for _ in range(n):
                with conn.transaction():
                    iid = instances.start(conn, comp.plan.name, version, None)
                for label in wf.flaky:
                    conn.execute(
                        sql.SQL("CREATE SEQUENCE fz.{}").format(sql.Identifier(f"q_{iid}_{label}"))
                    )
                for name, times in sorted(expected.signals.items()):
                    for i in range(1, times + 1):
                        instances.signal(conn, iid, name, json.dumps({"i": i}))
                started.append((iid, wf, expected, text))
    ids = [iid for iid, *_ in started]
    asyncio.run(_work(url, ids, case.batch))
    with connect(url) as conn:
        for iid, _wf, expected, text in started:
            info = instances.status(conn, iid)
            rows = conn.execute(
                "SELECT label, count(*)::int FROM fz.log WHERE inst = %s GROUP BY label", (iid,)
            )
            effects = Counter({label: n for label, n in rows.fetchall()})
            got = (info.status, info.result, info.compensated, effects)
            want = (expected.status, expected.result, expected.compensated, expected.effects)
            assert got == want, (
                f"instance {iid} (batch={case.batch}) of\n{text}\n"
                f"got {got}\nwant {want}\nerror {info.error}"
            )
