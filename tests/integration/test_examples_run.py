"""Every example runs to completion with `dfc run` on the embedded database (issue #5).

Examples that call HTTP services talk to a local test server started here (loopback only);
examples that wait for a signal get it from a second process while `dfc run` waits; the
scheduled maintenance job is fast-forwarded past its cron wait, then cancelled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SIGNALS = {
    "order_approval": ("approval", '{"approved": true, "by": "maria"}'),
    "payment_race": ("payment_confirmed", '{"provider_ref": "pi_123"}'),
}
LONG_RUNNING = {"nightly_maintenance"}
# Examples that call other workflows: the callees are deployed first (`dfc run` runs the
# children its instance waits for).
CALLEES = {"fulfil_orders": ["ship_order"]}


class Api(BaseHTTPRequestHandler):
    """The APIs the examples' headers document, just enough to make them complete."""

    requests: ClassVar[list[tuple[str, str, Any]]] = []
    polls = 0

    def log_message(self, *args: object) -> None:  # keep the test output quiet
        pass

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode()

    def do_POST(self) -> None:
        body = self._body()
        Api.requests.append(("POST", self.path, body))
        if self.path == "/embed":
            docs = body["documents"] if isinstance(body, dict) else body
            self._reply(
                200, {"embeddings": [{"id": d["id"], "embedding": [0.1, 0.2, 0.3]} for d in docs]}
            )
        elif self.path == "/exports":
            self._reply(202, {"id": "exp-1"})
        else:  # payments, refunds, webhooks
            self._reply(200, {"ok": True})

    def do_GET(self) -> None:
        Api.requests.append(("GET", self.path, None))
        Api.polls += 1
        state = "running" if Api.polls < 2 else "done"
        self._reply(200, {"state": state, "url": "https://files.example/exp-1.csv"})


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _dfc(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dfc", "--no-color", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _newest_instance(db_url: str, workflow: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    with psycopg.connect(db_url, autocommit=True) as c:
        while time.monotonic() < deadline:
            row = c.execute(
                "SELECT id FROM dfc.instances WHERE workflow = %s ORDER BY created_at DESC LIMIT 1",
                (workflow,),
            ).fetchone()
            if row:
                return str(row[0])
            time.sleep(0.1)
    raise AssertionError(f"no instance of {workflow} appeared")


def _wait_for(db_url: str, sql: str, args: tuple[Any, ...], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(db_url, autocommit=True) as c:
        while time.monotonic() < deadline:
            if c.execute(sql, args).fetchone():
                return
            time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {sql}")


def _workflow_name(path: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "dfc", "compile", "--json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(out.stdout)["name"])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.df")), ids=lambda p: p.stem)
def test_example_runs_to_completion(path: Path, db_url: str, api: str) -> None:
    host = api.removeprefix("http://")
    env = {**os.environ, "DFC_DATABASE_URL": db_url, "DFC_HTTP_ALLOW": host}
    args = ["run", str(path)]
    if "{api_url}" in path.read_text():
        args += ["--var", f"api_url={api}"]
    for callee in CALLEES.get(path.stem, []):
        deployed = subprocess.run(
            [sys.executable, "-m", "dfc", "deploy", str(EXAMPLES / f"{callee}.df")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert deployed.returncode == 0, deployed.stderr
    proc = _dfc(args, env)
    try:
        if path.stem in SIGNALS:
            name, data = SIGNALS[path.stem]
            instance = _newest_instance(db_url, _workflow_name(path))
            sent = subprocess.run(
                [sys.executable, "-m", "dfc", "signal", instance, name, data],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert sent.returncode == 0, sent.stderr
        if path.stem in LONG_RUNNING:
            _fast_forward_then_cancel(db_url, _workflow_name(path), env)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    if path.stem in LONG_RUNNING:
        assert "cancel" in (out + err).lower()
        return
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
    assert "✗" not in out


def _fast_forward_then_cancel(db_url: str, workflow: str, env: dict[str, str]) -> None:
    """Move the cron wait's timer to now (as if 03:30 had come), see one run recorded, cancel."""
    instance = _newest_instance(db_url, workflow)
    waiting = "SELECT 1 FROM dfc.node_state WHERE instance_id = %s AND status = 'waiting'"
    _wait_for(db_url, waiting, (instance,))
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(
            "UPDATE dfc.node_state SET wake_at = now() WHERE instance_id = %s AND status = 'waiting'",
            (instance,),
        )
        c.execute("UPDATE dfc.queue SET run_at = now() WHERE instance_id = %s", (instance,))
        c.execute("NOTIFY dfc_work")
    _wait_for(db_url, "SELECT 1 FROM maintenance_runs", ())
    subprocess.run(
        [sys.executable, "-m", "dfc", "cancel", instance, "--reason", "test over"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
