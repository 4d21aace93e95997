"""Diagnostics as people and programs read them: rustc-style text (with rich) and JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.text import Text

from dfc.diagnostics import Diagnostic, Severity
from dfc.source import Span

_STYLE = {
    Severity.ERROR: "bold red",
    Severity.WARNING: "bold yellow",
    Severity.INFO: "bold blue",
    Severity.HINT: "bold cyan",
}


def render_text(diag: Diagnostic) -> Text:
    """One diagnostic as rich Text: header, location, source lines with carets, notes, help."""
    style = _STYLE[diag.severity]
    out = Text()
    out.append(f"{diag.severity}[{diag.code}]", style=style)
    out.append(f": {diag.message}\n", style="bold")
    if diag.span is None:
        _tail(out, diag, "")
        return out
    line, col = diag.span.start_line_col
    same_file = [lab for lab in diag.labels if lab.span.file.name == diag.span.file.name]
    other = [lab for lab in diag.labels if lab.span.file.name != diag.span.file.name]
    marks = [(diag.span, "", style, "^")] + [
        (lab.span, lab.message, "bold blue", "-") for lab in same_file
    ]
    gutter = len(str(max(m[0].start_line_col[0] for m in marks)))
    pad = " " * gutter
    out.append(f"{pad}--> ", style="bold blue")
    out.append(f"{diag.span.file.name}:{line}:{col}\n")
    out.append(f"{pad} |\n", style="bold blue")
    # Each source line is shown once, in file order, with the marks of every span starting on it.
    by_line: dict[int, list[tuple[Span, str, str, str]]] = {}
    for m in marks:
        by_line.setdefault(m[0].start_line_col[0], []).append(m)
    for number in sorted(by_line):
        _snippet(out, number, by_line[number], gutter)
    for lab in other:
        out.append(f"{pad} = ", style="bold blue")
        out.append(f"{lab.message}: {lab.span}\n")
    _tail(out, diag, pad)
    return out


def _snippet(out: Text, number: int, marks: list[tuple[Span, str, str, str]], gutter: int) -> None:
    file = marks[0][0].file
    text = file.line_text(number).expandtabs(1)
    out.append(f"{number:>{gutter}} | ", style="bold blue")
    out.append(text + "\n")
    for span, message, style, mark in marks:
        _, col = span.start_line_col
        end_line, end_col = span.end_line_col
        width = max(1, end_col - col) if end_line == number else max(1, len(text) - col + 1)
        out.append(f"{' ' * gutter} | ", style="bold blue")
        out.append(" " * (col - 1))
        out.append(mark * width + (f" {message}" if message else ""), style=style)
        out.append("\n")


def _tail(out: Text, diag: Diagnostic, pad: str) -> None:
    for note in diag.notes:
        out.append(f"{pad} = ", style="bold blue")
        out.append("note: ", style="bold")
        out.append(note + "\n")
    if diag.help:
        out.append(f"{pad} = ", style="bold blue")
        out.append("help: ", style="bold")
        out.append(diag.help + "\n")


def plain(diag: Diagnostic) -> str:
    """The text rendering without colour (snapshots, logs)."""
    return render_text(diag).plain


def print_diagnostics(console: Console, diags: Iterable[Diagnostic]) -> None:
    for d in diags:
        console.print(render_text(d), end="")
        console.print()


def summary(diags: Sequence[Diagnostic], files: int) -> str:
    """``2 errors, 1 warning in 3 files``."""
    counts = {s: sum(1 for d in diags if d.severity is s) for s in Severity}
    parts = []
    for sev, word in ((Severity.ERROR, "error"), (Severity.WARNING, "warning")):
        n = counts[sev]
        if n:
            parts.append(f"{n} {word}{'s' if n != 1 else ''}")
    what = ", ".join(parts) if parts else "no problems"
    return f"{what} in {files} file{'s' if files != 1 else ''}"


def to_json(diags: Iterable[Diagnostic]) -> str:
    return json.dumps([d.to_dict() for d in diags], indent=2, ensure_ascii=False)
