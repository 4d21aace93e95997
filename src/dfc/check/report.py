"""The checker's view of the diagnostics sink: adds template-expansion context to each finding."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dfc.diagnostics import Diagnostic, Diagnostics, Label, Severity
from dfc.source import Span


class Reporter:
    """Writes diagnostics; a finding inside an expanded template also points at the calls.

    ``trails`` maps ``id(node)`` of expanded nodes to the template calls that produced them,
    outermost first (see `CheckedWorkflow.trails`).
    """

    def __init__(self, sink: Diagnostics, trails: Mapping[int, tuple[Span, ...]] | None = None):
        self.sink = sink
        self.trails: Mapping[int, tuple[Span, ...]] = trails if trails is not None else {}

    def emit(
        self,
        severity: Severity,
        code: str,
        message: str,
        span: Span | None,
        *,
        node: object = None,
        labels: Sequence[Label] = (),
        notes: Sequence[str] = (),
        help: str | None = None,
    ) -> Diagnostic:
        trail = self.trails.get(id(node), ()) if node is not None else ()
        all_labels = (*labels, *(Label(s, "in this template call") for s in trail))
        d = Diagnostic(
            code=code,
            severity=severity,
            message=message,
            span=span,
            labels=tuple(all_labels),
            notes=tuple(notes),
            help=help,
        )
        self.sink.add(d)
        return d

    def error(self, code: str, message: str, span: Span | None, **kw: object) -> Diagnostic:
        return self.emit(Severity.ERROR, code, message, span, **kw)  # type: ignore[arg-type]

    def warning(self, code: str, message: str, span: Span | None, **kw: object) -> Diagnostic:
        return self.emit(Severity.WARNING, code, message, span, **kw)  # type: ignore[arg-type]

    def info(self, code: str, message: str, span: Span | None, **kw: object) -> Diagnostic:
        return self.emit(Severity.INFO, code, message, span, **kw)  # type: ignore[arg-type]

    def hint(self, code: str, message: str, span: Span | None, **kw: object) -> Diagnostic:
        return self.emit(Severity.HINT, code, message, span, **kw)  # type: ignore[arg-type]
