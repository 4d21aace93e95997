"""A small PostgreSQL lexer: just enough to split statements and find certain errors.

sqlglot's parser does not know all of PostgreSQL, so the checker never calls a statement invalid
on sqlglot's word alone. What it can prove itself it proves with this lexer, which follows
PostgreSQL's lexical rules exactly for the parts that matter: string literals (``'...'`` with
``''``, ``E'...'`` with backslash escapes, ``B''``/``X''``/``N''``/``U&''``, dollar quotes),
quoted identifiers, nested block comments, line comments, parentheses and semicolons.
Everything else becomes a word, number or operator token. Positions are indices into the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

TokenKind = Literal["word", "string", "qident", "number", "param", "op", "punct", "error"]


@dataclass(frozen=True, slots=True)
class Token:
    """A token ``text[start:end]``; for ``error`` tokens ``message`` says what is unterminated."""

    kind: TokenKind
    start: int
    end: int
    text: str
    message: str = ""

    @property
    def upper(self) -> str:
        return self.text.upper()


_WS = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*")
_NUMBER = re.compile(r"(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_PARAM = re.compile(r"\$\d+")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")
_OP_CHARS = "+-*/<>=~!@#%^&|`?:"
_PUNCT = "()[],;."


def tokenize(text: str, comments: list[tuple[int, int]] | None = None) -> list[Token]:
    """Tokens of ``text`` without whitespace and comments.

    Never raises: an unterminated string, quoted identifier, dollar quote or comment becomes a
    final ``error`` token starting at its opening character. When ``comments`` is given, the
    ``[start, end)`` ranges of comments are appended to it.
    """
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            m = _WS.match(text, i)
            assert m is not None
            i = m.end()
            continue
        if text.startswith("--", i):
            j = text.find("\n", i)
            j = n if j < 0 else j + 1
            if comments is not None:
                comments.append((i, j))
            i = j
            continue
        if text.startswith("/*", i):
            j = _block_comment_end(text, i)
            if j < 0:
                out.append(Token("error", i, n, text[i:], "unterminated /* comment"))
                return out
            if comments is not None:
                comments.append((i, j))
            i = j
            continue
        # String literals with a prefix: E'..', B'..', X'..', N'..', U&'..'.
        if c in "eEbBxXnN" and i + 1 < n and text[i + 1] == "'":
            tok = _quoted(text, i, i + 1, "'", backslash=c in "eE")
            out.append(tok)
            if tok.kind == "error":
                return out
            i = tok.end
            continue
        if c in "uU" and text.startswith(("&'", '&"'), i + 1):
            q = text[i + 2]
            tok = _quoted(text, i, i + 2, q, backslash=False)
            if q == '"' and tok.kind != "error":
                tok = Token("qident", tok.start, tok.end, tok.text)
            out.append(tok)
            if tok.kind == "error":
                return out
            i = tok.end
            continue
        if c == "'":
            tok = _quoted(text, i, i, "'", backslash=False)
            out.append(tok)
            if tok.kind == "error":
                return out
            i = tok.end
            continue
        if c == '"':
            tok = _quoted(text, i, i, '"', backslash=False)
            if tok.kind != "error":
                tok = Token("qident", tok.start, tok.end, tok.text)
            out.append(tok)
            if tok.kind == "error":
                return out
            i = tok.end
            continue
        if c == "$":
            m = _PARAM.match(text, i)
            if m:
                out.append(Token("param", i, m.end(), m.group()))
                i = m.end()
                continue
            m = _DOLLAR_TAG.match(text, i)
            if m:
                tag = m.group()
                j = text.find(tag, m.end())
                if j < 0:
                    out.append(Token("error", i, n, text[i:], f"unterminated {tag} quote"))
                    return out
                out.append(Token("string", i, j + len(tag), text[i : j + len(tag)]))
                i = j + len(tag)
                continue
            out.append(Token("op", i, i + 1, "$"))
            i += 1
            continue
        m = _WORD.match(text, i)
        if m:
            out.append(Token("word", i, m.end(), m.group()))
            i = m.end()
            continue
        m = _NUMBER.match(text, i)
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
            while j < n and text[j] in _OP_CHARS and not text.startswith(("--", "/*"), j):
                j += 1
            out.append(Token("op", i, j, text[i:j]))
            i = j
            continue
        out.append(Token("op", i, i + 1, c))
        i += 1
    return out


def _block_comment_end(text: str, i: int) -> int:
    """Index just past the ``*/`` closing the (nestable) comment opened at ``i``, or -1."""
    depth, j, n = 0, i, len(text)
    while j < n:
        if text.startswith("/*", j):
            depth += 1
            j += 2
        elif text.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        else:
            j += 1
    return -1


def _quoted(text: str, start: int, quote_at: int, q: str, *, backslash: bool) -> Token:
    """The literal whose opening quote ``q`` is at ``quote_at`` (prefix from ``start``)."""
    j, n = quote_at + 1, len(text)
    while j < n:
        ch = text[j]
        if backslash and ch == "\\":
            j += 2
            continue
        if ch == q:
            if j + 1 < n and text[j + 1] == q:
                j += 2
                continue
            return Token("string", start, j + 1, text[start : j + 1])
        j += 1
    what = "quoted identifier" if q == '"' else "string literal"
    return Token("error", start, n, text[start:], f"unterminated {what}")


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
    Empty statements (``;;``) are dropped.
    """
    out: list[Statement] = []
    cur: list[Token] = []
    depth = 0
    atomic = 0
    prev = ""
    for t in tokens:
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
