"""Literal arguments (cron, seconds, HTTP, retry, result names), parameters and variables.

The parser takes any literal where a built-in expects one; the rules here check each literal
argument, written directly or reaching the built-in through a template parameter: first its
kind (would PostgreSQL convert it to the parameter's type, `fits`), then its value.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import assert_never

from cronsim import CronSim, CronSimError

from dfc import ast
from dfc.check import codes
from dfc.check.refs import SYSTEM_VARS, Ref, json_neutralize, scan
from dfc.check.report import Reporter
from dfc.check.sql import expression_issues
from dfc.check.walk import texts
from dfc.diagnostics import Label
from dfc.fanout import MAX_CONCURRENCY, ON_ERROR
from dfc.params import BOOL_WORDS, EXAMPLES, INT_TEXT, ParamValueError, substitution_text
from dfc.references import RESULT_NAME
from dfc.scheduling import is_timezone
from dfc.source import Span
from dfc.syntax.builtins import CAST_KINDS, SIGNATURES, Kind, ParamSpec
from dfc.syntax.values import describe

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")

_CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_CRON_RANGES = ("0-59", "0-23", "1-31", "1-12 or JAN-DEC", "0-7 or SUN-SAT")


def _str_span(s: ast.Str, start: int, end: int) -> Span:
    return s.text_map.span(s.span.file, start, end)


def check_literals(body: ast.Expr, rep: Reporter) -> None:
    """Check the literal arguments of every built-in node in ``body``: kind, then value."""
    for n in ast.preorder(body):
        match n:
            case ast.Bind(name=name) | ast.IfRows(name=name):
                _result_name(name, n, rep)
            case ast.Sql(query=q):
                _fits(q, ("sql", "query"), "a SQL step", codes.BAD_LITERAL, n, rep)
            case ast.Sleep(seconds=s):
                if _fits(s, ("sleep", "seconds"), "df.sleep", codes.BAD_SECONDS, n, rep):
                    _seconds(s, n, rep, "df.sleep", allow_null=False)
            case ast.WaitSchedule(cron=c):
                what = "the cron expression"
                if _fits(c, ("wait_for_schedule", "cron_expr"), what, codes.BAD_LITERAL, n, rep):
                    _cron(c, n, rep)
            case ast.WaitSignal(name=name, timeout=t):
                what = "the signal name"
                if _fits(name, ("wait_for_signal", "name"), what, codes.BAD_LITERAL, n, rep):
                    _text_arg(name, n, rep, what, allow_null=False)
                what = "the signal timeout"
                if _fits(t, ("wait_for_signal", "timeout"), what, codes.BAD_SECONDS, n, rep):
                    _seconds(t, n, rep, what, allow_null=True)
            case ast.Http(url=u, method=m, body=b, headers=h, timeout=t):
                _http(n, "http", u, m, h, t, rep)
                _fits(b, ("http", "body"), "the HTTP body", codes.BAD_LITERAL, n, rep)
            case ast.HttpMultipart(url=u, method=m, parts=p, headers=h, timeout=t):
                _http(n, "http_multipart", u, m, h, t, rep)
                what = "the multipart parts"
                if _fits(p, ("http_multipart", "parts"), what, codes.BAD_PARTS, n, rep):
                    _parts(p, n, rep)
            case ast.Call():
                _call(n, rep)
            case ast.Retry():
                _retry(n, rep)
            case ast.Timeout(seconds=s):
                if _fits(s, ("timeout", "seconds"), "df.timeout", codes.BAD_SECONDS, n, rep):
                    _seconds(s, n, rep, "df.timeout", allow_null=False)
            case ast.Break(value=v):
                _fits(v, ("break", "value"), "the break value", codes.BAD_LITERAL, n, rep)
            case ast.Map():
                _map(n, rep)
            case ast.Leaf() | ast.Wrapper():
                pass  # the others have no literal arguments
            case ast.Seq() | ast.Join() | ast.Race() | ast.If() | ast.Loop() | ast.TemplateCall():
                pass
            case _:
                assert_never(n)


def _http(
    n: ast.Http | ast.HttpMultipart,
    function: str,
    u: ast.LitArg,
    m: ast.LitArg | None,
    h: ast.LitArg | None,
    t: ast.LitArg | None,
    rep: Reporter,
) -> None:
    """The arguments df.http and df.http_multipart share."""
    if _fits(u, (function, "url"), "the URL", codes.BAD_LITERAL, n, rep):
        _url(u, n, rep)
    if _fits(m, (function, "method"), "the HTTP method", codes.BAD_METHOD, n, rep):
        _method(m, n, rep)
    if _fits(h, (function, "headers"), "the HTTP headers", codes.BAD_HEADERS, n, rep):
        _headers(h, n, rep)
    if _fits(t, (function, "timeout"), "the HTTP timeout", codes.BAD_SECONDS, n, rep):
        _seconds(t, n, rep, "the HTTP timeout", allow_null=True)


def _call(n: ast.Call, rep: Reporter) -> None:
    """df.call and df.spawn: the callee's name, its version, literal parameters."""
    function = "call" if n.wait else "spawn"
    what = "the name of the called workflow"
    if _fits(n.workflow, (function, "workflow"), what, codes.BAD_LITERAL, n, rep):
        _text_arg(n.workflow, n, rep, what, allow_null=False)
    v = n.version
    what = f"the version of df.{function}"
    if _fits(v, (function, "version"), what, codes.CALLEE_VERSION, n, rep) and v is not None:
        number = _number(v)
        if number is None or number < 1 or number != int(number):
            rep.error(
                codes.CALLEE_VERSION,
                f"{what} must be a whole number of at least 1, not {v.span.text}",
                v.span,
                node=n,
                help="leave version out to start the latest deployed version",
            )
    for a in n.args:
        if isinstance(a.value, ast.SqlExpr):
            _expression(a.value, (function, a.name), n, rep)


