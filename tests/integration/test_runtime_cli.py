"""The instance commands end to end: run, start, status, result, ls, history, explain, signal,
cancel (SPEC §8), against a real database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result
from runtime_support import run_until_done

from dfc.cli.main import main

pytestmark = [pytest.mark.db, pytest.mark.timeout(60)]


def dfc(*args: str) -> Result:
    return CliRunner().invoke(main, ["--no-color", *args], catch_exceptions=False)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "hello.df").write_text(
        "param n int = 41;\n"
        "'SELECT {n} AS v' |=> 'x'\n"
        "~> $$SELECT $x + 1 AS answer, 'hi' AS greeting$$\n"
    )
    (tmp_path / "bad.df").write_text("'SELECT 1 AS a'\n~> 'SELECT 1/0'\n")
    (tmp_path / "waits.df").write_text(
        "df.wait_for_signal('go') |=> 's' ~> 'SELECT $s.data AS d'\n"
    )
    (tmp_path / "broken.df").write_text("'SELECT 1' ~>\n")
    return tmp_path


def test_run_prints_tree_and_result(db_url: str, files: Path) -> None:
    r = dfc("run", str(files / "hello.df"), "--db", db_url, "--var", "n=1")
    assert r.exit_code == 0, r.output
    assert "✓ SQL SELECT {n} AS v |=> x" in r.stdout
    assert json.loads(r.stdout[r.stdout.index("\n{") :]) == {
        "rows": [{"answer": 2, "greeting": "hi"}],
        "row_count": 1,
    }


def test_run_failure_points_at_the_source(db_url: str, files: Path) -> None:
    r = dfc("run", str(files / "bad.df"), "--db", db_url)
    assert r.exit_code == 1
    assert "division by zero (SQLSTATE 22012)" in r.stderr
    assert "bad.df:2:4" in r.stderr
    assert "~> 'SELECT 1/0'" in r.stderr
    assert "✗ SQL SELECT 1/0" in r.stdout


def test_run_refuses_bad_files_and_vars(db_url: str, files: Path) -> None:
    r = dfc("run", str(files / "broken.df"), "--db", db_url)
    assert r.exit_code == 1
    assert "error" in r.stderr
    r = dfc("run", str(files / "hello.df"), "--db", db_url, "--var", "n=many")
    assert r.exit_code == 1
    assert "parameter n must be an integer" in r.stderr
    r = dfc("run", str(files / "hello.df"), "--db", db_url, "--var", "oops")
    assert r.exit_code == 1 and "NAME=VALUE" in r.stderr


def test_run_resume_of_an_unknown_instance_writes_nothing(
    db_url: str, files: Path, conn: psycopg.Connection
) -> None:
    (files / "fresh.df").write_text("'SELECT 1 AS a'\n")
    r = dfc("run", str(files / "fresh.df"), "--db", db_url, "--resume", "0badc0de")
    assert r.exit_code == 1 and "0badc0de" in r.stderr
    assert conn.execute("SELECT count(*) FROM dfc.workflows WHERE name = 'fresh'").fetchone() == (
        0,
    )


def test_run_json(db_url: str, files: Path) -> None:
    r = dfc("run", str(files / "hello.df"), "--db", db_url, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["status"] == "completed"
    assert out["result"]["rows"] == [{"answer": 42, "greeting": "hi"}]


def test_start_signal_status_result_history_ls_explain(db_url: str, files: Path) -> None:
    assert dfc("deploy", str(files / "waits.df"), "--db", db_url).exit_code == 0
    r = dfc("start", "waits", "--db", db_url, "--label", "L1")
    assert r.exit_code == 0, r.output
    iid = r.stdout.strip()
    assert len(iid) == 8

    status = json.loads(dfc("status", iid, "--db", db_url, "--json").stdout)
    assert status["status"] == "pending" and status["label"] == "L1"
    assert dfc("result", iid, "--db", db_url).exit_code == 1

    async def scenario() -> None:
        runner = asyncio.create_task(run_until_done(db_url, [iid], timeout=20))
        await asyncio.sleep(1.0)
        text = dfc("explain", iid, "--db", db_url).stdout
        assert "⏳ SIGNAL 'go'" in text
        r = dfc("signal", iid, "go", '{"k": 1}', "--db", db_url)
        assert r.exit_code == 0, r.output
        await runner

    asyncio.run(scenario())
    r = dfc("result", iid, "--db", db_url)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows"][0]["d"] == '{"k":1}'  # JSON data substitutes compactly
    events = [e["event"] for e in json.loads(dfc("history", iid, "--db", db_url, "--json").stdout)]
    assert events[0] == "started" and "signal_received" in events and events[-1] == "completed"
    assert "completed" in dfc("history", iid, "--db", db_url).stdout
    listed = json.loads(dfc("ls", "--db", db_url, "--json", "--workflow", "waits").stdout)
    assert [x["id"] for x in listed] == [iid]
    assert iid in dfc("ls", "--db", db_url, "--status", "completed").stdout
    explained = json.loads(dfc("explain", iid, "--db", db_url, "--json").stdout)
    assert explained["instance"]["status"] == "completed"
    assert set(explained["nodes"].values()) == {"completed"}


def test_signal_without_data_sends_an_empty_object(db_url: str, files: Path) -> None:
    assert dfc("deploy", str(files / "waits.df"), "--db", db_url).exit_code == 0
    iid = dfc("start", "waits", "--db", db_url).stdout.strip()
    r = dfc("signal", iid, "go", "--db", db_url)
    assert r.exit_code == 0, r.output
    asyncio.run(run_until_done(db_url, [iid], timeout=20))
    assert json.loads(dfc("result", iid, "--db", db_url).stdout)["rows"] == [{"d": "{}"}]


def test_signal_and_cancel_errors(db_url: str, files: Path) -> None:
    r = dfc("signal", "0000beef", "go", "--db", db_url)
    assert r.exit_code == 1 and "no instance 0000beef" in r.stderr
    r = dfc("cancel", "0000beef", "--db", db_url)
    assert r.exit_code == 1 and "no instance 0000beef" in r.stderr
    assert dfc("deploy", str(files / "waits.df"), "--db", db_url).exit_code == 0
    iid = dfc("start", "waits", "--db", db_url).stdout.strip()
    r = dfc("cancel", iid, "--reason", "changed my mind", "--db", db_url)
    assert r.exit_code == 0 and "cancelled" in r.stdout
    r = dfc("cancel", iid, "--db", db_url)
    assert r.exit_code == 0 and "already cancelled" in r.stdout
    r = dfc("signal", iid, "go", "--db", db_url)
    assert r.exit_code == 1 and "is cancelled" in r.stderr
    status = dfc("status", iid, "--db", db_url)
    assert "cancelled" in status.stdout and "changed my mind" in status.stdout
