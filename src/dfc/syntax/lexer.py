"""The hand-written lexer that feeds lark (SPEC §1.1, PostgreSQL's lexical rules).

Lark's regex lexer cannot handle nested ``/* */`` comments or ``$tag$`` quotes, and cannot point
an unterminated string at its opening quote, so tokens are produced here. The lexer never stops
at an error: it records a diagnostic, emits an ``ERROR`` token (an operand the parser accepts
anywhere a node may stand) or skips the character, and keeps going.

String literals are decoded here, once: each STRING token has a `StringValue` (decoded text and
an exact `TextMap` from value index to file offset, through ``''``, ``E''`` escapes, dollar
quotes and newline-separated concatenation).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from lark import Token
from lark.common import LexerConf
from lark.lexer import Lexer

from dfc.diagnostics import Diagnostic, Severity
from dfc.source import SourceFile, Span, TextMap
from dfc.syntax import codes

KEYWORDS = {
    "select": "SELECT",
    "param": "PARAM",
    "def": "DEF",
    "import": "IMPORT",
    "null": "NULL",
    "true": "TRUE",
    "false": "FALSE",
}

# Longest first: the operator scanner tries these in order at each position of an operator run.
OPERATORS = (
    ("|=>", "BIND"),
    ("<->", "UNDO"),
    ("~>", "SEQ"),
    ("?>", "THEN"),
    ("!>", "ELSE"),
    ("@>", "LOOP"),
    ("=>", "ARROW"),
    (":=", "ARROW"),
    ("::", "DCOLON"),
    ("&", "AMP"),
    ("|", "PIPE"),
    ("=", "EQ"),
    ("-", "MINUS"),
)
_OP_CHARS = set("~!@%^&|?<>=+-*/:")
_PUNCT = {
    "(": "_LPAR",
    ")": "_RPAR",
    ",": "_COMMA",
    ";": "_SEMI",
    "[": "LSQB",
    "]": "RSQB",
    ".": "DOT",
}
# Unknown operators people type by mistake, and the operator they probably meant.
_OP_SUGGESTIONS = {
    "->": "~>",
    "=>>": "|=>",
    "|>": "|=>",
    "?": "?>",
    "!": "!>",
    "@": "@>",
    "<-": "<->",
}
_OPERATOR_KINDS = dict(OPERATORS)
_LONGEST_OPERATOR = max(len(op) for op in [*_OPERATOR_KINDS, *_OP_SUGGESTIONS])
_OP_NAMES = {
    "SEQ": "~>",
    "BIND": "|=>",
    "AMP": "&",
    "PIPE": "|",
    "THEN": "?>",
    "ELSE": "!>",
    "LOOP": "@>",
    "UNDO": "<->",
}

_IDENT_RE = re.compile(r"[^\W\d]\w*")
_TAG_RE = re.compile(r"\$([^\W\d]\w*)?\$")
_NUMBER_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WORD_TAIL_RE = re.compile(r"\w+")
MAX_NUMBER_LENGTH = 1000
"""The longest number literal: every literal argument is a duration, a count or a value far
shorter, and Python refuses to convert integers of more than 4,300 digits."""
_REF_RE = re.compile(r"\$[^\W\d]\w*(?:\.(?:\*|\w+))?\??")
_WHITESPACE = " \t\n\r\f\v"
_SPACE_RE = re.compile(r"\s+")  # str.isspace() characters, exactly
_DIGITS = "0123456789"
_LOW_SURROGATE_RE = re.compile(r"\\u([dD][c-fC-F][0-9a-fA-F]{2})")
_UESCAPE_RE = re.compile(r"\s*[uU][eE][sS][cC][aA][pP][eE]\s*'([^'])'")
_U_ESCAPE_RE = re.compile(r"([0-9a-fA-F]{4})|\+([0-9a-fA-F]{6})")
_VAR_RE = re.compile(r"\{[^{}\n]*\}")
_POSITIONAL_RE = re.compile(r"\$[0-9]+")


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment, kept for the pretty-printer; ``block`` for ``/* */``."""

    start: int
    end: int
    text: str
    block: bool


