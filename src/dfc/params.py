"""Workflow parameters (SPEC §1.5): the types, how a value becomes the text of its ``{var}``, and
what is said about a value that does not fit.

The checker checks a ``param`` default with `substitution_text` and the runtime converts the
values given at start with it, so a value is accepted in one place exactly when it is in the
other.

A ``{var}`` is substituted as raw text before the SQL is lexed, so an ``ident`` must be safe
wherever ``{var}`` may stand: in code, inside a string literal, a quoted identifier, a comment
or a dollar quote. It is one or two (schema-qualified) parts, each either unquoted,
``[A-Za-z_][A-Za-z0-9_]*`` (no ``$``, which could end a ``$tag$``), or quoted, ``"..."`` holding
none of the characters that end a literal or a comment: no ``"``, ``'``, ``\\``, ``$`` or ``;``,
no control character (so no line break), no ``--``, ``/*`` or ``*/``. A quoted part still ends a
quoted identifier it is placed in (``"x_{var}"``), so the runtime refuses a value holding a
double quote there (`dfc.runtime.substitute`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Literal, get_args

from dfc.json_types import JSON, canonical

ParamType = Literal["text", "int", "numeric", "bool", "json", "ident"]
"""The types a ``param`` may declare; ``text`` is the default."""

TYPES: tuple[str, ...] = get_args(ParamType)

TRUE_WORDS = frozenset({"true", "t", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "off", "0"})
BOOL_WORDS = TRUE_WORDS | FALSE_WORDS
"""The texts a ``bool`` accepts, compared case-insensitively after stripping spaces."""

EXAMPLES: dict[str, str] = {
    "text": "any text",
    "int": "an integer such as 500",
    "numeric": "a number such as 1.5",
    "bool": "TRUE or FALSE",
    "json": "JSON text such as '{\"a\": 1}'",
    "ident": "a SQL identifier such as 'orders', 'archive.orders' or '\"Order Items\"'",
}
"""What a valid value of each type looks like, for help texts."""

_EXPECTED = {
    "int": "an integer",
    "numeric": "a number",
    "bool": "a boolean (true or false)",
    "json": "valid JSON",
    "ident": "a SQL identifier (optionally schema-qualified)",
}

INT_TEXT = re.compile(r"\s*[+-]?\d+\s*")
_PART = r'(?:[A-Za-z_][A-Za-z0-9_]*|"[^"]+")'
_IDENT = re.compile(rf"{_PART}(?:\.{_PART})?")
_ENDS_A_CONTEXT = ("'", "\\", "$", ";", "--", "/*", "*/")


class ParamValueError(ValueError):
    """A value that does not fit its parameter's type.

    ``expected`` says what would (``an integer``); ``reason``, when set, says what is wrong in
    more detail than "is not ``expected``".
    """

    def __init__(self, expected: str, reason: str = "") -> None:
        super().__init__(reason or f"not {expected}")
        self.expected = expected
        self.reason = reason

    def problem(self, shown: str) -> str:
        """What is wrong, naming the value as ``shown`` (``'many' is not an integer``)."""
        return self.reason or f"{shown} is not {self.expected}"


def substitution_text(type_: str, value: JSON) -> str:
    """The text a ``{var}`` of ``type_`` is replaced by, for a value given at start or as
    default (a JSON value: a string, a number, a boolean, null, ...).

    Raises `ParamValueError` when the value does not fit the type. NULL is the empty text for
    ``text`` and ``null`` for ``json``, and fits no other type.
    """
    match type_:
        case "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
            if isinstance(value, str) and INT_TEXT.fullmatch(value):
                # Not int(): Python refuses to convert more than 4,300 digits.
                num = Decimal(value.strip())
                return str(num) if num else "0"
        case "numeric":
            if value is not None and not isinstance(value, bool):
                try:
                    num = Decimal(str(value).strip())
                except InvalidOperation:
                    pass
                else:
                    if not num.is_finite():
                        raise ParamValueError("a finite number")
                    return str(value).strip() if isinstance(value, str) else str(num)
        case "bool":
            if isinstance(value, bool):
                return "true" if value else "false"
            if value is not None:
                text = str(value).strip().lower()
                if text in TRUE_WORDS:
                    return "true"
                if text in FALSE_WORDS:
                    return "false"
        case "json":
            if not isinstance(value, str):
                return canonical(value)
            try:
                return canonical(json.loads(value))
            except ValueError as e:
                reason = f"invalid JSON ({e.msg})" if isinstance(e, json.JSONDecodeError) else ""
                raise ParamValueError(_EXPECTED["json"], reason) from None
        case "ident":
            if isinstance(value, str):
                return _ident(value.strip())
        case _:
            return _text(value)
    raise ParamValueError(_EXPECTED[type_])


def typed_value(type_: str, text: str) -> JSON:
    """The value a ``{var}``'s substitution text stands for, as JSON of its declared type (an
    ``int`` as a number, a ``json`` as its value): what `substitution_text` made it from, for
    display. Text that does not read as its type (a variable stored by an older version) stays
    text."""
    try:
        match type_:
            case "int" | "numeric" | "json":
                value: JSON = json.loads(text)
                return value
            case "bool":
                return {"true": True, "false": False}.get(text, text)
    except ValueError:  # not JSON, or an int too long for Python to convert
        pass
    return text


def _ident(text: str) -> str:
    if not _IDENT.fullmatch(text):
        raise ParamValueError(_EXPECTED["ident"])
    for bad in _ENDS_A_CONTEXT:
        if bad in text:
            raise ParamValueError(
                _EXPECTED["ident"],
                f"a quoted identifier may not hold {bad!r} (a parameter value must not be able "
                "to end the SQL literal, comment or dollar quote it stands in)",
            )
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise ParamValueError(
            _EXPECTED["ident"], "a quoted identifier may not hold control characters"
        )
    return text


def _text(value: JSON) -> str:
    """A value as text: strings as they are, NULL as the empty text, others as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        return str(value)
    return canonical(value)
