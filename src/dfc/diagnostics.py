"""The one type for every error, warning and hint a user can see, and the sink passes write to.

Codes are ``DFC`` + three digits grouped by stage: 1xx syntax, 2xx bindings, 3xx SQL,
4xx structure and literals, 5xx plan/deploy/database, 6xx runtime. A code is never reused.
Each code is registered once in `dfc.codes` with a title and an explanation.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from dfc.source import Span


class Severity(enum.StrEnum):
    """How bad a diagnostic is; only ``ERROR`` fails a check."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    HINT = "hint"


@dataclass(frozen=True, slots=True)
class Label:
    """A secondary span with a short message ("first bound here")."""

    span: Span
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnostic:
    """A finding about the user's input, located by its primary span.

    ``message`` is one plain-text sentence (no markup); ``help`` says what to do.
    """

    code: str
    severity: Severity
    message: str
    span: Span | None
    labels: tuple[Label, ...] = ()
    notes: tuple[str, ...] = ()
    help: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str]:
        if self.span is None:
            return ("", -1, -1, self.code)
        return (self.span.file.name, self.span.start, self.span.end, self.code)

    def to_dict(self) -> dict[str, object]:
        """The one serialisation of a diagnostic; every output format starts from it."""
        out: dict[str, object] = {
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
        }
        if self.span is not None:
            d = self.span.to_dict()
            out.update(
                file=d["file"],
                line=d["line"],
                column=d["column"],
                end_line=d["end_line"],
                end_column=d["end_column"],
            )
        else:
            out.update(file=None, line=None, column=None, end_line=None, end_column=None)
        out["labels"] = [{"message": lab.message, **_pos(lab.span)} for lab in self.labels]
        out["notes"] = list(self.notes)
        out["help"] = self.help
        return out


def _pos(span: Span) -> dict[str, object]:
    d = span.to_dict()
    return {k: d[k] for k in ("file", "line", "column", "end_line", "end_column")}


@dataclass(slots=True)
class Diagnostics:
    """A sink that passes append to; iterating yields diagnostics in stable display order."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, diag: Diagnostic) -> None:
        self.items.append(diag)

    def extend(self, diags: Iterable[Diagnostic]) -> None:
        self.items.extend(diags)

    def error(self, code: str, message: str, span: Span | None, **kw: object) -> Diagnostic:
        return self._emit(Severity.ERROR, code, message, span, kw)

    def warning(self, code: str, message: str, span: Span | None, **kw: object) -> Diagnostic:
        return self._emit(Severity.WARNING, code, message, span, kw)

    def info(self, code: str, message: str, span: Span | None, **kw: object) -> Diagnostic:
        return self._emit(Severity.INFO, code, message, span, kw)

    def hint(self, code: str, message: str, span: Span | None, **kw: object) -> Diagnostic:
        return self._emit(Severity.HINT, code, message, span, kw)

    def _emit(
        self, sev: Severity, code: str, message: str, span: Span | None, kw: dict[str, object]
    ) -> Diagnostic:
        d = Diagnostic(code=code, severity=sev, message=message, span=span, **kw)  # type: ignore[arg-type]
        self.items.append(d)
        return d

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        # Deduplicate: recovery can report the same problem twice through two paths.
        seen: set[tuple[object, ...]] = set()
        out = []
        for d in sorted(self.items, key=Diagnostic.sort_key):
            key = (d.code, d.message, d.sort_key())
            if key not in seen:
                seen.add(key)
                out.append(d)
        return out

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.sorted())

    def __len__(self) -> int:
        return len(self.items)


# -- rendering ------------------------------------------------------------------------------------

Role: TypeAlias = Literal["error", "warning", "info", "hint", "strong", "frame", ""]
"""What a piece of rendered text is, for a front end that colours it: a severity (the header and
the primary carets), ``strong`` (the message, "note:", "help:"), ``frame`` (gutters, arrows and
the carets of labels), or plain text."""

Segment: TypeAlias = tuple[str, Role]

_ROLES: dict[Severity, Role] = {
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.INFO: "info",
    Severity.HINT: "hint",
}


def render(diag: Diagnostic) -> list[Segment]:
    """One diagnostic rustc-style, as text segments with their roles: header, location, the
    source lines with carets under the spans, notes, help. Joined, the texts are the plain
    rendering (`render_plain`); the CLI colours them by role."""
    out: list[Segment] = []
    sev = _ROLES[diag.severity]
    out.append((f"{diag.severity}[{diag.code}]", sev))
    out.append((f": {diag.message}\n", "strong"))
    if diag.span is None:
        _tail(out, diag, "")
        return out
    line, col = diag.span.start_line_col
    same_file = [lab for lab in diag.labels if lab.span.file.name == diag.span.file.name]
    other = [lab for lab in diag.labels if lab.span.file.name != diag.span.file.name]
    marks: list[tuple[Span, str, Role, str]] = [(diag.span, "", sev, "^")] + [
        (lab.span, lab.message, "frame", "-") for lab in same_file
    ]
    gutter = len(str(max(m[0].start_line_col[0] for m in marks)))
    pad = " " * gutter
    out.append((f"{pad}--> ", "frame"))
    out.append((f"{diag.span.file.name}:{line}:{col}\n", ""))
    out.append((f"{pad} |\n", "frame"))
    # Each source line is shown once, in file order, with the marks of every span starting on it.
    by_line: dict[int, list[tuple[Span, str, Role, str]]] = {}
    for m in marks:
        by_line.setdefault(m[0].start_line_col[0], []).append(m)
    for number in sorted(by_line):
        _snippet(out, number, by_line[number], gutter)
    for lab in other:
        out.append((f"{pad} = ", "frame"))
        out.append((f"{lab.message}: {lab.span}\n", ""))
    _tail(out, diag, pad)
    return out


def _snippet(
    out: list[Segment], number: int, marks: list[tuple[Span, str, Role, str]], gutter: int
) -> None:
    file = marks[0][0].file
    text = file.line_text(number).expandtabs(1)
    out.append((f"{number:>{gutter}} | ", "frame"))
    out.append((text + "\n", ""))
    for span, message, role, mark in marks:
        _, col = span.start_line_col
        end_line, end_col = span.end_line_col
        width = max(1, end_col - col) if end_line == number else max(1, len(text) - col + 1)
        out.append((f"{' ' * gutter} | ", "frame"))
        out.append((" " * (col - 1), ""))
        out.append((mark * width + (f" {message}" if message else ""), role))
        out.append(("\n", ""))


def _tail(out: list[Segment], diag: Diagnostic, pad: str) -> None:
    for note in diag.notes:
        out.append((f"{pad} = ", "frame"))
        out.append(("note: ", "strong"))
        out.append((note + "\n", ""))
    if diag.help:
        out.append((f"{pad} = ", "frame"))
        out.append(("help: ", "strong"))
        out.append((diag.help + "\n", ""))


def render_plain(diag: Diagnostic) -> str:
    """`render` without colour (snapshots, logs, an instance's stored error)."""
    return "".join(text for text, _ in render(diag))


class DfcError(Exception):
    """An error the user can act on, raised outside the checking passes (database, files, CLI).

    Carries a one-sentence message and an optional hint; the CLI prints both without a traceback.
    """

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code
