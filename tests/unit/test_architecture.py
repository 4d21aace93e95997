"""The stages import only downward, libraries stay in their stage, nothing imports in a cycle
(contracts in pyproject.toml, checked by import-linter); and the contracts cover every module."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from dfc import catalogue

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "dfc"

# Entry points above every stage: the package's lazy public API and ``python -m dfc``.
ENTRY_POINTS = {"dfc.__init__", "dfc.__main__"}


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["name"]: c for c in config["tool"]["importlinter"]["contracts"]}


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run(
        [exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_top_level_module_is_a_stage_or_a_base_module() -> None:
    contracts = _contracts()
    stages = {
        name.strip()
        for layer in contracts["stages import only downward"]["layers"]
        for name in layer.split("|")
    }
    base = set(contracts["base modules import no stage and no stage's library"]["source_modules"])
    assert not stages & base
    found = {f"dfc.{p.stem}" for p in SRC.glob("*.py")} | {
        f"dfc.{p.parent.name}" for p in SRC.glob("*/__init__.py")
    }
    unplaced = sorted(found - stages - base - ENTRY_POINTS)
    assert not unplaced, (
        f"{unplaced} are in no import contract: add a base module to the base contract, a "
        "stage to the layers (pyproject.toml)"
    )
    assert not (stages | base) - found, "a contract names a module that does not exist"


def test_the_catalogue_reads_every_stage_codes_module() -> None:
    stage_codes = {f"dfc.{p.parent.name}.codes" for p in SRC.glob("*/codes.py")}
    assert {m.__name__ for m in catalogue.STAGE_CODES} == stage_codes


def test_the_base_registry_imports_no_stage() -> None:
    # In a fresh interpreter, and at run time: an import through importlib escapes the contracts.
    probe = (
        "import sys, dfc.codes; print(len(dfc.codes.registered()),"
        " *sorted({m.split('.')[1] for m in sys.modules if m.startswith('dfc.')}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    stages = {"syntax", "check", "plan", "store", "runtime", "cli", "compiler", "client"}
    assert out[0] == "0", "the registry knows codes before any stage registered them"
    assert not stages & set(out[1:]) and "catalogue" not in out
