"""Static analysis of SQL steps: statement kinds, output columns, autocommit, and SQL errors.

The text of a step has its ``$refs`` (those that count in SQL, `dfc.references.place`) and
``{vars}`` replaced by identifiers of the same length (`refs.neutralize`), so every position in the analysed text is a position in the step's value,
which the string's `TextMap` maps to the exact file character.

Two tools, used for what each can be trusted with:

- the lexer of `dfc.sqllex` (PostgreSQL's lexical rules) splits statements and proves the
  errors that are certain: unterminated literals and comments, unbalanced parentheses, a
  statement that stops after ``WHERE``, a word that is not a statement at all;
- sqlglot (postgres dialect) classifies statements and derives output columns. When it cannot
  parse a statement, that is only a warning: sqlglot does not know all of PostgreSQL.

Results are cached per distinct text, so a template expanded a hundred times costs one analysis.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import ErrorLevel, ParseError, TokenError

from dfc.check import codes
from dfc.check.refs import Ref, neutralize, scan
from dfc.check.result import SqlFacts, StatementKind
from dfc.diagnostics import Severity
from dfc.sqllex import Statement, Token, split, tokenize

# Every PostgreSQL command starts with one of these words (PostgreSQL 17 "SQL Commands").
_COMMANDS = """ABORT ALTER ANALYZE ANALYSE BEGIN CALL CHECKPOINT CLOSE CLUSTER COMMENT COMMIT COPY
    CREATE DEALLOCATE DECLARE DELETE DISCARD DO DROP END EXECUTE EXPLAIN FETCH GRANT IMPORT INSERT
    LISTEN LOAD LOCK MERGE MOVE NOTIFY PREPARE REASSIGN REFRESH REINDEX RELEASE RESET REVOKE
    ROLLBACK SAVEPOINT SECURITY SELECT SET SHOW START TABLE TRUNCATE UNLISTEN UPDATE VACUUM VALUES
    WITH"""
STATEMENT_WORDS = frozenset(_COMMANDS.split())
_DDL_WORDS = frozenset(
    {"CREATE", "ALTER", "DROP", "COMMENT", "GRANT", "REVOKE", "SECURITY", "IMPORT"}
)
_PARSED_WORDS = frozenset(
    {"SELECT", "WITH", "VALUES", "TABLE", "INSERT", "UPDATE", "DELETE", "MERGE", *_DDL_WORDS}
)
_ROW_UTILITIES = frozenset({"SHOW", "EXPLAIN", "FETCH"})
# A statement cannot end with one of these: something must follow (`WHERE`, `a AND`, `x,`).
_DANGLING = frozenset(
    {"WHERE", "FROM", "AND", "OR", "JOIN", "BY", "INTO", "HAVING", "LIMIT", "OFFSET", "SET"}
)
# Variables of these types substitute a single token; others may hold any text at all.
_TOKEN_VAR_TYPES = frozenset({"int", "numeric", "bool", "ident"})


@dataclass(frozen=True, slots=True)
class SqlIssue:
    """A finding at value indices ``[start, end)`` of the step's text."""

    code: str
    severity: Severity
    message: str
    start: int
    end: int
    help: str | None = None


@dataclass(frozen=True, slots=True)
class StatementInfo:
    """One statement of a step: its kind, position and what it returns."""

    kind: StatementKind
    start: int
    end: int
    first_word: str
    autocommit: str | None  # why it cannot run in a transaction block ("VACUUM"), or None
    returns_rows: bool | None
    columns: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class SqlAnalysis:
    """Everything derived from one SQL text."""

    refs: tuple[Ref, ...]
    statements: tuple[StatementInfo, ...]
    issues: tuple[SqlIssue, ...]
    facts: SqlFacts
    neutral: str  # the text with references replaced by same-length identifiers


def analyze(text: str, var_types: Mapping[str, str | None] | None = None) -> SqlAnalysis:
    """Analyse the SQL text of a step.

    ``var_types`` gives the declared type of each ``{var}`` (None when undeclared); a variable
    that may hold arbitrary text makes structural errors of its statement only unprovable.
    References inside comments are not references in SQL (see `sql_refs`).
    """
    refs = sql_refs(text)
    types = var_types or {}
    key = tuple(sorted({(r.name, types.get(r.name)) for r in refs if r.kind == "var"}, key=str))
    return _analyze(text, key)


