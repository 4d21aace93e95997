"""Attach a file's comments to AST nodes so that ``dfc fmt`` keeps them.

The AST has no comment fields; the printer re-lexes the module's source file and attaches each
comment to an *anchor*, a place the printer can always put on a line of its own: a declaration,
the workflow, an element of a ``~>``/``&``/``|`` chain, a branch of ``?> !>``, a loop body, an
argument of a call.

- A comment with code before it on its line, right after an anchor (only blanks, line breaks
  and ``, ; )`` between), is a *trailing* comment of that anchor: printed at the end of the
  anchor's last line (after the ``)`` of a parenthesised block it ends).
- Any other comment *leads* the first anchor that starts after it (the outermost one when
  several start there): printed on the lines just before it.
- Comments after the last anchor are printed at the end of the file.

A group (chain, call, conditional) holding a commented anchor is never printed on one line.
Attachment only depends on what comes before/after a comment, which the printer preserves, so
formatting is idempotent with comments too.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, assert_never

from dfc import ast
from dfc.syntax.layout import Call, Chain, form, start_call
from dfc.syntax.lexer import Comment, lex


@dataclass(slots=True)
class CommentNotes:
    """Comments by anchor (``id`` of the node or literal), and the groups they force to break."""

    leading: dict[int, list[Comment]] = field(default_factory=dict)
    trailing: dict[int, list[Comment]] = field(default_factory=dict)
    must_break: set[int] = field(default_factory=set)
    file_trailing: list[Comment] = field(default_factory=list)
    text: str = ""

    def blank_line_before(self, start: int, prev_end: int | None) -> bool:
        """Whether the source had an empty line between ``prev_end`` and ``start``."""
        if prev_end is None or not self.text or prev_end > start:
            return False
        return self.text.count("\n", prev_end, start) >= 2


@dataclass(frozen=True, slots=True)
class _Anchor:
    key: int
    start: int
    end: int
    depth: int
    enclosing: tuple[int, ...]
    expression: bool = False  # a SQL expression argument (pg grammar)


def anchor_children(node: ast.Expr) -> Iterator[tuple[ast.Expr | ast.LitArg, bool]]:
    """The children the printer lays out under ``node``: (child, is_anchor) pairs.

    Follows `dfc.syntax.layout`, as the printer does: chains are flattened; a ``|=>`` chain is
    printed hugging its operands, so they are not anchors.
    """
    how = form(node)
    match how:
        case Chain(elements=chain):
            hug = isinstance(node, ast.Bind)
            for el in chain:
                yield el, not hug
        case Call(args=args):
            for _label, value in args:
                yield value, True
        case ast.If(cond=c, then=t, orelse=e):
            yield c, True
            yield t, True
            if e is not None:
                yield e, True
        case ast.Loop(body=b):
            yield b, True
        case ast.Str() | ast.Name() | ast.Invalid():
            pass
        case _:
            assert_never(how)


def attach(module: ast.Module) -> CommentNotes:
    """Find the comments of ``module``'s source file and attach them to anchors."""
    file = module.span.file
    notes = CommentNotes(text=file.text)
    if not file.text:
        return notes
    anchors = _collect(module)
    # A comment inside a SQL expression argument is part of its text, printed with it.
    inside = [(a.start, a.end) for a in anchors if a.expression]
    comments = [c for c in lex(file).comments if not any(s <= c.start < e for s, e in inside)]
    if not comments:
        return notes
    by_start = sorted(anchors, key=lambda a: (a.start, a.depth))
    starts = [a.start for a in by_start]
    by_end = sorted(anchors, key=lambda a: (a.end, -a.depth))
    ends = [a.end for a in by_end]
    text = file.text
    last: tuple[_Anchor, Comment] | None = None  # the previous trailing comment and its anchor
    for c in comments:
        line_start = text.rfind("\n", 0, c.start) + 1
        if text[line_start : c.start].strip():
            best = None
            if (
                last is not None
                and last[1].block
                and not text[last[1].end : c.start].strip(" \t,;)")
            ):
                best = last[0]  # `x /* a */ /* b */`: both trail x
            else:
                k = bisect.bisect_right(ends, c.start) - 1
                if k >= 0:
                    # The anchor ending last before the comment; among several ending there,
                    # the outermost (sorted last by -depth). Only closing punctuation may stand
                    # between: `x  -- c`, `x,  -- c`, or after the `)` of a block ending with x.
                    cand = by_end[k]
                    if not text[cand.end : c.start].strip(" \t\r\n,;)"):
                        best = cand
            # A `--` comment ends its line: an anchor gets at most one, after its block comments.
            if best is not None and not any(not t.block for t in notes.trailing.get(best.key, ())):
                notes.trailing.setdefault(best.key, []).append(c)
                notes.must_break.update(best.enclosing)
                last = (best, c)
                continue
        last = None
        k = bisect.bisect_left(starts, c.end)
        if k < len(by_start):
            a = by_start[k]
            notes.leading.setdefault(a.key, []).append(c)
            notes.must_break.update(a.enclosing)
        else:
            notes.file_trailing.append(c)
    return notes


def _collect(module: ast.Module) -> list[_Anchor]:
    out: list[_Anchor] = []
    stack: list[tuple[Any, int, tuple[int, ...]]] = []

    def anchor(obj: Any, depth: int, enclosing: tuple[int, ...]) -> None:
        sp = getattr(obj, "span", None)
        if sp is not None:
            expression = isinstance(obj, ast.SqlExpr)
            out.append(_Anchor(id(obj), sp.start, sp.end, depth, enclosing, expression))

    for d in module.decls:
        anchor(d, 0, ())
        if isinstance(d, ast.Def):
            anchor(d.body, 1, (id(d),))
            stack.append((d.body, 1, (id(d),)))
            for p in d.params:
                if p.default is not None:
                    stack.append((p.default, 1, (id(d),)))
    wf = module.workflow
    if wf is not None:
        anchor(wf, 0, ())
        call = start_call(wf)
        if call is not None:
            for _label, value in call.args:
                anchor(value, 1, (id(wf),))
                stack.append((value, 1, (id(wf),)))
        else:
            stack.append((wf.body, 0, (id(wf),)))
    while stack:
        node, depth, enclosing = stack.pop()
        if isinstance(node, ast.Str | ast.Num | ast.Null | ast.Bool | ast.SqlExpr):
            continue
        inner = (*enclosing, id(node))
        for child, is_anchor in anchor_children(node):
            if is_anchor:
                anchor(child, depth + 1, inner)
            stack.append((child, depth + 1, inner))
    return out