EXPRESSION_PARAMS = frozenset(
    {
        ("http", "url"),
        ("http", "body"),
        ("http", "headers"),
        ("http_multipart", "url"),
        ("http_multipart", "parts"),
        ("http_multipart", "headers"),
        ("break", "value"),
    }
)
"""The parameters that take a SQL expression (``--grammar pg``): the texts a step substitutes
when it runs, which take the expression's value, computed when the instance starts."""


def _spec(function: str, param: str) -> ParamSpec:
    """The parameter ``param`` of the built-in ``df.function`` (its kind, whether required)."""
    return next(p for p in SIGNATURES[function].params if p.name == param)


def _fits(
    v: ast.LitArg | None,
    at: tuple[str, str],
    what: str,
    code: str,
    node: ast.Expr,
    rep: Reporter,
) -> bool:
    """Whether the literal ``v`` for parameter ``at`` (function, parameter) has a fitting kind.

    Reports it with ``code`` when it does not. A template parameter (a `Name`, in a template
    body checked on its own) and an omitted argument fit.
    """
    if v is None or isinstance(v, ast.Name):
        return True
    if isinstance(v, ast.SqlExpr):
        _expression(v, at, node, rep)
        return False  # its value is known only when the instance starts
    spec = _spec(*at)
    want = kind_problem(v, spec.kind, spec.required)
    if want is None:
        return True
    found = describe(v) + (f" cast to {v.cast}" if v.cast else "")
    rep.error(code, f"{what} must be {want}, found {found}", v.span, node=node)
    return False


def _expression(e: ast.SqlExpr, at: tuple[str, str], node: ast.Expr, rep: Reporter) -> None:
    """A SQL expression argument: refused where the plan needs a literal, else checked as SQL."""
    if at not in EXPRESSION_PARAMS:
        rep.error(
            codes.EXPRESSION_ARGUMENT,
            f"the {at[1]} argument of df.{at[0]} must be a literal, not a SQL expression",
            e.span,
            node=node,
            help="a SQL expression is evaluated when the instance starts and can stand only for "
            "an HTTP URL, body, headers or parts, or a df.break value: write the value itself",
        )
        return
    for issue in expression_issues(e.text):
        span = e.span.at(e.span.start + issue.start, e.span.start + issue.end)
        rep.emit(issue.severity, issue.code, issue.message, span, node=node, help=issue.help)


_WANT: dict[Kind, str] = {
    "node": "a node",
    "text": "text",
    "int": "an integer",
    "numeric": "a number",
    "bool": "TRUE or FALSE",
    "any": "a literal",
}


