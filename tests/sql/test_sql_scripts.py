"""pg_durable's SQL API (SPEC §7, docs/sql.md) tested the way pg_regress tests an extension.

Each ``scripts/NAME.sql`` runs through ``psql -X -a -q`` against a fresh database and its output
(the echoed script, results, notices and errors) must equal ``expected/NAME.out`` (or one of the
alternatives ``expected/NAME_1.out``, ... for output that differs between PostgreSQL versions).
On a difference the output is written to ``results/NAME.out`` and the test fails with the diff;
``DFC_REGRESS_UPDATE=1`` writes the expected files instead (review them like snapshots).

Every script runs on two servers: the embedded PostgreSQL 18 of the test session, and a
throwaway cluster of Debian's PostgreSQL 15 (``/usr/lib/postgresql/15/bin``; when it is not
installed those runs are skipped and say so). On each, a script whose first line is
``-- needs: worker`` runs in a database served by one ``dfc worker`` process shared by those
scripts; the others run in a database that no worker serves, so the instances they start stay
pending and what they print does not depend on timing. The ids of instances started by df.start
are random: the output shows them as ``xxxxxxxx``, and the database's name as ``"<db>"``. The roles ``regress_alice``,
``regress_bob`` (granted ``include_http``) and ``regress_admin`` (granted ``with_grant``) are
granted usage in both databases before the scripts run, and each role owns a schema of its
name, where its tables go (``"$user"`` comes first on its search_path); a script connects as
them with
``\\c - regress_alice`` and as the superuser with ``\\c - postgres``.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql

from dfc.store.migrations import ensure_schema
from dfc.store.pginstall import server_account

if TYPE_CHECKING:  # conftest is not importable as a module under every pytest invocation
    from conftest import PgServer

HERE = Path(__file__).parent
SCRIPTS = sorted((HERE / "scripts").glob("*.sql"))
PG15_BIN = Path("/usr/lib/postgresql/15/bin")
ROLES = ("regress_alice", "regress_bob", "regress_admin", "regress_carol", "regress_dave")
GRANTS = (
    "SELECT df.grant_usage('regress_alice')",
    "SELECT df.grant_usage('regress_bob', include_http => true)",
    "SELECT df.grant_usage('regress_admin', include_http => true, with_grant => true)",
)
UPDATE = os.environ.get("DFC_REGRESS_UPDATE") == "1"
_SCRIPT_TIMEOUT = 120
_PROBE_SECONDS = 10


@dataclass
class Target:
    """A server the scripts run on, with its own psql, and the two databases on it."""

    name: str
    psql: Path
    plain_url: str = ""
    worker_url: str = ""
    worker_log: Path | None = None
    worker_problem: str | None = None  # why the worker cannot run instances df.start wrote


def _needs_worker(script: Path) -> bool:
    with script.open(encoding="utf-8") as f:
        return f.readline().strip() == "-- needs: worker"


# -- servers --------------------------------------------------------------------------------


@contextlib.contextmanager
def _embedded(pg_server: PgServer) -> Iterator[tuple[Path, str, str]]:
    """The session's embedded server: its psql, the URL of its postgres database, and the
    template the databases are copied from (migrated already)."""
    bin_dir = pg_server.server.status().bin_dir
    assert bin_dir is not None
    yield bin_dir / "psql", pg_server.socket_url, "dfc_template"


@contextlib.contextmanager
def _debian15() -> Iterator[tuple[Path, str, str | None]]:
    """A throwaway cluster of Debian's PostgreSQL 15, run as the embedded server's OS user
    (``dfc-postgres`` when the tests run as root): its psql, the URL of its postgres database,
    and no template (the databases are migrated as they are made)."""
    missing = [
        p for p in (PG15_BIN / "initdb", PG15_BIN / "pg_ctl", PG15_BIN / "psql") if not p.exists()
    ]
    if missing:
        pytest.skip(f"Debian PostgreSQL 15 is not installed here: {missing[0]} is missing")
    account = server_account()
    base = Path(tempfile.mkdtemp(prefix="dfc-pg15-", dir="/tmp"))
    base.chmod(0o711)
    data, sock = base / "data", base / "run"
    sock.mkdir(mode=0o700)
    if account.switch:
        os.chown(sock, account.uid, account.gid)
        os.chown(base, account.uid, account.gid)
    switch: dict[str, object] = {}
    if account.switch:
        switch = {"user": account.uid, "group": account.gid, "extra_groups": []}

    def run(*args: str) -> None:
        subprocess.run(
            list(args),
            check=True,
            capture_output=True,
            cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
            timeout=120,
            **switch,  # type: ignore[call-overload]
        )

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    initdb = [str(PG15_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
    run(*initdb, "--no-sync", "--encoding=UTF8", "--locale=C")
    options = f"-p {port} -k {sock} -c listen_addresses='' -c fsync=off -c max_connections=60"
    run(
        str(PG15_BIN / "pg_ctl"),
        "start",
        "-D",
        str(data),
        "-l",
        str(base / "log"),
        "-w",
        "-o",
        options,
    )
    try:
        yield PG15_BIN / "psql", f"postgresql://postgres@/postgres?host={sock}&port={port}", None
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            run(str(PG15_BIN / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w")
        shutil.rmtree(base, ignore_errors=True)


def _url(admin_url: str, database: str) -> str:
    return re.sub(r"/postgres\?", f"/{database}?", admin_url, count=1)


def _make_database(admin_url: str, name: str, template: str | None) -> str:
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            create = sql.SQL("{} TEMPLATE {}").format(create, sql.Identifier(template))
        c.execute(create)
    url = _url(admin_url, name)
    with psycopg.connect(url, autocommit=True) as c:
        ensure_schema(c)
        for grant in GRANTS:
            c.execute(grant)
        for role in ROLES:
            # PostgreSQL 15+ lets only the owner create in public: each role gets its own
            # schema, first on its search_path ("$user"), as PostgreSQL's docs recommend.
            c.execute(
                sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                    sql.Identifier(role), sql.Identifier(role)
                )
            )
    return url


def _create_roles(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as c:
        for role in ROLES:
            if c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
                c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))


def _drop(admin_url: str, databases: list[str]) -> None:
    with psycopg.connect(admin_url, autocommit=True) as c:
        for name in databases:
            c.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        for role in ROLES:
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@contextlib.contextmanager
def _worker(url: str, log: Path) -> Iterator[None]:
    """One `dfc worker` serving ``url`` for as long as the scripts need it."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dfc", "worker", "--db", url, "--lease-seconds", "5"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module", params=["pg18", "pg15"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    server = (
        _embedded(request.getfixturevalue("pg_server")) if request.param == "pg18" else _debian15()
    )
    with server as (psql, admin_url, template):
        _create_roles(admin_url)
        suffix = os.environ.get("PYTEST_XDIST_WORKER", "main")
        names = [f"regress_{request.param}_{suffix}", f"regress_{request.param}_{suffix}_w"]
        t = Target(request.param, psql)
        try:
            t.plain_url = _make_database(admin_url, names[0], template)
            t.worker_url = _make_database(admin_url, names[1], template)
            t.worker_log = tmp_path_factory.mktemp(f"worker-{request.param}") / "worker.log"
            with _worker(t.worker_url, t.worker_log):
                t.worker_problem = _probe(t.worker_url)
                yield t
        finally:
            _drop(admin_url, names)


