"""The wheel carries what lives outside src/dfc: the grammar, the standard library, migrations.

Builds the real wheel and checks that an installation of it (not this checkout) finds them.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_wheel_contains_grammar_stdlib_and_migrations(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(tmp_path.glob("dfc-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "dfc/_data/grammar/durable.lark" in names
    stdlib = {p.name for p in (ROOT / "stdlib").glob("*.df")}
    assert stdlib and {f"dfc/_data/stdlib/{n}" for n in stdlib} <= names
    migrations = {p.name for p in (ROOT / "src/dfc/store/migrations").glob("*.sql")}
    assert migrations and {f"dfc/store/migrations/{n}" for n in migrations} <= names
    # The test kit is a pytest plugin as soon as dfc is installed (docs/testing.md).
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[pytest11]\ndfc = dfc.testing.plugin" in text

    # Unpacked on its own, the package finds its data in dfc/_data, not in this checkout.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "from dfc.resources import grammar_path, stdlib_dir; "
        "print(grammar_path()); print(stdlib_dir())"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    grammar, std = out.stdout.split()
    assert grammar.startswith(str(site)) and std.startswith(str(site))
