"""Writing values into SQL text: the one place that quotes literals and identifiers.

Every statement dfc builds by text (a step's substituted references, the worker's checkpoints)
quotes through here. The forms are chosen so that **no session setting changes what they
mean**: a step may run ``SET standard_conforming_strings = off`` (alone, or earlier in the same
step text), after which PostgreSQL reads backslashes in ``'...'`` literals as escapes. A literal
without a backslash means the same under either setting; one with a backslash is written as an
escape string ``E'...'``, which reads backslashes as escapes under either setting, with each
backslash doubled. Quotes are always doubled (``''``), never backslash-escaped, so
``backslash_quote`` does not matter either.

Text inserted *inside* a literal or quoted identifier the user wrote (``'Hello $who'``) is
escaped for that token's form by `escape_in`; a user's plain literal that then holds a backslash
is rewritten as an escape string with `escape_string_body` (the same rule as `quote_literal`).
"""

from __future__ import annotations

import json
import math

from dfc.json_types import JSON


def quote_literal(text: str) -> str:
    """A SQL string literal holding exactly ``text``, whatever ``standard_conforming_strings`` is.

    ``text`` must not contain NUL (PostgreSQL text cannot hold it; callers check).
    """
    body = text.replace("'", "''")
    if "\\" in text:
        return "E'" + escape_string_body(body) + "'"
    return "'" + body + "'"


def escape_string_body(body: str) -> str:
    """The contents of a standard ``'...'`` literal, for an escape string ``E'...'`` of the same
    value (quotes stay doubled)."""
    return body.replace("\\", "\\\\")


def escape_in(text: str, form: str, escape: str = "\\") -> str:
    """``text`` written inside an open literal or quoted identifier of ``form`` (a `dfc.sqllex`
    form), so that it reads back as ``text`` and cannot end the token.

    ``escape`` is the escape character of a ``U&`` form (``UESCAPE``). For ``plain`` and
    ``national`` literals only quotes are doubled: a literal that then holds a backslash must be
    written as an escape string (`escape_string_body`). Raises ValueError for a quote inside
    ``bit`` or ``hex`` literals, which have no way to write one.
    """
    match form:
        case "ident":
            return text.replace('"', '""')
        case "unicode_ident":
            return text.replace(escape, escape + escape).replace('"', '""')
        case "unicode":
            return text.replace(escape, escape + escape).replace("'", "''")
        case "escape":
            return escape_string_body(text).replace("'", "''")
        case "bit" | "hex":
            if "'" in text:
                raise ValueError("a quote cannot stand inside a bit-string literal")
            return text
        case _:
            return text.replace("'", "''")


def quote_ident(name: str) -> str:
    """A SQL quoted identifier (no session setting changes how these are read)."""
    return '"' + name.replace('"', '""') + '"'


# One encoder for every call: `json.dumps` with non-default options builds a new encoder per
# call, which costs about as much as encoding a small step result (the worker's hot path).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(value: JSON) -> str:
    """Compact JSON text that keeps object keys in their order (a result's column order);
    non-finite floats, which JSON cannot hold, become null."""
    try:
        return _ENCODER.encode(value)
    except ValueError:
        return _ENCODER.encode(_finite(value))


def _finite(value: JSON) -> JSON:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def sql_literal(value: JSON) -> str:
    """One SQL literal for a JSON value: NULL, true/false, bare numbers (negative ones in
    parentheses, so ``1-$x`` never becomes a ``--`` comment), quoted strings, quoted JSON."""
    if value is None:
        return "NULL"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value) if value >= 0 else f"({value})"
    if isinstance(value, float):
        if not math.isfinite(value):
            if math.isnan(value):
                return "'NaN'::float8"
            return f"'{'-' if value < 0 else ''}Infinity'::float8"
        text = repr(value)
        return text if not text.startswith("-") else f"({text})"
    if isinstance(value, str):
        return quote_literal(value)
    return quote_literal(dumps(value))