def _probe(url: str) -> str | None:
    """None when the worker runs an instance df.start wrote, else why not (in a few seconds,
    rather than every await of every script timing out)."""
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("SET ROLE regress_alice")
        row = c.execute("SELECT df.start('SELECT 1', 'probe')").fetchone()
        assert row is not None
        try:
            c.execute("SELECT df.await_instance(%s, %s)", (row[0], _PROBE_SECONDS))
        except psycopg.Error as e:
            return f"the worker did not run an instance started with df.start: {e}"
        status = c.execute("SELECT df.status(%s)", (row[0],)).fetchone()
    if status is None or status[0] != "completed":
        return f"the worker ran an instance started with df.start to {status}, not completed"
    return None


# -- running a script -----------------------------------------------------------------------


def _run(target: Target, script: Path) -> str:
    url = target.worker_url if _needs_worker(script) else target.plain_url
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PGTZ": "UTC",
        "PGDATESTYLE": "ISO, YMD",
        "PGCLIENTENCODING": "UTF8",
        "LC_ALL": "C.UTF-8",
        "PGAPPNAME": "dfc-regress",
    }
    proc = subprocess.run(
        [
            str(target.psql),
            "-X",
            "-a",
            "-q",
            "-v",
            "ON_ERROR_STOP=0",
            "-v",
            "SHOW_CONTEXT=never",
            "-d",
            url,
            "-f",
            str(script),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=HERE,
        timeout=_SCRIPT_TIMEOUT,
        check=False,
    )
    # psql names the script in its error lines; keep only the name.
    out = proc.stdout.decode("utf-8", "replace").replace(f"{script}:", f"{script.name}:")
    return _normalize(out, url)


def _normalize(out: str, url: str) -> str:
    """The output with the ids of instances started by df.start (random) as ``xxxxxxxx`` and
    the database's name (one per server and test process) as ``<db>``."""
    with psycopg.connect(url, autocommit=True) as c:
        ids = [r[0] for r in c.execute("SELECT id FROM dfc.instances WHERE graph IS NOT NULL")]
        out = out.replace(f'"{c.info.dbname}"', '"<db>"')
    if not ids:
        return out
    pattern = re.compile(r"(?<![0-9a-f])(?:" + "|".join(ids) + r")(?![0-9a-f])")
    return pattern.sub("xxxxxxxx", out)


def _expected(script: Path) -> list[Path]:
    stem = script.stem
    found = [HERE / "expected" / f"{stem}.out"]
    found += sorted((HERE / "expected").glob(f"{stem}_[0-9].out"))
    return found


@pytest.mark.db
@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_script(target: Target, script: Path) -> None:
    """The script's output equals its expected output, byte for byte."""
    if _needs_worker(script) and target.worker_problem is not None:
        pytest.fail(
            f"{script.name} on {target.name} needs a worker: {target.worker_problem}"
            + _worker_log(target)
        )
    out = _run(target, script)
    expected = _expected(script)
    if UPDATE and target.name == "pg18":
        expected[0].write_text(out, encoding="utf-8")
        return
    texts = [p.read_text(encoding="utf-8") for p in expected if p.exists()]
    if out in texts:
        return
    results = HERE / "results" / target.name
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{script.stem}.out").write_text(out, encoding="utf-8")
    diff = "".join(
        difflib.unified_diff(
            (texts[0] if texts else "").splitlines(keepends=True),
            out.splitlines(keepends=True),
            fromfile=str(expected[0].relative_to(HERE)),
            tofile=f"results/{target.name}/{script.stem}.out",
        )
    )
    log = _worker_log(target) if _needs_worker(script) else ""
    pytest.fail(f"{script.name} on {target.name} differs from its expected output:\n{diff}{log}")


def _worker_log(target: Target) -> str:
    if target.worker_log is None or not target.worker_log.exists():
        return ""
    lines = target.worker_log.read_text(errors="replace").splitlines()[-40:]
    return "\n--- worker log (last 40 lines) ---\n" + "\n".join(lines)


def test_every_script_has_expected_output() -> None:
    """A script without an expected file is a test that checks nothing."""
    missing = [s.name for s in SCRIPTS if not _expected(s)[0].exists()]
    assert not missing
