"""Find ``$name`` and ``{var}`` references in step text (SPEC §1.4), for the checker.

What a reference is, and where one counts in SQL, is written once in `dfc.references`; the
runtime's substitution follows the same definition, so both always find the same references
(``tests/unit/runtime/test_substitute_props.py`` compares them over generated SQL).

Grammar, applied in **one left-to-right pass over the original text** (so text produced by a
substitution is never scanned again, and ``{vars}`` being substituted "first" cannot create new
references)::

    var     = "{" IDENT "}"                       -- no spaces inside the braces
    result  = "$" IDENT [ "." ( "*" | IDENT ) ] [ "?" ]
    IDENT   = [A-Za-z_][A-Za-z0-9_]*

- The name after ``$`` is taken greedily and must end at a word boundary: the next character
  must not be ``[A-Za-z0-9_$]``. Matching against a set of known names "longest first, at a word
  boundary" is therefore the same as taking the whole identifier and checking that it is a known
  name: ``$a`` never matches inside ``$ab``. ``$`` counts as a word character because PostgreSQL
  allows it inside identifiers, and because it makes the tags of dollar quotes (``$body$``)
  never look like references.
- ``$1`` (positional parameter) and ``$$`` (dollar quote) are not references: a digit or ``$``
  cannot start a name.
- ``.col`` after the name selects a column (``$resp.status``); ``.*`` selects the whole row set.
  A ``.`` followed by anything else is not part of the reference (``$a.`` is ``$a`` then ``.``).
  The column name is also taken greedily.
- A ``?`` right after the name or column makes the reference null-safe. It is not part of a
  ``$name.*`` reference (``$a.*?`` is ``$a.*`` then ``?``).
- In raw contexts (HTTP, break values) nothing else is special. In SQL (``sql=True``) a
  ``$name`` reference counts only where `dfc.references.place` says: not in comments, not in a
  dollar quote's delimiter (``$$SELECT``), and inside dollar-quoted bodies as in code. (The
  checker warns about references inside string literals.)
- With ``results`` given, a ``$name`` whose name is not in it is not a reference (it is left
  untouched at run time); likewise ``variables`` for ``{var}``. ``{sys_instance_id}`` and
  ``{sys_label}`` are always variables.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Literal

from dfc.references import REFERENCE as _PATTERN
from dfc.references import RESULT_NAME as RESULT_NAME  # re-exported for the checker's passes
from dfc.references import SYSTEM_VARS as SYSTEM_VARS
from dfc.references import place, sql_code


@dataclass(frozen=True, slots=True)
class Ref:
    """One reference found in a text; ``[start, end)`` are indices into that text.

    For a result reference ``name`` is the binding, ``column`` the selected column (or None),
    ``star`` is True for ``$name.*`` and ``null_safe`` for a trailing ``?``. For a variable only
    ``name`` is set.
    """

    kind: Literal["result", "var"]
    name: str
    start: int
    end: int
    column: str | None = None
    star: bool = False
    null_safe: bool = False

    @property
    def text(self) -> str:
        """The canonical spelling without ``?``: ``$name``, ``$name.col``, ``$name.*``, ``{var}``."""
        if self.kind == "var":
            return "{" + self.name + "}"
        if self.star:
            return f"${self.name}.*"
        if self.column is not None:
            return f"${self.name}.{self.column}"
        return f"${self.name}"


def scan(
    text: str,
    *,
    results: Container[str] | None = None,
    variables: Container[str] | None = None,
    sql: bool = False,
) -> list[Ref]:
    """All references in ``text``, in order.

    ``results`` / ``variables``, when given, restrict matches to known names (the run-time
    view); when None, every syntactically possible reference is returned (the checker's view).
    With ``sql``, ``text`` is SQL and only the ``$name`` references that count there are
    returned (`dfc.references.place`).
    """
    out: list[Ref] = []
    for m in _PATTERN.finditer(text):
        var = m.group("var")
        if var is not None:
            if variables is None or var in variables or var in SYSTEM_VARS:
                out.append(Ref("var", var, m.start(), m.end()))
            continue
        name = m.group("name")
        if results is not None and name not in results:
            continue
        if m.group("star") is not None:
            out.append(Ref("result", name, m.start(), m.end("star"), star=True))
        else:
            out.append(
                Ref(
                    "result",
                    name,
                    m.start(),
                    m.end(),
                    column=m.group("col"),
                    null_safe=m.group("q") is not None,
                )
            )
    if sql and any(r.kind == "result" for r in out):
        code = sql_code(neutralize(text, [r for r in out if r.kind == "var"]))
        out = [r for r in out if r.kind == "var" or place(code, r.start) is not None]
    return out


def neutralize(text: str, refs: list[Ref], fill: str = "_") -> str:
    """``text`` with every character of each reference that is not a word character replaced.

    With the default ``fill`` each reference becomes an identifier of the same length
    (``$a.b?`` → ``_a_b_``, ``{v}`` → ``_v_``), so positions in the result map 1:1 to positions
    in ``text``.
    """
    if not refs:
        return text
    chars = list(text)
    for r in refs:
        for i in range(r.start, r.end):
            if not (chars[i].isalnum() or chars[i] == "_"):
                chars[i] = fill
    return "".join(chars)


def json_neutralize(text: str, refs: list[Ref]) -> str:
    """``text`` with each reference replaced by a same-length number (``1`` then zeros).

    A number is valid JSON both as a value and inside a JSON string, so a text that is JSON
    once its references are substituted usually still parses after this.
    """
    if not refs:
        return text
    parts: list[str] = []
    pos = 0
    for r in refs:
        parts.append(text[pos : r.start])
        parts.append("1" + "0" * (r.end - r.start - 1))
        pos = r.end
    parts.append(text[pos:])
    return "".join(parts)
