"""Friendly syntax-error messages: lark's expected-token sets translated into words.

A small catalogue of the mistakes people actually make (a missing operator between two steps, a
trailing comma, ``=`` for ``=>``, ``"double quotes"``, bare SQL, ``!>`` without ``?>``, an open
parenthesis) gets a specific code and message; anything else gets DFC111 with the expected
tokens in words ("expected a node, e.g. a 'SQL string' or df.sleep(...), or ')'").
"""

from __future__ import annotations

from lark import Token

from dfc.diagnostics import Diagnostic, Label, Severity
from dfc.source import SourceFile, Span
from dfc.syntax import codes
from dfc.syntax.lexer import end_of, operator_text, start_of

EXPR_START = frozenset(
    {
        "STRING",
        "NUMBER",
        "IDENT",
        "DFNAME",
        "_LPAR",
        "LOOP",
        "NULL",
        "TRUE",
        "FALSE",
        "MINUS",
        "ERROR",
        "SQLEXPR",
    }
)
_BINOPS = frozenset({"SEQ", "BIND", "AMP", "PIPE", "THEN", "ELSE", "UNDO"})
_STMT_START = frozenset({"PARAM", "DEF", "IMPORT", "SELECT"})
# Tokens that start an operand but not a name (where only a name fits, e.g. after `param`).
_OPERAND_START = EXPR_START - {"IDENT", "MINUS"}
_NODE_WORDS = "a node, e.g. a 'SQL string' or df.sleep(...)"
_SQL_WORDS = frozenset(
    {
        "insert",
        "update",
        "delete",
        "with",
        "create",
        "vacuum",
        "analyze",
        "alter",
        "drop",
        "truncate",
        "call",
        "refresh",
        "reindex",
        "cluster",
        "copy",
        "notify",
        "lock",
        "grant",
    }
)
_PUNCT_WORDS = {
    "_RPAR": "')'",
    "_LPAR": "'('",
    "_COMMA": "','",
    "_SEMI": "';'",
    "ARROW": "'=>'",
    "EQ": "'='",
    "DCOLON": "'::'",
    "DOT": "'.'",
    "LSQB": "'['",
    "RSQB": "']'",
    "MINUS": "'-'",
}


def describe_found(tok: Token) -> str:
    """How the unexpected token is named in a message."""
    kind, text = tok.type, str(tok)
    if kind == "$END":
        return "the end of the file"
    if kind == "STRING":
        return "a string"
    if kind == "NUMBER":
        return f"the number {text}"
    if kind == "SQLEXPR":
        return "a SQL expression"
    if kind == "IDENT":
        return f"the name '{text}'"
    if kind == "DFNAME":
        return f"df.{text}"
    if kind == "QIDENT":
        return f"the double-quoted identifier {text}"
    if kind in ("SELECT", "PARAM", "DEF", "IMPORT", "SCHEDULE", "NULL", "TRUE", "FALSE"):
        return f"the keyword {text.upper()}"
    op = operator_text(kind)
    if op is not None:
        return f"'{op}'"
    return _PUNCT_WORDS.get(kind, repr(text))


