"""The canonical pretty-printer (``dfc fmt``): AST → source text that parses back to the same AST.

Canonical choices: operators wherever one exists (``a ~> b``, ``x |=> 'n'``, ``a & b``, ``a | b``,
``c ?> t !> e``, ``@> body``, ``a <-> undo``); ``df.join(a, b, c)`` for an n-ary join; built-in
arguments positional until the first omitted optional one, named after it (``df.http(url,
body => '...')``), df.retry options always named; ``NULL``/``TRUE``/``FALSE`` upper case; strings in
single quotes, or ``$$...$$`` when they contain a quote (with a ``$q$`` tag when ``$$`` occurs).

Layout: an expression is printed on one line when it fits in 100 columns. Otherwise a chain of
``~>``/``&``/``|`` at the start of a line puts one operand per line with the operator leading;
a call puts one argument per line, indented four spaces, ``)`` back at the line's indent; a
conditional puts ``?>`` and ``!>`` branches on their own lines (an else-if ladder stays flat);
anything else that must break mid-line is wrapped in parentheses, which changes nothing in the
AST. ``|=>`` keeps the result name on the line where its node ends.

Comments are kept (see `dfc.syntax.comments`): leading comments on their own lines before the
declaration, workflow, chain element, branch or argument they precede, trailing comments at the
end of its line, the rest at the end of the file. Blank lines between top-level statements
are kept (one at most) and added between different kinds of declarations.
"""

from __future__ import annotations

from typing import Any

from dfc import ast
from dfc.syntax.comments import CommentNotes, attach

WIDTH = 100
_OPS: dict[type, str] = {
    ast.Seq: "~>",
    ast.Race: "|",
    ast.Join: "&",
    ast.Bind: "|=>",
    ast.Compensate: "<->",
}
_PREC: dict[type, int] = {ast.Seq: 5, ast.Race: 4, ast.Join: 3, ast.Bind: 2, ast.Compensate: 1}

CallParts = tuple[str, list[tuple[str | None, Any]], bool]


# -- structure shared with the comment attacher --------------------------------------------------


def chain_elements(node: Any) -> list[Any] | None:
    """The operands of a left-nested chain of one binary operator (``a ~> b ~> c`` → [a, b, c]).

    None when ``node`` is not printed as a binary operator (an n-ary join is a call).
    """
    cls = type(node)
    if cls not in _OPS or (cls in (ast.Join, ast.Race) and len(node.branches) != 2):
        return None
    rights: list[Any] = []
    x = node
    while type(x) is cls and (cls not in (ast.Join, ast.Race) or len(x.branches) == 2):
        match x:
            case ast.Seq(left=a, right=b) | ast.Join(branches=(a, b)) | ast.Race(branches=(a, b)):
                rights.append(b)
                x = a
            case ast.Bind(node=a, name=b) | ast.Compensate(node=a, undo=b):
                rights.append(b)
                x = a
    rights.append(x)
    rights.reverse()
    return rights


def _optional(names: tuple[str, ...], values: tuple[Any, ...]) -> list[tuple[str | None, Any]]:
    """Positional arguments until the first omitted one, named after it."""
    out: list[tuple[str | None, Any]] = []
    named = False
    for name, v in zip(names, values, strict=True):
        if v is None:
            named = True
            continue
        out.append((name if named else None, v))
    return out


def call_parts(node: Any) -> CallParts | None:
    """How a node prints as a call: (callee, [(name or None, value)], is_template); None otherwise."""
    match node:
        case ast.Sql(query=ast.Name() as q):
            return "df.sql", [(None, q)], False
        case ast.Join(branches=bs) if len(bs) != 2:
            return "df.join", [(None, b) for b in bs], False
        case ast.Race(branches=bs) if len(bs) != 2:
            return "df.race", [(None, b) for b in bs], False
        case ast.IfRows(name=n, then=t, orelse=e):
            return "df.if_rows", [(None, n), (None, t), (None, e)], False
        case ast.Loop(body=b, cond=c) if c is not None:
            return "df.loop", [(None, b), (None, c)], False
        case ast.Break(value=v):
            return "df.break", [] if v is None else [(None, v)], False
        case ast.Sleep(seconds=s):
            return "df.sleep", [(None, s)], False
        case ast.WaitSchedule(cron=c):
            return "df.wait_for_schedule", [(None, c)], False
        case ast.WaitSignal(name=n, timeout=t):
            return "df.wait_for_signal", _optional(("name", "timeout"), (n, t)), False
        case ast.Http(url=u, method=m, body=b, headers=h, timeout=t):
            return (
                "df.http",
                _optional(("url", "method", "body", "headers", "timeout"), (u, m, b, h, t)),
                False,
            )
        case ast.HttpMultipart(url=u, method=m, parts=p, headers=h, timeout=t):
            return (
                "df.http_multipart",
                _optional(("url", "method", "parts", "headers", "timeout"), (u, m, p, h, t)),
                False,
            )
        case ast.Retry(node=n):
            opts = [
                (k, getattr(node, k))
                for k in ("attempts", "backoff", "factor", "max_backoff", "jitter")
            ]
            return "df.retry", [(None, n), *((k, v) for k, v in opts if v is not None)], False
        case ast.Timeout(node=n, seconds=s):
            return "df.timeout", [(None, n), (None, s)], False
        case ast.TemplateCall(name=name, args=targs):
            return name, [(a.name, a.value) for a in targs], True
        case ast.Workflow(body=b, label=label, options=opts) if label is not None or opts:
            start: list[tuple[str | None, Any]] = [(None, b)]
            if label is not None:
                start.append((None, label))
            start.extend((o.name, o.value) for o in opts)
            return "df.start", start, False
    return None


