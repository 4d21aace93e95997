"""Diagnostics as people and programs read them: rustc-style text (with rich) and JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.text import Text

from dfc.diagnostics import Diagnostic, Role, Severity, render, render_plain

_STYLE: dict[Role, str] = {
    "error": "bold red",
    "warning": "bold yellow",
    "info": "bold blue",
    "hint": "bold cyan",
    "strong": "bold",
    "frame": "bold blue",
    "": "",
}


def render_text(diag: Diagnostic) -> Text:
    """One diagnostic as rich Text (`dfc.diagnostics.render`, coloured by role)."""
    out = Text()
    for text, role in render(diag):
        out.append(text, style=_STYLE[role])
    return out


def plain(diag: Diagnostic) -> str:
    """The text rendering without colour (snapshots, logs)."""
    return render_plain(diag)


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
