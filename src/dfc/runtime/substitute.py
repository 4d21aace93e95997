"""References inside step text: ``{vars}`` and ``$name`` forms (SPEC §1.4).

Two contexts:

* **SQL** (`substitute_sql`): a value becomes one SQL literal (strings quoted with ``''``
  doubling, numbers and booleans bare, JSON objects and arrays as quoted JSON text, NULL as
  ``NULL``), ``$name.*`` an inline ``(VALUES ...)`` relation. The text is lexed the way PostgreSQL
  lexes it, so that no value can ever change the statement's structure:

  - in code, a reference becomes a literal, as above;
  - inside a string literal (``'...'``, ``E'...'``, ``U&'...'``) or a quoted identifier, the
    reference's *raw* text is inserted with that token's escaping (quotes doubled, and
    backslashes too in ``E''``), so ``'Hello $who'`` gives ``'Hello Bob'``; a naive quoted
    literal there would end the enclosing string and let the value's text run as SQL;
  - inside comments references are left as written (a newline in a value would end a ``--``
    comment and let the rest run);
  - dollar-quoted text (function bodies, ``DO`` blocks) is lexed again as code, and a value that
    would contain an enclosing ``$tag$`` (and so end the quoted text early) fails the step.

* **raw** (`substitute_raw`, for HTTP url/body/headers and break values): values as plain text,
  JSON values as compact JSON text, ``$name.*`` a JSON array of row objects.

``{vars}`` are replaced first, as raw text in both contexts; text that came from a variable is
never scanned for references. Which bindings are visible is decided by the state machine; this
module gets a mapping from name to result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, assert_never

from dfc.json_types import JSON
from dfc.references import REFERENCE
from dfc.runtime import codes
from dfc.runtime.truth import is_row_set
from dfc.sqlquote import dumps, quote_ident, quote_literal, sql_literal

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

# What changes the lexical state of SQL code (PostgreSQL's scan.l, with
# standard_conforming_strings on).
_SQL_TOKEN = re.compile(
    r"(?P<lc>--)"
    r"|(?P<bc>/\*)"
    r"|(?P<es>(?<![\w$])[eE]')"
    r"|(?P<us>(?<![\w$])[uU]&')"
    r"|(?P<sq>')"
    r"|(?P<dq>\")"
    r"|(?P<dol>(?<![\w$])\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$)"
)
_BLOCK = re.compile(r"/\*|\*/")

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
) -> tuple[str, list[_Ref]]:
    """Replace known ``{var}`` in one pass over `text` and locate the references to visible
    bindings, in the coordinates of the returned text."""
    out: list[str] = []
    refs: list[_Ref] = []
    pos = 0
    shift = 0  # length of the output minus length of the input consumed so far
    for m in _PATTERN.finditer(text):
        var = m.group("var")
        if var is not None:
            value = variables.get(var)
            if value is None:
                continue
            out.append(text[pos : m.start()])
            out.append(value)
            shift += len(value) - (m.end() - m.start())
            pos = m.end()
        elif m.group("name") in bindings:
            refs.append(_Ref(m, m.start() + shift, _end(m) + shift))
    if not out:
        return text, refs
    out.append(text[pos:])
    return "".join(out), refs


def substitute_raw(text: str, bindings: Mapping[str, JSON], variables: Mapping[str, str]) -> str:
    """Raw context (HTTP url/body/headers, break values): values inserted as plain text.

    Raises `SubstitutionError` for a missing value without ``?``, a missing column or field, or
    ``$name.*`` on a result without rows.
    """
    if not has_candidates(text):
        return text
    out: list[str] = []
    pos = 0
    for m in _PATTERN.finditer(text):
        var = m.group("var")
        if var is not None:
            value = variables.get(var)
            if value is None:
                continue
            out.append(text[pos : m.start()])
            out.append(value)
            pos = m.end()
            continue
        if m.group("name") not in bindings:
            continue
        resolved = _resolve(m, bindings, sql=False)
        if resolved is None:  # pragma: no cover - raw context never leaves a reference as is
            continue
        out.append(text[pos : m.start()])
        out.append(_raw_form(resolved))
        pos = _end(m)
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def substitute_sql(text: str, bindings: Mapping[str, JSON], variables: Mapping[str, str]) -> str:
    """SQL context: references become literals (see the module docstring for the lexical rules).

    Raises `SubstitutionError` for a missing value without ``?``, ``$name.*`` on a result without
    rows or with more than 10,000 rows, a NUL character, or a value that would end an enclosing
    dollar quote. A ``$name.col`` naming a missing column is left as written.
    """
    if not has_candidates(text):
        return text
    composed, refs = _compose(text, bindings, variables)
    if not refs:
        return composed
    writer = _SqlWriter(composed, refs, bindings)
    end = writer.code(0, len(composed), ())
    writer.out.append(composed[end:])
    return "".join(writer.out)


def _glued(text: str, pos: int) -> bool:
    """Whether the character before `pos` would glue onto a literal placed there (``E$x`` must
    not become the escape string ``E'...'``)."""
    if pos == 0:
        return False
    c = text[pos - 1]
    return c.isalnum() or c in "_$" or ord(c) > 127


class _SqlWriter:
    """Copies lexed SQL text to ``out``, replacing the references at their positions."""

    def __init__(self, text: str, refs: list[_Ref], bindings: Mapping[str, JSON]) -> None:
        self.text = text
        self.refs = refs
        self.bindings = bindings
        self.next = 0  # index of the first reference not handled yet
        self.out: list[str] = []

    def _skip_to(self, pos: int) -> None:
        while self.next < len(self.refs) and self.refs[self.next].start < pos:
            self.next += 1

    def code(self, start: int, stop: int, tags: tuple[str, ...]) -> int:
        """Copy `text[start:stop]` lexed as code; returns where copying stopped (the caller
        appends the rest). `tags` are the dollar quotes this code is the body of."""
        text, refs, out = self.text, self.refs, self.out
        pos = start
        while True:
            m = _SQL_TOKEN.search(text, pos, stop)
            token = stop if m is None else m.start()
            while self.next < len(refs) and refs[self.next].start < token:
                ref = refs[self.next]
                self.next += 1
                value = _resolve(ref.m, self.bindings, sql=True)
                if value is None:
                    continue  # left as written
                out.append(text[pos : ref.start])
                if _glued(text, ref.start):
                    out.append(" ")
                out.append(_sql_form(ref.m, value, tags))
                pos = ref.end
            if m is None:
                return pos
            out.append(text[pos:token])
            pos = token
            kind = m.lastgroup
            if kind == "lc":
                nl = text.find("\n", pos, stop)
                end = stop if nl < 0 else nl
            elif kind == "bc":
                end = _block_comment_end(text, pos, stop)
            elif kind == "dol":
                end = self._dollar(m.group(0), m.end(), stop, tags)
                pos = end
                continue
            else:
                end = self._quoted(pos, m.end(), stop, kind, tags)
                pos = end
                continue
            out.append(text[pos:end])  # a comment: references in it stay as written
            self._skip_to(end)
            pos = end

    def _dollar(self, tag: str, body: int, stop: int, tags: tuple[str, ...]) -> int:
        text = self.text
        close = text.find(tag, body, stop)
        body_end = stop if close < 0 else close
        outer = self.out
        self.out = []
        done = self.code(body, body_end, (*tags, tag))
        self.out.append(text[done:body_end])
        inner = "".join(self.out)
        self.out = outer
        for t in (*tags, tag):
            if t in inner:  # a value, maybe with the text around it, would end the quote
                raise SubstitutionError(
                    f"a substituted value would put {t} into the dollar-quoted text, ending it "
                    "early",
                    reference=t,
                    code=codes.UNSAFE_VALUE,
                )
        outer.append(tag)
        outer.append(inner)
        if close < 0:
            return stop
        outer.append(tag)
        return close + len(tag)

    def _quoted(
        self, start: int, body: int, stop: int, kind: str | None, tags: tuple[str, ...]
    ) -> int:
        """Copy a string literal or quoted identifier, inserting the references inside it as
        escaped raw text; returns the position after its closing quote."""
        text, out = self.text, self.out
        quote = '"' if kind == "dq" else "'"
        backslash = kind in ("es", "us")
        i = body
        while i < stop:
            c = text[i]
            if c == "\\" and kind == "es":
                i += 2
                continue
            if c == quote:
                if i + 1 < stop and text[i + 1] == quote:
                    i += 2
                    continue
                break
            i += 1
        end = min(i, stop)
        out.append(text[start:body])
        pos = body
        refs = self.refs
        while self.next < len(refs) and refs[self.next].start < end:
            ref = refs[self.next]
            self.next += 1
            value = _resolve(ref.m, self.bindings, sql=True)
            if value is None:
                continue
            raw = _raw_form(value)
            _check_nul(ref.m, raw)
            raw = raw.replace(quote, quote + quote)
            if backslash:
                raw = raw.replace("\\", "\\\\")
            _check_tags(ref.m, raw, tags)
            out.append(text[pos : ref.start])
            out.append(raw)
            pos = ref.end
        out.append(text[pos:end])
        if end < stop:
            out.append(quote)
            return end + 1
        return stop


def _block_comment_end(text: str, start: int, stop: int) -> int:
    """End of the (nestable) block comment opening at `start`."""
    depth = 0
    for m in _BLOCK.finditer(text, start, stop):
        depth += 1 if m.group(0) == "/*" else -1
        if depth == 0:
            return m.end()
    return stop


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
    if is_row_set(result):
        rows = result["rows"]
        if not rows:
            if optional:
                return ("null", None)
            raise SubstitutionError(
                f"{ref} has no value: the result bound to '{name}' has no rows; write "
                f"{_optional(m)} to use NULL instead, or test for rows with "
                f"df.if_rows('{name}', ...)",
                reference=ref,
                code=codes.MISSING_VALUE,
            )
        row = rows[0]
        if not isinstance(row, dict):
            row = {}
        if col is None:
            if not row:
                if optional:
                    return ("null", None)
                raise SubstitutionError(
                    f"{ref} has no value: the first row bound to '{name}' has no columns",
                    reference=ref,
                    code=codes.MISSING_VALUE,
                )
            value = next(iter(row.values()))
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
        raise SubstitutionError(
            f"{ref} is NULL; write {_optional(m)} to use NULL instead, or test for it first",
            reference=ref,
            code=codes.MISSING_VALUE,
        )
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


_dumps = dumps


def raw_text(value: JSON) -> str:
    """Plain text for a JSON value in raw contexts: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return _dumps(value)


