"""The canonical pretty-printer (``dfc fmt``): AST → source text that parses back to the same AST.

Canonical choices: operators wherever one exists (``a ~> b``, ``x |=> 'n'``, ``a & b``, ``a | b``,
``c ?> t !> e``, ``@> body``, ``a <-> undo``); ``df.join(a, b, c)`` for an n-ary join; built-in
arguments positional until the first omitted optional one, named after it (``df.http(url,
body => '...')``), df.retry options always named; ``NULL``/``TRUE``/``FALSE`` upper case; strings in
single quotes, or ``$$...$$`` when they contain a quote (with a ``$q$`` tag when ``$$`` occurs).

Layout: an expression is printed on one line when it fits in 100 columns. Otherwise a chain of
``~>``/``&``/``|`` at the start of a line puts one operand per line with the operator leading;
a call puts one argument per line, indented four spaces, ``)`` back at the line's indent; a
conditional puts ``?>`` and ``!>`` branches on their own lines; anything else that must break
mid-line is wrapped in parentheses, which changes nothing in the AST. ``|=>`` keeps the result
name on the line where its node ends.

Parentheses: where the grammar needs them, and around every operand that pg_durable's flat
reading (one precedence, left to right) would group differently (`dfc.syntax.flat`), so the
output means the same in pg_durable and never draws DFC420: ``a ~> (b & c)``,
``'x' |=> 'u' & ('y' |=> 'o')``, ``c ?> t !> (c2 ?> t2 !> e)``.

Comments are kept (see `dfc.syntax.comments`): leading comments on their own lines before the
declaration, workflow, chain element, branch or argument they precede, trailing comments at the
end of its line, the rest at the end of the file. Blank lines between top-level statements
are kept (one at most) and added between different kinds of declarations.
"""

from __future__ import annotations

from typing import Any, assert_never

from dfc import ast
from dfc.syntax.comments import CommentNotes, attach
from dfc.syntax.flat import PRECEDENCE, alike_in_flat
from dfc.syntax.layout import OPS, Call, Chain, chain_elements, form, start_call

WIDTH = 100


def prec(node: Any) -> int:
    """Binding strength for parenthesisation: 0 for atoms and calls, 7 for ``@>`` (loosest)."""
    if chain_elements(node) is not None:
        return PRECEDENCE[type(node)]
    if isinstance(node, ast.If):
        return 6
    if isinstance(node, ast.Loop) and node.cond is None:
        return 7
    return 0


Operand = tuple[type, int]
"""Where a child stands: the operator it is an operand of, and its index among the operands."""


def needs_parens(child: Any, max_prec: int, closed: bool, loop_ok: bool, at: Operand) -> bool:
    """Whether ``child``, operand ``at`` where at most ``max_prec`` binds, is parenthesised.

    ``closed``: something follows on the right, so the child may not end in an open ``@>`` or
    in a ``?>`` without ``!>``. ``loop_ok``: the position is the right operand of an operator,
    where an unparenthesised ``@>`` is allowed (it extends to the end). Beyond what the grammar
    needs, an operand that pg_durable's flat reading would group differently is parenthesised
    too, so that the output means the same there (it never draws DFC420).
    """
    if isinstance(child, ast.Loop) and child.cond is None:
        return closed or (max_prec < 7 and not loop_ok)
    if isinstance(child, ast.If) and child.orelse is None and closed:
        return True
    p = prec(child)
    return p > max_prec or (p > 0 and not alike_in_flat(*at, type(child)))


# -- literals ------------------------------------------------------------------------------------


def quote(value: str) -> str:
    """A string literal for ``value``: ``'...'``, or dollar quotes when it contains ``'`` or a
    line break (multi-line SQL reads best between ``$$``); ``$sql$``, ``$q2$``... when ``$$`` occurs."""
    if "'" not in value and "\n" not in value:
        return f"'{value}'"
    n = 0
    while True:
        delim = "$$" if n == 0 else ("$sql$" if n == 1 else f"$q{n}$")
        # The first occurrence of the delimiter must be the closing one.
        if (value + delim).find(delim) == len(value):
            return f"{delim}{value}{delim}"
        n += 1


