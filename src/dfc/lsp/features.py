"""What the server answers, computed from an analysed `Document` (no I/O, no server state).

Each function takes a document and offsets (and a `Positions` to speak the client's units) and
returns protocol values; `dfc.lsp.server` wires them to requests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import assert_never

from lsprotocol import types

from dfc import ast, catalogue
from dfc.check.bindings import Shape
from dfc.diagnostics import Diagnostic, Severity
from dfc.lsp.document import Document, Occurrence
from dfc.lsp.positions import Positions
from dfc.references import RESULT_NAME, SYSTEM_VARS
from dfc.resources import stdlib_dir
from dfc.source import Span
from dfc.syntax import format_module
from dfc.syntax.builtins import MEANINGS, SIGNATURES, Signature
from dfc.syntax.lexer import operator_text

SOURCE = "dfc"

_SEVERITIES = {
    Severity.ERROR: types.DiagnosticSeverity.Error,
    Severity.WARNING: types.DiagnosticSeverity.Warning,
    Severity.INFO: types.DiagnosticSeverity.Information,
    Severity.HINT: types.DiagnosticSeverity.Hint,
}


def uri_of(path: Path) -> str:
    return path.resolve().as_uri()


# -- diagnostics --------------------------------------------------------------------------------


def diagnostics(doc: Document, pos: Positions) -> list[types.Diagnostic]:
    """``dfc check``'s diagnostics of the document, as the protocol has them."""
    out = []
    for d in doc.diagnostics:
        where = ""
        if d.span is None:
            rng = pos.range(0, 0)
        elif d.span.file is doc.source:
            rng = pos.span_range(d.span)
        else:
            # In an imported module: shown at the top, saying where (as `dfc check` prints it).
            rng, where = pos.range(0, 0), f"{d.span}: "
        related = [
            types.DiagnosticRelatedInformation(
                types.Location(_uri(doc, lab.span.file.name), _range(doc, pos, lab.span)),
                lab.message,
            )
            for lab in d.labels
        ]
        message = where + d.message + (f"\nhelp: {d.help}" if d.help else "")
        message += "".join(f"\nnote: {n}" for n in d.notes)
        out.append(
            types.Diagnostic(
                range=rng,
                message=message,
                severity=_SEVERITIES[d.severity],
                code=d.code,
                source=SOURCE,
                related_information=related or None,
                tags=[types.DiagnosticTag.Unnecessary] if d.severity is Severity.HINT else None,
            )
        )
    return out


def _uri(doc: Document, name: str) -> str:
    if name == doc.source.name or name.startswith("<"):
        return uri_of(doc.path) if doc.path is not None else name
    if name.startswith("std/"):
        return uri_of(stdlib_dir() / name[4:])
    return uri_of(Path(name))


def _range(doc: Document, pos: Positions, span: Span) -> types.Range:
    if span.file is doc.source:
        return pos.span_range(span)
    return Positions(span.file.text).span_range(span)


# -- navigation ---------------------------------------------------------------------------------


def definition(doc: Document, pos: Positions, offset: int) -> list[types.Location]:
    """Where the name at ``offset`` is defined: a binding, a param, a template (also in an
    imported module), or the file an import names."""
    occ = doc.at(offset)
    if occ is None or doc.path is None:
        return []
    here = uri_of(doc.path)
    if occ.kind == "module":
        for imp, loaded in doc.imported():
            if imp is occ.node and loaded.path is not None:
                return [types.Location(uri_of(loaded.path), pos.range(0, 0))]
        return []
    local = doc.definitions(occ)
    if occ.kind == "binding" and not occ.defines:
        # The bindings that reach this step (expansion keeps the spans of what the file wrote).
        visible = doc.visible(offset)
        if visible is not None and occ.name in visible.reaching:
            reaching = {b.name.span.start for b in visible.reaching[occ.name]}
            local = [
                o
                for o in local
                if isinstance(o.node, ast.Bind) and o.node.name.span.start in reaching
            ] or local
    if local:
        return [types.Location(here, pos.span_range(o.span)) for o in local]
    if occ.kind == "template":
        for _, loaded in doc.imported():
            if loaded.module is None or loaded.path is None:
                continue
            for d in loaded.module.decls:
                if isinstance(d, ast.Def) and d.name == occ.name and d.name_span is not None:
                    p = Positions(loaded.source.text)
                    return [types.Location(uri_of(loaded.path), p.span_range(d.name_span))]
    return []


