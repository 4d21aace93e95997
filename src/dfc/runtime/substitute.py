"""References inside step text: ``{vars}`` and ``$name`` forms (SPEC §1.4).

Two contexts:

* **SQL** (`substitute_sql`): a value becomes one SQL literal (strings quoted with ``''``
  doubling, numbers and booleans bare, JSON objects and arrays as quoted JSON text, NULL as
  ``NULL``), ``$name.*`` an inline ``(VALUES ...)`` relation. Where a reference counts is decided
  by `dfc.references.place` over the text lexed by `dfc.sqllex` (the checker uses the same rule),
  so that no value can ever change the statement's structure:

  - in code, a reference becomes a literal, as above (``dfc.sqlquote``);
  - inside a string literal or a quoted identifier, the reference's *raw* text is inserted with
    that token's escaping (quotes doubled; backslashes too in ``E''``; the escape character too
    in ``U&''``), so ``'Hello $who'`` gives ``'Hello Bob'``; a naive quoted literal there would
    end the enclosing string and let the value's text run as SQL. A value holding a quote cannot
    stand inside ``B''`` or ``X''`` (which have no way to write one) and fails the step;
  - inside comments references are left as written (a newline in a value would end a ``--``
    comment and let the rest run);
  - dollar-quoted text (function bodies, ``DO`` blocks) is lexed again as code, and a value that
    would put an enclosing ``$tag$`` into it (and so end the quoted text early) fails the step.

  **Whatever the session's settings.** A step may run ``SET standard_conforming_strings = off``,
  after which PostgreSQL reads backslashes in plain ``'...'`` literals as escapes, and the text
  would no longer lex as it does here: a value could then end a literal. So, in a text where a
  value is substituted (in the code holding it and the code around it), every plain ``'...'``
  or ``N'...'`` literal that would hold a backslash is written as an escape string ``E'...'``
  (``NCHAR E'...'``) with its backslashes doubled: it then means the same under either setting,
  and so does the whole text. The one semantic corner: such a literal is read as a standard
  string, its backslashes being plain characters, even in a session that turned
  ``standard_conforming_strings`` off (write ``E'...'`` for escapes there). Quotes are always
  doubled, never backslash-escaped, so ``backslash_quote`` does not matter either.

  A ``{var}`` whose value holds a double quote cannot stand inside a quoted identifier
  (``"x_{var}"``): the value would end the identifier and run as code; the step fails.

* **raw** (`substitute_raw`, for HTTP url/body/headers and break values): values as plain text,
  JSON values as compact JSON text, ``$name.*`` a JSON array of row objects.

``{vars}`` are replaced first, as raw text in both contexts; text that came from a variable is
never scanned for references. Which bindings are visible is decided by the state machine; this
module gets a mapping from name to result.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, assert_never

from dfc.json_types import JSON
from dfc.references import EXPRESSION_VAR, REFERENCE, Code, Place, place, sql_code
from dfc.runtime import codes
from dfc.runtime.truth import is_row_set
from dfc.sqllex import IDENT_FORMS, STRING_FORMS, Token
from dfc.sqlquote import (
    dumps,
    escape_in,
    escape_string_body,
    quote_ident,
    quote_literal,
    sql_literal,
)

MAX_INLINE_ROWS = 10_000
"""`$name.*` in SQL expands to at most this many rows (SPEC §1.4)."""


class SubstitutionError(Exception):
    """A reference that cannot be substituted; it fails the node (never a crash).

    ``reference`` is the reference as written (``$job.id``); ``code`` a DFC6xx runtime code.
    """

    def __init__(self, message: str, *, reference: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.reference = reference
        self.code = code


# -- scanning ---------------------------------------------------------------------------------

# The grammar of references (SPEC §1.4), the same the checker uses.
_PATTERN = REFERENCE

Context = Literal["sql", "raw"]


class _Ref:
    """A reference to a visible binding, found in the original text."""

    __slots__ = ("end", "m", "start")

    def __init__(self, m: re.Match[str], start: int, end: int) -> None:
        self.m = m
        self.start = start
        self.end = end


def has_candidates(text: str) -> bool:
    """Cheap test: could `text` contain a reference or a variable at all?"""
    return "$" in text or "{" in text


def substitute(
    text: str, bindings: Mapping[str, JSON], variables: Mapping[str, str], *, context: Context
) -> str:
    """Substitute ``{vars}`` and ``$refs`` in `text` for the given context."""
    if context == "sql":
        return substitute_sql(text, bindings, variables)
    return substitute_raw(text, bindings, variables)


def _end(m: re.Match[str]) -> int:
    # `$name.*?`: the `?` is not part of a star reference.
    return m.end("star") if m.group("star") is not None else m.end()


def _compose(
    text: str, bindings: Mapping[str, JSON], variables: Mapping[str, str]
) -> tuple[str, list[_Ref], list[re.Match[str]]]:
    """Replace known ``{var}`` in one pass over `text` and locate the references to visible
    bindings, in the coordinates of the returned text; also returns the replaced ``{var}``s
    that may not stand everywhere: those whose value holds a double quote, or would make a
    comment opener with the character next to it (see `_check_vars`)."""
    out: list[str] = []
    refs: list[_Ref] = []
    quoted: list[re.Match[str]] = []
    pos = 0
    shift = 0  # length of the output minus length of the input consumed so far
    for m in _PATTERN.finditer(text):
        var = m.group("var")
        if var is not None:
            value = variables.get(var)
            if value is None:
                continue
            if '"' in value or _opens_comment(text, m, value):
                quoted.append(m)
            out.append(text[pos : m.start()])
            out.append(value)
            shift += len(value) - (m.end() - m.start())
            pos = m.end()
        elif m.group("name") in bindings:
            refs.append(_Ref(m, m.start() + shift, _end(m) + shift))
    if not out:
        return text, refs, quoted
    out.append(text[pos:])
    return "".join(out), refs, quoted


def splice_expressions(text: str, variables: Mapping[str, str]) -> str:
    """`text` with the value of each start-time SQL expression in place of its ``{__expr_N}``
    (`dfc.references.EXPRESSION_VAR`), before anything else: the value stands where a literal
    was written in pg_durable, so references in it are substituted as a literal's are."""
    if "{__" not in text:
        return text
    return EXPRESSION_VAR.sub(lambda m: variables.get(m.group(1), m.group(0)), text)