@lru_cache(maxsize=8192)
def sql_refs(text: str) -> tuple[Ref, ...]:
    """The references of a SQL text that are substituted: all ``{vars}``, and the ``$refs`` that
    count in SQL (not in comments nor in dollar-quote delimiters; `dfc.references.place`)."""
    return tuple(scan(text, sql=True))


@lru_cache(maxsize=8192)
def _analyze(text: str, var_key: tuple[tuple[str, str | None], ...]) -> SqlAnalysis:
    refs = sql_refs(text)
    neutral = neutralize(text, list(refs))
    raw_vars = {name for name, t in var_key if t not in _TOKEN_VAR_TYPES}
    raw_spans = [(r.start, r.end) for r in refs if r.kind == "var" and r.name in raw_vars]
    issues: list[SqlIssue] = []
    tokens = tokenize(neutral)
    if tokens and tokens[-1].kind == "error":
        bad = tokens[-1]
        issues.append(
            SqlIssue(
                codes.SQL_INVALID,
                Severity.ERROR,
                f"{bad.message} in SQL",
                bad.start,
                bad.start + (2 if bad.text.startswith(("/*", "E'", "e'", "U&")) else 1),
                help="close it, or use a dollar-quoted string ($$...$$) for the step",
            )
        )
        tokens = tokens[:-1]
    lex_error = bool(issues)
    stmts = split(tokens)
    infos: list[StatementInfo] = []
    if not stmts and not issues:
        issues.append(
            SqlIssue(
                codes.EMPTY_SQL, Severity.ERROR, "this SQL step contains no statement", 0, len(text)
            )
        )
    for i, st in enumerate(stmts):
        if lex_error and i == len(stmts) - 1:
            # The unterminated literal belongs to this statement: nothing more can be known.
            infos.append(
                StatementInfo("unknown", st.start, len(text), st.first_word, None, None, None)
            )
            continue
        infos.append(_statement(text, neutral, st, refs, raw_spans, issues))
    _refs_in_strings(tokens, refs, issues)
    autocommit = [s for s in infos if s.autocommit]
    if autocommit and len(infos) > 1:
        s = autocommit[0]
        issues.append(
            SqlIssue(
                codes.AUTOCOMMIT_MULTI,
                Severity.WARNING,
                f"{s.autocommit} fails when it is one of several statements of a step",
                s.start,
                s.end,
                help="PostgreSQL runs a multi-statement step in one transaction: put "
                f"{s.autocommit} in a step of its own",
            )
        )
    last = infos[-1] if infos else None
    facts = SqlFacts(
        statements=tuple(s.kind for s in infos) or ("unknown",),
        autocommit=bool(autocommit),
        columns=last.columns if last else None,
        returns_rows=last.returns_rows if last else None,
        refs=tuple(dict.fromkeys(r.text for r in refs if r.kind == "result")),
        vars=tuple(dict.fromkeys(r.name for r in refs if r.kind == "var")),
    )
    return SqlAnalysis(refs, tuple(infos), tuple(issues), facts, neutral)