def references(
    doc: Document, pos: Positions, offset: int, include_declaration: bool
) -> list[types.Location]:
    """Every occurrence in the file of the name at ``offset``."""
    occ = doc.at(offset)
    if occ is None or doc.path is None or occ.kind == "module":
        return []
    return [
        types.Location(uri_of(doc.path), pos.span_range(o.span))
        for o in doc.named(occ.kind, occ.name)
        if include_declaration or not o.defines
    ]


def rename(doc: Document, pos: Positions, offset: int, new_name: str) -> types.WorkspaceEdit | None:
    """Rename the binding at ``offset`` everywhere in the file; raises `ValueError` with a
    sentence for the user when it cannot."""
    occ = doc.at(offset)
    if occ is None or occ.kind != "binding":
        raise ValueError("only a binding (`|=> 'name'` or `$name`) can be renamed")
    if not RESULT_NAME.match(new_name):
        raise ValueError(
            f"{new_name!r} is not a valid result name: use letters, digits and underscores, "
            "not starting with a digit"
        )
    if doc.path is None:
        return None
    edits = [
        types.TextEdit(pos.span_range(o.span), new_name) for o in doc.named("binding", occ.name)
    ]
    return types.WorkspaceEdit(changes={uri_of(doc.path): edits})


def prepare_rename(doc: Document, pos: Positions, offset: int) -> types.Range | None:
    occ = doc.at(offset)
    return pos.span_range(occ.span) if occ is not None and occ.kind == "binding" else None


# -- hover ---------------------------------------------------------------------------------------

_MAX_LINES = 12


def hover(doc: Document, pos: Positions, offset: int) -> types.Hover | None:
    """What the thing at ``offset`` is: a binding's statement and result columns, a param, a
    template's definition, a built-in's signature and meaning; and the explanation of each
    diagnostic there."""
    parts: list[str] = []
    rng: types.Range | None = None
    occ = doc.at(offset)
    builtin = _builtin_at(doc, offset) if occ is None else None
    if occ is not None:
        parts.append(_describe(doc, occ, offset))
        rng = pos.span_range(occ.span)
    elif builtin is not None:
        sig, start, end = builtin
        parts.append(_signature(sig))
        rng = pos.range(start, end)
    for d in doc.diagnostics:
        if (
            d.span is not None
            and d.span.file is doc.source
            and d.span.start <= offset <= d.span.end
        ):
            parts.append(_explanation(d))
    if not parts:
        return None
    return types.Hover(
        types.MarkupContent(types.MarkupKind.Markdown, "\n\n---\n\n".join(parts)), rng
    )


def _describe(doc: Document, occ: Occurrence, offset: int) -> str:
    match occ.kind:
        case "binding":
            binds = [o.node for o in doc.definitions(occ) if isinstance(o.node, ast.Bind)]
            visible = doc.visible(offset) if not occ.defines else None
            if visible is not None and occ.name in visible.reaching:
                binds = list(visible.reaching[occ.name])
            if not binds:
                return f"`${occ.name}`: no binding in this file"
            lines = [f"**`${occ.name}`** — bound by:"]
            for b in binds:
                lines.append(_code(_clip(b.node.span.text)))
            lines.append(_columns(doc.shapes(binds)))
            if visible is not None and occ.name in visible.partial:
                lines.append(
                    f"Bound on some paths only: write `${occ.name}?` to get NULL elsewhere."
                )
            return "\n\n".join(lines)
        case "param":
            params = [o.node for o in doc.definitions(occ) if isinstance(o.node, ast.Param)]
            if not params:
                if occ.name in SYSTEM_VARS:
                    return f"**`{{{occ.name}}}`** — a system variable every instance has"
                return f"`{{{occ.name}}}`: no `param {occ.name}` in this file"
            return f"**`{{{occ.name}}}`** — workflow parameter\n\n" + _code(params[0].span.text)
        case "template":
            defs = [o.node for o in doc.definitions(occ) if isinstance(o.node, ast.Def)]
            if not defs:
                for _, loaded in doc.imported():
                    if loaded.module is None:
                        continue
                    defs += [
                        d
                        for d in loaded.module.decls
                        if isinstance(d, ast.Def) and d.name == occ.name
                    ]
            if not defs:
                return f"`{occ.name}`: no template of this name"
            d = defs[0]
            where = "" if d.span.file is doc.source else f" (from `{d.span.file.name}`)"
            return f"**`{occ.name}`** — template{where}\n\n" + _code(_clip(d.span.text))
        case "module":
            return f"**import** `{occ.name}`"
    assert_never(occ.kind)