def substitute_raw(text: str, bindings: Mapping[str, JSON], variables: Mapping[str, str]) -> str:
    """Raw context (HTTP url/body/headers, break values): values inserted as plain text.

    Raises `SubstitutionError` for a missing value without ``?``, a missing column or field, or
    ``$name.*`` on a result without rows.
    """
    text = splice_expressions(text, variables)
    if not has_candidates(text):
        return text
    composed, refs, _ = _compose(text, bindings, variables)
    out: list[str] = []
    pos = 0
    for r in refs:
        resolved = _resolve(r.m, bindings, sql=False)
        if resolved is None:  # pragma: no cover - raw context never leaves a reference as is
            continue
        out.append(composed[pos : r.start])
        out.append(_raw_form(resolved))
        pos = r.end
    if not out:
        return composed
    out.append(composed[pos:])
    return "".join(out)


def substitute_sql(text: str, bindings: Mapping[str, JSON], variables: Mapping[str, str]) -> str:
    """SQL context: references become literals (see the module docstring for the lexical rules).

    Raises `SubstitutionError` for a missing value without ``?``, ``$name.*`` on a result without
    rows or with more than 10,000 rows, a NUL character, a value that would end an enclosing
    dollar quote, a quote inside ``B''``/``X''``, or a ``{var}`` holding a double quote inside a
    quoted identifier. A ``$name.col`` naming a missing column is left as written.
    """
    if not has_candidates(text):
        return text
    composed, refs, quoted = _compose(text, bindings, variables)
    _check_vars(text, quoted, variables)
    if not refs:
        return composed
    code = sql_code(composed)
    subs: list[_Sub] = []
    for ref in refs:
        where = place(code, ref.start)
        if where is None:
            continue  # in a comment or a dollar quote's delimiter: not a reference
        value = _resolve(ref.m, bindings, sql=True)
        if value is None:
            continue  # left as written
        subs.append(_Sub(ref.m, ref.start, ref.end, where, value))
    if not subs:
        return composed
    return _SqlWriter(composed, subs).code(code)


