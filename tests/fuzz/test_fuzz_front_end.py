"""The parser, checker and emitter fuzzed for crashes and hangs; `dfc check` for tracebacks.

Inputs: arbitrary text; valid workflows (the runtime fuzzer's generator and the examples)
mutated token by token (delete, duplicate, swap, insert an operator, a keyword or random
unicode, replace a token by random text); deep nesting of every construct, thousands of
levels; very long literals, identifiers and chains. Each input goes through parse, check and
emit (`compile_source`) with both grammars: it must give `Diagnostic` values only, never raise,
never report the parser's internal error, and finish within `LIMIT` seconds. A hang longer than
the test's timeout fails it as well.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fuzz_modes import fuzz, long_timeout
from fuzz_workflows import workflows
from hypothesis import strategies as st

from dfc.compiler import compile_source
from dfc.diagnostics import Diagnostic
from dfc.source import SourceFile
from dfc.syntax import codes
from dfc.syntax.lexer import end_of, lex, start_of

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.df"))
LIMIT = 30.0
"""Seconds one input may take through both grammars: the largest inputs here take 1-4 s on an
idle machine; the bound is generous for a loaded, shared one and catches hangs and quadratic
blow-ups (2,000 joins took 11 s, 5,000 minutes)."""

DEFAULT_EXAMPLES = 30

_VOCABULARY = [
    "~>", "|=>", "&", "|", "?>", "!>", "@>", "<->", "=>", "(", ")", ",", ";", "::", "::jsonb",
    "'", '"', "$$", "$q$", "E'\\", "U&'", "/*", "*/", "--", "\n", "df.", "df.seq(", "df.join(",
    "df.race(", "df.if(", "df.loop(", "df.break(", "df.sleep(", "df.retry(", "df.timeout(",
    "df.with_undo(", "df.http(", "df.wait_for_signal(", "df.start(", "SELECT", "param", "def",
    "import", "NULL", "TRUE", "{x}", "$x", "$x.*", "$x?", "attempts =>", "-1", "1e999",
    "99999999999999999999", "'{sys_instance_id}'", "\x00", "\ufeff", "\u202e", "😀",
]  # fmt: skip


def _tokens(text: str) -> list[tuple[int, int]]:
    return [(start_of(t), end_of(t)) for t in lex(SourceFile("m.df", text)).tokens]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A valid workflow with a few token-level mutations."""
    if draw(st.booleans()):
        text = draw(st.sampled_from(EXAMPLES)).read_text()
    else:
        text = draw(workflows(max_depth=3)).text()
    for _ in range(draw(st.integers(1, 4))):
        toks = _tokens(text) or [(0, 0)]
        a, b = toks[draw(st.integers(0, len(toks) - 1))]
        match draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "replace"])):
            case "delete":
                text = text[:a] + text[b:]
            case "duplicate":
                text = text[:b] + " " + text[a:b] + text[b:]
            case "swap":
                c, d = toks[draw(st.integers(0, len(toks) - 1))]
                if (a, b) > (c, d):
                    a, b, c, d = c, d, a, b
                if b <= c:
                    text = text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]
            case "insert":
                text = text[:a] + draw(st.sampled_from(_VOCABULARY)) + " " + text[a:]
            case "replace":
                text = text[:a] + draw(st.text(max_size=8)) + text[b:]
    return text