def kind_problem(lit: ast.Lit, kind: Kind, required: bool) -> str | None:
    """What a literal should have been for a parameter of ``kind``, or None when it fits.

    PostgreSQL converts an untyped string literal to the parameter's type, so ``'30'`` fits an
    integer; a cast decides the type (a type dfc does not know is left to PostgreSQL).
    """
    if kind == "any":
        return None
    want = _WANT[kind]
    if isinstance(lit, ast.Null):
        return want if required else None
    cast_kind = CAST_KINDS.get(lit.cast) if lit.cast else None
    if lit.cast and cast_kind is None:
        return None
    natural: Kind
    if isinstance(lit, ast.Str):
        natural = "text"
    elif isinstance(lit, ast.Num):
        natural = "int" if lit.is_integer else "numeric"
    else:
        natural = "bool"
    actual = cast_kind or natural
    if kind == "text":
        return None if actual == "text" or cast_kind == "text" else want
    if isinstance(lit, ast.Str) and cast_kind in (None, kind, "int" if kind == "numeric" else kind):
        # An untyped string literal is converted by PostgreSQL: check that it would convert.
        if kind == "int":
            return None if INT_TEXT.fullmatch(lit.value) else want
        if kind == "numeric":
            return None if _number(lit) is not None else want
        return None if lit.value.strip().lower() in BOOL_WORDS else want
    if kind == "numeric":
        return None if actual in ("int", "numeric") else want
    return None if actual == kind else want


def _result_name(name: ast.Str | ast.Name, node: ast.Expr, rep: Reporter) -> None:
    if not isinstance(name, ast.Str) or RESULT_NAME.match(name.value):
        return
    if name.value.startswith("$") and RESULT_NAME.match(name.value[1:]):
        fixed = name.value[1:]
        help_ = f"write the name without '$': '{fixed}' (it is referenced as {name.value})"
    else:
        fixed = re.sub(r"\W", "_", name.value) or "result"
        if fixed[0].isdigit():
            fixed = "_" + fixed
        help_ = f"result names are letters, digits and _, not starting with a digit: '{fixed}'"
    rep.error(
        codes.BAD_RESULT_NAME,
        f"'{name.value}' is not a valid result name",
        name.span,
        node=node,
        help=help_,
    )


def _number(v: ast.LitArg) -> Decimal | None:
    """The numeric value of a number literal or of a string holding a number."""
    text = v.text if isinstance(v, ast.Num) else v.value.strip() if isinstance(v, ast.Str) else None
    if text is None:
        return None
    try:
        d = Decimal(text)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


MAX_SECONDS = 100 * 365 * 24 * 3600
"""The longest duration a literal may give, 100 years: a timer much further away is past the
last timestamp the runtime can compute."""
MAX_ATTEMPTS = 1_000_000
"""The most tries `df.retry` may be given."""


def _seconds(
    v: ast.LitArg | None, node: ast.Expr, rep: Reporter, what: str, *, allow_null: bool
) -> None:
    if v is None or isinstance(v, ast.Name) or (allow_null and isinstance(v, ast.Null)):
        return
    d = _number(v)
    if d is None:
        rep.error(
            codes.BAD_SECONDS,
            f"{what} needs a whole number of seconds, not {v.span.text}",
            v.span,
            node=node,
            help="write a number such as 30",
        )
    elif d < 0:
        rep.error(
            codes.BAD_SECONDS, f"{what} cannot be negative ({v.span.text})", v.span, node=node
        )
    elif d > MAX_SECONDS:
        rep.error(
            codes.BAD_SECONDS,
            f"{what} is longer than 100 years ({_shown(v)} seconds)",
            v.span,
            node=node,
            help=f"use at most {MAX_SECONDS} seconds",
        )
    elif d != d.to_integral_value():
        rep.error(
            codes.BAD_SECONDS,
            f"{what} must be a whole number of seconds ({v.span.text})",
            v.span,
            node=node,
            help=f"round it, e.g. {int(d.to_integral_value())}",
        )


def _shown(v: ast.LitArg) -> str:
    """A literal's text for a message, shortened when it is very long."""
    text = v.span.text
    return text if len(text) <= 40 else text[:20] + "..." + text[-10:]