_COMMENT_OPENERS = ("--", "/*")


def _opens_comment(text: str, m: re.Match[str], value: str) -> bool:
    """Whether ``value`` in place of ``m`` would make ``--`` or ``/*`` with the character
    before or after it (``10-{n}`` with ``n = -5``)."""
    before, after = text[m.start() - 1 : m.start()], text[m.end() : m.end() + 1]
    return before + value[:1] in _COMMENT_OPENERS or value[-1:] + after in _COMMENT_OPENERS


def _check_vars(text: str, suspects: list[re.Match[str]], variables: Mapping[str, str]) -> None:
    """Fail when a ``{var}`` would change the statement around it: a value holding ``"``
    inside a quoted identifier (it would end it), or one that would make a comment opener with
    the code next to it (the rest of the line, or of the text, would stop being code; a
    negative ``int`` after a minus sign, say). Inside literals both are plain characters."""
    if not suspects:
        return
    chars = list(text)
    for m in _PATTERN.finditer(text):
        if m.group("var") is not None:
            chars[m.start() : m.end()] = "_" * (m.end() - m.start())
    code = sql_code("".join(chars))
    for m in suspects:
        value = variables[m.group("var")]
        where = place(code, m.start())
        if where is None:
            continue  # in a comment: not substituted into code
        if where.literal is None and _opens_comment(text, m, value):
            raise _unsafe(
                m.group(0),
                "would make a comment opener (-- or /*) with the text next to it, which would "
                f"turn the rest of the statement into a comment; write {m.group(0)} with a "
                "space or parentheses around it",
            )
        if where.literal is not None and where.literal.form in IDENT_FORMS and '"' in value:
            raise _unsafe(
                m.group(0),
                "holds a double quote, which would end the quoted identifier it stands in",
            )


def _glued(text: str, pos: int) -> bool:
    """Whether the character before `pos` would glue onto a literal placed there (``E$x`` must
    not become the escape string ``E'...'``, nor ``U&$x`` a Unicode string)."""
    if pos == 0:
        return False
    c = text[pos - 1]
    return c.isalnum() or c in "_$&" or ord(c) > 127


@dataclass(frozen=True, slots=True)
class _Sub:
    """A reference that is replaced: where it stands and what it holds."""

    m: re.Match[str]
    start: int
    end: int
    place: Place
    value: _Value