@dataclass(frozen=True, slots=True)
class StringValue:
    """The decoded value of one STRING token and where each character came from.

    ``joins`` has, for each literal after the first of newline-separated literals (joined into
    this one value), the value index where its text begins and its (start, end) file offsets.
    """

    value: str
    text_map: TextMap
    joins: tuple[tuple[int, int, int], ...] = ()


@dataclass(slots=True)
class Lexed:
    """What the lexer produced for one file."""

    file: SourceFile
    tokens: list[Token] = field(default_factory=list)
    strings: dict[int, StringValue] = field(default_factory=dict)  # by token start offset
    comments: list[Comment] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # Set when a literal or comment ran to the end of the file: parse errors from there on are
    # consequences of it and are not reported.
    swallowed_from: int | None = None
    # Start offsets of tokens the lexer stood in for something it already reported (an unknown
    # operator read as the one probably meant); the parser does not report errors at them.
    flagged: set[int] = field(default_factory=set)


def make_token(kind: str, value: str, start: int, end: int) -> Token:
    """A lark token; line/column are left at 0 because spans are computed from offsets."""
    return Token(kind, value, start, 0, 0, 0, 0, end)


def start_of(tok: Token) -> int:
    """A token's start offset (lark types it as optional; ours always have one)."""
    return tok.start_pos or 0


def end_of(tok: Token) -> int:
    """A token's end offset."""
    return tok.end_pos or 0


def lex(file: SourceFile) -> Lexed:
    """Tokenize a whole file; errors are collected in the result, never raised."""
    return _Scanner(file).run()


class LarkLexer(Lexer):
    """Lark's view of this lexer: ``parse()`` may be given a `Lexed` (or text) directly.

    dfc itself feeds tokens through lark's interactive parser (for error recovery), so this class
    mainly makes the grammar usable on its own, e.g. ``Lark(...).parse(lex(file))``.
    """

    def __init__(self, lexer_conf: LexerConf) -> None:
        self.conf = lexer_conf

    def lex(self, data: object) -> Iterator[Token]:  # type: ignore[override]
        lexed = data if isinstance(data, Lexed) else lex(SourceFile("<input>", str(data)))
        return (t for t in lexed.tokens if t.type != "$END")  # lark adds its own end token


class _ValueBuilder:
    """Accumulates a decoded string value and its run-length `TextMap`."""

    __slots__ = ("_next_off", "parts", "runs", "size")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.runs: list[tuple[int, int]] = []
        self.size = 0
        self._next_off = -1  # file offset the next character must have to extend the last run

    def add_slice(self, text: str, start: int, end: int) -> None:
        if end <= start:
            return
        if start != self._next_off:
            self.runs.append((self.size, start))
        self.parts.append(text[start:end])
        self.size += end - start
        self._next_off = end

    def add_char(self, ch: str, offset: int, width: int) -> None:
        """A character decoded from ``width`` source characters starting at ``offset``."""
        if offset != self._next_off:
            self.runs.append((self.size, offset))
        self.parts.append(ch)
        self.size += 1
        # An escape breaks the 1:1 run; a plain character (width 1) continues it.
        self._next_off = offset + 1 if width == 1 else -1

    def finish(self, end_offset: int, joins: tuple[tuple[int, int, int], ...] = ()) -> StringValue:
        runs = self.runs
        if not runs or self._next_off != end_offset:
            # A final run at index == length maps "just past the value" exactly.
            runs = [*runs, (self.size, end_offset)]
        return StringValue("".join(self.parts), TextMap(tuple(runs), self.size), joins)