_LEAF = "'SELECT 1'"
_NESTINGS = {
    "parens": lambda n: "(" * n + _LEAF + ")" * n,
    "open parens": lambda n: "(" * n + _LEAF,
    "loops": lambda n: "@> " * n + _LEAF,
    "seq calls": lambda n: "df.seq(" * n + _LEAF + (", " + _LEAF + ")") * n,
    "unclosed calls": lambda n: "df.join(" * n,
    "chain": lambda n: " ~> ".join([_LEAF] * n),
    "ifs": lambda n: (_LEAF + " ?> ") * n + _LEAF + (" !> " + _LEAF) * n,
    "binds": lambda n: _LEAF + " |=> 'x'" * n,
    "undos": lambda n: _LEAF + (" <-> " + _LEAF) * n,
    "retries": lambda n: "df.retry(" * n + _LEAF + ")" * n,
    "block comments": lambda n: "/*" * n + " " + "*/" * n + _LEAF,
    "templates": lambda n: (
        "".join(f"def t{i}(x) = t{i + 1}(x);\n" for i in range(n))
        + f"def t{n}(x) = x;\nt0({_LEAF})"
    ),
    "recursive template": lambda n: f"def t(x) = t(x ~> x);\nt({_LEAF})",
    "joins": lambda n: " & ".join([_LEAF] * n),
}
_LONG = {
    "sql": lambda n: "'SELECT " + "x" * n + "'",
    "dollar sql": lambda n: "$$SELECT '" + "é" * n + "'$$",
    "unterminated": lambda n: "'" + "a" * n,
    "identifier": lambda n: "t" * n + "()",
    "refs": lambda n: "'SELECT 1' |=> 'x' ~> 'SELECT " + "$x + " * (n // 5) + "1'",
    "params": lambda n: "".join(f"param p{i} int = {i};\n" for i in range(n // 20)) + _LEAF,
    "number": lambda n: "df.sleep(" + "9" * n + ")",
    "escapes": lambda n: "E'" + "\\x41" * (n // 4) + "'",
}

extreme = st.one_of(
    st.builds(
        lambda f, n: f(n),
        st.sampled_from(list(_NESTINGS.values())),
        st.sampled_from([1, 50, 255, 256, 257, 1000, 3000]),
    ),
    st.builds(
        lambda f, n: f(n),
        st.sampled_from(list(_LONG.values())),
        st.sampled_from([10, 10_000, 100_000]),
    ),
)
inputs = st.one_of(st.text(max_size=300), mutated(), extreme)


def gives_diagnostics_only(text: str) -> None:
    """Parse, check and emit ``text`` with both grammars: diagnostics only, in bounded time."""
    started = time.monotonic()
    for grammar in ("dfc", "pg"):
        comp = compile_source(SourceFile("fuzz.df", text), grammar=grammar)  # type: ignore[arg-type]
        diags = list(comp.diagnostics)
        assert all(isinstance(d, Diagnostic) for d in diags)
        assert not [d.message for d in diags if d.code == codes.INTERNAL], text[:2000]
        assert comp.plan is not None or comp.diagnostics.has_errors or comp.module is not None
    elapsed = time.monotonic() - started
    assert elapsed < LIMIT, f"{elapsed:.1f} s for {text[:300]!r}... ({len(text)} characters)"


def test_any_text_gives_diagnostics_in_bounded_time() -> None:
    assert fuzz(inputs, gives_diagnostics_only, examples=DEFAULT_EXAMPLES, long_mode=False)


@pytest.mark.parametrize("name", sorted(_NESTINGS) + sorted(_LONG))
def test_extreme_inputs_give_diagnostics_in_bounded_time(name: str) -> None:
    make = {**_NESTINGS, **_LONG}[name]
    gives_diagnostics_only(make(1000))


@pytest.mark.long
@long_timeout()
def test_front_end_long() -> None:
    fuzz(inputs, gives_diagnostics_only, examples=0, long_mode=True, round_examples=500)


_CLI_INPUTS = [
    "",
    "'SELECT 1' ~>",
    "df.sleep('soon')",
    "'SELECT 1' |=> 'x' ~> 'SELECT $y'",
    "(" * 5000 + "'SELECT 1'",
    "\x00\ufeff😀 ~> @> |=>",
    "def t(x) = t(x);\nt('SELECT 1')",
    "import './missing.df';\n'SELECT 1'",
]


@pytest.mark.parametrize("text", _CLI_INPUTS, ids=range(len(_CLI_INPUTS)))
def test_dfc_check_reports_bad_input_without_a_traceback(text: str, tmp_path: Path) -> None:
    from dfc.cli.main import main

    path = tmp_path / "bad.df"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "DFC" in result.output, result.output
