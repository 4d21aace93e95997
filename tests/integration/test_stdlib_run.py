"""The standard library's templates run as documented: expanded, deployed and executed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from runtime_support import local_http_server


def _start(
    tmp_path: Path, db_url: str, text: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    path = tmp_path / "flow.df"
    path.write_text(text)
    return subprocess.Popen(
        [sys.executable, "-m", "dfc", "--no-color", "run", str(path), "--json"],
        env={**os.environ, "DFC_DATABASE_URL": db_url, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> Any:
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return json.loads(out)["result"]


@pytest.mark.timeout(120)
def test_drain_deletes_in_batches_until_nothing_is_left(tmp_path: Path, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("CREATE TABLE old_events AS SELECT g AS id FROM generate_series(1, 25) g")
    proc = _start(
        tmp_path,
        db_url,
        """
import 'std/batch';
drain_then(
    'DELETE FROM old_events WHERE id IN (SELECT id FROM old_events ORDER BY id LIMIT 10) RETURNING id',
    'SELECT count(*) AS left_over FROM old_events'
)
""",
    )
    assert _finish(proc)["rows"] == [{"left_over": 0}]


@pytest.mark.timeout(120)
def test_approval_takes_the_signalled_decision(tmp_path: Path, db_url: str) -> None:
    proc = _start(
        tmp_path,
        db_url,
        """
import 'std/approval';
df.start(
    approval('SELECT 1 AS asked', 'SELECT 1 AS escalated', signal => 'approve', timeout => 60)
    ~> 'SELECT ($approval.data::jsonb ->> ''ok'')::boolean AS approved',
    'approval-test'
)
""",
    )
    with psycopg.connect(db_url, autocommit=True) as c:
        deadline = time.monotonic() + 30
        row = None
        while row is None and time.monotonic() < deadline:
            row = c.execute(
                "SELECT id FROM dfc.instances WHERE workflow = 'approval-test'"
            ).fetchone()
            time.sleep(0.05)
    assert row is not None
    sent = subprocess.run(
        [sys.executable, "-m", "dfc", "signal", row[0], "approve", '{"ok": true}'],
        env={**os.environ, "DFC_DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr
    assert _finish(proc)["rows"] == [{"approved": True}]


class Flaky(BaseHTTPRequestHandler):
    """Fails the first two calls with 503, then answers."""

    calls: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        Flaky.calls.append(self.headers.get("Idempotency-Key", ""))
        status = 503 if len(Flaky.calls) <= 2 else 200
        body = json.dumps({"n": len(Flaky.calls)}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def flaky() -> Iterator[str]:
    with local_http_server(Flaky) as base:
        yield base.removeprefix("http://")


@pytest.mark.timeout(120)
def test_http_retry_outlasts_a_flaky_service(tmp_path: Path, db_url: str, flaky: str) -> None:
    proc = _start(
        tmp_path,
        db_url,
        f"""
import 'std/http';
http_retry('http://{flaky}/status', 'GET', attempts => 4) |=> 'answer'
~> 'SELECT $answer.status AS status, $answer.body::jsonb ->> ''n'' AS n'
""",
        env={"DFC_HTTP_ALLOW": flaky},
    )
    assert _finish(proc)["rows"] == [{"status": 200, "n": "3"}]
    assert len(Flaky.calls) == 3 and len(set(Flaky.calls)) == 1  # one idempotency key