def _columns(shapes: list[Shape]) -> str:
    if not shapes:
        return "Result: not known (the file does not check yet)."
    s = shapes[0]
    if any(x != s for x in shapes[1:]) or s.kind == "unknown":
        return "Result: its columns are not known statically."
    match s.kind:
        case "rows":
            if s.returns_rows is False:
                return "Result: no rows (the statement returns none)."
            if s.fields is None:
                return "Result: rows; their columns are not known statically."
            return "Columns: " + ", ".join(f"`{c}`" for c in s.fields)
        case "record":
            return f"Result: {s.what}, with fields " + ", ".join(f"`{c}`" for c in s.fields or ())
        case "array":
            return f"Result: a JSON array with one element per branch ({len(s.elements)})."
    assert_never(s.kind)


def _signature(sig: Signature) -> str:
    return _code(sig.describe()) + "\n\n" + MEANINGS.get(sig.name, "")


def _explanation(d: Diagnostic) -> str:
    text = catalogue.explain(d.code)
    return text if text is not None else f"{d.code}: {d.message}"


def _code(text: str) -> str:
    return "```dfc\n" + text + "\n```"


def _clip(text: str) -> str:
    lines = text.splitlines()
    return "\n".join(lines[:_MAX_LINES] + (["..."] if len(lines) > _MAX_LINES else []))


def _builtin_at(doc: Document, offset: int) -> tuple[Signature, int, int] | None:
    """The ``df.name`` at ``offset``, from the lexer (the AST keeps no span of the name)."""
    for t in doc.lexed().tokens:
        start, end = t.start_pos or 0, t.end_pos or 0
        if start > offset:
            break
        if t.type == "DFNAME" and start <= offset <= end:
            sig = SIGNATURES.get(str(t.value))
            return None if sig is None else (sig, start, end)
    return None


# -- completion ---------------------------------------------------------------------------------

_DF = re.compile(r"\bdf\s*\.\s*(\w*)$", re.IGNORECASE)
_COLUMN = re.compile(r"\$([A-Za-z_]\w*)\.(\w*)$")
_RESULT = re.compile(r"\$(\w*)$")
_VAR = re.compile(r"\{(\w*)$")


def completion(doc: Document, offset: int) -> list[types.CompletionItem]:
    """What may be written at ``offset``: ``df.*`` functions (as snippets) after ``df.``,
    columns after ``$name.``, the names bound at that step after ``$`` (those bound on every
    path first, the others marked), parameters after ``{``; elsewhere built-ins and templates."""
    before = doc.source.text[max(0, offset - 200) : offset]
    if (m := _COLUMN.search(before)) is not None:
        return _column_items(doc, offset, m.group(1))
    if _RESULT.search(before) is not None:
        return _binding_items(doc, offset)
    if _VAR.search(before) is not None:
        return _param_items(doc)
    if _in_text(doc, offset):
        return []  # inside a string or a comment, only references complete
    if _DF.search(before) is not None:
        return [_builtin_item(sig, qualified=False) for sig in SIGNATURES.values()]
    templates = {o.name for o in doc.occurrences if o.kind == "template" and o.defines}
    for _, loaded in doc.imported():
        if loaded.module is not None:
            templates |= {d.name for d in loaded.module.decls if isinstance(d, ast.Def)}
    return [_builtin_item(sig, qualified=True) for sig in SIGNATURES.values()] + [
        types.CompletionItem(t, kind=types.CompletionItemKind.Function, detail="template")
        for t in sorted(templates)
    ]


def _in_text(doc: Document, offset: int) -> bool:
    lexed = doc.lexed()
    inside = [(t.start_pos or 0, t.end_pos or 0) for t in lexed.tokens if t.type == "STRING"]
    inside += [(c.start, c.end) for c in lexed.comments]
    return any(start < offset < end for start, end in inside)


