"""The command line as a user meets it: exit codes, output formats, errors without tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dfc.cli.main import main
from dfc.plan.model import FORMAT

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(str(p) for p in (ROOT / "examples").glob("*.df"))
BAD = "'SELECT id FROM users' |=> 'u'\n  ~> 'UPDATE users SET seen = true WHERE id = $usr'\n"


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--no-color", *args], input=input)
    return result.exit_code, result.output


def test_every_example_checks_clean() -> None:
    code, out = run("check", *EXAMPLES)
    assert code == 0, out
    assert "error" not in out


def test_a_folder_stands_for_its_df_files(tmp_path: Path) -> None:
    code, out = run("check", str(ROOT / "examples"))
    assert code == 0 and f"checked {len(EXAMPLES)} files: no problems" in out
    assert run("check", str(tmp_path))[0] == 1


def test_errors_exit_1_with_file_line_and_column(tmp_path: Path, snapshot: object) -> None:
    bad = tmp_path / "bad.df"
    bad.write_text(BAD)
    code, out = run("check", str(bad))
    assert code == 1
    assert out.replace(str(tmp_path), "TMP") == snapshot


def test_json_format_has_the_stable_fields(tmp_path: Path) -> None:
    bad = tmp_path / "bad.df"
    bad.write_text(BAD)
    code, out = run("check", "--format", "json", str(bad))
    assert code == 1
    diags = json.loads(out)
    err = next(d for d in diags if d["severity"] == "error")
    assert {k: err[k] for k in ("code", "line", "column", "end_line", "end_column")} == {
        "code": "DFC201",
        "line": 2,
        "column": 47,
        "end_line": 2,
        "end_column": 51,
    }
    assert set(err) >= {
        "code",
        "severity",
        "message",
        "file",
        "line",
        "column",
        "end_line",
        "end_column",
    }


def test_stdin_is_read_for_dash() -> None:
    code, out = run("check", "--format", "json", "-", input=BAD)
    assert code == 1
    assert json.loads(out)[-1]["file"] == "<stdin>"


@pytest.mark.parametrize(
    "args",
    [
        ("check",),
        ("check", "--bogus", "x.df"),
        ("check", "--format", "yaml", "x.df"),
        ("nosuchcommand",),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    code, _ = run(*args)
    assert code == 2


def test_missing_file_is_one_sentence_not_a_traceback() -> None:
    code, out = run("check", "no/such/file.df")
    assert code == 1
    assert "file no/such/file.df does not exist" in out
    assert "Traceback" not in out


def test_explain_code() -> None:
    code, out = run("check", "--explain", "DFC201")
    assert code == 0 and out.startswith("## DFC201")
    assert run("check", "--explain", "DFC999")[0] == 2


def test_fmt_check_passes_on_examples_and_flags_unformatted(tmp_path: Path) -> None:
    code, out = run("fmt", "--check", *EXAMPLES)
    assert code == 0, out
    ugly = tmp_path / "ugly.df"
    ugly.write_text("df.seq(  'SELECT 1',df.sleep( 1 ) )")
    assert run("fmt", "--check", str(ugly))[0] == 1
    assert run("fmt", str(ugly))[0] == 0
    assert run("fmt", "--check", str(ugly))[0] == 0


def test_explain_graph_compile_parse_on_an_example(snapshot: object) -> None:
    example = str(ROOT / "examples" / "order_approval.df")
    for args in (("explain",), ("graph", "--format", "mermaid"), ("graph", "--format", "dot")):
        code, out = run(*args, example)
        assert code == 0
        assert out == snapshot(name=args[0] + (args[-1] if len(args) > 1 else ""))
    code, out = run("compile", "--json", example)
    assert code == 0 and json.loads(out)["format"] == FORMAT
    code, out = run("parse", "--json", example)
    assert code == 0 and json.loads(out)


def test_a_very_long_chain_goes_through_every_command(tmp_path: Path) -> None:
    # A 1,500-step `~>` chain is a tree 1,500 levels deep: deeper than Python's recursion limit.
    steps = [f"'SELECT {i} AS n' |=> 'r{i}'" for i in range(1500)] + ["'SELECT $r1499'"]
    deep = tmp_path / "deep.df"
    deep.write_text("\n~> ".join(steps) + "\n")
    for args in (
        ("check",),
        ("explain",),
        ("graph",),
        ("compile", "--json"),
        ("parse", "--json"),
        ("fmt",),
    ):
        code, out = run(*args, str(deep))
        assert code == 0, (args, out[-500:])
    assert run("fmt", "--check", str(deep))[0] == 0


def test_every_command_module_is_in_the_lazy_table() -> None:
    import importlib

    import click

    from dfc.cli.main import LAZY_COMMANDS

    ctx = click.Context(main)
    for name, module in LAZY_COMMANDS.items():
        cmd = main.get_command(ctx, name)
        assert cmd is not None and cmd.name == name
        assert name in {c.name for c in importlib.import_module(module).COMMANDS}
    for module in set(LAZY_COMMANDS.values()):
        for c in importlib.import_module(module).COMMANDS:
            assert LAZY_COMMANDS.get(c.name) == module, f"{c.name} of {module} is not registered"
