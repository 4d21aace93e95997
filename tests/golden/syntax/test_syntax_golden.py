"""Golden snapshots of the front end: AST dumps of the examples and of the files under
``valid/``, diagnostics of invalid inputs.

Each file under ``invalid/`` starts with ``-- expect: DFC1xx LINE:COL`` (and optionally
``-- grammar: pg``): the test checks that a diagnostic with that code starts exactly there, and
the snapshot keeps every diagnostic of the file, rendered with ``Diagnostic.to_dict()``.
Update snapshots with ``pytest tests/golden/syntax --snapshot-update`` and review the diff.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from dfc.syntax import dump, format_module, parse_text

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.df"))
INVALID = sorted((HERE / "invalid").glob("*.df"))
VALID = sorted((HERE / "valid").glob("*.df"))
EXPECT_RE = re.compile(r"-- expect: (DFC\d{3}) (\d+):(\d+)\n(?:-- grammar: (dfc|pg)\n)?")


def test_there_are_enough_cases() -> None:
    assert len(EXAMPLES) >= 8
    assert len(INVALID) >= 60


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_ast(path: Path, snapshot: Any) -> None:
    module, diags = parse_text(path.read_text(encoding="utf-8"), f"examples/{path.name}")
    assert diags == [], [(d.code, str(d.span), d.message) for d in diags]
    assert module is not None
    assert dump(module) == snapshot
    # Both grammars accept every example (their meaning may differ: the checker warns).
    _, pg_diags = parse_text(path.read_text(encoding="utf-8"), grammar="pg")
    assert all(d.code != "DFC199" for d in pg_diags)
    assert format_module(module) == path.read_text(encoding="utf-8"), "run dfc fmt on the example"


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_input(path: Path, snapshot: Any) -> None:
    # Files that are valid in both grammars (e.g. statements pasted from pg_durable scripts).
    text = path.read_text(encoding="utf-8")
    dumps = []
    for grammar in ("dfc", "pg"):
        module, diags = parse_text(text, f"valid/{path.name}", grammar=grammar)  # type: ignore[arg-type]
        assert diags == [], [(d.code, str(d.span), d.message) for d in diags]
        assert module is not None
        dumps.append(dump(module))
    assert dumps[0] == dumps[1] == snapshot


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_input(path: Path, snapshot: Any) -> None:
    text = path.read_text(encoding="utf-8")
    m = EXPECT_RE.match(text)
    assert m is not None, f"{path.name} must start with '-- expect: DFC1xx LINE:COL'"
    code, line, col, grammar = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4) or "dfc"
    _, diags = parse_text(text, f"invalid/{path.name}", grammar=grammar)  # type: ignore[arg-type]
    found = [(d.code, d.span.start_line_col if d.span else None) for d in diags]
    assert (code, (line, col)) in found, found
    assert all(d.code.startswith("DFC1") for d in diags)
    assert json.dumps([d.to_dict() for d in diags], indent=2, ensure_ascii=False) == snapshot