def _paren_body(body: Any) -> bool:
    """Whether a ``@>`` body is printed in parentheses (an operator expression other than a loop)."""
    return 0 < prec(body) < 7


def prec(node: Any) -> int:
    """Binding strength for parenthesisation: 0 for atoms and calls, 7 for ``@>`` (loosest)."""
    if chain_elements(node) is not None:
        return _PREC[type(node)]
    if isinstance(node, ast.If):
        return 6
    if isinstance(node, ast.Loop) and node.cond is None:
        return 7
    return 0


def needs_parens(child: Any, max_prec: int, closed: bool, loop_ok: bool) -> bool:
    """Whether ``child`` must be parenthesised where at most ``max_prec`` binds.

    ``closed``: something follows on the right, so the child may not end in an open ``@>`` or
    in a ``?>`` without ``!>``. ``loop_ok``: the position is the right operand of an operator,
    where an unparenthesised ``@>`` is allowed (it extends to the end).
    """
    if isinstance(child, ast.Loop) and child.cond is None:
        return closed or (max_prec < 7 and not loop_ok)
    if isinstance(child, ast.If) and child.orelse is None and closed:
        return True
    return prec(child) > max_prec


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


def lit_text(lit: Any) -> str:
    """The source text of a literal or a template-parameter name."""
    cast = f"::{lit.cast}" if getattr(lit, "cast", None) else ""
    match lit:
        case ast.Str(value=v):
            return quote(v) + cast
        case ast.Num(text=t):
            return t + cast
        case ast.Null():
            return "NULL" + cast
        case ast.Bool(value=v):
            return ("TRUE" if v else "FALSE") + cast
        case ast.Name(name=n):
            return n
        case ast.Invalid():
            raise ValueError("cannot format an AST that contains errors (ast.Invalid)")
    raise ValueError(f"not a literal: {lit!r}")