def _builtin_item(sig: Signature, *, qualified: bool) -> types.CompletionItem:
    required = [p for p in sig.params if p.required]
    args = ", ".join(f"${{{i}:{p.name}}}" for i, p in enumerate(required, 1))
    name = f"df.{sig.name}" if qualified else sig.name
    return types.CompletionItem(
        name,
        kind=types.CompletionItemKind.Function,
        detail=sig.describe(),
        documentation=MEANINGS.get(sig.name),
        insert_text=f"{name}({args})",
        insert_text_format=types.InsertTextFormat.Snippet,
    )


def _binding_items(doc: Document, offset: int) -> list[types.CompletionItem]:
    visible = doc.visible(offset)
    if visible is None:
        names = sorted({o.name for o in doc.occurrences if o.kind == "binding" and o.defines})
        return [
            types.CompletionItem(n, kind=types.CompletionItemKind.Variable, detail="binding")
            for n in names
        ]
    items = [
        types.CompletionItem(
            n,
            kind=types.CompletionItemKind.Variable,
            detail="bound on every path to this step",
            sort_text=f"0{n}",
        )
        for n in sorted(visible.sure)
    ]
    items += [
        types.CompletionItem(
            f"{n}?",
            kind=types.CompletionItemKind.Variable,
            detail="bound on some paths only: NULL where it is not",
            filter_text=n,
            sort_text=f"1{n}",
            insert_text=f"{n}?",
        )
        for n in sorted(visible.partial)
    ]
    return items


def _column_items(doc: Document, offset: int, name: str) -> list[types.CompletionItem]:
    visible = doc.visible(offset)
    binds: list[ast.Bind]
    if visible is not None and name in visible.reaching:
        binds = list(visible.reaching[name])
    else:
        binds = [
            o.node for o in doc.named("binding", name) if o.defines and isinstance(o.node, ast.Bind)
        ]
    fields: list[str] = []
    for s in doc.shapes(binds):
        for f in s.fields or ():
            if f not in fields:
                fields.append(f)
    items = [
        types.CompletionItem(f, kind=types.CompletionItemKind.Field, detail=f"column of ${name}")
        for f in fields
    ]
    items.append(
        types.CompletionItem(
            "*", kind=types.CompletionItemKind.Operator, detail=f"all rows of ${name}"
        )
    )
    return items


def _param_items(doc: Document) -> list[types.CompletionItem]:
    names = sorted({o.name for o in doc.occurrences if o.kind == "param" and o.defines})
    items = [
        types.CompletionItem(n, kind=types.CompletionItemKind.Constant, detail="param")
        for n in names
    ]
    items += [
        types.CompletionItem(n, kind=types.CompletionItemKind.Constant, detail="system variable")
        for n in sorted(SYSTEM_VARS)
    ]
    return items


# -- formatting, symbols, folding ---------------------------------------------------------------


def formatting(doc: Document, pos: Positions) -> list[types.TextEdit]:
    """The whole document as ``dfc fmt`` prints it; no edit when it does not parse."""
    if doc.module is None or any(d.is_error and d.code.startswith("DFC1") for d in doc.diagnostics):
        return []
    out = format_module(doc.module)
    if out == doc.source.text:
        return []
    return [types.TextEdit(pos.range(0, len(doc.source.text)), out)]


def symbols(doc: Document, pos: Positions) -> list[types.DocumentSymbol]:
    """Params, templates, imports, and the workflow with its bindings."""
    out: list[types.DocumentSymbol] = []
    for o in doc.occurrences:
        if not o.defines or o.node is None:
            continue
        if o.kind == "param" and isinstance(o.node, ast.Param):
            out.append(_symbol(pos, o, o.node.span, types.SymbolKind.Constant, o.node.type))
        elif o.kind == "template" and isinstance(o.node, ast.Def):
            params = ", ".join(p.name for p in o.node.params)
            out.append(_symbol(pos, o, o.node.span, types.SymbolKind.Function, f"({params})"))
    for o in doc.occurrences:
        if o.kind == "module" and o.node is not None:
            out.append(_symbol(pos, o, o.node.span, types.SymbolKind.Module, "import"))
    wf = doc.module.workflow if doc.module is not None else None
    if wf is not None:
        binds = [
            _symbol(pos, o, o.node.span, types.SymbolKind.Variable, "binding")
            for o in doc.occurrences
            if o.kind == "binding"
            and o.defines
            and o.node is not None
            and wf.span.start <= o.span.start < wf.span.end
        ]
        name = wf.label.value if wf.label is not None else doc.source.stem
        whole = pos.span_range(wf.span)
        out.append(
            types.DocumentSymbol(
                name=name,
                kind=types.SymbolKind.Event,
                range=whole,
                selection_range=pos.span_range(wf.label.span) if wf.label else whole,
                detail="workflow",
                children=binds,
            )
        )
    return sorted(out, key=lambda s: (s.range.start.line, s.range.start.character))