class _SqlWriter:
    """Writes lexed SQL text with the references replaced; `code` returns the new text of a
    stretch of code (and of the dollar-quoted bodies in it)."""

    def __init__(self, text: str, subs: list[_Sub]) -> None:
        self.text = text
        self.subs = subs
        self.next = 0  # index of the first substitution not written yet
        # The code holding a value, and the code around it, is rewritten; the rest is copied.
        self.touched = {id(c) for s in subs for c in s.place.path}

    def code(self, code: Code) -> str:
        """The text of ``code`` with the substitutions in it (and in its bodies) written."""
        text = self.text
        if id(code) not in self.touched:
            return text[code.start : code.end]
        out: list[str] = []
        pos = code.start
        tokens = code.tokens
        i = 0
        while i < len(tokens):
            t = tokens[i]
            if t.form == "dollar":
                self._code_refs(out, pos, t.start, code)
                body = code.bodies[i]
                assert body is not None
                out.append(self._dollar(t, body))
                pos = t.end
            elif t.form in STRING_FORMS or t.form in IDENT_FORMS:
                self._code_refs(out, pos, t.start, code)
                last = i  # a literal with its continuing segments (and the comments between)
                for j in range(i + 1, len(tokens)):
                    if tokens[j].continues:
                        last = j
                    elif tokens[j].kind != "comment":
                        break
                out.append(self._literal(tokens[i : last + 1], code, tokens[last + 1 :]))
                pos = tokens[last].end
                i = last
            i += 1
        self._code_refs(out, pos, code.end, code)
        return "".join(out)

    def _code_refs(self, out: list[str], pos: int, stop: int, code: Code) -> None:
        """Copy `text[pos:stop]`, code, writing the references in it as literals."""
        text, subs = self.text, self.subs
        while self.next < len(subs) and subs[self.next].start < stop:
            s = subs[self.next]
            self.next += 1
            assert s.place.literal is None and s.place.path[-1] is code
            out.append(text[pos : s.start])
            if _glued(text, s.start):
                out.append(" ")
            out.append(_sql_form(s.m, s.value, code.tags))
            pos = s.end
        out.append(text[pos:stop])

    def _dollar(self, t: Token, body: Code) -> str:
        """A dollar-quoted string whose body has references (or surrounds some)."""
        inner = self.code(body)
        tag = t.tag
        closing = "" if t.kind == "error" else tag
        # The tag must appear neither in the body nor across its end (`...$b` + `$b$`).
        if tag in inner + closing[:-1]:
            raise SubstitutionError(
                f"a substituted value would put {tag} into the dollar-quoted text, ending it early",
                reference=tag,
                code=codes.UNSAFE_VALUE,
            )
        text = self.text
        return text[t.start : t.body_start] + inner + text[t.body_end : t.end]

    def _literal(self, chain: Sequence[Token], code: Code, after: Sequence[Token]) -> str:
        """A string literal or quoted identifier (with its continuing segments), the references
        in it inserted as escaped raw text; plain literals that would hold a backslash become
        escape strings (see the module docstring)."""
        text = self.text
        form = chain[0].form
        esc = _uescape(after) if form in ("unicode", "unicode_ident") else "\\"
        bodies = [self._body(t, code, form, esc) if t.kind != "comment" else "" for t in chain]
        upgrade = form in ("plain", "national") and any("\\" in b for b in bodies)
        out: list[str] = []
        pos = chain[0].start
        for t, body in zip(chain, bodies, strict=True):
            if t.kind == "comment":
                continue
            opener = text[pos : t.body_start]
            if upgrade:
                body = escape_string_body(body)
                if not t.continues:  # the first segment sets the mode of the others
                    glue = " " if _glued(text, t.start) else ""
                    opener = glue + ("NCHAR E'" if form == "national" else "E'")
            out.append(opener)
            out.append(body)
            out.append(text[t.body_end : t.end])
            pos = t.end
        return "".join(out)

    def _body(self, t: Token, code: Code, form: str, esc: str) -> str:
        """The contents of one literal token with the references in it replaced."""
        text, subs = self.text, self.subs
        out: list[str] = []
        pos = t.body_start
        while self.next < len(subs) and subs[self.next].start < t.body_end:
            s = subs[self.next]
            self.next += 1
            assert s.place.literal is t
            raw = _raw_form(s.value)
            _check_nul(s.m, raw)
            try:
                raw = escape_in(raw, form, esc)
            except ValueError as e:
                raise _unsafe(
                    _spelled(s.m),
                    "holds a quote, which cannot stand inside the bit-string literal it is placed in",
                ) from e
            _check_tags(s.m, raw, code.tags)
            out.append(text[pos : s.start])
            out.append(raw)
            pos = s.end
        out.append(text[pos : t.body_end])
        return "".join(out)


