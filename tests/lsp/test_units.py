"""The pieces of the language server that need no client: positions in the client's units,
and `dfc lsp` without its optional packages."""

from __future__ import annotations

import importlib.util
from importlib.machinery import ModuleSpec

import pytest
from click.testing import CliRunner
from lsprotocol import types

from dfc.cli.main import main
from dfc.lsp.positions import Positions

TEXT = "-- é 😀 x\n'SELECT 1' |=> 'a'\n"


@pytest.mark.parametrize(
    ("encoding", "column"),
    [
        (types.PositionEncodingKind.Utf16, 8),  # the emoji is two UTF-16 units
        (types.PositionEncodingKind.Utf32, 7),
        (types.PositionEncodingKind.Utf8, 11),  # é two bytes, the emoji four
    ],
)
def test_positions_count_columns_in_the_clients_units(encoding: str, column: int) -> None:
    pos = Positions(TEXT, encoding)
    x = TEXT.index("x")
    assert pos.position(x) == types.Position(0, column)
    assert pos.offset(types.Position(0, column)) == x
    second = TEXT.index("'a'")
    assert pos.position(second) == types.Position(1, 15)
    assert pos.offset(types.Position(1, 15)) == second


def test_positions_past_the_end_are_clamped() -> None:
    pos = Positions(TEXT)
    assert pos.offset(types.Position(9, 0)) == len(TEXT)
    assert pos.offset(types.Position(1, 500)) == TEXT.index("\n", 10)


def test_dfc_lsp_without_pygls_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "pygls" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    result = CliRunner().invoke(main, ["lsp"])
    assert result.exit_code == 1
    assert "pip install 'dfc[lsp]'" in result.output
