"""One open document, analysed: the diagnostics of ``dfc check`` and an index of its names.

The analysis is the checker's own (`dfc.compiler.check_source`, with an `Insight` that keeps
the expanded body and the SQL facts whatever the checker found), so the server reports exactly
what ``dfc check`` reports. On top of it the document indexes, in the file as written (before
template expansion, so that every position is one the user can see), each place a name is
defined or used:

- ``binding``: ``|=> 'name'`` and ``df.as(x, 'name')`` define, ``$name`` in step text and
  ``df.if_rows('name', ...)`` use;
- ``param``: ``param name ...`` defines, ``{name}`` uses;
- ``template``: ``def name(...)`` defines, ``name(...)`` calls use;
- ``module``: the path of an ``import``.

An occurrence's span covers the name alone (inside the quotes, after the ``$``, inside the
braces), which is what a rename replaces.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, assert_never

from dfc import ast
from dfc.check import Insight
from dfc.check.bindings import Shape, Visible, shape, visible_bindings
from dfc.check.expand import FileLoader, LoadedModule
from dfc.check.refs import Ref, scan
from dfc.check.sql import sql_refs
from dfc.check.walk import texts
from dfc.compiler import Compilation, check_source
from dfc.diagnostics import Diagnostic, Diagnostics
from dfc.source import SourceFile, Span
from dfc.syntax.lexer import Lexed, lex

Kind = Literal["binding", "param", "template", "module"]


@dataclass(frozen=True, slots=True)
class Occurrence:
    """A name defined or used at ``span`` (the name's characters only).

    ``node`` is the construct that defines (`ast.Bind`, `ast.Param`, `ast.Def`, `ast.Import`) or
    the call that uses a template (`ast.TemplateCall`); None for references in text.
    """

    kind: Kind
    name: str
    span: Span
    defines: bool
    node: ast.Node | None = None


@dataclass(slots=True)
class Document:
    """An analysed text (`analyze`)."""

    source: SourceFile
    compilation: Compilation
    insight: Insight
    occurrences: list[Occurrence] = field(default_factory=list)
    _lexed: Lexed | None = None

    def lexed(self) -> Lexed:
        """The tokens and comments of the text (made once: a large file takes a while)."""
        if self._lexed is None:
            self._lexed = lex(self.source)
        return self._lexed

    @property
    def module(self) -> ast.Module | None:
        return self.compilation.module

    @property
    def diagnostics(self) -> list[Diagnostic]:
        """What ``dfc check`` reports for this text, in its order."""
        return self.compilation.sorted_diagnostics

    @property
    def path(self) -> Path | None:
        return None if self.source.name.startswith("<") else Path(self.source.name)

    # -- lookups ----------------------------------------------------------------------------

    def at(self, offset: int) -> Occurrence | None:
        """The occurrence whose name holds ``offset`` (or ends right before it)."""
        best: Occurrence | None = None
        for o in self.occurrences:
            if o.span.start <= offset <= o.span.end and (
                best is None or o.span.end - o.span.start < best.span.end - best.span.start
            ):
                best = o
        return best

    def named(self, kind: Kind, name: str) -> list[Occurrence]:
        """Every occurrence of ``name`` as a ``kind``, in file order."""
        return [o for o in self.occurrences if o.kind == kind and o.name == name]

    def definitions(self, occ: Occurrence) -> list[Occurrence]:
        """Where the name of ``occ`` is defined in this file."""
        return [o for o in self.named(occ.kind, occ.name) if o.defines]

    def step_at(self, offset: int) -> ast.Expr | None:
        """The step of the expanded workflow whose text (SQL, HTTP, break value) holds
        ``offset``, written in this file (not in a template body)."""
        if self.insight.body is None:
            return None
        for n in ast.preorder(self.insight.body):
            for _, s in texts(n):
                if s.span.file is self.source and s.span.start <= offset <= s.span.end:
                    return n
        return None

    def visible(self, offset: int) -> Visible | None:
        """The bindings visible to the step whose text holds ``offset`` (see `visible_bindings`)."""
        step = self.step_at(offset)
        if step is None or self.insight.body is None:
            return None
        return visible_bindings(self.insight.body, self.insight.sql_facts, step)

    def shapes(self, binds: list[ast.Bind]) -> list[Shape]:
        """The result shapes of bindings of this file (expanded as the checker saw them)."""
        if self.insight.body is None:
            return []
        starts = {b.name.span.start for b in binds}
        return [
            shape(n.node, lambda s: self.insight.sql_facts.get(id(s)))
            for n in ast.preorder(self.insight.body)
            if isinstance(n, ast.Bind)
            and n.name.span.file is self.source
            and n.name.span.start in starts
        ]

    def imported(self) -> Iterator[tuple[ast.Import, LoadedModule]]:
        """The modules this file imports that can be found, with the imports naming them."""
        if self.module is None:
            return
        loader = FileLoader()
        for d in self.module.decls:
            if isinstance(d, ast.Import):
                loaded = loader.load(d.path.value, self.path, Diagnostics())
                if loaded is not None:
                    yield d, loaded


def analyze(text: str, name: str) -> Document:
    """Parse and check ``text`` as the file ``name`` (a path, or ``<...>`` for an unsaved
    buffer) exactly as ``dfc check`` does, and index its names."""
    source = SourceFile(name, text)
    insight = Insight()
    comp = check_source(source, insight=insight)
    doc = Document(source, comp, insight)
    if comp.module is not None:
        doc.occurrences = sorted(_index(comp.module), key=lambda o: (o.span.start, o.span.end))
    return doc


# -- the index ---------------------------------------------------------------------------------

_PARAM_NAME = re.compile(r"param\s+([^\W\d]\w*)", re.IGNORECASE)


def _index(module: ast.Module) -> Iterator[Occurrence]:
    for d in module.decls:
        match d:
            case ast.Param():
                m = _PARAM_NAME.match(d.span.text)
                if m is not None:
                    at = d.span.start + m.start(1)
                    yield Occurrence("param", d.name, d.span.at(at, at + len(d.name)), True, d)
            case ast.Def():
                if d.name_span is not None:
                    yield Occurrence("template", d.name, d.name_span, True, d)
                yield from _body(d.body)
            case ast.Import():
                yield Occurrence("module", d.path.value, d.path.span, False, d)
            case ast.Schedule():
                pass
            case _:
                assert_never(d)
    if module.workflow is not None:
        yield from _body(module.workflow.body)


def _body(body: ast.Expr) -> Iterator[Occurrence]:
    for n in ast.preorder(body):
        if isinstance(n, ast.Bind) and isinstance(n.name, ast.Str):
            s = n.name
            yield Occurrence("binding", s.value, _inside(s, 0, len(s.value)), True, n)
        elif isinstance(n, ast.IfRows) and isinstance(n.name, ast.Str):
            s = n.name
            yield Occurrence("binding", s.value, _inside(s, 0, len(s.value)), False)
        elif isinstance(n, ast.TemplateCall):
            at = n.span.start
            yield Occurrence("template", n.name, n.span.at(at, at + len(n.name)), False, n)
            for a in n.args:
                if isinstance(a.value, ast.Str):  # a literal argument may be step text
                    yield from _refs(a.value, sql=False)
        for role, s in texts(n):
            yield from _refs(s, sql=role == "sql")


def _refs(s: ast.Str, *, sql: bool) -> Iterator[Occurrence]:
    refs: tuple[Ref, ...] | list[Ref] = sql_refs(s.value) if sql else scan(s.value)
    for r in refs:
        # The name starts after `$` or `{`.
        yield Occurrence(
            "binding" if r.kind == "result" else "param",
            r.name,
            _inside(s, r.start + 1, len(r.name)),
            False,
        )


def _inside(s: ast.Str, start: int, length: int) -> Span:
    """The file span of ``length`` value characters of ``s`` from ``start``."""
    return s.text_map.span(s.span.file, start, start + length)