_LITS = (ast.Str, ast.Num, ast.Null, ast.Bool, ast.Name)


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

    def _flat(self, e: Any, closed: bool) -> str | None:
        if isinstance(e, _LITS):
            return lit_text(e)
        chain = chain_elements(e)
        if chain is not None:
            p, op = _PREC[type(e)], _OPS[type(e)]
            parts: list[str] = []
            for i, el in enumerate(chain):
                if i == 0:
                    s = self.flat_child(el, p, True, False)
                elif isinstance(e, ast.Bind):
                    s = lit_text(el)
                else:
                    s = self.flat_child(el, p - 1, closed if i == len(chain) - 1 else True, True)
                if s is None:
                    return None
                parts.append(s)
            return f" {op} ".join(parts)
        match e:
            case ast.Sql(query=ast.Str() as q):
                return lit_text(q)
            case ast.If(cond=c, then=t, orelse=None):
                cs, ts = self.flat_child(c, 5, True, False), self.flat_child(t, 7, closed, True)
                return None if cs is None or ts is None else f"{cs} ?> {ts}"
            case ast.If(cond=c, then=t, orelse=el):
                cs, ts = self.flat_child(c, 5, True, False), self.flat_child(t, 6, True, False)
                es = self.flat_child(el, 6, closed, True)
                return None if cs is None or ts is None or es is None else f"{cs} ?> {ts} !> {es}"
            case ast.Loop(body=b, cond=None):
                # An operator body is always parenthesised: `@> (a ~> b)` reads the same to a
                # pg_durable user, for whom `@> a ~> b` is `(@> a) ~> b`.
                bs = self.flat_child(b, 0 if _paren_body(b) else 7, closed, True)
                return None if bs is None else f"@> {bs}"
            case ast.Invalid():
                raise ValueError("cannot format an AST that contains errors (ast.Invalid)")
        parts_ = call_parts(e)
        if parts_ is None:
            raise ValueError(f"cannot format {type(e).__name__}")
        callee, args, tcall = parts_
        texts: list[str] = []
        for label, v in args:
            s = self.flat_arg(v, tcall)
            if s is None:
                return None
            texts.append(f"{label} => {s}" if label else s)
        return f"{callee}({', '.join(texts)})"

    def flat_child(self, c: Any, max_prec: int, closed: bool, loop_ok: bool) -> str | None:
        if needs_parens(c, max_prec, closed, loop_ok):
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
        if isinstance(e, ast.Sql) and isinstance(e.query, ast.Str):
            return lit_text(e.query) + suffix + trail
        chain = chain_elements(e)
        if chain is not None:
            if isinstance(e, ast.Bind):
                return self.hug(chain, ind, col) + suffix + trail
            if block:
                return self.chain_block(e, chain, ind, closed, suffix + trail)
            return self.paren_block(e, ind, trail=trail) + suffix
        if isinstance(e, ast.If):
            if not block:
                return self.paren_block(e, ind, trail=trail) + suffix
            return ("\n" + " " * ind).join(self.if_lines(e, ind, closed, "", suffix + trail))
        if isinstance(e, ast.Loop) and e.cond is None:
            if self.lead(e.body) or self.trail(e.body):
                return "@> " + self.paren_block(e.body, ind, own=True) + suffix + trail
            body_prec = 0 if _paren_body(e.body) else 7
            return "@> " + self.render_child(
                e.body, ind, col + 3, body_prec, closed, True, suffix, trail
            )
        parts = call_parts(e)
        if parts is None:
            return (f or "") + suffix + trail
        return self.call_block(parts, ind) + suffix + trail

    def render_child(
        self,
        c: Any,
        ind: int,
        col: int,
        max_prec: int,
        closed: bool,
        loop_ok: bool,
        suffix: str = "",
        trail: str = "",
    ) -> str:
        """A child in an operand position, parenthesised when the grammar needs it."""
        if needs_parens(c, max_prec, closed, loop_ok):
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
        p, op = _PREC[type(e)], _OPS[type(e)]
        lines: list[str] = []
        for i, el in enumerate(chain):
            end = suffix if i == len(chain) - 1 else ""
            if i == 0:
                s = self.render_child(el, ind, ind, p, True, False, end, self.trail(el))
            else:
                last = i == len(chain) - 1
                col = ind + len(op) + 1
                s = f"{op} " + self.render_child(
                    el, ind, col, p - 1, closed if last else True, True, end, self.trail(el)
                )
            lines.extend(self.lead(el))
            lines.append(s)
        return ("\n" + " " * ind).join(lines)

    def hug(self, chain: list[Any], ind: int, col: int) -> str:
        """``x |=> 'a' |=> 'b'``: the names stay on the line where ``x`` ends."""
        s = self.render_child(chain[0], ind, col, _PREC[ast.Bind], True, False)
        return s + "".join(f" |=> {lit_text(el)}" for el in chain[1:])

    def if_lines(self, e: ast.If, ind: int, closed: bool, prefix: str, suffix: str) -> list[str]:
        """``cond`` / ``?> then`` / ``!> else`` lines; an else that is a conditional continues the ladder."""
        lines: list[str] = []
        c = e.cond
        lines.extend(self.lead(c))
        lines.append(
            prefix + self.render_child(c, ind, ind + len(prefix), 5, True, False, "", self.trail(c))
        )
        t = e.then
        if e.orelse is None:
            ts = self.render_child(t, ind, ind + 3, 7, closed, True, suffix, self.trail(t))
        else:
            ts = self.render_child(t, ind, ind + 3, 6, True, False, "", self.trail(t))
        lines.extend(self.lead(t))
        lines.append("?> " + ts)
        el = e.orelse
        if el is None:
            return lines
        lines.extend(self.lead(el))
        if isinstance(el, ast.If) and not needs_parens(el, 6, closed, True) and not self.trail(el):
            lines.extend(self.if_lines(el, ind, closed, "!> ", suffix))
        else:
            lines.append(
                "!> " + self.render_child(el, ind, ind + 3, 6, closed, True, suffix, self.trail(el))
            )
        return lines

    def call_block(self, parts: CallParts, ind: int) -> str:
        """``name(`` / one argument per line, indented four more / ``)``."""
        callee, args, tcall = parts
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
        raise ValueError(f"not a declaration: {d!r}")

    def param_default(self, v: Any) -> str:
        s = self.flat_arg(v, True)
        return s if s is not None else self.render_arg(v, 0, 0, False, True)

    def workflow(self, wf: ast.Workflow) -> str:
        parts = call_parts(wf)
        if parts is None:
            return self.render(wf.body, 0, 0, False, True, ";")
        f = None if id(wf) in self.notes.must_break else self._flat(wf, False)
        if f is not None and "\n" not in f and len(f) + 1 <= WIDTH:
            return f + ";"
        return self.call_block(parts, 0) + ";"


def format_module(module: ast.Module) -> str:
    """The canonical source text of a module (``dfc fmt``), comments included.

    Raises ValueError if the AST contains `ast.Invalid` (format only files without errors).
    """
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
    return _Printer(CommentNotes()).render(expr, 0, 0, False, True)