def expected_words(expected: set[str]) -> str:
    """``{'_RPAR', 'SEQ', ...}`` → ``"an operator such as '~>', ',' or ')'"``."""
    words: list[str] = []
    if expected & _OPERAND_START:
        words.append(_NODE_WORDS)
    elif "IDENT" in expected:
        words.append("a name")
    if expected & _BINOPS - {"ELSE"}:
        words.append("an operator such as '~>'")
    if "ELSE" in expected:
        words.append("'!>'")
    for kind in ("_COMMA", "_RPAR", "ARROW", "EQ", "_SEMI"):
        if kind in expected:
            words.append(_PUNCT_WORDS[kind])
    if "$END" in expected and "_SEMI" not in expected:
        words.append("the end of the file")
    if not words:
        return "something else"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def describe_error(
    file: SourceFile,
    tok: Token,
    prev: Token | None,
    expected: set[str],
    open_parens: list[Token],
    in_call: bool,
    *,
    in_decl: bool = False,
    nxt: Token | None = None,
) -> Diagnostic:
    """The diagnostic for an unexpected ``tok`` (preceded by ``prev``, followed by ``nxt``).

    ``in_call``: inside the argument list of a call; ``in_decl``: in a statement that began
    with ``param``, ``def`` or ``import``.
    """
    kind = tok.type
    span = Span(file, start_of(tok), max(end_of(tok), start_of(tok)))
    found = describe_found(tok)
    prev_kind = prev.type if prev is not None else ""

    def diag(
        code: str,
        message: str,
        help: str | None = None,
        at: Span | None = None,
        labels: tuple[Label, ...] = (),
    ) -> Diagnostic:
        return Diagnostic(
            code=code,
            severity=Severity.ERROR,
            message=message,
            span=at or span,
            labels=labels,
            help=help,
        )

    if kind == "STRING" and prev_kind == "STRING" and "STRING" not in expected:
        return diag(
            codes.ADJACENT_STRINGS,
            "two string literals on one line are not concatenated",
            labels=(Label(Span(file, start_of(prev), end_of(prev)), "the previous literal"),)
            if prev is not None
            else (),
            help="put ',' or an operator between them, or start the second on a new line to concatenate (SQL rule)",
        )
    if kind == "QIDENT":
        return diag(
            codes.DOUBLE_QUOTED,
            f"{tok} is a quoted identifier in SQL, not a string",
            help="write strings with single quotes ('...') or dollar quotes ($$...$$)",
        )
    if kind == "ELSE" and "ELSE" not in expected and not expected & _OPERAND_START:
        return diag(
            codes.ELSE_WITHOUT_IF,
            "'!>' without a matching '?>'",
            help="write `condition ?> then !> else`, or use parentheses to group the branches",
        )
    if kind == "EQ" and prev_kind == "IDENT" and in_call:
        return diag(
            codes.NAMED_ARG_EQ,
            f"named arguments use '=>', not '=': {prev} => ...",
            help=f"write {prev} => value",
        )
    if kind == "_RPAR" and not open_parens:
        return diag(
            codes.UNMATCHED_PAREN, "unmatched ')'", help="remove it, or add the '(' it should close"
        )
    if kind in ("_SEMI", "$END") and open_parens and not expected & EXPR_START:
        opener = open_parens[-1]
        labels = tuple(
            Label(Span(file, start_of(p), end_of(p)), "this '(' is not closed")
            for p in reversed(open_parens[-3:])
        )
        n = len(open_parens)
        what = "a ')'" if n == 1 else f"{n} ')'"
        return diag(
            codes.UNCLOSED_PAREN,
            f"expected {what} before {found}",
            help=f"close the '(' at line {file.line_col(start_of(opener))[0]}",
            labels=labels,
        )
    if kind == "_RPAR" and prev_kind == "_COMMA":
        return diag(
            codes.TRAILING_COMMA,
            "trailing comma before ')'",
            help="remove the last comma, or add the missing argument",
        )
    if kind == "DCOLON":
        return diag(
            codes.SYNTAX,
            "a ::type cast applies to a literal only",
            help="remove the cast, or move it inside the SQL text",
        )
    if kind == "SELECT" and "SELECT" not in expected and nxt is not None and nxt.type == "DFNAME":
        return diag(
            codes.SYNTAX,
            "SELECT may only start the workflow statement: SELECT df.start(...);",
            help="remove SELECT here",
        )
    if kind == "SELECT" and "SELECT" not in expected:
        return diag(
            codes.BARE_SQL,
            "SQL must be written as a string",
            help="quote the statement: 'SELECT ...' or $$SELECT ...$$",
        )
    if (
        prev is not None
        and prev_kind == "IDENT"
        and str(prev).lower() in _SQL_WORDS
        and kind in ("IDENT", "STRING", "NUMBER", "_LPAR", "SELECT")
    ):
        return diag(
            codes.BARE_SQL,
            "SQL must be written as a string",
            help=f"quote the statement: $${prev} ...$$",
            at=Span(file, start_of(prev), end_of(prev)),
        )
    if expected & _OPERAND_START and kind not in EXPR_START:
        if prev_kind == "BIND":
            return diag(
                codes.MISSING_OPERAND,
                f"expected a result name after '|=>', found {found}",
                help="e.g. ... |=> 'rows'",
            )
        if prev_kind == "_LPAR" and kind == "_RPAR" and not in_call:
            return diag(
                codes.MISSING_OPERAND,
                "empty parentheses: expected a node inside",
                help="put a step inside, e.g. ('SELECT 1')",
            )
        after = ""
        op = operator_text(prev_kind)
        if op is not None:
            after = f" after '{op}'"
        elif prev_kind == "_COMMA":
            after = " after ','"
        elif prev_kind in ("EQ", "ARROW"):
            after = f" after {describe_found(prev) if prev is not None else ''}"
        return diag(codes.MISSING_OPERAND, f"expected {_NODE_WORDS}{after}, found {found}")
    if (
        in_decl
        and not open_parens
        and "_SEMI" in expected
        and prev is not None
        and (kind in EXPR_START or kind in _STMT_START)
    ):
        return diag(
            codes.MISSING_SEMICOLON,
            f"expected ';' after the declaration, before {found}",
            help="end each declaration with ';'",
            at=Span(file, end_of(prev), end_of(prev)),
        )
    if kind in EXPR_START and expected & _BINOPS:
        if in_call and "_COMMA" in expected:
            message = f"expected ',' or an operator such as '~>' before {found}"
            help = (
                "separate arguments with ',' and steps with an operator (~> runs them in sequence)"
            )
        else:
            message = f"expected an operator such as '~>' before {found}"
            help = "steps run one after the other with ~>, in parallel with &"
        return diag(codes.MISSING_OPERATOR, message, help=help)
    if kind in ("PARAM", "DEF", "IMPORT", "SELECT") and "_SEMI" in expected and prev is not None:
        return diag(
            codes.MISSING_SEMICOLON,
            f"expected ';' before {found}",
            help="end each declaration with ';'",
            at=Span(file, end_of(prev), end_of(prev)),
        )
    return diag(codes.SYNTAX, f"unexpected {found}; expected {expected_words(expected)}")
