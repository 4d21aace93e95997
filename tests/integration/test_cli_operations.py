"""The instance commands as an operator uses them from a shell (issue 13): waiting with exit
codes, resuming without the file, dev versions against deployed ones, node names shared by
explain and history, typed variables in JSON."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from runtime_support import run_until_done

from dfc.cli.main import main
from dfc.runtime import instances
from dfc.store.db import connect

pytestmark = [pytest.mark.db, pytest.mark.timeout(90)]


def dfc(*args: str) -> Result:
    return CliRunner().invoke(main, ["--no-color", *args], catch_exceptions=False)


def write(dir: Path, name: str, text: str) -> str:
    path = dir / f"{name}.df"
    path.write_text(text)
    return str(path)


def started(db_url: str, name: str, *args: str) -> str:
    r = dfc("start", name, "--db", db_url, *args)
    assert r.exit_code == 0, r.output
    return r.stdout.strip()


def test_wait_tells_completed_failed_cancelled_and_timed_out(db_url: str, tmp_path: Path) -> None:
    ok = write(tmp_path, "w_ok", "param n int = 41;\n'SELECT {n} + 1 AS answer'\n")
    bad = write(tmp_path, "w_bad", "'SELECT 1 AS a'\n~> 'SELECT 1/0'\n")
    waits = write(tmp_path, "w_waits", "df.wait_for_signal('go') ~> 'SELECT 1 AS a'\n")
    assert dfc("deploy", ok, bad, waits, "--db", db_url).exit_code == 0
    done, failed = started(db_url, "w_ok", "--var", "n=100"), started(db_url, "w_bad")
    cancelled, pending = started(db_url, "w_waits"), started(db_url, "w_waits")
    assert dfc("cancel", cancelled, "--db", db_url).exit_code == 0
    asyncio.run(run_until_done(db_url, [done, failed], timeout=30))

    r = dfc("wait", done, "--db", db_url)
    assert (r.exit_code, r.stdout.startswith(f"instance {done} completed in ")) == (0, True)
    r = dfc("wait", failed, "--db", db_url)
    assert r.exit_code == 1
    assert "division by zero" in r.stderr and "w_bad.df:2:4" in r.stderr
    r = dfc("wait", cancelled, "--db", db_url)
    assert r.exit_code == 3 and f"instance {cancelled} was cancelled" in r.stderr
    r = dfc("wait", pending, "--timeout", "0.5", "--db", db_url)
    assert r.exit_code == 4 and f"instance {pending} is still pending after 0.5 s" in r.stderr

    out = json.loads(dfc("wait", pending, "--timeout", "0", "--db", db_url, "--json").stdout)
    assert (out["status"], out["timed_out"]) == ("pending", True)
    out = json.loads(dfc("wait", done, "--db", db_url, "--json").stdout)
    assert (out["status"], out["timed_out"], out["vars"]) == ("completed", False, {"n": 100})
    assert out["result"]["rows"] == [{"answer": 101}]

    # `dfc result --wait` prints the result, with the same exit codes
    r = dfc("result", done, "--wait", "--db", db_url)
    assert r.exit_code == 0 and json.loads(r.stdout)["rows"] == [{"answer": 101}]
    assert dfc("result", failed, "--wait", "--db", db_url).exit_code == 1
    assert dfc("result", cancelled, "--wait", "--db", db_url).exit_code == 3
    assert dfc("result", pending, "--wait", "--timeout", "0.2", "--db", db_url).exit_code == 4
    r = dfc("result", pending, "--timeout", "1", "--db", db_url)
    assert r.exit_code == 2 and "--timeout goes with --wait" in r.output
    r = dfc("result", pending, "--db", db_url)
    assert r.exit_code == 1 and f"dfc result {pending} --wait" in r.stderr


def test_status_json_keeps_the_declared_types_of_parameters(db_url: str, tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "typed",
        "param n int = 1;\nparam x numeric = 2.5;\nparam ok bool = true;\n"
        "param j json = '{\"a\": [1]}';\nparam t text = '100';\n'SELECT {n} AS n'\n",
    )
    assert dfc("deploy", f, "--db", db_url).exit_code == 0
    iid = started(db_url, "typed", "--var", "n=100", "--var", "ok=no")
    vars = json.loads(dfc("status", iid, "--db", db_url, "--json").stdout)["vars"]
    assert vars == {"n": 100, "x": 2.5, "ok": False, "j": {"a": [1]}, "t": "100"}


def test_result_wait_returns_when_the_instance_ends_without_polling_for_it(
    db_url: str, tmp_path: Path
) -> None:
    f = write(tmp_path, "w_signal", "df.wait_for_signal('go') |=> 's' ~> 'SELECT 7 AS seven'\n")
    assert dfc("deploy", f, "--db", db_url).exit_code == 0
    iid = started(db_url, "w_signal")

    async def scenario() -> Result:
        runner = asyncio.create_task(run_until_done(db_url, [iid], timeout=30))
        waiting = asyncio.create_task(
            asyncio.to_thread(dfc, "result", iid, "--wait", "--timeout", "30", "--db", db_url)
        )
        await asyncio.sleep(1.0)
        assert not waiting.done()
        assert dfc("signal", iid, "go", "--db", db_url).exit_code == 0
        await runner
        return await waiting

    r = asyncio.run(scenario())
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows"] == [{"seven": 7}]

    # The database's notice ends the wait, not the next look: with a look every 60 s, a wait
    # for an instance that ends 0.5 s later returns at once.
    iid = started(db_url, "w_signal")

    async def notified() -> float:
        waiting = asyncio.create_task(asyncio.to_thread(wait_slowly, db_url, iid))
        await asyncio.sleep(0.5)
        assert dfc("cancel", iid, "--db", db_url).exit_code == 0
        return await waiting

    assert asyncio.run(notified()) < 10


def wait_slowly(db_url: str, iid: str) -> float:
    began = time.monotonic()
    with connect(db_url) as conn:
        assert instances.wait(conn, iid, 60, poll=60).status == "cancelled"
    return time.monotonic() - began


def test_run_resume_without_a_file_runs_the_instance_on_its_own_version(
    db_url: str, tmp_path: Path
) -> None:
    f = write(tmp_path, "resumed", "param n int = 1;\n'SELECT {n} * 2 AS twice'\n")
    assert dfc("deploy", f, "--db", db_url).exit_code == 0
    iid = started(db_url, "resumed", "--var", "n=21")
    r = dfc("run", "--resume", iid, "--db", db_url)
    assert r.exit_code == 0, r.output
    assert f"instance {iid} of resumed v1" in r.stderr
    assert json.loads(r.stdout[r.stdout.index("\n{") :])["rows"] == [{"twice": 42}]
    # a finished instance has nothing left to run: its tree and result again
    r = dfc("run", "--resume", iid, "--db", db_url, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["result"]["rows"] == [{"twice": 42}]
    r = dfc("run", "--resume", iid, "--var", "n=3", "--db", db_url)
    assert r.exit_code == 2 and "--var and --label go with a FILE" in r.output
    r = dfc("run", "--db", db_url)
    assert r.exit_code == 2 and "give a FILE to run, or --resume ID" in r.output
    r = dfc("run", "--resume", "0badc0de", "--db", db_url)
    assert r.exit_code == 1 and "no instance 0badc0de" in r.stderr


def test_start_runs_the_latest_deployed_version_not_a_dev_one(db_url: str, tmp_path: Path) -> None:
    f = write(tmp_path, "edited", "'SELECT 1 AS v'\n")
    assert dfc("deploy", f, "--db", db_url).exit_code == 0
    write(tmp_path, "edited", "'SELECT 2 AS v'\n")
    assert dfc("run", f, "--db", db_url).exit_code == 0  # version 2, a dev version
    iid = started(db_url, "edited")
    assert json.loads(dfc("status", iid, "--db", db_url, "--json").stdout)["version"] == 1
    assert dfc("cancel", iid, "--db", db_url).exit_code == 0

    listed = json.loads(dfc("versions", "edited", "--db", db_url, "--json").stdout)
    assert [(v["version"], v["dev"], v["default"]) for v in listed] == [
        (1, False, True),
        (2, True, False),
    ]
    lines = dfc("versions", "edited", "--db", db_url).stdout.splitlines()
    assert lines[0].startswith("*   1 ") and "  deployed  " in lines[0]
    assert lines[1].startswith("    2 ") and "  dev (dfc run)  " in lines[1]
    assert lines[2] == "* the version `dfc start edited` starts"

    # deploying the edit makes it the default; a workflow only ever run starts its dev version
    assert dfc("deploy", f, "--db", db_url).exit_code == 0
    iid = started(db_url, "edited")
    assert json.loads(dfc("status", iid, "--db", db_url, "--json").stdout)["version"] == 2
    assert dfc("cancel", iid, "--db", db_url).exit_code == 0
    tried = write(tmp_path, "only_tried", "'SELECT 1 AS v'\n")
    assert dfc("run", tried, "--db", db_url).exit_code == 0
    iid = started(db_url, "only_tried")
    assert json.loads(dfc("status", iid, "--db", db_url, "--json").stdout)["version"] == 1


def test_history_names_nodes_as_explain_shows_them(db_url: str, tmp_path: Path) -> None:
    long = "SELECT " + ", ".join(f"{i} AS column_{i}" for i in range(12))
    f = write(
        tmp_path,
        "named",
        f"'{long}' |=> 'wide'\n"
        "~> ('SELECT pg_sleep(1.5)' | df.wait_for_signal('never'))\n"
        "~> 'SELECT 1 AS done'\n",
    )
    r = dfc("run", f, "--db", db_url, "--json")
    assert r.exit_code == 0, r.output
    iid = json.loads(r.stdout)["id"]
    tree = dfc("explain", iid, "--db", db_url).stdout.splitlines()[1:]
    shown = {line.split()[0] for line in tree}
    events = json.loads(dfc("history", iid, "--db", db_url, "--json").stdout)
    named = {e["node"] for e in events if e["node"]}
    assert named and named <= shown
    text = dfc("history", iid, "--db", db_url).stdout
    assert all(f" {node}" in text for node in named)

    # the race lasted as long as its winner ran, not the instant its decision was written
    (race,) = [line for line in tree if "RACE" in line]
    seconds = float(race.rpartition("(")[2].split(" s")[0])
    assert 1.4 <= seconds < 10

    # SQL is cut to fit a line unless --full
    assert long not in "\n".join(tree)
    assert long in dfc("explain", iid, "--full", "--db", db_url).stdout
    assert long in dfc("explain", f, "--full").stdout
    assert long not in dfc("explain", f).stdout


def test_a_label_is_raw_text_in_sql_as_documented(db_url: str, tmp_path: Path) -> None:
    # docs/language.md, "Where raw text bites": labels are free text and not made safe.
    f = write(tmp_path, "labelled", "'SELECT ''{sys_label}'' AS label'\n")
    r = dfc("run", f, "--label", "batch 7", "--db", db_url, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["result"]["rows"] == [{"label": "batch 7"}]
    r = dfc("run", f, "--label", "O'Brien", "--db", db_url, "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["error"]["sqlstate"] == "42601"  # syntax error
