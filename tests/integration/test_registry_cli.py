"""`dfc deploy`, `versions`, `diff` as a user runs them, on the embedded server (issue #4)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from dfc.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = """-- a small workflow
param n int = 3;
'CREATE TABLE IF NOT EXISTS t (n int)' ~> 'INSERT INTO t VALUES ({n}) RETURNING n' |=> 'row'
  ~> 'SELECT $row AS n'
"""


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--no-color", *args])
    return result.exit_code, result.output


def write(tmp_path: Path, text: str, name: str = "flow.df") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_deploy_versions_and_diff(tmp_path: Path, db_url: str) -> None:
    f = write(tmp_path, WORKFLOW)
    code, out = run("deploy", f, "--db", db_url)
    assert (code, out.split(" (hash")[0]) == (0, "deployed flow version 1")
    code, out = run("deploy", f, "--db", db_url)
    assert (code, out.split(" (hash")[0]) == (0, "flow unchanged, version 1")

    # Reformatting and new comments describe layout only: still version 1.
    assert run("fmt", f)[0] == 0
    write(tmp_path, "-- reformatted, with a comment\n" + Path(f).read_text())
    assert run("deploy", f, "--db", db_url)[1].startswith("flow unchanged, version 1")

    # Editing a SQL string is a behaviour change: version 2.
    write(tmp_path, WORKFLOW.replace("SELECT $row AS n", "SELECT $row AS m"))
    code, out = run("deploy", f, "--db", db_url, "--json")
    assert code == 0 and json.loads(out) == [
        {"name": "flow", "version": 2, "hash": json.loads(out)[0]["hash"], "created": True}
    ]

    code, out = run("versions", "flow", "--db", db_url, "--json")
    assert [v["version"] for v in json.loads(out)] == [1, 2]
    code, out = run("diff", "flow", "1", "2", "--db", db_url)
    assert code == 0
    assert "-└── SQL SELECT $row AS n" in out and "+└── SQL SELECT $row AS m" in out
    code, out = run("diff", "flow", "1", "1", "--db", db_url)
    assert "same plan" in out


def test_deploy_refuses_a_file_with_errors_and_stores_nothing(tmp_path: Path, db_url: str) -> None:
    good = write(tmp_path, WORKFLOW, "good.df")
    bad = write(tmp_path, "'SELECT $nothing'", "bad.df")
    code, out = run("deploy", good, bad, "--db", db_url)
    assert code == 1 and "DFC201" in out
    assert json.loads(run("versions", "good", "--db", db_url, "--json")[1]) == []


def test_unknown_workflow_and_version_are_one_sentence(db_url: str, tmp_path: Path) -> None:
    code, out = run("diff", "nosuch", "1", "2", "--db", db_url)
    assert code == 1 and "Traceback" not in out and "nosuch" in out
    run("deploy", write(tmp_path, WORKFLOW), "--db", db_url)
    code, out = run("diff", "flow", "1", "9", "--db", db_url)
    assert code == 1 and "version 9" in out


def test_deploy_without_db_uses_the_embedded_server(tmp_path: Path, pg_server: object) -> None:
    # The session fixture points DFC_DATA_DIR at its embedded server and unsets DFC_DATABASE_URL:
    # exactly what a user without any configuration gets.
    name = f"emb_{uuid.uuid4().hex[:8]}"
    f = write(tmp_path, f"df.start('SELECT 1', '{name}')")
    code, out = run("deploy", f)
    assert code == 0 and out.startswith(f"deployed {name} version 1"), out


def test_racing_deploys_on_a_fresh_database_both_succeed(
    tmp_path: Path, make_db: Callable[..., str]
) -> None:
    url = make_db(template=None)  # empty: no dfc schema yet, both processes migrate
    f = write(tmp_path, WORKFLOW)
    env = {**os.environ, "DFC_DATABASE_URL": url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dfc", "deploy", f],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = sorted(o[0].split(" (hash")[0] for o in outs)
    assert said == ["deployed flow version 1", "flow unchanged, version 1"]
    with psycopg.connect(url) as c:
        assert c.execute("SELECT count(*) FROM dfc.workflows").fetchone() == (1,)
        versions = c.execute("SELECT version FROM dfc.schema_migrations ORDER BY 1").fetchall()
        assert len(versions) == len(set(versions)) >= 2


@pytest.mark.slow
def test_db_stop_then_any_command_starts_it_again(tmp_path: Path) -> None:
    # Not under tmp_path: pytest's base folder is private (0700), and as root the server runs as
    # its own account, which must be able to reach the data directory.
    base = Path(tempfile.mkdtemp(prefix="dfc-restart-"))
    base.chmod(0o711)
    data = base / "data"
    env = {**os.environ, "DFC_DATA_DIR": str(data)}
    env.pop("DFC_DATABASE_URL", None)
    f = write(tmp_path, "df.start('SELECT 1', 'restart')")

    def dfc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dfc", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    try:
        first = dfc("deploy", f)
        assert first.returncode == 0 and "version 1" in first.stdout, first.stderr
        assert dfc("db", "stop").returncode == 0
        assert json.loads(dfc("db", "status", "--json").stdout)["embedded"]["running"] is False
        again = dfc("deploy", f)
        assert again.returncode == 0 and "unchanged, version 1" in again.stdout, again.stderr
    finally:
        dfc("db", "stop")
        shutil.rmtree(base, ignore_errors=True)
