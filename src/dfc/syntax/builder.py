"""Build `dfc.ast` nodes from lark's parse tree; report argument and structure errors.

The walk is iterative (post-order with an explicit stack), so a 10,000-step chain cannot hit
Python's recursion limit, and it never raises: whatever cannot be built becomes `ast.Invalid`
with a diagnostic (or silently, where the parser already reported the cause: lark's ``ERROR``
token).

Bottom-up, each tree node becomes a *raw* value: an AST expression, a literal (`Lit`), or a
private marker (`Named`, `StartCall`, ...). The consumer decides what a raw value must be:
``as_node`` turns a string into a SQL step and rejects numbers; ``as_lit`` rejects nodes;
``string`` wants a string where the AST holds one (a result name, df.sql's query).

Only what the AST's shape needs is checked here. What a literal's kind or value must be
(``df.sleep(TRUE)``, ``|=> 'bad name'``) is the checker's rule: it sees the literals written in
a call and those reaching it through template parameters alike, with one code for each fact.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any, assert_never, get_args

from lark import Token, Tree
from lark.tree import Meta

from dfc import ast, rates, scheduling
from dfc.diagnostics import Diagnostic, Label, Severity
from dfc.source import Span
from dfc.syntax import codes
from dfc.syntax.builtins import (
    SIGNATURES,
    SQL_API,
    START,
    UNSUPPORTED,
    UNSUPPORTED_PARAMS,
    Signature,
)
from dfc.syntax.instring import GraphReader, holds_graph, relocated
from dfc.syntax.lexer import Lexed, end_of, start_of
from dfc.syntax.values import (
    ARG_TYPES,
    LIT_TYPES,
    BadStmt,
    Named,
    StartCall,
    Word,
    casts,
    describe,
)

_PARAM_TYPES = get_args(ast.ParamType)
_TYPE_ALIASES = {
    "integer": "int",
    "int4": "int",
    "int8": "int",
    "bigint": "int",
    "smallint": "int",
    "boolean": "bool",
    "jsonb": "json",
    "varchar": "text",
    "string": "text",
    "str": "text",
    "float": "numeric",
    "decimal": "numeric",
    "real": "numeric",
    "double": "numeric",
    "identifier": "ident",
    "regclass": "ident",
}
_DECL_KEYWORD_RE = re.compile(r"(?i)\s*(?:(?:param|def|import)\b|schedule\s*[EUN&]*')")
# Literal parameters that the AST holds as a string (or a template parameter), with an example.
_STRINGS = {
    ("as", "name"): "df.as(step, 'rows')",
    ("if_rows", "result_name"): "df.if_rows('rows', ...)",
    ("sql", "query"): "df.sql('SELECT 1')",
}


class Builder:
    """Turns one parse tree into an `ast.Module`, appending diagnostics to ``diags``."""

    def __init__(
        self,
        lexed: Lexed,
        diags: list[Diagnostic],
        grammar: str,
        read_graph: GraphReader | None = None,
    ) -> None:
        self.file = lexed.file
        self.read_graph = read_graph  # pg grammar: a string holding a graph is that graph
        self.strings = lexed.strings
        self.diags = diags
        self.grammar = grammar
        self._depth: dict[int, int] = {}
        self._keep: list[object] = []  # keeps ids in _depth unique while building
        self._too_deep = False

    # -- plumbing -------------------------------------------------------------------------------

    def error(
        self,
        code: str,
        message: str,
        span: Span,
        *,
        help: str | None = None,
        labels: tuple[Label, ...] = (),
    ) -> None:
        self.diags.append(
            Diagnostic(
                code=code,
                severity=Severity.ERROR,
                message=message,
                span=span,
                labels=labels,
                help=help,
            )
        )

    def span(self, meta: Meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.file, 0, 0)
        return Span(self.file, meta.start_pos, meta.end_pos)

    def tspan(self, tok: Token) -> Span:
        return Span(self.file, start_of(tok), end_of(tok))

    def raw_span(self, raw: Any, default: Span) -> Span:
        sp = getattr(raw, "span", None)
        return sp if isinstance(sp, Span) else default

    def nest(self, node: ast.Expr, kids: list[Any], same_left: Any = None) -> ast.Expr:
        """Record the nesting depth of a new node; a chain of one operator is one level."""
        depth = 1 + max((self._depth.get(id(k), 0) for k in kids), default=0)
        if same_left is not None:
            depth = max(depth, self._depth.get(id(same_left), 0))
        if depth > ast.MAX_DEPTH:
            if not self._too_deep:
                self._too_deep = True
                self.error(
                    codes.TOO_DEEP,
                    f"expression nested more than {ast.MAX_DEPTH} levels deep",
                    node.span,
                    help="split the workflow into templates (def)",
                )
            node = ast.Invalid(span=node.span)
            depth = 0
        self._keep.append(node)
        self._depth[id(node)] = depth
        return node

    # -- the walk -------------------------------------------------------------------------------

    def build(self, tree: Tree[Token]) -> ast.Module | None:
        """Build the module of a ``start``/``pg_start`` tree (None when nothing is usable)."""
        out: list[Any] = []
        work: list[tuple[Any, bool]] = [(tree, False)]
        while work:
            node, done = work.pop()
            if isinstance(node, Tree):
                if done:
                    n = len(node.children)
                    kids = out[len(out) - n :] if n else []
                    if n:
                        del out[len(out) - n :]
                    out.append(self.dispatch(node, kids))
                else:
                    work.append((node, True))
                    work.extend((c, False) for c in reversed(node.children))
            else:
                out.append(self.token(node))
        result = out[0] if out else None
        return result if isinstance(result, ast.Module) else None

    def token(self, tok: Token | None) -> Any:
        if tok is None:
            return None
        if tok.type == "ERROR":
            return self.nest(ast.Invalid(span=self.tspan(tok)), [])
        if tok.type == "BADSTMT":
            decl = _DECL_KEYWORD_RE.match(self.file.text, start_of(tok)) is not None
            return BadStmt(self.tspan(tok), decl)
        return tok

    def dispatch(self, tree: Tree[Token], kids: list[Any]) -> Any:
        method = getattr(self, "b_" + str(tree.data), None)
        if method is None:  # a rule without a builder is a bug in this module
            raise AssertionError(f"no builder for rule {tree.data}")
        return method(tree.meta, kids)

    # -- coercions ------------------------------------------------------------------------------

    def as_node(self, raw: Any, where: str, at: Span) -> ast.Expr:
        """A value in node position: a string is a SQL step; literals other than strings are errors."""
        if isinstance(raw, ast.Str):
            if self.grammar == "pg" and holds_graph(raw.value):
                graph = self.graph_in_string(raw)
                if graph is not None:
                    return graph
            # A string in node position is exactly df.sql('...') (the checker checks its cast).
            return self.nest(ast.Sql(query=raw, span=raw.span), [])
        if isinstance(raw, ast.Num | ast.Null | ast.Bool):
            self.error(
                codes.NODE_EXPECTED,
                f"{where} must be a node (a SQL string or a df.* call), found {describe(raw)}",
                raw.span,
                help="a step is a SQL string like 'SELECT 1' or a call like df.sleep(5)",
            )
            return self.nest(ast.Invalid(span=raw.span), [])
        if isinstance(raw, StartCall):
            self.error(
                codes.TOPLEVEL_ONLY,
                "df.start can only wrap the whole workflow",
                raw.span,
                help="remove this df.start(...) and keep its first argument",
            )
            return self.nest(ast.Invalid(span=raw.span), [])
        if isinstance(raw, Named):  # cannot happen: named args are bound before
            return self.nest(ast.Invalid(span=raw.span), [])
        if raw is None:
            return self.nest(ast.Invalid(span=at), [])
        return raw  # type: ignore[no-any-return]

    def graph_in_string(self, raw: ast.Str) -> ast.Expr | None:
        """pg grammar: the graph a string in node position holds (pg_durable's JSON), placed at
        the string; None when it holds none (or no graph reader was given)."""
        if self.read_graph is None:
            return None
        body, found = self.read_graph(raw.value)
        self.diags.extend(dataclasses.replace(d, span=raw.span) for d in found)
        if body is None:
            return self.nest(ast.Invalid(span=raw.span), [])
        if isinstance(body, ast.Sql):
            return None  # JSON, but no graph: a SQL step after all
        return self.nest(relocated(body, raw.span), [])

    def as_lit(self, raw: Any, where: str) -> ast.LitArg | None:
        """A value in literal position; None (after a diagnostic) when it is not a literal.

        Whether the literal's kind fits the parameter is the checker's rule (it also sees the
        literals that reach a built-in through template parameters).
        """
        if isinstance(raw, ast.Name):
            return raw
        if isinstance(raw, ast.Invalid):
            return None
        if not isinstance(raw, ARG_TYPES):
            span = self.raw_span(raw, Span(self.file, 0, 0))
            self.error(
                codes.LITERAL_EXPECTED,
                f"{where} must be a literal, found {describe(raw)}",
                span,
                help="literal parameters take a string, a number, NULL or TRUE/FALSE",
            )
            return None
        return raw

    def string(self, raw: Any, where: str, at: Span, example: str) -> ast.Str | ast.Name | None:
        """A string where the AST holds one: a result name (``|=> 'x'``, df.as, df.if_rows) or
        the query of df.sql; a template parameter stands for one too.

        Whether the string is valid (a result name's form, a SQL step's cast) is the checker's
        rule, which also sees the strings that reach a built-in through template parameters.
        """
        if isinstance(raw, ast.Str | ast.Name):
            return raw
        if not isinstance(raw, ast.Invalid):
            self.error(
                codes.STRING_EXPECTED,
                f"{where} must be a string, found {describe(raw)}",
                self.raw_span(raw, at),
                help=f"write it as a string: {example}",
            )
        return None

    # -- literals -------------------------------------------------------------------------------

    def b_string(self, meta: Meta, kids: list[Any]) -> ast.Str:
        return self.str_token(kids[0], casts(kids[1:]), self.span(meta))

    def str_token(self, tok: Token, cast: str | None = None, span: Span | None = None) -> ast.Str:
        """The string literal of a STRING token (``span``: with its casts, if any)."""
        span = span or self.tspan(tok)
        sv = self.strings.get(start_of(tok))
        if sv is None:  # only a repaired token could lack a decoded value
            from dfc.source import TextMap

            text = str(tok)
            return ast.Str(
                value=text,
                cast=cast,
                span=span,
                text_map=TextMap(((0, start_of(tok)),), len(text)),
            )
        return ast.Str(
            value=sv.value,
            cast=cast,
            span=span,
            text_map=sv.text_map,
            joins=tuple((at, Span(self.file, a, b)) for at, a, b in sv.joins),
        )

    def b_number(self, meta: Meta, kids: list[Any]) -> ast.Num:
        sign = "-" if kids[0] is not None else ""
        return ast.Num(text=sign + str(kids[1]), cast=casts(kids[2:]), span=self.span(meta))

    def b_null(self, meta: Meta, kids: list[Any]) -> ast.Null:
        return ast.Null(cast=casts(kids[1:]), span=self.span(meta))

    def b_true(self, meta: Meta, kids: list[Any]) -> ast.Bool:
        return ast.Bool(value=True, cast=casts(kids[1:]), span=self.span(meta))

    def b_false(self, meta: Meta, kids: list[Any]) -> ast.Bool:
        return ast.Bool(value=False, cast=casts(kids[1:]), span=self.span(meta))

    def b_sql_expr(self, meta: Meta, kids: list[Any]) -> ast.SqlExpr:
        return ast.SqlExpr(text=str(kids[0]), span=self.span(meta))

    def b_cast(self, meta: Meta, kids: list[Any]) -> str:
        out = ""
        for k in kids[1:]:
            if isinstance(k, Word):
                out += (" " if out and not out.endswith(".") else "") + k.text
            elif isinstance(k, str) and k.startswith("("):
                out += k
            elif isinstance(k, Token):
                out += (
                    "."
                    if k.type == "DOT"
                    else "["
                    if k.type == "LSQB"
                    else "]"
                    if k.type == "RSQB"
                    else str(k)
                )
        return out

    def b_type_word(self, meta: Meta, kids: list[Any]) -> Word:
        tok: Token = kids[0]
        return Word(str(tok) if tok.type == "QIDENT" else str(tok).lower())

    def b_type_mod(self, meta: Meta, kids: list[Any]) -> str:
        nums: list[str] = []
        sign = ""
        for k in kids:
            if isinstance(k, Token) and k.type == "MINUS":
                sign = "-"
            elif isinstance(k, Token):
                nums.append(sign + str(k))
                sign = ""
        return "(" + ",".join(nums) + ")"

    def b_name(self, meta: Meta, kids: list[Any]) -> ast.Expr:
        return self.nest(ast.Name(name=str(kids[0]), span=self.span(meta)), [])

    # -- operators ------------------------------------------------------------------------------

    def _binary(self, meta: Meta, kids: list[Any], cls: type) -> ast.Expr:
        left, op, right = kids
        sp = self.span(meta)
        opname = str(op)
        a = self.as_node(left, f"the left side of '{opname}'", sp)
        b = self.as_node(right, f"the right side of '{opname}'", sp)
        if cls is ast.Seq:
            node: ast.Expr = ast.Seq(left=a, right=b, span=sp)
        elif cls is ast.Compensate:
            node = ast.Compensate(node=a, undo=b, span=sp)
        else:
            node = cls(branches=(a, b), span=sp)
        # A left operand of the same operator continues the chain: no extra nesting level.
        same = (
            a
            if type(a) is cls and not (isinstance(a, ast.Join | ast.Race) and len(a.branches) != 2)
            else None
        )
        return self.nest(node, [b] if same is not None else [a, b], same_left=same)

    def b_seq(self, meta: Meta, kids: list[Any]) -> ast.Expr:
        return self._binary(meta, kids, ast.Seq)

    def b_join(self, meta: Meta, kids: list[Any]) -> ast.Expr:
        return self._binary(meta, kids, ast.Join)

    def b_race(self, meta: Meta, kids: list[Any]) -> ast.Expr:
        return self._binary(meta, kids, ast.Race)

    def b_comp(self, meta: Meta, kids: list[Any]) -> ast.Expr:
        return self._binary(meta, kids, ast.Compensate)

    def b_bind(self, meta: Meta, kids: list[Any]) -> ast.Expr:
        left, _op, right = kids
        sp = self.span(meta)
        node = self.as_node(left, "the left side of '|=>'", sp)
        name = self.string(right, "the result name after '|=>'", sp, "|=> 'rows'")
        if name is None:
            return self.nest(ast.Invalid(span=sp), [node])
        same = node if isinstance(node, ast.Bind) else None
        return self.nest(
            ast.Bind(node=node, name=name, span=sp), [] if same else [node], same_left=same
        )

    def b_if_else(self, meta: Meta, kids: list[Any]) -> ast.Expr:
        c, _t, t, _e, e = kids
        sp = self.span(meta)
        parts = [
            self.as_node(c, "the condition of '?>'", sp),
            self.as_node(t, "the then branch of '?>'", sp),
            self.as_node(e, "the else branch of '!>'", sp),
        ]
        return self.nest(ast.If(cond=parts[0], then=parts[1], orelse=parts[2], span=sp), parts)

    def b_if_then(self, meta: Meta, kids: list[Any]) -> ast.Expr:
        # `c ?> t` without `!>`: kept as If(orelse=None); the checker reports it.
        c, _t, t = kids
        sp = self.span(meta)
        parts = [
            self.as_node(c, "the condition of '?>'", sp),
            self.as_node(t, "the then branch of '?>'", sp),
        ]
        return self.nest(ast.If(cond=parts[0], then=parts[1], orelse=None, span=sp), parts)

    def b_pg_else(self, meta: Meta, kids: list[Any]) -> ast.Expr:
        left, op, right = kids
        sp = self.span(meta)
        if isinstance(left, ast.Invalid):
            return left
        if not (isinstance(left, ast.If) and left.orelse is None):
            self.error(
                codes.ELSE_WITHOUT_IF,
                f"'!>' needs an incomplete '?>' on its left, found {describe(left)}",
                self.tspan(op),
                labels=(
                    Label(
                        self.raw_span(left, sp),
                        "with pg_durable's flat precedence, this is the left side of '!>'",
                    ),
                ),
                help="all operators share one precedence here: add parentheses, e.g. c ?> (t ~> u) !> e",
            )
            return self.nest(ast.Invalid(span=sp), [])
        e = self.as_node(right, "the else branch of '!>'", sp)
        return self.nest(
            ast.If(cond=left.cond, then=left.then, orelse=e, span=sp), [left.cond, left.then, e]
        )

    def b_loop(self, meta: Meta, kids: list[Any]) -> ast.Expr:
        sp = self.span(meta)
        body = self.as_node(kids[1], "the body of '@>'", sp)
        return self.nest(ast.Loop(body=body, cond=None, span=sp), [body])

    # -- calls ----------------------------------------------------------------------------------

    def b_args(self, meta: Meta, kids: list[Any]) -> list[Any]:
        return kids

    def b_arg(self, meta: Meta, kids: list[Any]) -> Any:
        return kids[0]

    def b_named_arg(self, meta: Meta, kids: list[Any]) -> Named:
        return Named(str(kids[0]), kids[2], self.span(meta))

    def bind_args(self, sig: Signature, args: list[Any], call: Span) -> dict[str, Any] | None:
        """Match arguments to parameters the way PostgreSQL does; None after reporting a problem."""
        fname = f"df.{sig.name}"
        bound: dict[str, Any] = {}
        ok = True
        named_seen = False
        positional: list[Any] = []
        for a in args:
            if isinstance(a, Named):
                named_seen = True
                continue
            if named_seen:
                self.error(
                    codes.POSITIONAL_AFTER_NAMED,
                    f"positional argument after a named one in {fname}",
                    self.raw_span(a, call),
                )
                ok = False
            positional.append(a)
        params = list(sig.params)
        if len(positional) > len(params) and not sig.variadic:
            extra = positional[len(params)]
            self.error(
                codes.ARITY,
                f"{fname} takes at most {len(params)} argument{'s' if len(params) != 1 else ''}, got {len(positional)}",
                self.raw_span(extra, call),
                help=f"usage: {sig.describe()}",
            )
            return None
        for p, a in zip(params, positional, strict=False):
            bound[p.name] = a
        if sig.variadic:
            bound["*rest"] = positional[len(params) :]
        by_name = {p.name: p for p in params}
        for a in args:
            if not isinstance(a, Named):
                continue
            key = a.name.lower()
            if (sig.name, key) in UNSUPPORTED_PARAMS:
                self.error(codes.UNKNOWN_ARG, UNSUPPORTED_PARAMS[(sig.name, key)], a.span)
                ok = False
            elif key not in by_name and sig.keywords:
                # The callee's parameters, kept as written: the checker matches them.
                passed: list[Named] = bound.setdefault("**named", [])
                if any(p.name == a.name for p in passed):
                    self.error(codes.DUPLICATE_ARG, f"{fname}: {a.name} is given twice", a.span)
                    ok = False
                passed.append(a)
            elif key not in by_name:
                near = difflib.get_close_matches(key, list(by_name), n=1)
                self.error(
                    codes.UNKNOWN_ARG,
                    f"{fname} has no parameter named {a.name!r}",
                    a.span,
                    help=f"did you mean {near[0]!r}? usage: {sig.describe()}"
                    if near
                    else f"usage: {sig.describe()}",
                )
                ok = False
            elif key in bound:
                self.error(codes.DUPLICATE_ARG, f"{fname}: {key} is given twice", a.span)
                ok = False
            else:
                bound[key] = a.value
        missing = [p.name for p in params if p.required and p.name not in bound]
        recovered = any(
            isinstance(a.value if isinstance(a, Named) else a, ast.Invalid) for a in args
        )
        if missing and ok and not recovered:  # after a syntax error inside the call, arity is moot
            n = sig.min_args
            self.error(
                codes.ARITY,
                f"{fname} needs {n} argument{'s' if n != 1 else ''} ({', '.join(p.name for p in params if p.required)}), missing {', '.join(missing)}",
                call,
                help=f"usage: {sig.describe()}",
            )
            return None
        return bound if ok else None

    def b_builtin(self, meta: Meta, kids: list[Any]) -> Any:
        tok: Token = kids[0]
        name = str(tok)
        args: list[Any] = kids[1] or []
        sp = self.span(meta)
        if name == "start":
            return StartCall(args, sp)
        if name in SQL_API:
            self.error(
                codes.TOPLEVEL_ONLY,
                f"df.{name} is a SQL function, not a workflow step",
                self.tspan(tok),
                help=f"call it from SQL (SELECT df.{name}(...)), or use dfc's command line",
            )
            return self.nest(ast.Invalid(span=sp), [])
        sig = SIGNATURES.get(name)
        if sig is None:
            if not name:  # `df.` without a name: the lexer reported it
                pass
            elif name in UNSUPPORTED:
                self.error(codes.UNKNOWN_FUNCTION, UNSUPPORTED[name], self.tspan(tok))
            else:
                near = difflib.get_close_matches(name, list(SIGNATURES), n=1)
                self.error(
                    codes.UNKNOWN_FUNCTION,
                    f"unknown function df.{name}",
                    self.tspan(tok),
                    help=f"did you mean df.{near[0]}?"
                    if near
                    else "see SPEC §1.3 for the built-in functions",
                )
            return self.nest(ast.Invalid(span=sp), [])
        bound = self.bind_args(sig, args, sp)
        if bound is None:
            return self.nest(ast.Invalid(span=sp), [])
        return self.make_builtin(sig, bound, sp)

    def make_builtin(self, sig: Signature, bound: dict[str, Any], sp: Span) -> ast.Expr:
        fname = f"df.{sig.name}"
        vals: dict[str, Any] = {}
        ok = True
        for p in sig.params:
            if p.name not in bound:
                vals[p.name] = None
                continue
            where = f"the {p.name} argument of {fname}"
            if p.kind == "node":
                vals[p.name] = self.as_node(bound[p.name], where, sp)
            elif (sig.name, p.name) in _STRINGS:
                example = _STRINGS[(sig.name, p.name)]
                vals[p.name] = self.string(bound[p.name], where, sp, example)
                ok = ok and vals[p.name] is not None
            else:
                lit = self.as_lit(bound[p.name], where)
                ok = ok and lit is not None
                vals[p.name] = lit
        rest = [self.as_node(r, f"a branch of {fname}", sp) for r in bound.get("*rest", [])]
        passed: list[ast.CallArg] = []
        for a in bound.get("**named", []):
            lit = self.as_lit(a.value, f"the parameter {a.name} of {fname}")
            ok = ok and lit is not None
            if lit is not None:
                passed.append(ast.CallArg(name=a.name, value=lit, span=a.span))
        if not ok:
            return self.nest(ast.Invalid(span=sp), [])
        v = vals
        node: ast.Expr
        match sig.name:
            case "sql":
                node = ast.Sql(query=v["query"], span=sp)
            case "seq":
                node = ast.Seq(left=v["a"], right=v["b"], spelling="call", span=sp)
            case "as":
                node = ast.Bind(node=v["fut"], name=v["name"], spelling="call", span=sp)
            case "join" | "join3":
                node = ast.Join(
                    branches=(v["a"], v["b"], *([v["c"]] if "c" in v else []), *rest),
                    spelling="call",
                    span=sp,
                )
            case "race":
                node = ast.Race(branches=(v["a"], v["b"]), spelling="call", span=sp)
            case "if":
                node = ast.If(
                    cond=v["condition"],
                    then=v["then"],
                    orelse=v["else"],
                    spelling="call",
                    span=sp,
                )
            case "if_rows":
                node = ast.IfRows(name=v["result_name"], then=v["then"], orelse=v["else"], span=sp)
            case "loop":
                node = ast.Loop(body=v["body"], cond=v["condition"], spelling="call", span=sp)
            case "break":
                node = ast.Break(value=v["value"], span=sp)
            case "sleep":
                node = ast.Sleep(seconds=v["seconds"], span=sp)
            case "wait_for_schedule":
                node = ast.WaitSchedule(cron=v["cron_expr"], span=sp)
            case "wait_for_signal":
                node = ast.WaitSignal(name=v["name"], timeout=v["timeout"], span=sp)
            case "http":
                node = ast.Http(**v, span=sp)  # the parameters are named as the fields
            case "http_multipart":
                node = ast.HttpMultipart(**v, span=sp)
            case "retry":
                node = ast.Retry(**v, span=sp)
            case "timeout":
                node = ast.Timeout(node=v["node"], seconds=v["seconds"], span=sp)
            case "with_undo":
                node = ast.Compensate(node=v["node"], undo=v["undo"], spelling="call", span=sp)
            case "call" | "spawn":
                node = ast.Call(
                    workflow=v["workflow"],
                    version=v["version"],
                    args=tuple(passed),
                    wait=sig.name == "call",
                    span=sp,
                )
            case "map":
                node = ast.Map(**v, span=sp)  # the parameters are named as the fields
            case "start":
                raise AssertionError("df.start is unwrapped by the workflow statement")
            case _:
                assert_never(sig.name)
        return self.nest(node, [x for x in (*v.values(), *rest) if x is not None])

    def b_tcall(self, meta: Meta, kids: list[Any]) -> ast.Expr:
        tok: Token = kids[0]
        sp = self.span(meta)
        out: list[ast.Arg] = []
        seen: set[str] = set()
        ok = True
        named = False
        for a in kids[1] or []:
            if isinstance(a, Named):
                named = True
                if a.name in seen:
                    self.error(codes.DUPLICATE_ARG, f"{tok}(...): {a.name} is given twice", a.span)
                    ok = False
                seen.add(a.name)
                value, name, asp = a.value, a.name, a.span
            else:
                if named:
                    self.error(
                        codes.POSITIONAL_AFTER_NAMED,
                        f"positional argument after a named one in {tok}(...)",
                        self.raw_span(a, sp),
                    )
                    ok = False
                value, name, asp = a, None, self.raw_span(a, sp)
            if isinstance(value, StartCall):
                self.as_node(value, "", sp)
                ok = False
                continue
            out.append(ast.Arg(value=value, name=name, span=asp))
        if not ok:
            return self.nest(ast.Invalid(span=sp), [])
        return self.nest(
            ast.TemplateCall(name=str(tok), args=tuple(out), span=sp), [a.value for a in out]
        )

    # -- statements -----------------------------------------------------------------------------

    def b_workflow(self, meta: Meta, kids: list[Any]) -> ast.Workflow:
        raw = kids[1]
        sp = self.span(meta)
        if not isinstance(raw, StartCall):
            return ast.Workflow(body=self.as_node(raw, "the workflow", sp), span=sp)
        bound = self.bind_args(START, raw.args, raw.span)
        if bound is None:
            return ast.Workflow(body=ast.Invalid(span=raw.span), span=sp)
        body = self.as_node(bound["fut"], "the workflow (first argument of df.start)", raw.span)
        label: ast.Str | None = None
        options: list[ast.Option] = []
        for key in ("label", "database", "transaction_mode", "max_concurrent", "rate_limit"):
            if key not in bound:
                continue
            value = bound[key]
            if isinstance(value, ast.Invalid):
                continue
            if not isinstance(value, LIT_TYPES):
                self.error(
                    codes.BAD_START,
                    f"the {key} of df.start must be a literal, found {describe(value)}",
                    self.raw_span(value, raw.span),
                )
                continue
            if key == "label":
                if isinstance(value, ast.Str):
                    label = value
                elif not isinstance(value, ast.Null):
                    self.error(
                        codes.BAD_START,
                        f"the label of df.start must be a string, found {describe(value)}",
                        value.span,
                    )
                continue
            if key == "max_concurrent" and not (
                isinstance(value, ast.Num) and value.is_integer and int(value.text) >= 1
            ):
                self.error(
                    codes.BAD_START,
                    "the max_concurrent of df.start must be a whole number of at least 1, "
                    f"found {value.span.text}",
                    value.span,
                )
                continue
            if key == "rate_limit" and not (
                isinstance(value, ast.Str) and rates.spacing(value.value) is not None
            ):
                self.error(
                    codes.BAD_START,
                    f"the rate_limit of df.start must be {rates.FORM}, found {value.span.text}",
                    value.span,
                )
                continue
            options.append(ast.Option(name=key, value=value, span=value.span))
        return ast.Workflow(body=body, label=label, options=tuple(options), span=sp)

    def b_param_decl(self, meta: Meta, kids: list[Any]) -> ast.Param:
        _kw, name_tok, type_tok, _eq, default = kids
        sp = self.span(meta)
        ptype = "text"
        if type_tok is not None:
            word = str(type_tok).lower()
            if word in _PARAM_TYPES:
                ptype = word
            else:
                alias = _TYPE_ALIASES.get(word) or next(
                    iter(difflib.get_close_matches(word, _PARAM_TYPES, n=1)), None
                )
                self.error(
                    codes.BAD_PARAM,
                    f"unknown parameter type {str(type_tok)!r}",
                    self.tspan(type_tok),
                    help=(f"did you mean {alias}? " if alias else "")
                    + "types are "
                    + ", ".join(_PARAM_TYPES),
                )
        lit: ast.Lit | None = None
        if default is not None and not isinstance(default, ast.Invalid):
            if isinstance(default, LIT_TYPES):
                lit = default
            else:
                self.error(
                    codes.BAD_PARAM,
                    f"the default of param {name_tok} must be a literal, found {describe(default)}",
                    self.raw_span(default, sp),
                )
        return ast.Param(name=str(name_tok), type=ptype, default=lit, span=sp)  # type: ignore[arg-type]

    def b_def_param(self, meta: Meta, kids: list[Any]) -> ast.DefParam:
        name_tok, _eq, default = kids
        sp = self.span(meta)
        if isinstance(default, StartCall):
            default = self.as_node(default, "", sp)
        return ast.DefParam(name=str(name_tok), default=default, span=sp)

    def b_def_sig(self, meta: Meta, kids: list[Any]) -> list[ast.DefParam]:
        return [k for k in kids if isinstance(k, ast.DefParam)]

    def b_def_decl(self, meta: Meta, kids: list[Any]) -> ast.Def:
        _kw, name_tok, sig, _eq, body = kids
        sp = self.span(meta)
        params: list[ast.DefParam] = sig or []
        seen: dict[str, ast.DefParam] = {}
        defaulted: ast.DefParam | None = None
        for p in params:
            if p.name in seen:
                self.error(
                    codes.BAD_DEF,
                    f"template {name_tok} has two parameters named {p.name}",
                    p.span,
                    labels=(Label(seen[p.name].span, "first declared here"),),
                )
            seen[p.name] = p
            if p.default is not None:
                defaulted = p
            elif defaulted is not None:
                self.error(
                    codes.BAD_DEF,
                    f"parameter {p.name} of template {name_tok} needs a default because {defaulted.name} has one",
                    p.span,
                    help="put the parameters with defaults last",
                )
        return ast.Def(
            name=str(name_tok),
            name_span=self.tspan(name_tok),
            params=tuple(params),
            body=self.as_node(body, f"the body of {name_tok}", sp),
            span=sp,
        )

    def b_import_decl(self, meta: Meta, kids: list[Any]) -> ast.Import | None:
        raw = kids[1]
        if isinstance(raw, ast.Str):
            return ast.Import(path=raw, span=self.span(meta))
        if not isinstance(raw, ast.Invalid):
            self.error(
                codes.BAD_IMPORT,
                f"import takes a module path string, found {describe(raw)}",
                self.raw_span(raw, self.span(meta)),
                help="e.g. import 'std/batch';",
            )
        return None

    def b_schedule_opt(self, meta: Meta, kids: list[Any]) -> tuple[Token, Token, Span]:
        return kids[0], kids[1], self.span(meta)

    def b_schedule_decl(self, meta: Meta, kids: list[Any]) -> ast.Schedule:
        sp = self.span(meta)
        values: dict[str, ast.Str | str] = {}
        where: dict[str, Span] = {}
        for name_tok, value_tok, opt_span in kids[2:]:
            name = str(name_tok).lower()
            if name not in scheduling.OPTIONS:
                close = difflib.get_close_matches(name, scheduling.OPTIONS, n=1)
                self.error(
                    codes.BAD_SCHEDULE,
                    f"a schedule has no option {str(name_tok)!r}",
                    self.tspan(name_tok),
                    help=(f"did you mean {close[0]}? " if close else "")
                    + "the options are "
                    + ", ".join(scheduling.OPTIONS),
                )
                continue
            if name in where:
                self.error(
                    codes.BAD_SCHEDULE,
                    f"the schedule's {name} is given twice",
                    opt_span,
                    labels=(Label(where[name], "first given here"),),
                    help="keep one of them",
                )
                continue
            where[name] = opt_span
            value = self.schedule_value(name, value_tok)
            if value is not None:
                values[name] = value
        zone = values.get("timezone")
        return ast.Schedule(
            cron=self.str_token(kids[1]),
            timezone=zone if isinstance(zone, ast.Str) else None,
            overlap=values.get("overlap"),  # type: ignore[arg-type]
            catchup=values.get("catchup"),  # type: ignore[arg-type]
            span=sp,
        )

    def schedule_value(self, name: str, tok: Token) -> ast.Str | str | None:
        """The value of schedule option ``name`` written as ``tok``: a string for the time
        zone, one of its words for a policy; None (reported) when it is neither."""
        words = scheduling.OPTIONS[name]
        if words is None:
            if tok.type == "STRING":
                return self.str_token(tok)
            self.error(
                codes.BAD_SCHEDULE,
                f"the schedule's {name} is a string, found the word {tok}",
                self.tspan(tok),
                help=f"quote it: {name} '{tok}'",
            )
            return None
        word = str(tok).lower()
        if tok.type == "IDENT" and word in words:
            return word
        text = self.str_token(tok).value.lower() if tok.type == "STRING" else word
        self.error(
            codes.BAD_SCHEDULE,
            f"the schedule's {name} is one of {', '.join(words)}, found {tok!s}",
            self.tspan(tok),
            help=f"write it as a word: {name} {text}"
            if text in words
            else f"e.g. {name} {words[0]}",
        )
        return None

    def b_start(self, meta: Meta, kids: list[Any]) -> ast.Module | None:
        decls: list[ast.Decl] = []
        workflows: list[ast.Workflow] = []
        bad = False
        for k in kids:
            if k is None:  # a declaration dropped after an error
                bad = True
            elif isinstance(k, BadStmt):
                bad = True
                if not k.decl:
                    workflows.append(ast.Workflow(body=ast.Invalid(span=k.span), span=k.span))
            elif isinstance(k, ast.Param | ast.Def | ast.Import | ast.Schedule):
                if workflows:
                    self.error(
                        codes.DECL_AFTER_WORKFLOW,
                        "declarations must come before the workflow",
                        k.span,
                        labels=(Label(workflows[0].span, "the workflow"),),
                        help="move this declaration above the workflow",
                    )
                decls.append(k)
            elif isinstance(k, ast.Workflow):
                workflows.append(k)
        whole = Span(self.file, 0, len(self.file.text))
        if len(workflows) > 1:
            self.error(
                codes.MULTIPLE_WORKFLOWS,
                "a file holds one workflow; this is a second one",
                workflows[1].span,
                labels=(Label(workflows[0].span, "the first workflow"),),
                help="combine the steps with ~> (or &), or move this workflow to its own file",
            )
        if not decls and not workflows:
            if not bad and not any(d.is_error for d in self.diags):  # else a consequence
                self.error(
                    codes.EMPTY_FILE,
                    "the file has no workflow and no declarations",
                    Span(self.file, 0, 0),
                    help="write a workflow, e.g. df.sleep(1) ~> 'SELECT 1'",
                )
            return None
        workflow = workflows[0] if workflows else None
        self.check_schedules(decls, workflow, bad)
        if not decls and workflow is not None and isinstance(workflow.body, ast.Invalid):
            return None
        return ast.Module(decls=tuple(decls), workflow=workflow, span=whole)

    b_pg_start = b_start

    def check_schedules(
        self, decls: list[ast.Decl], workflow: ast.Workflow | None, bad: bool
    ) -> None:
        """A file has at most one schedule, and only with the workflow it starts."""
        schedules = [d for d in decls if isinstance(d, ast.Schedule)]
        for extra in schedules[1:]:
            self.error(
                codes.BAD_SCHEDULE,
                "a workflow has one schedule; this is a second one",
                extra.span,
                labels=(Label(schedules[0].span, "the first schedule"),),
                help="write the times as one cron expression, or schedule a copy of the "
                "workflow under another name",
            )
        if schedules and workflow is None and not bad:
            self.error(
                codes.BAD_SCHEDULE,
                "a schedule starts the workflow of its file, and this file has none",
                schedules[0].span,
                help="put the schedule in the file of the workflow it starts",
            )
