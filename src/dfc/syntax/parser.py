"""Run lark's LALR parser over the lexer's tokens, recovering from syntax errors.

Tokens are fed one by one to lark's parser state (the interactive parser's engine), so that on
an unexpected token we can report a friendly message (`dfc.syntax.errors`) and recover:

1. *Repair* when one token is obviously missing or wrong: close parentheses left open at ``;``
   or the end of the file, insert a ``;`` before a declaration keyword, read ``"x"`` as ``'x'``,
   ``=`` as ``=>`` in a named argument, an unmatched ``)`` is dropped, a stray ``!>`` read as
   ``~>``, and a missing operator between two nodes outside a call read as ``~>``.
2. Otherwise *resynchronise*: go back to the last point where an operand was expected (after
   an operator, after ``(`` or ``,`` of a call, or at the start of the statement), stand an
   ``ERROR`` (or ``BADSTMT``) token in for what follows, skip to the next operator, ``,``/``)``
   or ``;`` and go on. Independent errors later in the file are then reported too.

The builder turns ``ERROR`` into `ast.Invalid` without a second message.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedToken
from lark.parsers.lalr_analysis import Shift

from dfc.diagnostics import Diagnostic, Severity
from dfc.resources import grammar_path
from dfc.source import Span, TextMap
from dfc.syntax import codes
from dfc.syntax.errors import EXPR_START, describe_error
from dfc.syntax.lexer import LarkLexer, Lexed, StringValue, end_of, make_token, start_of

Grammar = Literal["dfc", "pg"]
START_RULES: dict[str, str] = {"dfc": "start", "pg": "pg_start"}
BINOPS = frozenset({"SEQ", "BIND", "AMP", "PIPE", "THEN", "ELSE", "UNDO"})
_OPERAND_OPS = BINOPS | {"LOOP"}
DECL_KINDS = ("PARAM", "DEF", "IMPORT", "SCHEDULE")  # the first tokens of declarations
MAX_ERRORS = 50  # more than this is noise; recovery continues silently
QUIET_TOKENS = 3  # after an error, the next one is reported only after this many good tokens
MAX_SNAPSHOT_DEPTH = 1000  # no recovery points deeper than this (the builder rejects > 256 anyway)


@functools.cache
def lark_parser() -> Lark:
    """The LALR parser, built once per process from ``grammar/durable.lark``."""
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        lexer=LarkLexer,
        start=list(START_RULES.values()),
        propagate_positions=True,
        maybe_placeholders=True,
        strict=True,
        keep_all_tokens=False,
        # The grammar analysis is cached in the temp dir, keyed by grammar and options: it saves
        # ~60 ms of every `dfc check` run, which editors make on each save.
        cache=True,
    )


_State = tuple[list[Any], list[Any]]  # lark's (state_stack, value_stack)


@dataclass(slots=True)
class _Frame:
    """An open parenthesis (or the statement level, ``open`` None) and its recovery points."""

    open: Token | None
    is_call: bool
    # Just after `(` or `,` (or at the statement start): an operand comes next. None beyond
    # MAX_SNAPSHOT_DEPTH, where copying the stack at every parenthesis would be quadratic.
    arg_snap: _State | None
    op_snap: _State | None = None  # just after the last binary/prefix operator at this level


class _Run:
    def __init__(self, lexed: Lexed, grammar: Grammar) -> None:
        self.lexed = lexed
        self.file = lexed.file
        self.tokens = lexed.tokens
        ip = lark_parser().parse_interactive(start=START_RULES[grammar])
        self.ps = ip.parser_state
        self.diags: list[Diagnostic] = []
        self.frames: list[_Frame] = [_Frame(None, False, self._save())]
        self.reported_at: set[int] = set()
        self.repaired: set[int] = set()
        self.tried: set[tuple[int, int, str]] = set()
        self.result: Tree[Token] | None = None
        self._prev_type = ""
        self.stmt_kind = ""  # type of the first token of the current statement
        self.stmt_start: int | None = None  # and its offset
        self.quiet = 0  # errors are not reported until this many more tokens are accepted

    # -- parser state ---------------------------------------------------------------------------

    def _save(self) -> _State:
        return (list(self.ps.state_stack), list(self.ps.value_stack))

    def _snap(self) -> _State | None:
        """A recovery point, unless the parser stack is pathologically deep."""
        return self._save() if len(self.ps.state_stack) <= MAX_SNAPSHOT_DEPTH else None

    def _accepts(self, kind: str) -> bool:
        """Whether the parser accepts a token of ``kind`` now, without changing its state.

        Replays lark's LALR loop (reduce until shift) on the state numbers only, with an
        overlay on top of the real stack, so a rejected token costs no copy of the stack.
        """
        conf = self.ps.parse_conf
        states, end_state = conf.states, conf.end_state
        stack = self.ps.state_stack
        depth = len(stack)  # stack[:depth] is untouched; `extra` is pushed on top of it
        extra: list[Any] = []
        while True:
            top = extra[-1] if extra else stack[depth - 1]
            action = states[top].get(kind)
            if action is None:
                return False
            what, arg = action
            if what is Shift:
                return True
            size = len(arg.expansion)
            if size <= len(extra):
                del extra[len(extra) - size :]
            else:
                depth -= size - len(extra)
                extra = []
            below = extra[-1] if extra else stack[depth - 1]
            extra.append(states[below][arg.origin.name][1])
            if kind == "$END" and extra[-1] == end_state:
                return True

    def _restore(self, st: _State) -> None:
        self.ps.state_stack = list(st[0])
        self.ps.value_stack = list(st[1])

    def _feed(self, tok: Token) -> bool:
        """Feed one token if the parser accepts it; return False (state unchanged) if not."""
        if not self._accepts(tok.type):
            return False
        out = self.ps.feed_token(tok, tok.type == "$END")
        if tok.type == "$END":
            self.result = out
        self._track(tok)
        return True

    def _feed_all(self, toks: list[Token]) -> bool:
        before = self._save()
        frames = [(f.open, f.is_call, f.arg_snap, f.op_snap) for f in self.frames]
        for t in toks:
            if not self._feed(t):
                self._restore(before)
                self.frames = [_Frame(*f) for f in frames]
                return False
        return True

    def _track(self, tok: Token) -> None:
        """Keep the recovery points current after a token was accepted."""
        kind = tok.type
        if kind == "_LPAR":
            prev = self._prev_type
            self.frames.append(_Frame(tok, prev in ("DFNAME", "IDENT"), self._snap()))
        elif kind == "_RPAR":
            if len(self.frames) > 1:
                self.frames.pop()
        elif kind == "_COMMA":
            top = self.frames[-1]
            top.arg_snap, top.op_snap = self._snap(), None
        elif kind in _OPERAND_OPS:
            self.frames[-1].op_snap = self._snap()
        elif kind == "_SEMI" and len(self.frames) == 1:
            self.frames[0] = _Frame(None, False, self._save())
        if kind == "_SEMI" and len(self.frames) == 1:
            self.stmt_start = None
        elif self.stmt_start is None and len(self.frames) <= 2:
            self.stmt_kind, self.stmt_start = kind, start_of(tok)  # the first token of a statement
        self._prev_type = kind

    # -- main loop ------------------------------------------------------------------------------

    def run(self) -> Tree[Token] | None:
        toks = self.tokens
        i = 0
        while i < len(toks):
            tok = toks[i]
            if tok.type == "IDENT" and str(tok).lower() == "as" and self._alias_follows():
                toks[i] = make_token("AS", str(tok), start_of(tok), end_of(tok))
            elif tok.type == "IDENT" and str(tok).lower() == "schedule" and self._schedule_at(i):
                toks[i] = make_token("SCHEDULE", str(tok), start_of(tok), end_of(tok))
            if self._feed(toks[i]):
                i += 1
                self.quiet -= 1
            else:
                i = self._recover(i)
        return self.result

    def _alias_follows(self) -> bool:
        """Whether an ``as`` here is the keyword before a column alias (else it is a name)."""
        return not self._accepts("IDENT") and self._accepts("AS")

    def _schedule_at(self, i: int) -> bool:
        """Whether ``schedule`` at ``i`` begins a schedule statement (else it is a name).

        Only before a string, where a name could not stand (``schedule 'x'`` was never a
        valid workflow), so no file that parsed before parses differently now.
        """
        nxt = self.tokens[i + 1] if i + 1 < len(self.tokens) else None
        return nxt is not None and nxt.type == "STRING" and self._accepts("SCHEDULE")

    def _expected(self, tok: Token) -> set[str]:
        """The token kinds lark would accept instead of ``tok`` (in its post-reduction state)."""
        st = self._save()
        try:
            self.ps.feed_token(tok, tok.type == "$END")
        except UnexpectedToken as e:
            return set(e.expected)
        finally:
            self._restore(st)
        return set()

    def _report(self, i: int) -> None:
        if i in self.reported_at:
            return  # a repair did not help: the first message stands
        self.reported_at.add(i)
        if self.quiet > 0:
            return  # too close to the last error to be independent of it (as yacc does)
        self.quiet = QUIET_TOKENS
        tok = self.tokens[i]
        if tok.type == "ERROR" or start_of(tok) in self.lexed.flagged:
            return  # the lexer reported this already
        sw = self.lexed.swallowed_from
        if sw is not None and start_of(tok) >= sw:
            return  # a consequence of an unterminated literal or comment
        prev = self.tokens[i - 1] if i > 0 else None
        nxt = self.tokens[i + 1] if i + 1 < len(self.tokens) else None
        open_parens = [f.open for f in self.frames if f.open is not None]
        d = describe_error(
            self.file,
            tok,
            prev,
            self._expected(tok),
            open_parens,
            self.frames[-1].is_call,
            in_decl=self.stmt_kind in DECL_KINDS,
            nxt=nxt,
        )
        if len(self.diags) < MAX_ERRORS:
            self.diags.append(d)

    def _recover(self, i: int) -> int:
        """Handle the unexpected token ``tokens[i]``; return the index to continue from."""
        self._report(i)
        if i not in self.repaired:
            self.repaired.add(i)
            resume = self._repair(i)
            if resume is not None:
                return resume
        return self._resync(i)

    def _repair(self, i: int) -> int | None:
        """Try a one-token repair at ``tokens[i]`` (see module docstring); the resume index."""
        tok = self.tokens[i]
        kind = tok.type
        prev = self.tokens[i - 1].type if i > 0 else ""
        at = start_of(tok)

        def fake(k: str, value: str) -> Token:
            return make_token(k, value, at, at)

        def rewrite(k: str, value: str) -> int:
            self.tokens[i] = make_token(k, value, start_of(tok), end_of(tok))
            return i

        if kind in ("_SEMI", "$END") and len(self.frames) > 1:
            closers = [fake("_RPAR", ")") for _ in self.frames[1:]]
            if (
                self._expected(tok) & EXPR_START
            ):  # `df.sleep(` at the end: an operand is missing too
                closers.insert(0, fake("ERROR", ""))
            return i if self._feed_all(closers) else None
        if kind == "_RPAR" and len(self.frames) == 1:
            return i + 1  # unmatched: drop it
        if len(self.frames) == 1 and (
            kind in ("PARAM", "DEF", "IMPORT", "SELECT")
            or (kind in EXPR_START and self.stmt_kind in DECL_KINDS)
        ):
            return i if self._feed_all([fake("_SEMI", ";")]) else None
        if kind == "QIDENT":
            inner = str(tok)[1:-1].replace('""', '"')
            self.lexed.strings[start_of(tok)] = StringValue(
                inner, TextMap(((0, start_of(tok) + 1),), len(inner))
            )
            return rewrite("STRING", str(tok))
        if kind == "EQ" and prev == "IDENT" and self.frames[-1].is_call:
            return rewrite("ARROW", "=>")
        if kind == "ELSE":
            return rewrite("SEQ", "~>")
        if kind in EXPR_START and not self.frames[-1].is_call:
            return i if self._feed_all([fake("SEQ", "~>")]) else None
        return None

    def _resync(self, i: int) -> int:
        """Stand an ERROR/BADSTMT in for the broken part and skip to a synchronising token."""
        toks = self.tokens
        for level in range(len(self.frames) - 1, -1, -1):
            frame = self.frames[level]
            cands: list[tuple[str, _State]] = []
            if frame.op_snap is not None:
                cands.append(("op", frame.op_snap))
            if frame.arg_snap is not None:
                cands.append(("arg" if level else "stmt", frame.arg_snap))
            for kind, snap in cands:
                j = self._sync_point(i, kind, level)
                if j == i and (i, level, kind) in self.tried:
                    continue
                self.tried.add((i, level, kind))
                start = start_of(toks[i])
                if kind == "stmt" and self.stmt_start is not None:
                    start = min(start, self.stmt_start)  # the whole statement is replaced
                end = (
                    end_of(toks[j - 1])
                    if j > i
                    else max(start, end_of(toks[i - 1]) if i else start)
                )
                filler = make_token("BADSTMT" if kind == "stmt" else "ERROR", "", start, end)
                saved_frames = self.frames
                self._restore(snap)
                self.frames = [
                    *saved_frames[:level],
                    _Frame(frame.open, frame.is_call, frame.arg_snap, frame.op_snap),
                ]
                if not self._feed_raw(filler):
                    self.frames = saved_frames
                    continue
                return j
        # Nothing worked (only possible at the end of the file): drop the token.
        return i + 1

    def _feed_raw(self, tok: Token) -> bool:
        """Feed a recovery token without updating the recovery points."""
        if not self._accepts(tok.type):
            return False
        self.ps.feed_token(tok, False)
        self._prev_type = tok.type
        return True

    def _sync_point(self, i: int, kind: str, level: int) -> int:
        """Index of the token where parsing resumes after recovery at ``level``."""
        toks = self.tokens
        depth = 0
        j = i
        while j < len(toks):
            t = toks[j].type
            if t == "$END" or t == "_SEMI":
                return j
            if kind != "stmt":
                if depth == 0 and level > 0 and t in ("_COMMA", "_RPAR"):
                    return j
                if depth == 0 and kind == "op" and t in BINOPS:
                    return j
            if t == "_LPAR":
                depth += 1
            elif t == "_RPAR" and depth > 0:
                depth -= 1
            j += 1
        return j


def parse_tokens(lexed: Lexed, grammar: Grammar) -> tuple[Tree[Token] | None, list[Diagnostic]]:
    """Parse the tokens of one file; the tree is None only if recovery failed completely."""
    run = _Run(lexed, grammar)
    tree = run.run()
    return tree, run.diags


def internal_error(span: Span, exc: BaseException) -> Diagnostic:
    """The diagnostic for a bug in the parser, so that a user never sees a traceback."""
    return Diagnostic(
        code=codes.INTERNAL,
        severity=Severity.ERROR,
        message=f"internal parser error ({type(exc).__name__}: {exc})",
        span=span,
        labels=(),
        help="this is a bug in dfc; please report it with this file",
    )
