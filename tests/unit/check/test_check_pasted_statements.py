"""A statement copied from a pg_durable script is a valid file (SPEC §1), for `dfc check` too."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dfc.cli.main import main

PASTED = "SELECT df.start('SELECT 1' ~> 'SELECT 2', 'x') AS instance_id;\n"


@pytest.mark.parametrize("grammar", [[], ["--grammar", "pg"]], ids=["dfc", "pg"])
@pytest.mark.parametrize(
    "text",
    [
        PASTED,
        PASTED.replace(" AS ", " as "),
        PASTED.removesuffix(";\n"),
        "SELECT df.start('SELECT 1' ~> 'SELECT 2', 'x');\n",
    ],
)
def test_dfc_check_accepts_a_pasted_statement(
    tmp_path: Path, text: str, grammar: list[str]
) -> None:
    path = tmp_path / "pasted.df"
    path.write_text(text)
    result = CliRunner().invoke(main, ["--no-color", "check", *grammar, str(path)])
    assert result.exit_code == 0, result.output
    assert "error" not in result.output


def test_as_is_still_a_name_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "as.df"
    path.write_text("def as(step) = step ~> 'SELECT 2';\nSELECT as('SELECT 1') AS id;\n")
    result = CliRunner().invoke(main, ["--no-color", "check", str(path)])
    assert result.exit_code == 0, result.output
