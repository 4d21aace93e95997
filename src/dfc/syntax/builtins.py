"""Signatures of the ``df.*`` functions (SPEC §1.3), with pg_durable's parameter names.

The names matter: PostgreSQL lets any argument be passed by name (``df.http(url => ...,
method => 'GET')``), and the printer uses them to skip an omitted optional argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# node: any expression (a string is a SQL step); the others take a literal of that kind.
Kind = Literal["node", "text", "int", "numeric", "bool", "any"]


Function = Literal[
    "sql",
    "seq",
    "as",
    "join",
    "join3",
    "race",
    "if",
    "if_rows",
    "loop",
    "break",
    "sleep",
    "wait_for_schedule",
    "wait_for_signal",
    "http",
    "http_multipart",
    "retry",
    "timeout",
    "with_undo",
    "call",
    "spawn",
    "map",
]
"""The names of the built-in node functions (the keys of `SIGNATURES`)."""


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One parameter of a built-in: its name, what it accepts, whether it may be omitted."""

    name: str
    kind: Kind
    required: bool = True


@dataclass(frozen=True, slots=True)
class Signature:
    """A built-in's parameters; ``variadic`` repeats the last parameter (df.join); ``keywords``
    takes any other named argument too (df.call passes them on as the callee's parameters)."""

    name: Function | Literal["start"]
    params: tuple[ParamSpec, ...]
    variadic: bool = False
    keywords: bool = False

    @property
    def min_args(self) -> int:
        return sum(p.required for p in self.params)

    def describe(self) -> str:
        """``df.http(url [, method, body, headers, timeout])``-style usage text."""
        req = [p.name for p in self.params if p.required]
        opt = [p.name for p in self.params if not p.required]
        inner = ", ".join(req)
        if self.variadic:
            inner += ", ..."
        if opt:
            listed = ", ".join(f"{o} => n" if self.keywords else o for o in opt)
            inner += f" [, {listed}]" if inner else f"[{listed}]"
        if self.keywords:
            inner += " [, param => value, ...]"
        return f"df.{self.name}({inner})"


def _sig(
    name: Function | Literal["start"],
    *params: ParamSpec,
    variadic: bool = False,
    keywords: bool = False,
) -> Signature:
    return Signature(name, params, variadic, keywords)


# df.call and df.spawn: the workflow, its version (default: the latest), then its parameters.
_CALLEE = (ParamSpec("workflow", "text"), ParamSpec("version", "int", required=False))


SIGNATURES: dict[str, Signature] = {
    s.name: s
    for s in (
        _sig("sql", ParamSpec("query", "text")),
        _sig("seq", ParamSpec("a", "node"), ParamSpec("b", "node")),
        _sig("as", ParamSpec("fut", "node"), ParamSpec("name", "text")),
        _sig("join", ParamSpec("a", "node"), ParamSpec("b", "node"), variadic=True),
        _sig("join3", ParamSpec("a", "node"), ParamSpec("b", "node"), ParamSpec("c", "node")),
        _sig("race", ParamSpec("a", "node"), ParamSpec("b", "node")),
        _sig(
            "if",
            ParamSpec("condition", "node"),
            ParamSpec("then", "node"),
            ParamSpec("else", "node"),
        ),
        _sig(
            "if_rows",
            ParamSpec("result_name", "text"),
            ParamSpec("then", "node"),
            ParamSpec("else", "node"),
        ),
        _sig("loop", ParamSpec("body", "node"), ParamSpec("condition", "node", required=False)),
        _sig("break", ParamSpec("value", "any", required=False)),
        _sig("sleep", ParamSpec("seconds", "int")),
        _sig("wait_for_schedule", ParamSpec("cron_expr", "text")),
        _sig(
            "wait_for_signal",
            ParamSpec("name", "text"),
            ParamSpec("timeout", "int", required=False),
        ),
        _sig(
            "http",
            ParamSpec("url", "text"),
            ParamSpec("method", "text", required=False),
            ParamSpec("body", "text", required=False),
            ParamSpec("headers", "text", required=False),
            ParamSpec("timeout", "int", required=False),
        ),
        _sig(
            "http_multipart",
            ParamSpec("url", "text"),
            ParamSpec("method", "text", required=False),
            ParamSpec("parts", "text", required=False),
            ParamSpec("headers", "text", required=False),
            ParamSpec("timeout", "int", required=False),
        ),
        _sig(
            "retry",
            ParamSpec("node", "node"),
            ParamSpec("attempts", "int", required=False),
            ParamSpec("backoff", "numeric", required=False),
            ParamSpec("factor", "numeric", required=False),
            ParamSpec("max_backoff", "numeric", required=False),
            ParamSpec("jitter", "bool", required=False),
        ),
        _sig("timeout", ParamSpec("node", "node"), ParamSpec("seconds", "int")),
        _sig("with_undo", ParamSpec("node", "node"), ParamSpec("undo", "node")),
        _sig("call", *_CALLEE, keywords=True),
        _sig("spawn", *_CALLEE, keywords=True),
        _sig(
            "map",
            ParamSpec("rows", "node"),
            ParamSpec("body", "node"),
            ParamSpec("concurrency", "int", required=False),
            ParamSpec("on_error", "text", required=False),
            ParamSpec("item", "text", required=False),
        ),
    )
}

