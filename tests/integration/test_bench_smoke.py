"""``python -m bench --quick`` runs against a server and reports its figures with their conditions.

A smoke test of the benchmark command (``bench/``), not of performance: no value is judged,
only that each figure was measured and says what it was measured under.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # conftest is not importable as a module under every pytest invocation
    from conftest import PgServer

pytestmark = [pytest.mark.db, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
SERVER_CONDITIONS = {"postgresql", "fsync", "synchronous_commit", "cores"}


def test_a_quick_run_reports_each_figure_with_its_conditions(
    pg_server: PgServer, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "bench", "--quick", "--only", "throughput,pgbench,latency"]
    command += ["--concurrency", "2", "--db", pg_server.socket_url, "--json", str(out)]
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=280)
    finally:
        pg_server.drop_database("dfc_bench")
    assert done.returncode == 0, done.stdout + done.stderr

    doc = json.loads(out.read_text())
    figures = {f["key"]: f for f in doc["figures"]}
    assert set(figures) == {
        "dfc.throughput.p1.c2",
        "pgbench.tps.c2",
        "dfc.latency.sql",
        "dfc.latency.sleep0",
        "psycopg.latency.update",
    }
    for f in figures.values():
        assert f["error"] is None, f
        assert f["value"] > 0, f
        assert f["conditions"].keys() >= SERVER_CONDITIONS, f
    assert figures["dfc.throughput.p1.c2"]["conditions"]["workers"] == "1 × 2"
    assert figures["pgbench.tps.c2"]["conditions"]["clients"] == 2
    assert figures["dfc.throughput.p1.c2"]["vs"].keys() == {"pgbench"}
    assert doc["conditions"]["synchronous_commit"] in {"on", "off", "local", "remote_write"}
    # The table shows the same figures, with the server's conditions above it.
    assert done.stdout.startswith("conditions: postgresql=")
    for f in figures.values():
        assert f["figure"] in done.stdout