def _text_arg(
    v: ast.LitArg | None, node: ast.Expr | None, rep: Reporter, what: str, *, allow_null: bool
) -> bool:
    """True when ``v`` is a string literal; reports other literals."""
    if isinstance(v, ast.Str):
        if not v.value.strip():
            rep.error(codes.BAD_LITERAL, f"{what} is empty", v.span, node=node)
            return False
        return True
    if v is None or isinstance(v, ast.Name) or (allow_null and isinstance(v, ast.Null)):
        return False
    rep.error(codes.BAD_LITERAL, f"{what} must be a string, not {v.span.text}", v.span, node=node)
    return False


def _cron(c: ast.LitArg, node: ast.Expr | None, rep: Reporter) -> None:
    if not _text_arg(c, node, rep, "the cron expression", allow_null=False):
        return
    assert isinstance(c, ast.Str)
    fields = list(re.finditer(r"\S+", c.value))
    if len(fields) != 5:
        rep.error(
            codes.BAD_CRON,
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"this one has {len(fields)}",
            c.span,
            node=node,
            help="for example '0 3 * * *' is every day at 03:00",
        )
        return
    try:
        CronSim(c.value, datetime(2000, 1, 1))
    except CronSimError as e:
        msg = str(e)
        idx = next((i for i, f in enumerate(_CRON_FIELDS) if msg.lower().endswith(f)), None)
        if idx is None:
            rep.error(codes.BAD_CRON, f"invalid cron expression: {msg}", c.span, node=node)
            return
        m = fields[idx]
        rep.error(
            codes.BAD_CRON,
            f"invalid {_CRON_FIELDS[idx]} field `{m.group()}` in cron expression",
            _str_span(c, m.start(), m.end()),
            node=node,
            help=f"the {_CRON_FIELDS[idx]} field takes values {_CRON_RANGES[idx]}, "
            "as a value, range a-b, step */n, or a list",
        )


def _url(u: ast.LitArg, node: ast.Expr, rep: Reporter) -> None:
    if not _text_arg(u, node, rep, "the URL", allow_null=False):
        return
    assert isinstance(u, ast.Str)
    v = u.value.lstrip()
    if v.lower().startswith(("http://", "https://")):
        return
    if any(r.kind == "var" and r.start == len(u.value) - len(v) for r in scan(u.value)[:1]):
        return
    rep.error(
        codes.BAD_URL,
        f"the URL '{u.value[:60]}' does not start with http:// or https:// or a {{variable}}",
        u.span,
        node=node,
        help="write the scheme: 'https://" + v.split("://")[-1][:40] + "'",
    )


def _method(m: ast.LitArg | None, node: ast.Expr, rep: Reporter) -> None:
    if m is None or isinstance(m, ast.Name | ast.Null):
        return
    if isinstance(m, ast.Str) and m.value.strip().upper() in METHODS:
        return
    rep.error(
        codes.BAD_METHOD,
        f"{m.span.text} is not an HTTP method dfc supports",
        m.span,
        node=node,
        help="use one of " + ", ".join(METHODS),
    )


def _json_arg(v: ast.Str) -> tuple[object, str | None, list[Ref]]:
    """Parse a JSON argument with references neutralised: (value, error message, refs)."""
    refs = scan(v.value)
    try:
        return json.loads(json_neutralize(v.value, refs)), None, refs
    except json.JSONDecodeError as e:
        return None, f"{e.msg} at character {e.pos + 1}", refs


def _whole_ref(v: ast.Str, refs: list[Ref]) -> bool:
    s = v.value.strip()
    return len(refs) == 1 and len(s) == refs[0].end - refs[0].start


