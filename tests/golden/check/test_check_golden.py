"""One failing and one passing file per checker code, with snapshots of the diagnostics.

``tests/golden/check/<CODE>/fail.df`` (and any ``fail-<case>.df``) must produce ``<CODE>``;
``pass.df`` must not. A file with a line ``-- grammar: pg`` is read with pg_durable's grammar. The JSON of every diagnostic (`Diagnostic.to_dict`, file names made relative) is snapshotted with syrupy.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from dfc.catalogue import all_codes
from dfc.check import check_file
from dfc.check import codes as check_codes
from dfc.diagnostics import Diagnostics

HERE = Path(__file__).parent
_PG = re.compile(r"(?m)^-- grammar: pg$")
LIVE_ONLY = {check_codes.LIVE_REJECTED}  # needs a server: see tests/integration
CASES = sorted(
    p for p in HERE.glob("DFC*/*.df") if p.stem in ("fail", "pass") or p.stem.startswith("fail-")
)


def _relative(value: object) -> object:
    """Diagnostics as JSON with file names relative to this directory (stable snapshots)."""
    if isinstance(value, dict):
        return {
            k: (_rel_name(v) if k == "file" and isinstance(v, str) else _relative(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_relative(v) for v in value]
    return value


def _rel_name(name: str) -> str:
    try:
        return Path(name).resolve().relative_to(HERE).as_posix()
    except ValueError:
        return name


def diagnose(path: Path) -> list[dict[str, object]]:
    sink = Diagnostics()
    grammar = "pg" if _PG.search(path.read_text(encoding="utf-8")) else "dfc"
    check_file(path, grammar=grammar, diagnostics=sink)
    return [_relative(d.to_dict()) for d in sink]  # type: ignore[misc]


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_golden(path: Path, snapshot_json: SnapshotAssertion) -> None:
    code = path.parent.name
    diags = diagnose(path)
    found = {d["code"] for d in diags}
    if code not in LIVE_ONLY:
        if path.stem.startswith("fail"):
            assert code in found, f"{path} should produce {code}"
        else:
            assert code not in found, f"{path} should not produce {code}"
    if path.stem == "pass":
        assert all(d["severity"] in ("info", "hint") for d in diags if d["code"] != code), diags
    assert diags == snapshot_json


def test_every_checker_code_has_cases() -> None:
    mine = {c for c in all_codes() if c.startswith(("DFC2", "DFC3", "DFC4"))}
    have = {p.parent.name for p in CASES}
    assert mine <= have, f"codes without golden cases: {sorted(mine - have)}"
