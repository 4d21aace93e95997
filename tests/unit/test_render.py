"""`dfc.cli.render.print_diagnostics` writes exactly what rich printed, only faster."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from dfc.cli.render import print_diagnostics, render_text, summary
from dfc.compiler import check_source
from dfc.diagnostics import Diagnostic, Label, Severity
from dfc.source import SourceFile, Span

WORKFLOW = """\
df.start(
    'SELECT 1 AS v' |=> 'a'
    ~> ('SELECT $a.w' |=> 'b' & df.http('http://x', 'GET') |=> 'b')
    ~> 'SELECT $c',
    'w'
);
"""
ODD = SourceFile("odd.df", "a\r\nb\x07c 'SELECT 1'\r\n\tz\n")


def diagnostics() -> list[Diagnostic]:
    found = check_source(SourceFile("w.df", WORKFLOW)).sorted_diagnostics
    assert {d.severity for d in found} >= {Severity.ERROR, Severity.HINT}
    return [
        *found,
        Diagnostic(
            code="DFC999",
            severity=Severity.WARNING,
            message="control\x07 codes\r and\nlines",
            span=Span(ODD, 0, 4),
            labels=(Label(Span(ODD, 5, 8), "la\x0bbel"),),
            notes=("one\ntwo",),
            help="help\r",
        ),
        Diagnostic(code="DFC998", severity=Severity.INFO, message="no span", span=None),
        Diagnostic(
            code="DFC997", severity=Severity.ERROR, message="a\ttab", span=Span(ODD, 14, 16)
        ),
    ]


def printed_by_rich(console: Console, diags: list[Diagnostic]) -> None:
    for d in diags:
        console.print(render_text(d), end="")
        console.print()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"force_terminal": True},
        {"force_terminal": True, "no_color": True},
        {"force_terminal": True, "color_system": "standard"},
        {"force_terminal": True, "color_system": "truecolor"},
    ],
)
def test_print_diagnostics_writes_what_rich_prints(options: dict[str, object]) -> None:
    outputs = []
    for write in (printed_by_rich, print_diagnostics):
        buffer = io.StringIO()
        console = Console(file=buffer, highlight=False, soft_wrap=True, **options)  # type: ignore[arg-type]
        write(console, diagnostics())
        console.print("1 error in 1 file")
        outputs.append(buffer.getvalue())
    assert outputs[0] == outputs[1]
    assert ("\x1b[" in outputs[0]) == (options.get("force_terminal") is True)


def _diag(severity: Severity) -> Diagnostic:
    return Diagnostic(code="DFC999", severity=severity, message="m", span=None)


@pytest.mark.parametrize(
    ("severities", "files", "line"),
    [
        ((), 1, "checked 1 file: no problems"),
        ((), 2, "checked 2 files: no problems"),
        ((Severity.HINT,), 1, "checked 1 file: no problems (1 hint)"),
        (
            (Severity.INFO, Severity.HINT, Severity.HINT),
            1,
            "checked 1 file: no problems (1 info, 2 hints)",
        ),
        ((Severity.ERROR, Severity.HINT), 2, "checked 2 files: 1 error, 1 hint"),
        ((Severity.WARNING, Severity.WARNING), 1, "checked 1 file: 2 warnings"),
    ],
)
def test_one_summary_for_any_number_of_files_and_diagnostics(
    severities: tuple[Severity, ...], files: int, line: str
) -> None:
    assert summary([_diag(s) for s in severities], files) == line
