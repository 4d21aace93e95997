"""`dfc worker --metrics-port`: a real worker process under load, scraped twice and read with
the Prometheus client's own parser (issue 13)."""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from runtime_support import QuietHandler, local_http_server, stop_gracefully, wait_finished

from dfc.cli.main import main

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]

FLOW = """
param code int = 200;
'SELECT 1 AS a' |=> 'a'
~> df.http('{base}/status/{code}', 'GET') |=> 'call'
~> df.retry('SELECT 1 / ($a - 1)', attempts => 2, backoff => 0.1)
"""
SIMPLE = "'SELECT 1 AS a' ~> 'SELECT 2 AS b' ~> 'SELECT 3 AS c'\n"


class _Status(QuietHandler):
    def do_GET(self) -> None:
        self.reply(int(self.path.rsplit("/", 1)[1]))


@pytest.fixture
def http_base() -> Iterator[str]:
    with local_http_server(_Status) as base:
        yield base


def dfc(*args: str) -> str:
    r = CliRunner().invoke(main, ["--no-color", *args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.stdout


def metrics_url(worker: subprocess.Popen[str]) -> str:
    """The URL the worker logs when its metrics server is up."""
    assert worker.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([worker.stderr], [], [], 1)
        if ready:
            line = json.loads(worker.stderr.readline())
            if line.get("message") == "metrics":
                return str(line["url"])
    raise AssertionError("the worker did not log its metrics URL")


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, labels), parsed by the client's own parser."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def start(db_url: str, name: str, n: int, *args: str) -> list[str]:
    return [dfc("start", name, "--db", db_url, *args).strip() for _ in range(n)]


def test_step_counters_move_between_two_scrapes_of_a_loaded_worker(
    db_url: str, tmp_path: Path, http_base: str
) -> None:
    (tmp_path / "metered.df").write_text(FLOW.replace("{base}", http_base))
    (tmp_path / "simple.df").write_text(SIMPLE)
    dfc("deploy", str(tmp_path / "metered.df"), str(tmp_path / "simple.df"), "--db", db_url)
    env = {**os.environ, "DFC_HTTP_ALLOW": http_base.removeprefix("http://")}
    worker = subprocess.Popen(
        [sys.executable, "-m", "dfc", "worker", "--db", db_url, "--quiet", "--log-format",
         "json", "--metrics-port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    try:
        url = metrics_url(worker)
        first_batch = start(db_url, "simple", 20) + start(db_url, "metered", 2)
        first_batch += start(db_url, "metered", 1, "--var", "code=404")
        first_batch += start(db_url, "metered", 1, "--var", "code=503")
        asyncio.run(asyncio.wait_for(wait_finished(db_url, first_batch), 60))
        before = scrape(url)
        second = start(db_url, "simple", 30)
        asyncio.run(asyncio.wait_for(wait_finished(db_url, second), 60))
        after = scrape(url)
    finally:
        stop_gracefully([worker], timeout=20)
        assert worker.stderr is not None
        worker.stderr.close()

    sql_ok = ("dfc_steps_total", (("kind", "SQL"), ("outcome", "completed")))
    # 20 simple instances of 3 steps, and the SQL steps of the metered ones (fewer than 3 each)
    assert before[sql_ok] >= 60
    assert after[sql_ok] - before[sql_ok] == 90  # the 30 instances started between the scrapes
    hist = ("dfc_step_duration_seconds_count", (("kind", "SQL"),))
    assert after[hist] - before[hist] >= 90
    assert before[("dfc_step_duration_seconds_bucket", (("kind", "SQL"), ("le", "+Inf")))] > 0

    # 3 HTTP calls answered 2xx (2) and 4xx (1), one failed with a 503
    for status_class, n in (("2xx", 2), ("4xx", 1), ("5xx", 1)):
        assert before[("dfc_http_requests_total", (("status_class", status_class),))] == n
    # the retried division by zero: a second attempt in each instance that got that far
    assert before[("dfc_step_retries_total", ())] == 3
    finished = {s: before[("dfc_instances_finished_total", (("status", s),))] for s in
                ("completed", "failed")}  # fmt: skip
    assert finished == {"completed": 20, "failed": 4}
    assert after[("dfc_instances_finished_total", (("status", "completed"),))] == 50

    # checkpoints: the machine's records and HTTP results are written in round trips of their own
    assert after[("dfc_checkpoint_duration_seconds_count", ())] > 0
    # read from the database at scrape time
    assert after[("dfc_database_up", ())] == 1
    assert after[("dfc_instances", (("status", "completed"),))] >= 50
    assert after[("dfc_queue_due", ())] == 0
    assert after[("dfc_queue_oldest_due_seconds", ())] == 0
    assert ("dfc_lease_takeovers_total", ()) in after


def test_a_busy_metrics_port_is_one_clear_error(db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = CliRunner().invoke(
            main, ["worker", "--db", db_url, "--metrics-port", str(port)], catch_exceptions=False
        )
    assert r.exit_code == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in r.stderr
    r = CliRunner().invoke(
        main,
        ["worker", "--db", db_url, "--metrics-port", "0", "--metrics-addr", "no-such-host.invalid"],
        catch_exceptions=False,
    )
    assert r.exit_code == 1 and "cannot serve metrics on no-such-host.invalid:0" in r.stderr