def _symbol(
    pos: Positions, o: Occurrence, whole: Span, kind: types.SymbolKind, detail: str
) -> types.DocumentSymbol:
    r = pos.span_range(whole.cover(o.span))
    return types.DocumentSymbol(
        name=o.name, kind=kind, range=r, selection_range=pos.span_range(o.span), detail=detail
    )


def folding(doc: Document, pos: Positions) -> list[types.FoldingRange]:
    """Declarations, the workflow, multi-line expressions and literals, comment blocks."""
    spans: list[tuple[int, int, types.FoldingRangeKind | None]] = []
    if doc.module is not None:
        for d in doc.module.decls:
            spans.append((d.span.start, d.span.end, None))
            if isinstance(d, ast.Def):
                spans += [(n.span.start, n.span.end, None) for n in ast.preorder(d.body)]
        if doc.module.workflow is not None:
            wf = doc.module.workflow
            spans.append((wf.span.start, wf.span.end, None))
            spans += [(n.span.start, n.span.end, None) for n in ast.preorder(wf.body)]
    lexed = doc.lexed()
    run: list[tuple[int, int]] = []
    for c in lexed.comments:
        if c.block:
            spans.append((c.start, c.end, types.FoldingRangeKind.Comment))
        elif run and pos.position(c.start).line == pos.position(run[-1][0]).line + 1:
            run.append((c.start, c.end))
        else:
            if len(run) > 1:
                spans.append((run[0][0], run[-1][1], types.FoldingRangeKind.Comment))
            run = [(c.start, c.end)]
    if len(run) > 1:
        spans.append((run[0][0], run[-1][1], types.FoldingRangeKind.Comment))
    out: dict[int, types.FoldingRange] = {}
    for start, end, kind in spans:
        a, b = pos.position(start).line, pos.position(end).line
        if b > a and (a not in out or out[a].end_line < b):
            out[a] = types.FoldingRange(a, b, kind=kind)
    return [out[k] for k in sorted(out)]


# -- semantic tokens ----------------------------------------------------------------------------

TOKEN_TYPES = ["function", "variable", "parameter", "operator", "keyword"]
TOKEN_MODIFIERS = ["declaration", "defaultLibrary"]
_KEYWORDS = {"SELECT", "PARAM", "DEF", "IMPORT"}


def semantic_tokens(doc: Document, pos: Positions) -> list[int]:
    """Built-ins, templates, bindings and parameters (also inside step text), operators and
    keywords, encoded relative to each other as the protocol wants. Strings and comments are
    left to the TextMate grammar, which knows the SQL inside them."""
    found: list[tuple[int, int, int, int]] = []  # start, end, type, modifiers
    for t in doc.lexed().tokens:
        start, end = t.start_pos or 0, t.end_pos or 0
        if t.type == "DFNAME":
            found.append((start, end, 0, 2))
        elif operator_text(t.type) is not None:
            found.append((start, end, 3, 0))
        elif t.type in _KEYWORDS:
            found.append((start, end, 4, 0))
    kinds = {"binding": 1, "param": 2, "template": 0, "module": -1}
    for o in doc.occurrences:
        if kinds[o.kind] >= 0:
            found.append((o.span.start, o.span.end, kinds[o.kind], 1 if o.defines else 0))
    data: list[int] = []
    line, col = 0, 0
    last_end = -1
    for start, end, kind, mods in sorted(found):
        if start < last_end:
            continue  # tokens may not overlap
        a, b = pos.position(start), pos.position(end)
        if a.line != b.line:
            continue
        data += [
            a.line - line,
            a.character - col if a.line == line else a.character,
            b.character - a.character,
            kind,
            mods,
        ]
        line, col, last_end = a.line, a.character, end
    return data