class _Scanner:
    def __init__(self, file: SourceFile) -> None:
        self.file = file
        self.text = file.text
        self.n = len(self.text)
        self.out = Lexed(file)
        self.last_value_end = 0  # where the value of the literal just decoded ends

    # -- diagnostics --------------------------------------------------------------------------

    def error(self, code: str, message: str, start: int, end: int, **kw: object) -> None:
        self.out.diagnostics.append(
            Diagnostic(
                code=code,
                severity=Severity.ERROR,
                message=message,
                span=Span(self.file, start, end),
                **kw,  # type: ignore[arg-type]
            )
        )

    def emit(self, kind: str, start: int, end: int, value: str | None = None) -> None:
        self.out.tokens.append(
            make_token(kind, self.text[start:end] if value is None else value, start, end)
        )

    # -- main loop ----------------------------------------------------------------------------

    def run(self) -> Lexed:
        text, n = self.text, self.n
        i = 0
        while i < n:
            c = text[i]
            if c in _WHITESPACE or c.isspace():
                space = _SPACE_RE.match(text, i)
                i = space.end() if space else i + 1
            elif c == "-" and text.startswith("--", i):
                i = self.line_comment(i)
            elif c == "/" and text.startswith("/*", i):
                i = self.block_comment(i)
            elif c == "#" or (c == "/" and text.startswith("//", i)):
                i = self.foreign_comment(i)
            elif c == "'" or c == "$" or (c in "eEnNuUbBxX" and self.string_prefix(i)):
                i = self.string(i)
            elif c == '"':
                i = self.quoted_ident(i)
            elif c in _DIGITS or (c == "." and i + 1 < n and text[i + 1] in _DIGITS):
                i = self.number(i)
            elif c == "_" or c.isalpha():
                i = self.word(i)
            elif c in _PUNCT:
                self.emit(_PUNCT[c], i, i + 1)
                i += 1
            elif c in _OP_CHARS:
                i = self.operators(i)
            elif c == "{":
                i = self.stray_var(i)
            elif c == "`":
                i = self.backtick(i)
            else:
                j = i + 1
                while j < n and not (
                    text[j].isspace() or text[j].isalnum() or text[j] in "'\"$(),;_"
                ):
                    j += 1
                self.error(
                    codes.UNEXPECTED_CHAR,
                    f"unexpected character {text[i]!r}",
                    i,
                    i + 1,
                    help="comments are written -- ... or /* ... */"
                    if c == "#"
                    else "remove it; dfc's operators are ~> |=> & | ?> !> @> <->",
                )
                i = j
        end = end_of(self.out.tokens[-1]) if self.out.tokens else 0
        self.out.tokens.append(make_token("$END", "", end, end))
        return self.out

    def string_prefix(self, i: int) -> bool:
        """Whether a prefixed string literal (E'', N'', U&'', B'', X'') starts at ``i``."""
        text = self.text
        if i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_"):
            return False
        nxt = text[i + 1 : i + 2]
        if text[i] in "uU":
            return text.startswith("&'", i + 1)
        return nxt == "'"

    # -- comments -----------------------------------------------------------------------------

    def line_comment(self, i: int) -> int:
        j = self.text.find("\n", i)
        j = self.n if j < 0 else j
        end = j - 1 if j > i and self.text[j - 1] == "\r" else j
        self.out.comments.append(Comment(i, end, self.text[i:end], block=False))
        return j

    def block_comment(self, i: int) -> int:
        text, n = self.text, self.n
        depth, j = 0, i
        while j < n:
            if text.startswith("/*", j):
                depth += 1
                j += 2
            elif text.startswith("*/", j):
                depth -= 1
                j += 2
                if depth == 0:
                    self.out.comments.append(Comment(i, j, text[i:j], block=True))
                    return j
            else:
                j += 1
        self.error(
            codes.UNTERMINATED_COMMENT,
            "unterminated /* comment",
            i,
            i + 2,
            help="close it with */ (comments nest: every /* inside needs its own */)",
        )
        self.out.comments.append(Comment(i, n, text[i:n], block=True))
        self.swallow(i)
        return n

    def swallow(self, start: int) -> None:
        if self.out.swallowed_from is None:
            self.out.swallowed_from = start

    # -- strings ------------------------------------------------------------------------------

    def string(self, i: int) -> int:
        """A string literal and any newline-separated continuation literals, as one token."""
        builder = _ValueBuilder()
        first = self.literal_part(i, builder, None)
        if first is None:  # not a literal after all (a stray `$`): already reported
            return self.stray_dollar(i)
        end, mode, ok = first
        joins: list[tuple[int, int, int]] = []
        while ok:
            nxt, newline = self.skip_gap(end)
            if nxt >= self.n or not newline or not self.starts_literal(nxt):
                # Literals on one line stay separate tokens: the parser reports them (DFC105)
                # and recovers as from a missing ',' or operator.
                break
            # Gap comments belong to the file, not the literal.
            self.collect_comments(end, nxt)
            at = builder.size
            part = self.literal_part(nxt, builder, mode)
            if part is None:
                break
            end, _mode, ok = part
            joins.append((at, nxt, end))
        if not ok:
            self.emit("ERROR", i, end)
            return end
        self.out.strings[i] = builder.finish(self.last_value_end, tuple(joins))
        self.emit("STRING", i, end)
        return end

    def starts_literal(self, j: int) -> bool:
        c = self.text[j]
        if c == "'":
            return True
        if c == "$":
            return _TAG_RE.match(self.text, j) is not None
        return c in "eEnNuUbBxX" and self.string_prefix(j)

    def skip_gap(self, j: int) -> tuple[int, bool]:
        """Skip blanks and comments after a literal; report whether a newline was crossed."""
        text, n = self.text, self.n
        newline = False
        while j < n:
            c = text[j]
            if c == "\n":
                newline = True
                j += 1
            elif c in _WHITESPACE or c.isspace():
                j += 1
            elif text.startswith("--", j):
                k = text.find("\n", j)
                j = n if k < 0 else k
            elif text.startswith("/*", j):
                depth, k = 0, j
                while k < n:
                    if text.startswith("/*", k):
                        depth, k = depth + 1, k + 2
                    elif text.startswith("*/", k):
                        depth, k = depth - 1, k + 2
                        if depth == 0:
                            break
                    else:
                        newline = newline or text[k] == "\n"
                        k += 1
                if depth:
                    return j, newline  # unterminated: let the main loop report it
                j = k
            else:
                break
        return j, newline

    def collect_comments(self, start: int, end: int) -> None:
        j = start
        while j < end:
            if self.text.startswith("--", j):
                j = self.line_comment(j)
            elif self.text.startswith("/*", j):
                j = self.block_comment(j)
            else:
                j += 1

    def literal_part(
        self, i: int, b: _ValueBuilder, cont_mode: str | None
    ) -> tuple[int, str, bool] | None:
        """Decode one literal at ``i`` into ``b``: (end, mode, terminated) or None for a stray $.

        ``cont_mode`` is the first literal's mode; a plain ``'..'`` continuation inherits it, as
        in PostgreSQL (``E'a\\n'`` followed by ``'\\t'`` on the next line decodes both escapes).
        """
        text = self.text
        c = text[i]
        if c == "$":
            m = _TAG_RE.match(text, i)
            if m is None:
                return None
            return self.dollar(i, m.group(0), b)
        if c == "'":
            mode = cont_mode if cont_mode in ("E", "U") else "plain"
            if mode == "U":
                mode = "plain"  # UESCAPE of a continued U& literal: decoded as plain
            return self.quoted(i, i, mode, b)
        up = c.upper()
        if up in "BX":
            end, _m, ok = self.quoted(i, i + 1, "plain", _ValueBuilder())
            if ok:
                self.error(
                    codes.UNSUPPORTED_LITERAL,
                    f"bit-string literals ({up}'...') are not supported in workflows",
                    i,
                    end,
                    help="write the value as a plain string or number",
                )
            return end, "plain", False
        if up == "E":
            return self.quoted(i, i + 1, "E", b)
        if up == "N":
            return self.quoted(i, i + 1, "plain", b)
        return self.unicode_string(i, b)

    def quoted(self, start: int, q: int, mode: str, b: _ValueBuilder) -> tuple[int, str, bool]:
        """A ``'...'`` literal whose opening quote is at ``q``; ``start`` includes any prefix."""
        text, n = self.text, self.n
        j = q + 1
        run = j
        pending: list[
            tuple[int, int]
        ] = []  # E'' byte escapes waiting to form UTF-8: (byte, offset)
        while j < n:
            c = text[j]
            if c == "'":
                if j + 1 < n and text[j + 1] == "'":
                    self.flush_bytes(b, pending)
                    b.add_slice(text, run, j)
                    b.add_char("'", j, 2)
                    j += 2
                    run = j
                    continue
                self.flush_bytes(b, pending)
                b.add_slice(text, run, j)
                self.last_value_end = j
                return j + 1, mode, True
            if c == "\\" and mode == "E":
                if run < j:
                    self.flush_bytes(b, pending)
                    b.add_slice(text, run, j)
                j = self.escape(j, b, pending)
                run = j
                continue
            j += 1
        self.error(
            codes.UNTERMINATED_STRING,
            "unterminated string literal",
            start,
            q + 1,
            help="close it with ' (a quote inside a string is written '', or use $$...$$)",
        )
        self.swallow(start)
        self.last_value_end = n
        return n, mode, False

    def escape(self, j: int, b: _ValueBuilder, pending: list[tuple[int, int]]) -> int:
        """Decode the E'' escape at ``j`` (a backslash); return the offset after it."""
        text, n = self.text, self.n
        if j + 1 >= n:
            return j + 1  # the unterminated-string error covers it
        c = text[j + 1]
        simple = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
        if c in simple:
            self.flush_bytes(b, pending)
            b.add_char(simple[c], j, 2)
            return j + 2
        if c in "01234567":
            k = j + 1
            while k < n and k < j + 4 and text[k] in "01234567":
                k += 1
            pending.append((int(text[j + 1 : k], 8) & 0xFF, j))
            return k
        if c == "x" and j + 2 < n and text[j + 2] in "0123456789abcdefABCDEF":
            k = j + 2
            while k < n and k < j + 4 and text[k] in "0123456789abcdefABCDEF":
                k += 1
            pending.append((int(text[j + 2 : k], 16), j))
            return k
        if c in "uU":
            width = 4 if c == "u" else 8
            digits = text[j + 2 : j + 2 + width]
            if len(digits) < width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                self.error(
                    codes.BAD_ESCAPE,
                    f"invalid Unicode escape \\{c}{digits[:width]}".rstrip(),
                    j,
                    min(n, j + 2 + width),
                    help="Unicode escapes must be \\uhhhh or \\Uhhhhhhhh (h: a hex digit)",
                )
                return j + 2
            self.flush_bytes(b, pending)
            return self.code_point(int(digits, 16), j, j + 2 + width, b)
        # Any other escaped character stands for itself (\\ \' \" and unknown ones, as in PG).
        self.flush_bytes(b, pending)
        b.add_char(c, j, 2)
        return j + 2

    def code_point(self, cp: int, j: int, end: int, b: _ValueBuilder) -> int:
        """Add a Unicode code point from an escape at ``j``, pairing UTF-16 surrogates."""
        text = self.text
        if 0xD800 <= cp <= 0xDBFF:
            m = _LOW_SURROGATE_RE.match(text, end)
            if m is not None:
                low = int(m.group(1), 16)
                b.add_char(chr(0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)), j, 2)
                return m.end()
            self.error(
                codes.BAD_ESCAPE,
                "invalid Unicode surrogate pair",
                j,
                end,
                help="a high surrogate \\uD800-\\uDBFF must be followed by a low one \\uDC00-\\uDFFF",
            )
            return end
        if 0xDC00 <= cp <= 0xDFFF or cp == 0 or cp > 0x10FFFF:
            self.error(
                codes.BAD_ESCAPE,
                f"invalid Unicode escape value U+{cp:04X}",
                j,
                end,
                help="PostgreSQL text cannot hold NUL, lone surrogates or code points above U+10FFFF",
            )
            return end
        b.add_char(chr(cp), j, 2)
        return end

    def flush_bytes(self, b: _ValueBuilder, pending: list[tuple[int, int]]) -> None:
        """Decode accumulated ``\\xHH`` / octal bytes as UTF-8, as PostgreSQL does."""
        if not pending:
            return
        raw = bytes(v for v, _ in pending)
        k = 0
        while k < len(raw):
            length = _utf8_length(raw[k])
            chunk = raw[k : k + length]
            try:
                ch = chunk.decode("utf-8") if length else ""
            except UnicodeDecodeError:
                ch = ""
            if len(ch) != 1 or ch == "\x00":
                off = pending[k][1]
                self.error(
                    codes.BAD_ESCAPE,
                    f"invalid byte sequence for UTF-8: 0x{raw[k]:02x}",
                    off,
                    off + 2,
                    help="byte escapes must form valid UTF-8 and cannot be 0; use \\uhhhh for characters",
                )
                b.add_char("\ufffd", off, 2)
                k += 1
                continue
            b.add_char(ch, pending[k][1], 2)
            k += length
        pending.clear()

    def unicode_string(self, i: int, b: _ValueBuilder) -> tuple[int, str, bool]:
        """``U&'...'`` with ``\\hhhh`` / ``\\+hhhhhh`` escapes (h: a hex digit) and an optional ``UESCAPE 'c'``."""
        raw = _ValueBuilder()
        end, _m, ok = self.quoted(i, i + 2, "plain", raw)
        if not ok:
            return end, "U", False
        esc = "\\"
        m = _UESCAPE_RE.match(self.text, end)
        if m is not None:
            esc = m.group(1)
            if esc in "0123456789abcdefABCDEF+'\" \t\n\r":
                self.error(
                    codes.BAD_ESCAPE,
                    f"invalid Unicode escape character {esc!r}",
                    m.start(1),
                    m.end(1),
                )
                esc = "\\"
            end = m.end()
        # Decode over the raw value, mapping back through the raw value's own map.
        value, rmap = raw.finish(self.last_value_end), None
        rmap = value.text_map
        text = value.value
        k = 0
        while k < len(text):
            c = text[k]
            if c != esc:
                b.add_char(c, rmap.offset(k), 1)
                k += 1
                continue
            off = rmap.offset(k)
            if text[k + 1 : k + 2] == esc:
                b.add_char(esc, off, 2)
                k += 2
                continue
            m2 = _U_ESCAPE_RE.match(text, k + 1)
            if m2 is None:
                self.error(
                    codes.BAD_ESCAPE,
                    "invalid Unicode escape",
                    off,
                    off + 2,
                    help=f"U& escapes are {esc}hhhh or {esc}+hhhhhh (h: a hex digit)",
                )
                k += 1
                continue
            cp = int(m2.group(1) or m2.group(2), 16)
            if cp == 0 or 0xD800 <= cp <= 0xDFFF or cp > 0x10FFFF:
                self.error(
                    codes.BAD_ESCAPE, f"invalid Unicode escape value U+{cp:04X}", off, off + 2
                )
            else:
                b.add_char(chr(cp), off, 2)
            k = m2.end()
        return end, "U", True

    def dollar(self, i: int, delim: str, b: _ValueBuilder) -> tuple[int, str, bool]:
        body = i + len(delim)
        close = self.text.find(delim, body)
        if close < 0:
            self.error(
                codes.UNTERMINATED_DOLLAR,
                f"unterminated dollar-quoted string {delim}",
                i,
                body,
                help=f"close it with {delim}",
            )
            self.swallow(i)
            self.last_value_end = self.n
            return self.n, "dollar", False
        b.add_slice(self.text, body, close)
        self.last_value_end = close
        return close + len(delim), "dollar", True

    def foreign_comment(self, i: int) -> int:
        """``# ...`` or ``// ...``: a comment from another language; reported, then skipped."""
        j = self.text.find("\n", i)
        j = self.n if j < 0 else j
        mark = "#" if self.text[i] == "#" else "//"
        self.error(
            codes.UNEXPECTED_CHAR,
            f"unexpected {mark!r}",
            i,
            i + len(mark),
            help="comments are written -- ... or /* ... */",
        )
        self.out.comments.append(Comment(i, j, self.text[i:j], block=False))
        return j

    def backtick(self, i: int) -> int:
        """```...```: MySQL-style quoting; reported, then read as a string so parsing goes on."""
        j = self.text.find("`", i + 1)
        nl = self.text.find("\n", i + 1)
        if j < 0 or (0 <= nl < j):
            self.error(
                codes.UNEXPECTED_CHAR,
                "unexpected character '`'",
                i,
                i + 1,
                help="strings are written in single quotes ('...') or $$...$$",
            )
            return i + 1
        self.error(
            codes.UNEXPECTED_CHAR,
            "backticks are not quotes in SQL",
            i,
            i + 1,
            help="write strings in single quotes ('...') or $$...$$",
        )
        self.out.strings[i] = StringValue(self.text[i + 1 : j], TextMap(((0, i + 1),), j - i - 1))
        self.emit("STRING", i, j + 1)
        self.out.flagged.add(i)
        return j + 1

    def stray_dollar(self, i: int) -> int:
        m = _REF_RE.match(self.text, i)
        if m is not None:
            self.error(
                codes.REF_OUTSIDE_STRING,
                f"the reference {m.group(0)} must be inside a string",
                i,
                m.end(),
                help=f"write it inside the SQL or HTTP text, e.g. 'SELECT {m.group(0)}'",
            )
            self.emit("ERROR", i, m.end())
            return m.end()
        m = _POSITIONAL_RE.match(self.text, i)
        if m is not None:
            self.error(
                codes.UNEXPECTED_CHAR,
                f"unexpected {m.group(0)}",
                i,
                m.end(),
                help="references are written $name inside a string, after binding a result with |=> 'name'",
            )
            self.emit("ERROR", i, m.end())
            return m.end()
        self.error(
            codes.UNEXPECTED_CHAR,
            "unexpected character '$'",
            i,
            i + 1,
            help="dollar quotes are written $$...$$ or $tag$...$tag$",
        )
        return i + 1

    def stray_var(self, i: int) -> int:
        m = _VAR_RE.match(self.text, i)
        end = m.end() if m else i + 1
        self.error(
            codes.VAR_OUTSIDE_STRING,
            f"the variable {self.text[i:end]} must be inside a string"
            if m
            else "unexpected character '{'",
            i,
            end,
            help="{vars} are substituted inside SQL and HTTP text, e.g. '{api_url}/items'",
        )
        self.emit("ERROR", i, end)
        return end

    def quoted_ident(self, i: int) -> int:
        text, n = self.text, self.n
        j = i + 1
        while j < n:
            if text[j] == '"':
                if j + 1 < n and text[j + 1] == '"':
                    j += 2
                    continue
                self.emit("QIDENT", i, j + 1)
                return j + 1
            j += 1
        self.error(
            codes.UNTERMINATED_STRING,
            "unterminated quoted identifier",
            i,
            i + 1,
            help="close it with \"; for text, use single quotes: '...'",
        )
        self.swallow(i)
        self.emit("ERROR", i, n)
        return n

    # -- numbers, words, operators ------------------------------------------------------------

    def number(self, i: int) -> int:
        m = _NUMBER_RE.match(self.text, i)
        assert m is not None
        end = m.end()
        tail = _WORD_TAIL_RE.match(self.text, end)
        if tail is not None:
            bad = self.text[i : tail.end()]
            unit = tail.group(0).lower()
            hint = "numbers are plain digits, e.g. 30 or 1.5"
            if unit in ("s", "sec", "secs", "seconds"):
                hint = f"durations are whole seconds: write {m.group(0)}"
            elif unit in (
                "m",
                "min",
                "mins",
                "minutes",
                "h",
                "hour",
                "hours",
                "d",
                "day",
                "days",
                "ms",
            ):
                hint = "durations are whole seconds, e.g. 3600 for an hour"
            self.error(codes.BAD_NUMBER, f"invalid number {bad!r}", i, tail.end(), help=hint)
            self.emit("ERROR", i, tail.end())
            return tail.end()
        if end - i > MAX_NUMBER_LENGTH:
            self.error(
                codes.BAD_NUMBER,
                f"a number of {end - i} characters is too long",
                i,
                end,
                help=f"numbers have at most {MAX_NUMBER_LENGTH} characters",
            )
            self.emit("ERROR", i, end)
            return end
        self.emit("NUMBER", i, end)
        return end

    def word(self, i: int) -> int:
        text = self.text
        m = _IDENT_RE.match(text, i)
        assert m is not None
        end = m.end()
        low = m.group(0).lower()
        if low == "df":
            j = end
            while j < self.n and text[j] in " \t\r\n":
                j += 1
            if j < self.n and text[j] == "." and not text.startswith("..", j):
                k = j + 1
                while k < self.n and text[k] in " \t\r\n":
                    k += 1
                name = _IDENT_RE.match(text, k)
                if name is None:
                    self.error(
                        codes.UNEXPECTED_CHAR,
                        "expected a function name after 'df.'",
                        i,
                        j + 1,
                        help="built-ins are called like df.sleep(5)",
                    )
                    # A nameless DFNAME keeps `df.(...)` a call; the builder stays silent about it.
                    self.emit("DFNAME", i, j + 1, "")
                    self.out.flagged.add(i)
                    return j + 1
                self.emit("DFNAME", i, name.end(), name.group(0).lower())
                return name.end()
        kind = KEYWORDS.get(low, "IDENT")
        self.emit(kind, i, end)
        return end

    def operators(self, i: int) -> int:
        text, n = self.text, self.n
        j = i
        while (
            j < n
            and text[j] in _OP_CHARS
            and not text.startswith("--", j)
            and not text.startswith("/*", j)
        ):
            j += 1
        k = i
        while k < j:
            op = _longest(_OPERATOR_KINDS, text, k, j)
            typo = _longest(_OP_SUGGESTIONS, text, k, j)
            if op and len(op) >= len(typo):
                self.emit(_OPERATOR_KINDS[op], k, k + len(op))
                k += len(op)
            else:
                # An unknown operator: report it, and stand in the likely meant one so that
                # parsing goes on (the file already has an error, nothing will run).
                width = len(typo) if typo else j - k
                meant = _OP_SUGGESTIONS.get(typo, "~>")
                self.error(
                    codes.UNKNOWN_OPERATOR,
                    f"unknown operator {text[k : k + width]!r}",
                    k,
                    k + width,
                    help=f"did you mean '{meant}'? dfc's operators are ~> |=> & | ?> !> @> <->"
                    if typo
                    else "dfc's operators are ~> |=> & | ?> !> @> <->",
                )
                kind = next(kd for op, kd in OPERATORS if op == meant)
                self.emit(kind, k, k + width, meant)
                self.out.flagged.add(k)
                k += width
        return j


def _longest(table: dict[str, str], text: str, start: int, end: int) -> str:
    """The longest key of ``table`` that ``text[start:end]`` starts with ("" if none)."""
    for length in range(min(_LONGEST_OPERATOR, end - start), 0, -1):
        if text[start : start + length] in table:
            return text[start : start + length]
    return ""


def _utf8_length(first: int) -> int:
    if first < 0x80:
        return 1
    if 0xC2 <= first <= 0xDF:
        return 2
    if 0xE0 <= first <= 0xEF:
        return 3
    if 0xF0 <= first <= 0xF4:
        return 4
    return 0


def operator_text(kind: str) -> str | None:
    """The spelling of an operator terminal (``SEQ`` → ``~>``)."""
    return _OP_NAMES.get(kind)