def _statement(
    text: str,
    neutral: str,
    st: Statement,
    refs: tuple[Ref, ...],
    raw_spans: list[tuple[int, int]],
    issues: list[SqlIssue],
) -> StatementInfo:
    """Check one statement and describe it."""
    first = st.tokens[0]
    word = st.first_word
    raw = any(st.start <= a < st.end for a, _ in raw_spans)
    first_is_raw = any(a <= first.start < b for a, b in raw_spans)

    def unknown() -> StatementInfo:
        return StatementInfo("unknown", st.start, st.end, word, None, None, None)

    if word not in STATEMENT_WORDS:
        if first_is_raw:  # a variable may hold a whole statement
            return unknown()
        # `'$batch.done'` as a condition: the reference's value is wanted, not its text.
        starts_with_ref = any(r.start == first.start for r in refs)
        if len(st.tokens) > 1 and first.kind == "word" and not starts_with_ref:
            # Several words: most likely a misspelt command (`SELEC 1 FROM t`).
            close = difflib.get_close_matches(first.upper, STATEMENT_WORDS, n=1)
            issues.append(
                SqlIssue(
                    codes.NOT_A_STATEMENT,
                    Severity.ERROR,
                    f"`{text[first.start : first.end]}` does not start a SQL statement",
                    first.start,
                    first.end,
                    help=f"did you mean {close[0]}?" if close else None,
                )
            )
            return unknown()
        shown = " ".join(text[st.start : st.end].split())
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        if starts_with_ref:
            quoted = shown.replace("'", "''")
            help = (
                "a string in node position is a SQL step: to use the value, write the step "
                f"'SELECT {quoted}'"
            )
        else:
            value = shown.strip("'").replace("'", "''")
            help = (
                "a string in node position is a SQL step: to end a loop with this value write "
                f"df.break('{value}'), to produce it as a result SELECT '{value}'"
            )
        issues.append(
            SqlIssue(
                codes.NOT_A_STATEMENT,
                Severity.ERROR,
                f"`{shown}` is not a SQL statement",
                st.start,
                st.end,
                help=help,
            )
        )
        return unknown()
    certain = _certain_errors(st, raw)
    if certain is not None:
        issues.append(certain)
        return unknown()
    autocommit = _autocommit_reason([t.upper for t in st.tokens if t.kind == "word"])
    if autocommit:
        issues.append(
            SqlIssue(
                codes.AUTOCOMMIT,
                Severity.INFO,
                f"{autocommit} cannot run inside a transaction block: this step runs in "
                "autocommit mode and is at-least-once",
                st.start,
                st.end,
            )
        )
    parsed, error = _parse(neutral[st.start : st.end])
    if parsed is None:
        # sqlglot models queries, DML and DDL; its failures on utility commands (NOTIFY, DO,
        # CALL, ...) say nothing about the statement. Neither do they when a variable holding
        # arbitrary text sits in it.
        if error is not None and word in _PARSED_WORDS and not raw:
            msg, a, b = error
            issues.append(
                SqlIssue(
                    codes.SQL_UNPARSED,
                    Severity.WARNING,
                    f"dfc's SQL parser does not understand this statement ({msg})",
                    st.start + a,
                    st.start + b,
                    help="if it is valid PostgreSQL, `dfc check --db URL` can confirm it",
                )
            )
        kind, rows, cols = _by_word(word)
        return StatementInfo(kind, st.start, st.end, word, autocommit, rows, cols)
    kind, rows, cols = _classify(parsed, word, neutral, refs)
    return StatementInfo(kind, st.start, st.end, word, autocommit, rows, cols)


def _certain_errors(st: Statement, raw: bool) -> SqlIssue | None:
    """An error PostgreSQL would certainly report: unbalanced parentheses, a dangling clause.

    Skipped when a variable that may hold any text sits in the statement.
    """
    if raw:
        return None
    stack: list[Token] = []
    for t in st.tokens:
        if t.kind != "punct":
            continue
        if t.text in "([":
            stack.append(t)
        elif t.text in ")]":
            want = "(" if t.text == ")" else "["
            if not stack or stack[-1].text != want:
                return SqlIssue(
                    codes.SQL_INVALID,
                    Severity.ERROR,
                    f"`{t.text}` has no matching `{want}`",
                    t.start,
                    t.end,
                    help="remove it or add the missing opening bracket",
                )
            stack.pop()
    if stack:
        t = stack[-1]
        close = ")" if t.text == "(" else "]"
        return SqlIssue(
            codes.SQL_INVALID,
            Severity.ERROR,
            f"`{t.text}` is never closed",
            t.start,
            t.end,
            help=f"add the missing `{close}`",
        )
    last = st.tokens[-1]
    if (
        (last.kind == "word" and last.upper in _DANGLING and len(st.tokens) > 1)
        or (last.kind == "punct" and last.text == ",")
        or (last.kind == "op" and last.text == "=")
    ):
        return SqlIssue(
            codes.SQL_INVALID,
            Severity.ERROR,
            f"the statement ends after `{last.text}`: it looks cut short",
            last.start,
            last.end,
            help="complete the statement",
        )
    return None