def _uescape(after: Sequence[Token]) -> str:
    """The escape character of a Unicode literal: the one of a ``UESCAPE 'c'`` clause after
    it, else a backslash."""
    rest: Iterator[Token] = (t for t in after if t.kind != "comment")
    keyword, literal = next(rest, None), next(rest, None)
    if (
        keyword is not None
        and literal is not None
        and keyword.upper == "UESCAPE"
        and literal.kind == "string"
        and literal.body_end - literal.body_start == 1
    ):
        return literal.text[literal.body_start - literal.start]
    return "\\"


# -- resolving a reference ----------------------------------------------------------------------

# A resolved reference: what kind of value, and the value. None means "leave the text as is".
_Value = tuple[Literal["null", "value", "whole", "rows"], JSON]


def _resolve(m: re.Match[str], bindings: Mapping[str, JSON], *, sql: bool) -> _Value | None:
    name = m.group("name")
    try:
        result = bindings[name]
    except KeyError:
        return None  # not a binding: `$name` stays (PostgreSQL may know what it means)
    ref = _spelled(m)
    col = m.group("col")
    optional = m.group("q") is not None
    if m.group("star") is not None:
        if not is_row_set(result):
            raise SubstitutionError(
                f"{ref} expands the rows of a SQL result, but the result bound to '{name}' has "
                f"no rows (it is {_describe(result)}); use ${name}"
                + (f" or ${name}.field" if isinstance(result, dict) else "")  # an array has none
                + " instead",
                reference=ref,
                code=codes.NOT_A_ROW_SET,
            )
        return ("rows", result["rows"])
    missing: str | None = None  # why there is no value, when not simply NULL
    if is_row_set(result):
        rows = result["rows"]
        row = rows[0] if rows and isinstance(rows[0], dict) else {}
        if not rows:
            value = None
            missing = (
                f"has no value: the result bound to '{name}' has no rows; write {_optional(m)} "
                f"to use NULL instead, or test for rows with df.if_rows('{name}', ...)"
            )
        elif col is None:
            value = next(iter(row.values()), None)
            if not row:
                missing = f"has no value: the first row bound to '{name}' has no columns"
        elif col in row:
            value = row[col]
        elif sql:
            return None  # PostgreSQL reports the unknown column, pointing at it
        else:
            raise SubstitutionError(
                f"{ref}: the result bound to '{name}' has no column '{col}' (its columns: "
                f"{', '.join(row) or 'none'})",
                reference=ref,
                code=codes.UNKNOWN_FIELD,
            )
    elif col is not None:
        if isinstance(result, dict) and col in result:
            value = result[col]
        elif sql:
            return None
        else:
            fields = ", ".join(result) if isinstance(result, dict) else "none"
            raise SubstitutionError(
                f"{ref}: the result bound to '{name}' has no field '{col}' (it is "
                f"{_describe(result)}; its fields: {fields})",
                reference=ref,
                code=codes.UNKNOWN_FIELD,
            )
    else:
        value = result
        if value is not None:
            return ("whole", value)
    if value is None:
        if optional:
            return ("null", None)
        if missing is None:
            missing = f"is NULL; write {_optional(m)} to use NULL instead, or test for it first"
        raise SubstitutionError(f"{ref} {missing}", reference=ref, code=codes.MISSING_VALUE)
    return ("value", value)


def _spelled(m: re.Match[str]) -> str:
    """The reference as written (without the `?` that never belongs to ``$name.*``)."""
    return m.string[m.start() : _end(m)]


def _optional(m: re.Match[str]) -> str:
    ref = _spelled(m)
    return ref if ref.endswith("?") else ref + "?"


def _describe(result: JSON) -> str:
    if isinstance(result, dict):
        if "status" in result and "body" in result:
            return "an HTTP response"
        if "signal_name" in result:
            return "a signal"
        return "a JSON object"
    if isinstance(result, list):
        return "a JSON array"
    return "a JSON value" if result is not None else "null"