def _json_literal(
    arg: ast.LitArg | None,
    shape: type,
    what: str,
    code: str,
    help_: str,
    node: ast.Expr,
    rep: Reporter,
) -> object | None:
    """The JSON value of a literal that must be a JSON ``shape`` (object or array), else None.

    Reports what is wrong with it; says nothing when references make the text unknowable
    (a whole-value reference, or JSON that only parses once references are substituted).
    """
    if arg is None or isinstance(arg, ast.Name | ast.Null):
        return None
    kind = "object" if shape is dict else "array"
    if not isinstance(arg, ast.Str):
        rep.error(code, f"{what} must be a JSON {kind} in a string", arg.span, node=node)
        return None
    value, err, refs = _json_arg(arg)
    if _whole_ref(arg, refs) or (err is not None and refs):
        return None  # the substituted text may well be right
    if err is not None:
        rep.error(code, f"{what} are not valid JSON: {err}", arg.span, node=node, help=help_)
        return None
    if not isinstance(value, shape):
        rep.error(
            code,
            f"{what} must be a JSON {kind}, not {_json_kind(value)}",
            arg.span,
            node=node,
            help=help_,
        )
        return None
    return value


def _headers(h: ast.LitArg | None, node: ast.Expr, rep: Reporter) -> None:
    help_ = 'write them as a JSON object: \'{"Name": "value"}\''
    _json_literal(h, dict, "HTTP headers", codes.BAD_HEADERS, help_, node, rep)


def _parts(p: ast.LitArg | None, node: ast.Expr, rep: Reporter) -> None:
    help_ = 'each part is {"name": ..., "data_b64": ...}, in a JSON array'
    value = _json_literal(p, list, "multipart parts", codes.BAD_PARTS, help_, node, rep)
    if not isinstance(value, list):
        return
    assert p is not None
    for i, part in enumerate(value):
        missing = [k for k in ("name", "data_b64") if not isinstance(part, dict) or k not in part]
        if missing:
            rep.error(
                codes.BAD_PARTS,
                f"multipart part {i + 1} "
                + (
                    "is not an object"
                    if not isinstance(part, dict)
                    else "has no " + " and no ".join(f"`{k}`" for k in missing)
                ),
                p.span,
                node=node,
                help=help_,
            )
            return


def _json_kind(v: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(v), "null" if v is None else "a number"
    )


def _retry(n: ast.Retry, rep: Reporter) -> None:
    def bad(v: ast.LitArg, msg: str) -> None:
        rep.error(codes.BAD_RETRY, msg, v.span, node=n)

    for name, low, high, integer in (
        ("attempts", 1, MAX_ATTEMPTS, True),
        ("backoff", 0, MAX_SECONDS, False),
        ("factor", 1, None, False),
        ("max_backoff", 0, MAX_SECONDS, False),
    ):
        v = getattr(n, name)
        if not _fits(v, ("retry", name), f"`{name}`", codes.BAD_RETRY, n, rep):
            continue
        if v is None or isinstance(v, ast.Name | ast.Null):
            continue
        d = _number(v)
        kind = "an integer" if integer else "a number"
        if d is None:
            bad(v, f"`{name}` must be {kind}, not {v.span.text}")
        elif integer and d != d.to_integral_value():
            bad(v, f"`{name}` must be an integer, not {v.span.text}")
        elif d < low:
            bad(v, f"`{name}` must be at least {low}, not {v.span.text}")
        elif high is not None and d > high:
            bad(v, f"`{name}` must be at most {high}, not {_shown(v)}")
    j = n.jitter
    if _fits(j, ("retry", "jitter"), "`jitter`", codes.BAD_RETRY, n, rep) and (
        j is not None
        and not isinstance(j, ast.Name | ast.Null | ast.Bool)
        and not (isinstance(j, ast.Str) and j.value.strip().lower() in BOOL_WORDS)
    ):
        bad(j, f"`jitter` must be TRUE or FALSE, not {j.span.text}")


