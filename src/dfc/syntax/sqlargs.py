"""SQL expressions in argument positions, for ``--grammar pg`` (pg_durable's SQL).

In pg_durable every argument of a ``df.*`` function is SQL: ``df.http_multipart(url, 'POST',
jsonb_build_array(jsonb_build_object('name', 'f', 'data_b64', encode('hi', 'base64'))))`` is
ordinary PostgreSQL, evaluated when ``df.start`` builds the graph. A file read with the pg
grammar may do the same: where a built-in takes a literal and the argument is more than one
literal (with casts) or a template parameter's name, its whole text becomes one ``SQLEXPR``
token, which the builder turns into `dfc.ast.SqlExpr`. The checker says where such an argument
may stand and checks it as SQL; the instance evaluates it once, when it starts.

The argument runs to the ``,`` or ``)`` that closes it. That is decided on the lexer's tokens:
dfc's lexer follows PostgreSQL's rules for everything that can hold a comma or a parenthesis
(string literals of every form, quoted identifiers, comments); an operator it does not know
inside the argument (``+``, ``->>``) is SQL, not an error. PostgreSQL's ``#`` operators are
not supported there: dfc reads ``#`` as the start of a misplaced comment.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from lark import Token

from dfc.syntax import codes
from dfc.syntax.builtins import SIGNATURES, Signature
from dfc.syntax.lexer import Lexed, end_of, make_token, start_of

_LITERALS = frozenset({"STRING", "NUMBER", "NULL", "TRUE", "FALSE"})
# What may follow `::` in a cast the grammar reads itself (`::jsonb`, `::numeric(10, 2)`,
# `::timestamp with time zone`, `::text[]`, `::"My Type"`).
_CAST_TOKENS = frozenset(
    {"IDENT", "QIDENT", "DOT", "_LPAR", "_RPAR", "_COMMA", "NUMBER", "MINUS", "LSQB", "RSQB"}
)


@dataclass(slots=True)
class _Call:
    """An open parenthesis: of a built-in's call (``sig``) or any other (None)."""

    sig: Signature | None
    position: int = 0  # the positional argument being read
    named: str | None = None  # the name of a `name => value` argument being read


def mark_sql_arguments(lexed: Lexed) -> None:
    """Replace, in place, the tokens of each argument that is a SQL expression by one
    ``SQLEXPR`` token (its text as written), dropping what the lexer reported inside it."""
    toks = lexed.tokens
    out: list[Token] = []
    calls: list[_Call] = []
    regions: list[tuple[int, int]] = []
    i = 0
    while i < len(toks):
        tok = toks[i]
        call = calls[-1] if calls else None
        if (
            call is not None
            and call.sig is not None
            and _starts_argument(out, toks, i)
            and _takes_literal(call)
        ):
            end = _argument_end(toks, i)
            if _is_expression(toks[i:end]):
                start, stop = start_of(toks[i]), end_of(toks[end - 1])
                out.append(make_token("SQLEXPR", lexed.file.text[start:stop], start, stop))
                regions.append((start, stop))
                i = end
                continue
        kind = tok.type
        if kind == "_LPAR":
            prev = out[-1] if out else None
            sig = SIGNATURES.get(str(prev)) if prev is not None and prev.type == "DFNAME" else None
            calls.append(_Call(sig))
        elif kind == "_RPAR" and calls:
            calls.pop()
        elif kind == "_COMMA" and call is not None:
            call.position += 1
            call.named = None
        elif kind == "ARROW" and call is not None and out and out[-1].type == "IDENT":
            call.named = str(out[-1]).lower()
        out.append(tok)
        i += 1
    if regions:
        lexed.tokens[:] = out
        _drop_inside(lexed, regions)


def _starts_argument(out: list[Token], toks: list[Token], i: int) -> bool:
    """Whether ``toks[i]`` begins an argument: it follows ``(``, ``,`` or ``name =>``, and is
    not itself the ``name`` of a named argument."""
    prev = out[-1].type if out else ""
    if prev not in ("_LPAR", "_COMMA", "ARROW"):
        return False
    return not (toks[i].type == "IDENT" and i + 1 < len(toks) and toks[i + 1].type == "ARROW")


def _takes_literal(call: _Call) -> bool:
    """Whether the argument being read is for a parameter that takes a literal."""
    assert call.sig is not None
    params = call.sig.params
    if call.named is not None:
        spec = next((p for p in params if p.name == call.named), None)
    else:
        spec = params[call.position] if call.position < len(params) else None
    return spec is not None and spec.kind != "node"


def _argument_end(toks: list[Token], i: int) -> int:
    """The index of the ``,`` or ``)`` that ends the argument starting at ``i`` (or of the
    ``;`` or end of file where it is cut short)."""
    depth = 0
    for j in range(i, len(toks)):
        kind = toks[j].type
        if kind in ("_LPAR", "LSQB"):
            depth += 1
        elif kind in ("_RPAR", "RSQB"):
            if depth == 0:
                return j
            depth -= 1
        elif (kind == "_COMMA" and depth == 0) or kind in ("_SEMI", "$END"):
            return j
    return len(toks)


def _is_expression(arg: list[Token]) -> bool:
    """Whether an argument's tokens are more than what the grammar reads as a literal: one
    literal (a number may have a sign) with casts, or a bare name (a template parameter). A
    ``df.*`` call stays what it is (a node where a literal belongs: the builder says so)."""
    if not arg or arg[0].type in ("DFNAME", "ERROR"):
        return False
    if len(arg) == 1 and arg[0].type == "IDENT":
        return False
    k = 1 if arg[0].type == "MINUS" else 0
    if k >= len(arg) or arg[k].type not in _LITERALS or (k and arg[k].type != "NUMBER"):
        return True
    rest = arg[k + 1 :]
    if rest and rest[0].type != "DCOLON":
        return True
    return any(t.type not in _CAST_TOKENS and t.type != "DCOLON" for t in rest)


def _drop_inside(lexed: Lexed, regions: list[tuple[int, int]]) -> None:
    """Forget the operators the lexer did not know inside the expressions (``+``, ``->>``:
    SQL's) and the comments there (part of the expression's text). Everything else it
    reported stays: a ``$name`` or ``{var}`` outside a string, an unterminated literal."""

    starts = [a for a, _ in regions]  # in file order, not overlapping

    def inside(offset: int) -> bool:
        k = bisect.bisect_right(starts, offset) - 1
        return k >= 0 and offset < regions[k][1]

    lexed.diagnostics[:] = [
        d
        for d in lexed.diagnostics
        if not (d.code == codes.UNKNOWN_OPERATOR and d.span is not None and inside(d.span.start))
    ]
    lexed.comments[:] = [c for c in lexed.comments if not inside(c.start)]
    lexed.flagged -= {f for f in lexed.flagged if inside(f)}