# df.start wraps the whole file; its first parameter is the workflow, the rest are options.
START = _sig(
    "start",
    ParamSpec("fut", "node"),
    ParamSpec("label", "text", required=False),
    ParamSpec("database", "text", required=False),
    ParamSpec("transaction_mode", "text", required=False),
    ParamSpec("max_concurrent", "int", required=False),
    ParamSpec("rate_limit", "text", required=False),
)

# pg_durable's SQL API: real functions, but not workflow steps.
SQL_API = frozenset(
    {
        "signal",
        "cancel",
        "status",
        "result",
        "await_instance",
        "setvar",
        "getvar",
        "unsetvar",
        "clearvars",
        "list_instances",
        "instance_info",
        "instance_nodes",
        "explain",
        "metrics",
        "grant_usage",
        "revoke_usage",
    }
)

# pg_durable features dfc does not implement (yet); named so the message can say so.
UNSUPPORTED = {
    "with_http_options": "dfc does not support df.with_http_options yet",
}
UNSUPPORTED_PARAMS = {
    (
        "loop",
        "continue_on_failure",
    ): "dfc does not support continue_on_failure yet; wrap the body in df.retry(...) instead",
}

# Cast type names by the literal kind they produce (for kind checks of `'5'::int` and the like).
CAST_KINDS: dict[str, Kind] = {
    **dict.fromkeys(("int", "integer", "int2", "int4", "int8", "smallint", "bigint"), "int"),
    **dict.fromkeys(
        ("numeric", "decimal", "real", "float4", "float8", "double precision"), "numeric"
    ),
    **dict.fromkeys(("bool", "boolean"), "bool"),
    **dict.fromkeys(
        ("text", "varchar", "character varying", "char", "character", "json", "jsonb", "name"),
        "text",
    ),
}

# What each built-in does, in one line (editor hovers and completion; docs/language.md has the
# same table for readers).
MEANINGS: dict[str, str] = {
    "sql": "a SQL step (same as a bare string)",
    "seq": "run a, then b (same as `a ~> b`)",
    "as": "bind the result of fut to `$name` (same as `fut |=> 'name'`)",
    "join": "run the branches in parallel and wait for all; the result is one array, in branch order (same as `a & b`)",
    "join3": "run three branches in parallel and wait for all (same as `a & b & c`)",
    "race": "run both branches; the first to finish wins, the other is cancelled (same as `a | b`)",
    "if": "run then when condition is truthy, else else (same as `cond ?> then !> else`)",
    "if_rows": "branch on whether `$result_name` has at least one row (runs no SQL)",
    "loop": "repeat body forever (same as `@> body`), or while condition is truthy after each iteration",
    "break": "leave the nearest loop; the value becomes the loop's result",
    "sleep": "a durable timer of seconds",
    "wait_for_schedule": "wait for the next minute matching a 5-field cron (UTC unless the workflow sets a time zone)",
    "wait_for_signal": "wait for a signal (buffered if it arrives early), at most timeout seconds",
    "http": "an HTTP call; method defaults to POST, timeout to 30 s; redirects are not followed",
    "http_multipart": "a multipart HTTP upload; parts is a JSON array of {name, data_b64, filename?, content_type?}",
    "retry": "rerun node when it fails, with exponential backoff (dfc extension)",
    "timeout": "fail node when it runs longer than seconds (dfc extension)",
    "with_undo": "pair node with its compensation, run if the instance fails later (same as `node <-> undo`, dfc extension)",
}