def _map(n: ast.Map, rep: Reporter) -> None:
    """``concurrency`` a whole number in range, ``on_error`` a known policy, ``item`` a name."""
    c = n.concurrency
    if (
        _fits(c, ("map", "concurrency"), "`concurrency`", codes.BAD_MAP_OPTION, n, rep)
        and c is not None
        and not isinstance(c, ast.Name | ast.Null)
    ):
        d = _number(c)
        if d is None or d != d.to_integral_value() or not 1 <= d <= MAX_CONCURRENCY:
            rep.error(
                codes.BAD_MAP_OPTION,
                f"`concurrency` must be a whole number from 1 to {MAX_CONCURRENCY}, "
                f"not {_shown(c)}",
                c.span,
                node=n,
                help="e.g. concurrency => 8",
            )
    e = n.on_error
    if (
        _fits(e, ("map", "on_error"), "`on_error`", codes.BAD_MAP_OPTION, n, rep)
        and isinstance(e, ast.Str)
        and e.value not in ON_ERROR
    ):
        close = difflib.get_close_matches(e.value.strip().lower(), ON_ERROR, n=1)
        rep.error(
            codes.BAD_MAP_OPTION,
            f"`on_error` is {' or '.join(repr(x) for x in ON_ERROR)}, not {_shown(e)}",
            e.span,
            node=n,
            help=f"did you mean '{close[0]}'?" if close else None,
        )
    item = n.item
    if _fits(item, ("map", "item"), "the item name", codes.BAD_RESULT_NAME, n, rep) and (
        isinstance(item, ast.Str)
    ):
        _result_name(item, n, rep)


# --------------------------------------------------------------------------------------------
# Parameters, options and variables


def check_params(params: Iterable[ast.Param], rep: Reporter) -> None:
    """Duplicate parameters and defaults that do not match their type (one module's params)."""
    seen: dict[str, ast.Param] = {}
    for p in params:
        if p.name in seen:
            rep.error(
                codes.DUPLICATE_PARAM,
                f"parameter `{p.name}` is declared twice",
                p.span,
                labels=(Label(seen[p.name].span, "first declared here"),),
            )
            continue
        seen[p.name] = p
        problem = _default_problem(p)
        if problem is not None and p.default is not None:
            rep.error(
                codes.PARAM_DEFAULT,
                f"the default of `{p.name}` is not a valid {p.type}: {problem}",
                p.default.span,
                help=EXAMPLES[p.type],
            )


def _default_problem(p: ast.Param) -> str | None:
    """What is wrong with the default of ``p`` (`dfc.params`, as at start), or None."""
    d = p.default
    if d is None:
        return None
    try:
        substitution_text(p.type, ast.literal_value(d))
    except ParamValueError as e:
        return e.problem(d.span.text)
    return None


def check_schedule(module: ast.Module, params: Iterable[ast.Param], rep: Reporter) -> None:
    """The schedule of the file, if any: its cron expression, its time zone, and that every
    parameter of the workflow it starts has a default (a fire gives no values)."""
    sched = next((d for d in module.decls if isinstance(d, ast.Schedule)), None)
    if sched is None:
        return
    _cron(sched.cron, None, rep)
    zone = sched.timezone
    if zone is not None and not is_timezone(zone.value):
        city = [z for z in _zone_names() if z.lower().endswith("/" + zone.value.lower())]
        close = city or difflib.get_close_matches(zone.value, _zone_names(), n=1, cutoff=0.7)
        rep.error(
            codes.BAD_TIMEZONE,
            f"unknown time zone {zone.value!r}",
            zone.span,
            help=(f"did you mean '{close[0]}'? " if close else "")
            + "a zone of the IANA database, such as 'UTC', 'Europe/Paris' or 'America/New_York'",
        )
    for p in params:
        if p.default is None:
            rep.error(
                codes.SCHEDULED_PARAM,
                f"parameter `{p.name}` has no default, and a scheduled start gives no values",
                p.span,
                labels=(Label(sched.span, "the schedule"),),
                help=f"give it a default: param {p.name} {p.type} = ...;",
            )


@functools.cache
def _zone_names() -> list[str]:
    return sorted(zoneinfo.available_timezones())


def check_variables(body: ast.Expr, declared: Mapping[str, object], rep: Reporter) -> None:
    """Warn about undeclared ``{var}`` references when the file declares parameters."""
    if not declared:
        return
    for n in ast.preorder(body):
        for _role, s in texts(n):
            for r in scan(s.value):
                if r.kind == "var" and r.name not in declared and r.name not in SYSTEM_VARS:
                    close = difflib.get_close_matches(r.name, list(declared), n=1)
                    rep.warning(
                        codes.UNDECLARED_VAR,
                        f"`{{{r.name}}}` is not a declared parameter",
                        _str_span(s, r.start, r.end),
                        node=n,
                        help=f"did you mean `{{{close[0]}}}`?"
                        if close
                        else f"declare it: param {r.name} text;",
                    )