def _autocommit_reason(words: list[str]) -> str | None:
    """Why a statement cannot run inside a transaction block, or None."""
    if not words:
        return None
    w = [*words, "", "", "", ""]
    first = w[0]
    if first == "VACUUM":
        return "VACUUM"
    if first == "CREATE":
        if "INDEX" in w[1:3] and "CONCURRENTLY" in w[2:4]:
            return "CREATE INDEX CONCURRENTLY"
        if w[1] in ("DATABASE", "TABLESPACE", "SUBSCRIPTION"):
            return f"CREATE {w[1]}"
    if first == "DROP":
        if w[1] == "INDEX" and w[2] == "CONCURRENTLY":
            return "DROP INDEX CONCURRENTLY"
        if w[1] in ("DATABASE", "TABLESPACE", "SUBSCRIPTION"):
            return f"DROP {w[1]}"
    if first == "REINDEX":
        if "CONCURRENTLY" in words:
            return "REINDEX CONCURRENTLY"
        if "DATABASE" in words[1:3] or "SYSTEM" in words[1:3]:
            return "REINDEX " + ("DATABASE" if "DATABASE" in words[1:3] else "SYSTEM")
    if first == "ALTER":
        if w[1] == "SYSTEM":
            return "ALTER SYSTEM"
        if w[1] == "DATABASE" and "TABLESPACE" in words:
            return "ALTER DATABASE SET TABLESPACE"
        if w[1] == "TABLE" and "DETACH" in words and "CONCURRENTLY" in words:
            return "DETACH PARTITION CONCURRENTLY"
    if first == "CLUSTER" and all(x == "VERBOSE" for x in words[1:]):
        return "CLUSTER without a table"
    return None


def _refs_in_strings(tokens: list[Token], refs: tuple[Ref, ...], issues: list[SqlIssue]) -> None:
    """Warn about ``$refs`` inside quoted string literals (not dollar quotes: code lives there)."""
    strings = [t for t in tokens if t.kind == "string" and not t.text.startswith("$")]
    if not strings:
        return
    for r in refs:
        if r.kind != "result":
            continue
        for t in strings:
            if t.start < r.start < t.end:
                issues.append(
                    SqlIssue(
                        codes.REF_IN_STRING,
                        Severity.WARNING,
                        f"`{r.text}` is inside a SQL string literal",
                        r.start,
                        r.end,
                        help=f"write it outside the quotes and concatenate: '...' || {r.text} "
                        "(pg_durable would put a quoted literal inside the string)",
                    )
                )
                break


# --------------------------------------------------------------------------------------------
# sqlglot


_DIALECT = Postgres()
_SQLGLOT_LOG = logging.getLogger("sqlglot")


@contextmanager
def _quiet() -> Iterator[None]:
    # sqlglot logs a warning for every statement it parses as an opaque Command; those are
    # expected here and must not reach the user's terminal.
    flt = logging.Filter("sqlglot.never")
    _SQLGLOT_LOG.addFilter(flt)
    try:
        yield
    finally:
        _SQLGLOT_LOG.removeFilter(flt)


@lru_cache(maxsize=8192)
def _parse(sql: str) -> tuple[exp.Expr | None, tuple[str, int, int] | None]:
    """The parsed statement, or None and the first error (message, start, end) when it fails."""
    # The context of an error as long as the statement: the text before the failing token is
    # then where it starts (sqlglot gives no offsets in its errors, only line and end column).
    parser = Postgres.Parser(error_level=ErrorLevel.IMMEDIATE, error_message_context=len(sql))
    try:
        with _quiet():
            tokens = _DIALECT.tokenize(sql)
            trees = parser.parse(tokens, sql)
    except TokenError as e:
        return None, (f"tokenizer: {e}", 0, 0)
    except ParseError as e:
        return None, _error_at(e)
    except Exception as e:  # a crash inside sqlglot is its bug, not the user's mistake
        return None, (f"internal error: {type(e).__name__}", 0, 0)
    trees = [t for t in trees if t is not None]
    if len(trees) != 1:
        return None, None
    return trees[0], None


def _error_at(e: ParseError) -> tuple[str, int, int]:
    """The message of sqlglot's error and the character range of the token it failed at."""
    if not e.errors:
        return _clean(str(e)), 0, 0
    error = e.errors[0]
    start = len(error.get("start_context") or "")
    return (
        _clean(str(error.get("description") or e)),
        start,
        start + len(error.get("highlight") or ""),
    )


def _clean(message: str) -> str:
    """sqlglot's error text without the Python reprs it sometimes embeds."""
    message = message.split(" but got <Token", 1)[0]
    if message.startswith("Required keyword:") and "<class '" in message:
        cls = message.split("<class '", 1)[1].rstrip("'>").rsplit(".", 1)[-1]
        return f"incomplete {cls.upper()} clause"
    return message[:1].lower() + message[1:]


