"""References inside step text (SPEC §1.4): what one looks like, and where one counts in SQL.

The checker (`dfc.check.refs`) and the runtime's substitution (`dfc.runtime.substitute`) both
use this module, so they always find the same references.

**What a reference looks like.** One left-to-right pass over the original text finds ``{var}``
and ``$name[.col|.*][?]`` (`REFERENCE`). The name is taken whole (possessive quantifiers: no
backtracking to a shorter name) and must not be followed by ``[A-Za-z0-9_$]``, so ``$a`` never
matches inside ``$ab``, ``$1`` and ``$$`` never match, and ``$tag$`` is a dollar quote. A ``?``
after ``.*`` is plain text. Groups of `REFERENCE`: ``var`` for ``{var}``; ``name``, ``star``,
``col`` and ``q`` (null-safe ``?``) for ``$`` references.

**Where a reference counts in SQL.** ``{var}``s are raw text, replaced before anything else,
everywhere. The text with its ``{var}``s replaced is then lexed by `dfc.sqllex` (PostgreSQL's
rules), and a ``$name`` reference found by the pass above counts according to where its ``$``
stands (`place`):

- in code: it counts (it becomes a SQL literal);
- inside a string literal or a quoted identifier (every form: ``'...'``, ``E'...'``,
  ``U&'...'``, ``N'...'``, ``B'...'``, ``X'...'``, ``"..."``, ``U&"..."``): it counts (its text
  is inserted with that token's escaping), except where a backslash escape of an ``E'...'``
  literal takes the ``$`` (``E'\\$name'`` holds the text ``$name``);
- inside a comment (``--``, ``/* */`` nested, also inside a dollar-quoted body): it never counts;
- inside a dollar quote's delimiter (the ``$SELECT`` in ``$$SELECT``): it never counts;
- inside a dollar-quoted body (function bodies, ``DO`` blocks): the body is lexed again as code
  on its own, and these rules apply to it, recursively. A body that is not valid code on its
  own (``$$it's$$``) is lexed as far as it goes: an unterminated literal or dollar quote there
  runs to the end of the body, an unterminated comment hides the rest. Only the lexing of the
  whole text decides whether the SQL is structurally valid.

For the checker, a ``{var}`` stands for a token that does not change the lexing (it replaces
each one by an identifier of the same length); the runtime lexes the text it will send, with
the values in place.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from dfc.sqllex import Token, escaped, lex

SYSTEM_VARS = frozenset({"sys_instance_id", "sys_label"})
"""Variables every instance has."""

_EXPRESSION_PREFIX = "__expr_"
EXPRESSION_VAR = re.compile(r"\{(" + _EXPRESSION_PREFIX + r"[0-9]+)\}")
"""Where the value of a start-time SQL expression goes in a node's text (``{__expr_1}``: the
name of the instance's hidden variable in braces). The runtime puts the value there before
it substitutes anything else, so that it stands as a literal written there would."""


def expression_var(n: int) -> str:
    """The name of the hidden variable of the ``n``-th start-time expression of a plan."""
    return f"{_EXPRESSION_PREFIX}{n}"


def is_reserved_var(name: str) -> bool:
    """Whether a variable name is dfc's own (a system variable or an expression's value)."""
    return name in SYSTEM_VARS or name.startswith(_EXPRESSION_PREFIX)


RESULT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
"""What a result name bound with ``|=> 'name'`` must look like."""

REFERENCE = re.compile(
    r"""
      \{ (?P<var>[A-Za-z_][A-Za-z0-9_]*+) \}
    | \$ (?P<name>[A-Za-z_][A-Za-z0-9_]*+) (?![A-Za-z0-9_$])
         (?: \.(?P<star>\*) | \.(?P<col>[A-Za-z_][A-Za-z0-9_]*+) )?
         (?P<q>\?)?
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Code:
    """SQL text lexed as code: a whole text, or the body of a dollar quote lexed again.

    ``tokens`` are every token of ``text[start:end]``, comments included; ``bodies`` holds, for
    each token that is a dollar quote, its body as `Code` (None for other tokens); ``tags`` are
    the delimiters of the dollar quotes around this code, outermost first.
    """

    text: str
    start: int
    end: int
    tags: tuple[str, ...]
    tokens: tuple[Token, ...]
    bodies: tuple[Code | None, ...]


def sql_code(text: str, start: int = 0, end: int | None = None, tags: tuple[str, ...] = ()) -> Code:
    """``text[start:end]`` lexed as code, with every dollar-quoted body in it lexed again."""
    stop = len(text) if end is None else end
    tokens = tuple(lex(text, start, stop))
    bodies = tuple(
        sql_code(text, t.body_start, t.body_end, (*tags, t.tag)) if t.form == "dollar" else None
        for t in tokens
    )
    return Code(text, start, stop, tags, tokens, bodies)


@dataclass(frozen=True, slots=True)
class Place:
    """Where a counting reference stands: ``path`` is the code around it, outermost first (the
    last one holds it), ``literal`` the string literal or quoted identifier it is inside (None
    when it stands in code)."""

    path: tuple[Code, ...]
    literal: Token | None


def place(code: Code, pos: int) -> Place | None:
    """Where a ``$`` reference starting at ``pos`` stands, or None when it does not count there
    (see the module docstring)."""
    path: list[Code] = []
    while True:
        path.append(code)
        i = bisect_right(code.tokens, pos, key=lambda t: t.start) - 1
        t = code.tokens[i] if i >= 0 else None
        if t is None or pos >= t.end or t.kind not in ("string", "qident", "comment", "error"):
            return Place(tuple(path), None)
        if t.form in ("line", "block"):
            return None
        if not t.body_start <= pos < t.body_end:
            return None  # inside a delimiter
        if t.form == "dollar":
            body = code.bodies[i]
            assert body is not None
            code = body
            continue
        if escaped(code.text, t, pos):
            return None
        return Place(tuple(path), t)


def rows_reference(text: str) -> str | None:
    """The result name when ``text`` is one result reference and nothing else (``$orders`` or
    ``$orders.*``, blanks around allowed): the rows source of a ``df.map`` written that way
    reads the rows of that bound result instead of running a step. None for any other text.
    """
    m = REFERENCE.fullmatch(text.strip())
    if m is None or m.group("name") is None or m.group("col") or m.group("q"):
        return None
    return m.group("name")
