"""Diagnostics as a person reads them (no colour): every invalid corpus file and every rule's
failing case, rendered rustc-style, in snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfc.cli.render import plain
from dfc.compiler import check_source
from dfc.source import SourceFile

GOLDEN = Path(__file__).resolve().parents[1]
# DFC310 needs a live database (tests/integration/test_check_live.py renders it there).
CASES = sorted((GOLDEN / "syntax" / "invalid").glob("*.df")) + [
    p for p in sorted((GOLDEN / "check").glob("DFC*/fail.df")) if p.parent.name != "DFC310"
]


@pytest.mark.parametrize("path", CASES, ids=lambda p: str(p.relative_to(GOLDEN)))
def test_rendered(path: Path, snapshot: object) -> None:
    name = str(path.relative_to(GOLDEN))
    text = path.read_text(encoding="utf-8", errors="replace")
    grammar = "pg" if "\n-- grammar: pg\n" in text else "dfc"
    comp = check_source(SourceFile(name, text), grammar=grammar)
    assert comp.sorted_diagnostics, "a failing case must produce diagnostics"
    assert "\n".join(plain(d) for d in comp.sorted_diagnostics) == snapshot
