"""Conformance: every JSON result shape of SPEC §5.2, one test each.

These shapes are pg_durable's wherever pg_durable defines them; a change here is a change of the
public contract (user SQL reads these with ``$name.field`` and ``->>``). Plans are written as
plan JSON and driven through the state machine, the SQL shape through a real server, the HTTP
envelope through a local HTTP server.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest

from dfc.plan.model import FORMAT, Plan
from dfc.runtime.http import EgressPolicy, perform
from dfc.runtime.machine import evaluate
from dfc.runtime.state import Evaluation, HttpRequest, NodeRecord, RunHttp, RunSql, Signal, Store
from dfc.runtime.values import configure_loaders, sql_result

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def plan(root: str, **nodes: dict[str, Any]) -> Plan:
    return Plan.from_json({"format": FORMAT, "name": "shapes", "root": root, "nodes": nodes})


def run(
    p: Plan,
    answer: Callable[[Any], Any] = lambda a: {"rows": [{"v": a.key}], "row_count": 1},
    signals: list[tuple[str, str | None]] = (),
) -> Evaluation:  # type: ignore[assignment]
    """Drive a plan to its end: Stores applied, runs answered, the clock moved to each timer."""
    records: dict[str, NodeRecord] = {}
    pending = [Signal(seq=1000 + i, name=n, payload=p) for i, (n, p) in enumerate(signals)]
    now, seq = T0, 0
    for _ in range(1000):
        ev = evaluate(
            p,
            instance_id="abcd1234",
            label=None,
            vars={},
            records=records,
            signals=pending,
            now=now,
        )
        if ev.status != "running":
            return ev
        progressed = False
        for a in ev.actions:
            if isinstance(a, Store):
                seq += 1
                records[a.record.key] = replace(a.record, seq=seq)
                pending = [s for s in pending if s.seq != a.consume_signal]
                progressed = True
            elif isinstance(a, RunSql | RunHttp):
                seq += 1
                records[a.key] = NodeRecord(
                    key=a.key, node_id=a.node_id, status="completed", result=answer(a), seq=seq
                )
                progressed = True
        if not progressed:
            assert ev.next_wake is not None, "stuck"
            now = max(now, ev.next_wake)
    raise AssertionError("did not finish")


SQL = {"type": "SQL", "config": {"query": "SELECT 1"}}


# -- SQL ------------------------------------------------------------------------------------------


@pytest.mark.db
def test_sql(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        configure_loaders(conn)  # before any cursor: cursors copy the connection's loaders
        cur = conn.cursor()
        cur.execute("SELECT 1 AS id, 'a' AS name, 1.50::numeric AS price, NULL::text AS note")
        assert sql_result(cur) == {
            "rows": [{"id": 1, "name": "a", "price": "1.50", "note": None}],
            "row_count": 1,
        }
        # row_count counts the rows returned (pg_durable), not the rows a statement affected.
        cur.execute("CREATE TEMP TABLE t AS SELECT 1 AS x")
        cur.execute("UPDATE t SET x = 2")
        assert sql_result(cur) == {"rows": [], "row_count": 0}
        cur.execute("UPDATE t SET x = 3 RETURNING x")
        assert sql_result(cur) == {"rows": [{"x": 3}], "row_count": 1}


# -- THEN, IF, RACE: the result of the step that decides -----------------------------------------


def test_then_if_race() -> None:
    p = plan("t", a=SQL, b=SQL, t={"type": "THEN", "children": ["a", "b"]})
    assert run(p).result == {"rows": [{"v": "b"}], "row_count": 1}
    p = plan(
        "i",
        c=SQL,
        y=SQL,
        n=SQL,
        i={"type": "IF", "children": ["c", "y", "n"], "config": {"test": "truthy"}},
    )
    assert run(p).result == {"rows": [{"v": "y"}], "row_count": 1}
    p = plan(
        "r",
        a=SQL,
        s={"type": "SLEEP", "config": {"seconds": 5}},
        r={"type": "RACE", "children": ["a", "s"]},
    )
    assert run(p).result == {"rows": [{"v": "a"}], "row_count": 1}


# -- JOIN -----------------------------------------------------------------------------------------


def test_join_arrays_nest_as_parsed() -> None:
    def r(k: str) -> dict[str, Any]:
        return {"rows": [{"v": k}], "row_count": 1}

    nested = plan(
        "j2",
        a=SQL,
        b=SQL,
        c=SQL,
        j1={"type": "JOIN", "children": ["a", "b"]},
        j2={"type": "JOIN", "children": ["j1", "c"]},
    )
    assert run(nested).result == [[r("a"), r("b")], r("c")]
    flat = plan("j", a=SQL, b=SQL, c=SQL, j={"type": "JOIN", "children": ["a", "b", "c"]})
    assert run(flat).result == [r("a"), r("b"), r("c")]


# -- timers ---------------------------------------------------------------------------------------


def test_sleep() -> None:
    p = plan("s", s={"type": "SLEEP", "config": {"seconds": 3}})
    assert run(p).result == {"slept": True, "seconds": 3}


def test_wait_schedule() -> None:
    p = plan(
        "w", w={"type": "WAIT_SCHEDULE", "config": {"cron": "*/10 * * * *", "timezone": "UTC"}}
    )
    assert run(p).result == {"scheduled": True}


# -- SIGNAL ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "data"),
    [
        ('{"approved": true}', {"approved": True}),
        ("yes please", "yes please"),
        ("42", 42),
        (None, None),
    ],
)
def test_signal(payload: str | None, data: Any) -> None:
    p = plan("g", g={"type": "SIGNAL", "config": {"name": "approve", "timeout": None}})
    assert run(p, signals=[("approve", payload)]).result == {
        "signal_name": "approve",
        "timed_out": False,
        "data": data,
    }


def test_signal_timeout() -> None:
    p = plan("g", g={"type": "SIGNAL", "config": {"name": "approve", "timeout": 30}})
    assert run(p).result == {"signal_name": "approve", "timed_out": True, "data": None}


# -- LOOP and BREAK -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "result"),
    [
        ('{"done": 3}', {"done": 3}),
        ("[1, 2]", [1, 2]),
        ("7", 7),
        ("finished", "finished"),
        (None, None),
    ],
)
def test_break_value_is_the_loop_result(value: str | None, result: Any) -> None:
    p = plan(
        "l", b={"type": "BREAK", "config": {"value": value}}, l={"type": "LOOP", "children": ["b"]}
    )
    assert run(p).result == result


def test_while_loop_result_is_the_last_body_result() -> None:
    p = plan("l", body=SQL, cond=SQL, l={"type": "LOOP", "children": ["body", "cond"]})
    answers = iter([{"n": 1}, True, {"n": 2}, False])

    def answer(a: Any) -> Any:
        v = next(answers)
        return {"rows": [{"v": v}], "row_count": 1}

    assert run(p, answer).result == {"rows": [{"v": {"n": 2}}], "row_count": 1}


# -- HTTP -----------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = b'{"id": 12}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_http_envelope(server: str) -> None:
    request = HttpRequest(
        url=f"{server}/items",
        method="POST",
        body='{"a": 1}',
        headers={},
        timeout_s=5,
        idempotency_key="dfc-abcd1234-n1",
    )
    env = asyncio.run(perform(request, policy=EgressPolicy(allow=("127.0.0.1",))))
    assert list(env) == ["status", "body", "encoding", "headers", "ok", "duration_ms"]
    assert env["status"] == 201 and env["ok"] is True and env["encoding"] == "text"
    assert json.loads(env["body"]) == {"id": 12}
    assert env["headers"]["content-type"] == "application/json"
    assert isinstance(env["duration_ms"], int)
    # and the machine hands it to later steps as one JSON value with readable fields
    p = plan(
        "t",
        h={"type": "HTTP", "result_name": "resp", "config": {"url": "http://x.example"}},
        q={"type": "SQL", "config": {"query": "SELECT $resp.status, $resp.ok, $resp::jsonb"}},
        t={"type": "THEN", "children": ["h", "q"]},
    )
    queries: list[str] = []

    def answer(a: Any) -> Any:
        if isinstance(a, RunHttp):
            return env
        queries.append(a.sql)
        return {"rows": [], "row_count": 0}

    run(p, answer)
    # The body holds backslashes, so the envelope is an escape string (sqlquote.quote_literal).
    assert queries[0].startswith('SELECT 201, true, E\'{"status":201,')