def _by_word(word: str) -> tuple[StatementKind, bool | None, tuple[str, ...] | None]:
    """Kind and row behaviour of a statement known only by its first word."""
    if word in ("SELECT", "WITH", "VALUES", "TABLE", "INSERT", "UPDATE", "DELETE", "MERGE"):
        return "unknown", None, None
    if word in _DDL_WORDS:
        return "ddl", False, ()
    if word in _ROW_UTILITIES:
        return "utility", True, None
    if word == "CALL":
        return "utility", None, None
    return "utility", False, ()


def _classify(
    e: exp.Expr, word: str, neutral: str, refs: tuple[Ref, ...]
) -> tuple[StatementKind, bool | None, tuple[str, ...] | None]:
    """Kind, returns_rows and output columns of a parsed statement."""
    placeholders = {neutral[r.start : r.end]: r.kind for r in refs}
    if isinstance(e, exp.Select) and e.args.get("into") is not None:
        return "ddl", False, ()
    if isinstance(e, exp.Query | exp.Values) and word in ("SELECT", "WITH", "VALUES", "TABLE"):
        return "query", True, _output_columns(e, placeholders)
    if isinstance(e, exp.Insert | exp.Update | exp.Delete | exp.Merge):
        ret = e.args.get("returning")
        if ret is None:
            return "dml", False, ()
        return "dml_returning", True, _names(ret.expressions, placeholders)
    if isinstance(e, exp.TruncateTable):
        return "dml", False, ()
    return _by_word(word)


def _output_columns(e: exp.Expr, placeholders: Mapping[str, str]) -> tuple[str, ...] | None:
    if isinstance(e, exp.SetOperation):
        return _output_columns(e.left, placeholders)
    if isinstance(e, exp.Subquery):
        return _output_columns(e.this, placeholders)
    if isinstance(e, exp.Values):
        rows = e.expressions
        if rows and isinstance(rows[0], exp.Tuple):
            return tuple(f"column{i + 1}" for i in range(len(rows[0].expressions)))
        return None
    if isinstance(e, exp.Select):
        return _names(e.expressions, placeholders)
    return None


_OPERATORS = (
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT,
    exp.LTE, exp.DPipe, exp.And, exp.Or, exp.Not, exp.Neg, exp.Is, exp.Like, exp.ILike, exp.In,
    exp.Between, exp.Literal, exp.Null,
)  # fmt: skip
_NAMED_FUNCS: dict[type[exp.Expr], str] = {
    exp.Count: "count", exp.Sum: "sum", exp.Avg: "avg", exp.Min: "min", exp.Max: "max",
    exp.Case: "case", exp.Coalesce: "coalesce", exp.Exists: "exists",
}  # fmt: skip


def _names(exprs: list[exp.Expr], placeholders: Mapping[str, str]) -> tuple[str, ...] | None:
    """Output column names as PostgreSQL names them, or None if any is uncertain."""
    out: list[str] = []
    for x in exprs:
        name = _column_name(x, placeholders)
        if name is None:
            return None
        out.append(name)
    return tuple(out)


def _column_name(x: exp.Expr, placeholders: Mapping[str, str]) -> str | None:
    """PostgreSQL's name for one select-list entry (its FigureColname), where certain."""
    if isinstance(x, exp.Star):
        return None
    if isinstance(x, exp.Alias):
        ident = x.args.get("alias")
        return _ident(ident) if isinstance(ident, exp.Identifier) else None
    if isinstance(x, exp.Column):
        ident = x.this
        if not isinstance(ident, exp.Identifier):
            return None  # t.*
        kind = placeholders.get(ident.this)
        if kind == "result" and not x.table:
            return "?column?"  # a substituted literal
        if kind == "var":
            return None  # raw text: could be a column name
        return _ident(ident)
    if isinstance(x, exp.Paren):
        return _column_name(x.this, placeholders)
    if isinstance(x, exp.Cast) and isinstance(x.this, exp.Column):
        return _column_name(x.this, placeholders)
    if isinstance(x, exp.Anonymous) and isinstance(x.this, str):
        return x.this.lower()
    for cls, name in _NAMED_FUNCS.items():
        if type(x) is cls:
            return name
    if isinstance(x, _OPERATORS):
        return "?column?"
    return None