def lit_text(lit: ast.LitArg) -> str:
    """The source text of a literal, a template-parameter name or a SQL expression."""
    if isinstance(lit, ast.Name):
        return lit.name
    if isinstance(lit, ast.SqlExpr):
        return lit.text
    cast = f"::{lit.cast}" if lit.cast else ""
    match lit:
        case ast.Str(value=v):
            return quote(v) + cast
        case ast.Num(text=t):
            return t + cast
        case ast.Null():
            return "NULL" + cast
        case ast.Bool(value=v):
            return ("TRUE" if v else "FALSE") + cast
    assert_never(lit)


_LITS = (ast.Str, ast.Num, ast.Null, ast.Bool, ast.Name, ast.SqlExpr)


# -- the printer ---------------------------------------------------------------------------------


class _Printer:
    def __init__(self, notes: CommentNotes) -> None:
        self.notes = notes
        self.memo: dict[tuple[int, bool], str | None] = {}

    def lead(self, obj: Any) -> list[str]:
        return [c.text for c in self.notes.leading.get(id(obj), ())]

    def trail(self, obj: Any) -> str:
        cs = self.notes.trailing.get(id(obj))
        return "".join("  " + c.text for c in cs) if cs else ""

    # -- one line ---------------------------------------------------------------------------

    def flat(self, e: Any, closed: bool) -> str | None:
        """``e`` on one line, or None when a comment inside forces it to break."""
        key = (id(e), closed)
        if key in self.memo:
            return self.memo[key]
        out = None if id(e) in self.notes.must_break else self._flat(e, closed)
        self.memo[key] = out
        return out

    def _flat(self, e: ast.Expr | ast.LitArg, closed: bool) -> str | None:
        if isinstance(e, _LITS):
            return lit_text(e)
        how = form(e)
        match how:
            case Chain(elements=chain):
                p, op = PRECEDENCE[type(e)], OPS[type(e)]
                parts: list[str] = []
                for i, el in enumerate(chain):
                    if i == 0:
                        s = self.flat_child(el, p, True, False, (type(e), 0))
                    elif isinstance(e, ast.Bind):
                        s = lit_text(el)
                    else:
                        last = i == len(chain) - 1
                        at = (type(e), 1)
                        s = self.flat_child(el, p - 1, closed if last else True, True, at)
                    if s is None:
                        return None
                    parts.append(s)
                return f" {op} ".join(parts)
            case ast.Str() | ast.Name():
                return lit_text(how)
            case ast.If(cond=c, then=t, orelse=None):
                cs = self.flat_child(c, 5, True, False, (ast.If, 0))
                ts = self.flat_child(t, 7, closed, True, (ast.If, 1))
                return None if cs is None or ts is None else f"{cs} ?> {ts}"
            case ast.If(cond=c, then=t, orelse=el):
                cs = self.flat_child(c, 5, True, False, (ast.If, 0))
                ts = self.flat_child(t, 6, True, False, (ast.If, 1))
                es = self.flat_child(el, 6, closed, True, (ast.If, 2))
                return None if cs is None or ts is None or es is None else f"{cs} ?> {ts} !> {es}"
            case ast.Loop(body=b):
                # An operator body is always parenthesised: `@> (a ~> b)` reads the same to a
                # pg_durable user, for whom `@> a ~> b` is `(@> a) ~> b`.
                bs = self.flat_child(b, 7, closed, True, (ast.Loop, 0))
                return None if bs is None else f"@> {bs}"
            case ast.Invalid():
                raise ValueError("cannot format an AST that contains errors (ast.Invalid)")
            case Call():
                return self.flat_call(how)
        assert_never(how)

    def flat_call(self, call: Call) -> str | None:
        """A call on one line (None when a comment inside forces it to break)."""
        texts: list[str] = []
        for label, v in call.args:
            s = self.flat_arg(v, call.template)
            if s is None:
                return None
            texts.append(f"{label} => {s}" if label else s)
        return f"{call.callee}({', '.join(texts)})"

    def flat_child(
        self, c: Any, max_prec: int, closed: bool, loop_ok: bool, at: Operand
    ) -> str | None:
        if needs_parens(c, max_prec, closed, loop_ok, at):
            s = self.flat(c, False)
            return None if s is None else f"({s})"
        return self.flat(c, closed)

    def flat_arg(self, v: Any, tcall: bool) -> str | None:
        if isinstance(v, _LITS):
            return lit_text(v)
        if tcall and isinstance(v, ast.Sql) and isinstance(v.query, ast.Str):
            # A bare string argument of a template stays a literal; a SQL node needs df.sql.
            return f"df.sql({lit_text(v.query)})"
        return self.flat(v, False)

    # -- several lines ----------------------------------------------------------------------

    def render(
        self,
        e: Any,
        ind: int,
        col: int,
        closed: bool,
        block: bool,
        suffix: str = "",
        trail: str = "",
    ) -> str:
        """``e`` starting at column ``col`` of a line indented ``ind``; ``block``: at line start.

        ``suffix`` (a ``,`` or ``;`` of the caller) ends the last line; ``trail`` (a trailing
        comment of ``e``) follows it, or goes inside when ``e`` is printed as a ``( ... )`` block,
        so that it stays next to ``e`` when the output is read again.
        """
        f = self.flat(e, closed)
        if f is not None and (
            ("\n" not in f and col + len(f) + len(suffix) <= WIDTH) or isinstance(e, _LITS)
        ):
            return f + suffix + trail
        how = form(e)
        match how:
            case ast.Str():
                return lit_text(how) + suffix + trail
            case Chain(elements=chain):
                if isinstance(e, ast.Bind):
                    return self.hug(chain, ind, col) + suffix + trail
                if block:
                    return self.chain_block(e, chain, ind, closed, suffix + trail)
                return self.paren_block(e, ind, trail=trail) + suffix
            case ast.If():
                if not block:
                    return self.paren_block(how, ind, trail=trail) + suffix
                return ("\n" + " " * ind).join(self.if_lines(how, ind, closed, suffix + trail))
            case ast.Loop(body=b):
                if self.lead(b) or self.trail(b):
                    return "@> " + self.paren_block(b, ind, own=True) + suffix + trail
                return "@> " + self.render_child(
                    b, ind, col + 3, 7, closed, True, (ast.Loop, 0), suffix, trail
                )
            case Call():
                return self.call_block(how, ind) + suffix + trail
            case ast.Name() | ast.Invalid():
                return (f or "") + suffix + trail
        assert_never(how)

    def render_child(
        self,
        c: Any,
        ind: int,
        col: int,
        max_prec: int,
        closed: bool,
        loop_ok: bool,
        at: Operand,
        suffix: str = "",
        trail: str = "",
    ) -> str:
        """A child in an operand position, parenthesised where `needs_parens` says."""
        if needs_parens(c, max_prec, closed, loop_ok, at):
            f = self.flat(c, False)
            if f is not None and "\n" not in f and col + len(f) + 2 + len(suffix) <= WIDTH:
                return f"({f}){suffix}{trail}"
            return self.paren_block(c, ind, trail=trail) + suffix
        return self.render(c, ind, col, closed, False, suffix, trail)

    def paren_block(self, e: Any, ind: int, own: bool = False, trail: str = "") -> str:
        """``(`` newline, ``e`` indented four more, newline, ``)``.

        ``own``: print e's comments inside; ``trail``: a trailing comment to end e's last line.
        """
        inner = ind + 4
        pad = "\n" + " " * inner
        if own:
            trail = self.trail(e) + trail
        body = self.render(e, inner, inner, False, True, "", trail)
        lead = "".join(c + pad for c in self.lead(e)) if own else ""
        return f"({pad}{lead}{body}\n{' ' * ind})"

    def chain_block(self, e: Any, chain: list[Any], ind: int, closed: bool, suffix: str) -> str:
        """One operand per line, the operator leading: ``a`` / ``~> b`` / ``~> c``."""
        p, op = PRECEDENCE[type(e)], OPS[type(e)]
        lines: list[str] = []
        for i, el in enumerate(chain):
            end = suffix if i == len(chain) - 1 else ""
            if i == 0:
                s = self.render_child(
                    el, ind, ind, p, True, False, (type(e), 0), end, self.trail(el)
                )
            else:
                last = i == len(chain) - 1
                col = ind + len(op) + 1
                s = f"{op} " + self.render_child(
                    el,
                    ind,
                    col,
                    p - 1,
                    closed if last else True,
                    True,
                    (type(e), 1),
                    end,
                    self.trail(el),
                )
            lines.extend(self.lead(el))
            lines.append(s)
        return ("\n" + " " * ind).join(lines)

    def hug(self, chain: list[Any], ind: int, col: int) -> str:
        """``x |=> 'a' |=> 'b'``: the names stay on the line where ``x`` ends."""
        s = self.render_child(chain[0], ind, col, PRECEDENCE[ast.Bind], True, False, (ast.Bind, 0))
        return s + "".join(f" |=> {lit_text(el)}" for el in chain[1:])

    def if_lines(self, e: ast.If, ind: int, closed: bool, suffix: str) -> list[str]:
        """``cond`` / ``?> then`` / ``!> else`` lines.

        An else that is a conditional is parenthesised like any operator in a branch: pg_durable
        would read ``c ?> t !> c2 ?> t2 !> e2`` as a conditional whose condition is ``c ?> t !> c2``.
        """
        lines: list[str] = []
        c = e.cond
        lines.extend(self.lead(c))
        lines.append(self.render_child(c, ind, ind, 5, True, False, (ast.If, 0), "", self.trail(c)))
        t = e.then
        if e.orelse is None:
            ts = self.render_child(
                t, ind, ind + 3, 7, closed, True, (ast.If, 1), suffix, self.trail(t)
            )
        else:
            ts = self.render_child(t, ind, ind + 3, 6, True, False, (ast.If, 1), "", self.trail(t))
        lines.extend(self.lead(t))
        lines.append("?> " + ts)
        el = e.orelse
        if el is None:
            return lines
        lines.extend(self.lead(el))
        es = self.render_child(
            el, ind, ind + 3, 6, closed, True, (ast.If, 2), suffix, self.trail(el)
        )
        lines.append("!> " + es)
        return lines

    def call_block(self, call: Call, ind: int) -> str:
        """``name(`` / one argument per line, indented four more / ``)``."""
        callee, args, tcall = call.callee, call.args, call.template
        if not args:
            return f"{callee}()"
        inner = ind + 4
        pad = " " * inner
        out = [f"{callee}("]
        for i, (label, v) in enumerate(args):
            head = f"{label} => " if label else ""
            sep = "," if i < len(args) - 1 else ""
            out.extend(pad + c for c in self.lead(v))
            out.append(
                pad
                + head
                + self.render_arg(v, inner, inner + len(head), not label, tcall, sep, self.trail(v))
            )
        out.append(" " * ind + ")")
        return "\n".join(out)

    def render_arg(
        self,
        v: Any,
        ind: int,
        col: int,
        block: bool,
        tcall: bool,
        suffix: str = "",
        trail: str = "",
    ) -> str:
        if isinstance(v, _LITS):
            return lit_text(v) + suffix + trail
        if tcall and isinstance(v, ast.Sql) and isinstance(v.query, ast.Str):
            return f"df.sql({lit_text(v.query)}){suffix}{trail}"
        return self.render(v, ind, col, False, block, suffix, trail)

    # -- files ------------------------------------------------------------------------------

    def decl(self, d: ast.Decl) -> str:
        match d:
            case ast.Import(path=p):
                return f"import {lit_text(p)};"
            case ast.Param(name=n, type=t, default=default):
                return (
                    f"param {n} {t}" + ("" if default is None else f" = {lit_text(default)}") + ";"
                )
            case ast.Schedule(cron=cron, timezone=zone, overlap=overlap, catchup=catchup):
                words = [f"schedule {lit_text(cron)}"]
                if zone is not None:
                    words.append(f"timezone {lit_text(zone)}")
                if overlap is not None:
                    words.append(f"overlap {overlap}")
                if catchup is not None:
                    words.append(f"catchup {catchup}")
                return " ".join(words) + ";"
            case ast.Def(name=n, params=ps, body=body):
                sig = ", ".join(
                    p.name + ("" if p.default is None else f" = {self.param_default(p.default)}")
                    for p in ps
                )
                head = f"def {n}({sig}) ="
                f = None if id(d) in self.notes.must_break else self.flat(body, False)
                if f is not None and "\n" not in f and len(head) + 1 + len(f) + 1 <= WIDTH:
                    return f"{head} {f};"
                lead = "".join("    " + c + "\n" for c in self.lead(body))
                return f"{head}\n{lead}    {self.render(body, 4, 4, False, True, ';', self.trail(body))}"
        assert_never(d)

    def param_default(self, v: Any) -> str:
        s = self.flat_arg(v, True)
        return s if s is not None else self.render_arg(v, 0, 0, False, True)

    def workflow(self, wf: ast.Workflow) -> str:
        call = start_call(wf)
        if call is None:
            return self.render(wf.body, 0, 0, False, True, ";")
        f = None if id(wf) in self.notes.must_break else self.flat_call(call)
        if f is not None and "\n" not in f and len(f) + 1 <= WIDTH:
            return f + ";"
        return self.call_block(call, 0) + ";"