# -- rendering ------------------------------------------------------------------------------------


def raw_text(value: JSON) -> str:
    """Plain text for a JSON value in raw contexts: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return dumps(value)


def _unsafe(ref: str, problem: str) -> SubstitutionError:
    """The error for a value that cannot stand where ``ref`` is written: "the value of ``ref``
    ``problem``"."""
    return SubstitutionError(
        f"the value of {ref} {problem}", reference=ref, code=codes.UNSAFE_VALUE
    )


def _check_nul(m: re.Match[str], text: str) -> None:
    if "\x00" in text:
        raise _unsafe(_spelled(m), "contains a NUL character, which PostgreSQL text cannot hold")


def _check_tags(m: re.Match[str], text: str, tags: tuple[str, ...]) -> None:
    for t in tags:
        if t in text:
            raise _unsafe(
                _spelled(m), f"contains {t}, which would end the dollar-quoted text it is placed in"
            )


def _sql_form(m: re.Match[str], value: _Value, tags: tuple[str, ...]) -> str:
    kind, v = value
    match kind:
        case "null":
            return "NULL"
        case "value":
            text = sql_literal(v)
        case "whole":
            text = quote_literal(dumps(v))
        case "rows":
            text = _relation(m, v)
        case _:  # pragma: no cover - the Literal above is exhaustive
            assert_never(kind)
    _check_nul(m, text)
    _check_tags(m, text, tags)
    return text


def _raw_form(value: _Value) -> str:
    kind, v = value
    match kind:
        case "null":
            return "null"
        case "value":
            return raw_text(v)
        case "whole" | "rows":
            return dumps(v)
        case _:  # pragma: no cover
            assert_never(kind)


def _relation(m: re.Match[str], rows: list[JSON]) -> str:
    """``$name.*`` in SQL: ``(VALUES (...), ...) AS "name"("c1", ...)``."""
    name = m.group("name")
    alias = quote_ident(name)
    if not rows:
        return f"(SELECT NULL WHERE false) AS {alias}"
    if len(rows) > MAX_INLINE_ROWS:
        raise SubstitutionError(
            f"{_spelled(m)} has {len(rows):,} rows, more than the {MAX_INLINE_ROWS:,} an inline "
            "relation may hold; store the rows in a work table (CREATE TABLE ... AS in the step "
            "that makes them) and read them from there",
            reference=_spelled(m),
            code=codes.TOO_MANY_ROWS,
        )
    first = rows[0] if isinstance(rows[0], dict) else {}
    columns = list(first)
    if not columns:
        return f"(SELECT FROM generate_series(1, {len(rows)})) AS {alias}"
    lines = []
    for row in rows:
        get = row.get if isinstance(row, dict) else (lambda _c: None)
        lines.append("(" + ", ".join(_cell(get(c)) for c in columns) + ")")
    cols = ", ".join(quote_ident(c) for c in columns)
    return f"(VALUES {', '.join(lines)}) AS {alias}({cols})"


def _cell(value: JSON) -> str:
    """A typed literal for one cell of an inline relation: text, jsonb, or a bare scalar."""
    if isinstance(value, str):
        return quote_literal(value) + "::text"
    if isinstance(value, dict | list):
        return quote_literal(dumps(value)) + "::jsonb"
    return sql_literal(value)


# -- helpers for the state machine ----------------------------------------------------------------


def is_whole_reference(text: str) -> bool:
    """Whether `text` is exactly one reference (``$name``, ``$name.col``, with optional ``?``)."""
    m = _PATTERN.fullmatch(text.strip())
    return m is not None and m.group("name") is not None and m.group("star") is None


def mentions_reference(text: str, bindings: Mapping[str, JSON]) -> bool:
    """Whether `text` contains a reference to one of `bindings`."""
    return any(m.group("name") in bindings for m in _PATTERN.finditer(text) if m.group("name"))
