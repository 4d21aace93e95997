"""Diagnostics as people and programs read them: rustc-style text (with rich) and JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.control import strip_control_codes
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
    """Print diagnostics as rich prints their `render_text`, each followed by an empty line.

    The text is written directly, coloured with the codes rich uses on this console: rich lays
    out every piece of text on its own, about a millisecond per diagnostic, which made
    ``dfc check`` of a large file spend more time printing its hints than checking it. rich
    still prints a diagnostic containing a tab (it expands tabs by cell width) and on consoles
    that are not a stream of text (legacy Windows, Jupyter, recording).
    """
    direct = not (console.legacy_windows or console.is_jupyter or console.record)
    colours = _Colours(console) if direct else None
    for d in diags:
        pieces = render(d)
        if colours is None or any("\t" in text for text, _ in pieces):
            console.print(render_text(d), end="")
            console.print()
            continue
        out = [colours.paint(strip_control_codes(text), role) for text, role in pieces]
        out.append("\n")
        console.file.write("".join(out))


class _Colours:
    """The escape codes around a piece of text of each role, as rich writes them to a console
    (none when it does not colour), found by letting rich print one character per role."""

    def __init__(self, console: Console) -> None:
        self.codes: dict[Role, tuple[str, str]] = {}
        for role, style in _STYLE.items():
            with console.capture() as capture:
                console.print(Text("x", style=style), end="")
            before, _, after = capture.get().partition("x")
            self.codes[role] = (before, after)

    def paint(self, text: str, role: Role) -> str:
        before, after = self.codes[role]
        if not (before or after) or not text:
            return text
        # rich styles each line apart and writes the line breaks without style.
        return "\n".join(before + line + after if line else "" for line in text.split("\n"))


def summary(diags: Sequence[Diagnostic], files: int) -> str:
    """One line for any number of files and diagnostics: ``checked 3 files: 2 errors, 1
    warning``, ``checked 1 file: no problems (2 hints)``. Errors and warnings are problems;
    infos and hints are counted beside them."""
    counts = {s: sum(1 for d in diags if d.severity is s) for s in Severity}
    problems = [_count(counts[s], s) for s in (Severity.ERROR, Severity.WARNING) if counts[s]]
    notes = [_count(counts[s], s) for s in (Severity.INFO, Severity.HINT) if counts[s]]
    what = ", ".join(problems + notes) if problems else "no problems"
    if notes and not problems:
        what += f" ({', '.join(notes)})"
    return f"checked {files} file{'s' if files != 1 else ''}: {what}"


def _count(n: int, severity: Severity) -> str:
    return f"{n} {severity.value}{'s' if n != 1 else ''}"


def to_json(diags: Iterable[Diagnostic]) -> str:
    return json.dumps([d.to_dict() for d in diags], indent=2, ensure_ascii=False)