def format_module(module: ast.Module) -> str:
    """The canonical source text of a module (``dfc fmt``), comments included.

    Raises ValueError if the AST contains `ast.Invalid` (format only files without errors).
    """
    with ast.deep_recursion():  # the printer recurses once per nesting level
        return _format_module(module)


def _format_module(module: ast.Module) -> str:
    notes = attach(module)
    pr = _Printer(notes)
    items: list[Any] = [*module.decls]
    if module.workflow is not None:
        items.append(module.workflow)
    out: list[str] = []
    prev: Any = None
    prev_end: int | None = None
    for item in items:
        comments = notes.leading.get(id(item), [])
        first = comments[0].start if comments else item.span.start
        if prev is not None and (
            type(item) is not type(prev)
            or isinstance(item, ast.Def)
            or notes.blank_line_before(first, prev_end)
        ):
            out.append("")
        for k, c in enumerate(comments):
            out.append(c.text)
            nxt = comments[k + 1].start if k + 1 < len(comments) else item.span.start
            if notes.blank_line_before(nxt, c.end):
                out.append("")
        text = pr.workflow(item) if isinstance(item, ast.Workflow) else pr.decl(item)
        out.append(text + pr.trail(item))
        trailing = notes.trailing.get(id(item))
        prev, prev_end = item, max([item.span.end, *(c.end for c in trailing or ())])
    for c in notes.file_trailing:
        if out and notes.blank_line_before(c.start, prev_end):
            out.append("")
        out.append(c.text)
        prev_end = c.end
    return "\n".join(out) + "\n" if out else ""


def format_expression(expr: ast.Expr) -> str:
    """One expression in canonical form (no comments), e.g. for messages and the SQL surface."""
    with ast.deep_recursion():
        return _Printer(CommentNotes()).render(expr, 0, 0, False, True)
