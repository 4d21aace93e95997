"""The one PostgreSQL lexer of dfc: where code, literals and comments are in SQL text (SPEC §1.1).

The checker splits statements and proves certain errors with it, and `dfc.references` decides
with it where a ``$name`` reference stands, for the checker and the runtime alike. It follows
PostgreSQL's ``scan.l`` (with ``standard_conforming_strings`` on) for everything that decides what
is code:

- whitespace is ``[ \\t\\n\\r\\f\\v]`` only (other characters, even Unicode spaces, are identifier
  characters to PostgreSQL);
- comments: ``--`` to the end of the line (``\\n`` or ``\\r``) and ``/* ... */``, nested;
- string literals: ``'...'`` with ``''``; ``E'...'`` with backslash escapes (a backslash takes
  the next character, whatever it is); ``U&'...'`` and ``N'...'`` like ``'...'``; ``B'...'`` and
  ``X'...'``, which end at the first quote (no ``''`` inside). A literal continues across
  whitespace holding a newline (``'a'`` newline ``'b'`` is one string, and line comments may
  stand in that whitespace): each continuing segment is its own token, read in the mode of the
  first (``E'a'`` newline ``'\\''`` is ``a'``);
- quoted identifiers ``"..."`` and ``U&"..."`` with ``""``;
- dollar quotes: ``$`` + an optional tag + ``$``, where a tag is an identifier that cannot
  contain ``$``; the quote ends at the next occurrence of the same delimiter. No escapes inside;
- ``$1`` is a parameter; identifiers may contain ``$`` and digits after their first character,
  so ``a$b$`` is one word, not the start of a dollar quote; a ``$`` that starts nothing is an
  operator character;
- numbers, operators (cut before ``--`` and ``/*``) and punctuation ``( ) [ ] , ; .``.

Positions are indices into the text. The lexer never raises: an unterminated literal, quoted
identifier, dollar quote or comment becomes a final ``error`` token from its opening character
to the end, whose ``form`` says what was left open.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Literal

TokenKind = Literal[
    "word", "string", "qident", "number", "param", "op", "punct", "comment", "error"
]

Form = Literal[
    "",
    "plain",  # '...'
    "escape",  # E'...'
    "unicode",  # U&'...'
    "national",  # N'...'
    "bit",  # B'...'
    "hex",  # X'...'
    "dollar",  # $tag$...$tag$
    "ident",  # "..."
    "unicode_ident",  # U&"..."
    "line",  # -- ...
    "block",  # /* ... */
]
"""What a string, quoted identifier or comment token is (for an ``error`` token: what was left
open)."""

STRING_FORMS = frozenset({"plain", "escape", "unicode", "national", "bit", "hex", "dollar"})
IDENT_FORMS = frozenset({"ident", "unicode_ident"})

# Length of the opening delimiter of each quoted form (a continuing segment opens with `'`).
_OPENER = {
    "plain": 1,
    "escape": 2,
    "unicode": 3,
    "national": 2,
    "bit": 2,
    "hex": 2,
    "ident": 1,
    "unicode_ident": 3,
}


@dataclass(frozen=True, slots=True)
class Token:
    """A token ``text[start:end]``.

    ``form`` says which kind of literal, quoted identifier or comment it is; ``continues`` marks
    a string segment that continues the literal before it. For ``error`` tokens ``message`` says
    what is unterminated.
    """

    kind: TokenKind
    start: int
    end: int
    text: str
    message: str = ""
    form: Form = ""
    continues: bool = False

    @property
    def upper(self) -> str:
        """The text upper-cased (keywords)."""
        return self.text.upper()

    @property
    def tag(self) -> str:
        """The delimiter of a dollar quote (``$$``, ``$body$``); empty for anything else."""
        if self.form != "dollar":
            return ""
        return self.text[: self.text.index("$", 1) + 1]

    @property
    def body_start(self) -> int:
        """Where the contents of a literal or quoted identifier begin (after the opening quote)."""
        if self.form == "dollar":
            return self.start + len(self.tag)
        return self.start + (1 if self.continues else _OPENER.get(self.form, 0))

    @property
    def body_end(self) -> int:
        """Where its contents end: before the closing quote (the end, when unterminated)."""
        if self.kind == "error":
            return self.end
        return self.end - (len(self.tag) if self.form == "dollar" else 1)


def _ascii_and_beyond(ascii_chars: str) -> str:
    """A character class of ``ascii_chars`` and every non-ASCII character.

    Written as the complement of the other ASCII characters: the same class with the range
    ``\\u0080-\\U0010ffff`` takes ``re`` 10-20 ms to compile, at every start of ``dfc``.
    """
    return "[^" + "".join(re.escape(chr(c)) for c in range(128) if chr(c) not in ascii_chars) + "]"


# PostgreSQL's ident_start and ident_cont (scan.l); a dollar quote's tag has no `$` inside.
_IDENT_START = _ascii_and_beyond(string.ascii_letters + "_")
_IDENT_CONT = _ascii_and_beyond(string.ascii_letters + string.digits + "_$")
_TAG_CONT = _ascii_and_beyond(string.ascii_letters + string.digits + "_")

_WS = re.compile(r"[ \t\n\r\f\v]+")
_WORD = re.compile(f"{_IDENT_START}{_IDENT_CONT}*")
_NUMBER = re.compile(r"(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_PARAM = re.compile(r"\$\d+")
_DOLLAR_TAG = re.compile(rf"\$(?:{_IDENT_START}{_TAG_CONT}*)?\$")
# Whitespace that lets a literal continue: horizontal space and line comments, a newline, then
# any whitespace and line comments that end with a newline (scan.l's whitespace_with_newline).
_CONTINUE = re.compile(
    r"(?:[ \t\f]|--[^\n\r]*)*[\n\r](?:[ \t\n\r\f\v]|--[^\n\r]*[\n\r])*'",
)
_LINE_COMMENT = re.compile(r"--[^\n\r]*")
_OP_CHARS = "+-*/<>=~!@#%^&|`?:"
_PUNCT = "()[],;."
# Prefixes of string literals and quoted identifiers, by the characters after the letter(s).
_PREFIXED: dict[str, Form] = {
    "e'": "escape",
    "b'": "bit",
    "x'": "hex",
    "n'": "national",
    "u&'": "unicode",
    'u&"': "unicode_ident",
}


def tokenize(text: str) -> list[Token]:
    """Tokens of ``text`` without whitespace and comments (see `lex`)."""
    return [t for t in lex(text) if t.kind != "comment"]


def lex(text: str, start: int = 0, stop: int | None = None) -> list[Token]:
    """Every token of ``text[start:stop]``, comments included, without whitespace.

    Never raises: lexing ends with an ``error`` token at the first unterminated literal, quoted
    identifier, dollar quote or comment, which reaches ``stop``.
    """
    n = len(text) if stop is None else stop
    out: list[Token] = []
    i = start
    while i < n:
        c = text[i]
        if c in " \t\n\r\f\v":
            m = _WS.match(text, i, n)
            assert m is not None
            i = m.end()
            continue
        if text.startswith("--", i, n):
            m = _LINE_COMMENT.match(text, i, n)
            assert m is not None
            out.append(Token("comment", i, m.end(), m.group(), form="line"))
            i = m.end()
            continue
        if text.startswith("/*", i, n):
            j = block_comment_end(text, i, n)
            if j < 0:
                out.append(_error(text, i, n, "block", "unterminated /* comment"))
                return out
            out.append(Token("comment", i, j, text[i:j], form="block"))
            i = j
            continue
        form = _prefixed(text, i, n)
        if form is not None or c in "'\"":
            if form is None:
                form = "plain" if c == "'" else "ident"
            if not _string(text, i, n, form, out):
                return out
            i = out[-1].end
            continue
        if c == "$":
            m = _PARAM.match(text, i, n)
            if m:
                out.append(Token("param", i, m.end(), m.group()))
                i = m.end()
                continue
            m = _DOLLAR_TAG.match(text, i, n)
            if m:
                tag = m.group()
                j = text.find(tag, m.end(), n)
                if j < 0:
                    out.append(_error(text, i, n, "dollar", f"unterminated {tag} quote"))
                    return out
                j += len(tag)
                out.append(Token("string", i, j, text[i:j], form="dollar"))
                i = j
                continue
            out.append(Token("op", i, i + 1, "$"))
            i += 1
            continue
        m = _WORD.match(text, i, n)
        if m:
            out.append(Token("word", i, m.end(), m.group()))
            i = m.end()
            continue
        m = _NUMBER.match(text, i, n)
        if m:
            out.append(Token("number", i, m.end(), m.group()))
            i = m.end()
            continue
        if c in _PUNCT:
            out.append(Token("punct", i, i + 1, c))
            i += 1
            continue
        if c in _OP_CHARS:
            j = i
            while j < n and text[j] in _OP_CHARS and not text.startswith(("--", "/*"), j, n):
                j += 1
            out.append(Token("op", i, j, text[i:j]))
            i = j
            continue
        out.append(Token("op", i, i + 1, c))
        i += 1
    return out


def _prefixed(text: str, i: int, n: int) -> Form | None:
    """The form of a prefixed literal or identifier starting at ``i`` (``E'``, ``U&"``, ...)."""
    if text[i] not in "eEbBxXnNuU":
        return None
    return _PREFIXED.get(text[i : min(i + 3 if text[i] in "uU" else i + 2, n)].lower())


def _string(text: str, i: int, n: int, form: Form, out: list[Token]) -> bool:
    """Lex the literal or quoted identifier at ``i``, with its continuing segments, into ``out``.

    Returns False when it is unterminated (its last token is then an ``error``).
    """
    quote = '"' if form in IDENT_FORMS else "'"
    body = i + _OPENER[form]
    continues = False
    while True:
        end = _closing(text, body, n, quote, form)
        if end < 0:
            what = "quoted identifier" if quote == '"' else "string literal"
            out.append(_error(text, i, n, form, f"unterminated {what}", continues=continues))
            return False
        kind: TokenKind = "qident" if quote == '"' else "string"
        out.append(Token(kind, i, end, text[i:end], form=form, continues=continues))
        if quote == '"':
            return True
        m = _CONTINUE.match(text, end, n)
        if m is None:
            return True
        for c in _LINE_COMMENT.finditer(text, end, m.end()):
            out.append(Token("comment", c.start(), c.end(), c.group(), form="line"))
        i = m.end() - 1
        body = i + 1
        continues = True


def _closing(text: str, j: int, n: int, quote: str, form: Form) -> int:
    """Index just past the quote that ends a literal whose contents start at ``j``, or -1."""
    doubling = form not in ("bit", "hex")
    backslash = form == "escape"
    while j < n:
        ch = text[j]
        if backslash and ch == "\\":
            j += 2
            continue
        if ch == quote:
            if doubling and j + 1 < n and text[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return -1


def _error(
    text: str, i: int, n: int, form: Form, message: str, *, continues: bool = False
) -> Token:
    return Token("error", i, n, text[i:n], message, form=form, continues=continues)


def block_comment_end(text: str, i: int, stop: int | None = None) -> int:
    """Index just past the ``*/`` closing the (nestable) comment opened at ``i``, or -1."""
    n = len(text) if stop is None else stop
    depth, j = 0, i
    while j < n:
        if text.startswith("/*", j, n):
            depth += 1
            j += 2
        elif text.startswith("*/", j, n):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        else:
            j += 1
    return -1


def escaped(text: str, token: Token, pos: int) -> bool:
    """Whether the character at ``pos`` inside an ``E'...'`` literal is taken by a backslash
    escape before it (``E'\\$x'`` holds ``$x``, a dollar sign that starts nothing)."""
    if token.form != "escape":
        return False
    j = pos
    while j > token.body_start and text[j - 1] == "\\":
        j -= 1
    return (pos - j) % 2 == 1


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a SQL text: ``tokens`` (without the ``;``) and its ``[start, end)``."""

    tokens: tuple[Token, ...]
    start: int
    end: int

    @property
    def first_word(self) -> str:
        """The statement's first keyword, upper-cased, skipping opening parentheses."""
        for t in self.tokens:
            if t.kind == "punct" and t.text == "(":
                continue
            return t.upper if t.kind == "word" else ""
        return ""


def split(tokens: list[Token]) -> list[Statement]:
    """Split tokens into statements at semicolons outside parentheses.

    Inside ``BEGIN ATOMIC ... END`` (SQL-standard function bodies) semicolons do not split.
    Empty statements (``;;``) are dropped; comments are skipped.
    """
    out: list[Statement] = []
    cur: list[Token] = []
    depth = 0
    atomic = 0
    prev = ""
    for t in tokens:
        if t.kind == "comment":
            continue
        if t.kind == "punct" and t.text in "([":
            depth += 1
        elif t.kind == "punct" and t.text in ")]":
            depth = max(0, depth - 1)
        elif t.kind == "word":
            up = t.upper
            if up == "ATOMIC" and prev == "BEGIN":
                atomic += 1
            elif up == "END" and atomic:
                atomic -= 1
        if t.kind == "punct" and t.text == ";" and depth == 0 and not atomic:
            if cur:
                out.append(Statement(tuple(cur), cur[0].start, cur[-1].end))
            cur = []
            prev = ""
            continue
        cur.append(t)
        prev = t.upper if t.kind == "word" else ""
    if cur:
        out.append(Statement(tuple(cur), cur[0].start, cur[-1].end))
    return out