def _check_nul(m: re.Match[str], text: str) -> None:
    if "\x00" in text:
        raise SubstitutionError(
            f"the value of {_spelled(m)} contains a NUL character, which PostgreSQL text cannot "
            "hold",
            reference=_spelled(m),
            code=codes.UNSAFE_VALUE,
        )


def _check_tags(m: re.Match[str], text: str, tags: tuple[str, ...]) -> None:
    for t in tags:
        if t in text:
            raise SubstitutionError(
                f"the value of {_spelled(m)} contains {t}, which would end the dollar-quoted "
                "text it is placed in",
                reference=_spelled(m),
                code=codes.UNSAFE_VALUE,
            )


def _sql_form(m: re.Match[str], value: _Value, tags: tuple[str, ...]) -> str:
    kind, v = value
    match kind:
        case "null":
            return "NULL"
        case "value":
            text = sql_literal(v)
        case "whole":
            text = quote_literal(_dumps(v))
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
            return _dumps(v)
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
            "relation may hold; store the rows in a table (e.g. CREATE TEMP TABLE ... AS) and "
            "read them from there",
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
        return quote_literal(_dumps(value)) + "::jsonb"
    return sql_literal(value)


# -- helpers for the state machine ----------------------------------------------------------------


def is_whole_reference(text: str) -> bool:
    """Whether `text` is exactly one reference (``$name``, ``$name.col``, with optional ``?``)."""
    m = _PATTERN.fullmatch(text.strip())
    return m is not None and m.group("name") is not None and m.group("star") is None


def mentions_reference(text: str, bindings: Mapping[str, JSON]) -> bool:
    """Whether `text` contains a reference to one of `bindings`."""
    return any(m.group("name") in bindings for m in _PATTERN.finditer(text) if m.group("name"))
