"""SQL expressions as arguments in ``--grammar pg`` files: evaluated once, by the database, in
the transaction that starts the instance; their text stands where a literal would."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from click.testing import CliRunner
from runtime_support import info, run_until_done

from dfc.cli.main import main
from dfc.compiler import compile_source
from dfc.diagnostics import DfcError
from dfc.runtime import instances
from dfc.source import SourceFile
from dfc.store.db import connect
from dfc.store.registry import deploy

pytestmark = [pytest.mark.db, pytest.mark.timeout(60)]


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        _Recorder.seen.append(
            {"path": self.path, "headers": dict(self.headers.items()), "body": data}
        )
        self.send_response(201)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    _Recorder.seen.clear()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("DFC_HTTP_ALLOW", "127.0.0.1")
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


FLOW = """\
param url text;

df.http_multipart('{url}/up', 'POST',
    jsonb_build_array(jsonb_build_object(
        'name', 'f', 'filename', 'hi.txt', 'data_b64', encode('hi', 'base64'))),
    jsonb_build_object('X-Who', current_setting('app.who'), 'X-Seq', nextval('expr_seq'))
) |=> 'first'
~> df.http('{url}/echo', 'POST',
    'n=' || nextval('expr_seq') || ' after $first.status',  -- $first is substituted later
    '{"X-A": "1"}'::jsonb)
"""


def _deploy(conn: psycopg.Connection[Any], text: str, name: str) -> str:
    comp = compile_source(SourceFile(f"{name}.df", text), grammar="pg")
    assert comp.plan is not None, [d.message for d in comp.diagnostics]
    deploy(conn, comp.plan)
    return comp.plan.name


def test_expressions_are_evaluated_once_at_start(db_url: str, server: str) -> None:
    with connect(db_url) as conn:
        conn.execute("CREATE SEQUENCE IF NOT EXISTS expr_seq")
        name = _deploy(conn, FLOW, "upload")
        with conn.transaction():
            # Evaluated in the starting transaction: it sees this transaction's settings.
            conn.execute("SET LOCAL app.who = 'starter'")
            iid = instances.start(conn, name, vars={"url": server})
        assert conn.execute("SELECT last_value FROM expr_seq").fetchone() == (2,)
        stored = instances.status(conn, iid).vars
        assert json.loads(stored["__expr_1"]) == [
            {"name": "f", "filename": "hi.txt", "data_b64": "aGk="}
        ]
    asyncio.run(run_until_done(db_url, [iid]))
    out = info(db_url, iid)
    assert out.status == "completed", out.error
    up, echo = _Recorder.seen
    assert up["path"] == "/up"
    assert up["headers"]["X-Who"] == "starter" and up["headers"]["X-Seq"] == "1"
    assert b'name="f"; filename="hi.txt"' in up["body"] and b"\r\nhi\r\n" in up["body"]
    assert echo["path"] == "/echo" and echo["headers"]["X-A"] == "1"
    # The value stands where a literal was written: its $refs are substituted when it runs.
    assert echo["body"] == b"n=2 after 201"
    with connect(db_url) as conn:  # the worker never evaluated them again
        assert conn.execute("SELECT last_value FROM expr_seq").fetchone() == (2,)


def test_a_failing_or_null_expression_stops_the_start(db_url: str) -> None:
    flow = "df.http('https://example.com', 'POST', no_such_function())\n"
    null = "df.http('https://example.com', 'POST', NULL::text || 'x')\n"
    with connect(db_url) as conn:
        failing = _deploy(conn, flow, "failing")
        nothing = _deploy(conn, null, "nothing")
        with pytest.raises(DfcError) as e, conn.transaction():
            instances.start(conn, failing)
        assert "the SQL expression for the body of the step at failing.df:1:1 failed" in str(
            e.value
        )
        assert "no_such_function() does not exist" in str(e.value)
        with pytest.raises(DfcError, match="is NULL when the instance starts"), conn.transaction():
            instances.start(conn, nothing)
        started = "SELECT count(*) FROM dfc.instances WHERE workflow IN (%s, %s)"
        assert conn.execute(started, (failing, nothing)).fetchone() == (0,)


def test_expression_variables_are_not_for_users(db_url: str) -> None:
    with connect(db_url) as conn:
        name = _deploy(conn, "@> df.break(now()::date::text)\n", "reserved")
        with pytest.raises(DfcError, match="__expr_1 is set by dfc"), conn.transaction():
            instances.start(conn, name, vars={"__expr_1": "x"})


def test_dfc_run_evaluates_them(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "loop.df").write_text(
        "-- a break value computed when the instance starts\n"
        "df.loop(df.break(jsonb_build_object('n', 40 + 2, 'at', 'run')))\n"
    )
    r = CliRunner().invoke(
        main,
        ["--no-color", "run", "--grammar", "pg", str(tmp_path / "loop.df"), "--db", db_url],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout[r.stdout.index("\n{") :]) == {"n": 42, "at": "run"}