def _ident(ident: exp.Identifier) -> str:
    # PostgreSQL folds unquoted identifiers to lower case.
    name = str(ident.this)
    return name if ident.quoted else name.lower()


def parse_statement(sql: str) -> exp.Expr | None:
    """sqlglot's tree for one statement (None when it cannot parse it); cached."""
    return _parse(sql)[0]


def is_complete_statement(text: str) -> bool:
    """True when ``text`` is one or more SQL statements that parse without any error."""
    a = analyze(text)
    return (
        bool(a.statements)
        and all(i.severity not in (Severity.ERROR, Severity.WARNING) for i in a.issues)
        and all(s.kind != "unknown" for s in a.statements)
    )


# Words after which a statement goes on: a clause, an operand, a query or a body must follow
# (`CREATE TABLE t AS` + `SELECT ...`). sqlglot accepts many such statements as they are.
_GOES_ON_WORDS = """AS IN ON NOT IS LIKE ILIKE SIMILAR BETWEEN ESCAPE COLLATE UNION INTERSECT
    EXCEPT ALL DISTINCT SELECT VALUES TABLE WITH RECURSIVE LATERAL CASE WHEN THEN ELSE USING
    RETURNING TO EACH EXECUTE DO EXPLAIN OVER PARTITION ORDER GROUP WINDOW CONFLICT INSERT DELETE
    CREATE ALTER DROP TRUNCATE GRANT REVOKE MERGE COPY CALL LOCK"""
_GOES_ON = _DANGLING | frozenset(_GOES_ON_WORDS.split())
# What an INSERT needs after its target, and what an UPDATE needs.
_INSERT_SOURCE = frozenset({"SELECT", "VALUES", "DEFAULT", "TABLE", "WITH"})


def ends_statements(text: str) -> bool:
    """Whether ``text`` is complete SQL that a following text would not continue: it parses
    (`is_complete_statement`), its last statement does not end in ``;``, in an operator, a
    comma, an open bracket or a word after which a statement goes on (``AS``, ``IN``,
    ``FROM``...), and is not an INSERT without rows or an UPDATE without SET."""
    tokens = [t for t in tokenize(text) if t.kind != "comment"]
    if not tokens or tokens[-1].text == ";" or not is_complete_statement(text):
        return False
    last = tokens[-1]
    if last.kind == "op" or (last.kind == "punct" and last.text in "(,[."):
        return False
    default_values = len(tokens) > 1 and tokens[-2].upper == "DEFAULT" and last.upper == "VALUES"
    if last.kind == "word" and last.upper in _GOES_ON and not default_values:
        return False
    stmts = split(tokens)
    words = {t.upper for t in stmts[-1].tokens if t.kind == "word"} if stmts else set()
    first = stmts[-1].first_word if stmts else ""
    if first == "INSERT" and not words & _INSERT_SOURCE:
        return False
    return not (first == "UPDATE" and "SET" not in words)


def starts_statement(text: str) -> bool:
    """Whether ``text`` begins (after blanks and comments) with a word that starts a SQL
    statement (``SELECT``, ``UPDATE``, ``CREATE``...)."""
    first = next((t for t in tokenize(text) if t.kind != "comment"), None)
    return first is not None and first.kind == "word" and first.upper in STATEMENT_WORDS


_EXPRESSION_PREFIX = "SELECT ("


def expression_issues(text: str) -> list[SqlIssue]:
    """What is wrong with a SQL expression written as an argument (``--grammar pg``), at
    indices of ``text``: it is checked as the statement that evaluates it when the instance
    starts, ``SELECT (<text>)``. A reference inside one of its string literals is no problem:
    the value carries it to where the step substitutes it."""
    statement = f"{_EXPRESSION_PREFIX}{text}\n)"
    n, end = len(_EXPRESSION_PREFIX), len(text)
    out = []
    for i in analyze(statement).issues:
        if i.code == codes.REF_IN_STRING:
            continue  # a reference in a string literal is carried into the value, as meant
        # What lies in the added text is shown on the expression's nearest character.
        start = min(max(i.start - n, 0), max(end - 1, 0))
        out.append(replace(i, start=start, end=min(max(i.end - n, start + 1), end)))
    return out
