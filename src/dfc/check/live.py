"""``dfc check --db URL``: validate SQL steps against a real PostgreSQL server (SPEC §3).

Everything happens in one transaction that is rolled back at the end. Steps are visited in
workflow order; for each statement:

- DDL that can create what later steps use (CREATE/ALTER/DROP ... except indexes, and DO
  blocks) is executed for real, so later statements see the tables it creates;
- queries and DML are *prepared* (protocol-level Parse + Describe, which is what ``PREPARE``
  does): the server resolves every table, column and function without running anything;
- autocommit steps and other utility statements are skipped.

``$refs`` become typed parameters ``$1..$n`` (typed from the described result of the bound step
where the runtime substitutes a bare literal, else left for the server to infer, as it does for
the quoted literal of the real substitution); ``$name.*`` becomes an empty relation with the
bound step's columns; ``{vars}`` their default, or a neutral value of their type. A statement
whose substitutions cannot be known (a text variable without default outside a string literal)
is skipped. Only errors that are certainly the user's are reported: unknown table, column,
function, type or schema, and syntax errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq

from dfc import ast
from dfc.check import codes
from dfc.check.bindings import shape
from dfc.check.calls import Callee, CalleeParam, calls, check_arguments, pinned
from dfc.check.refs import Ref, neutralize
from dfc.check.report import Reporter
from dfc.check.result import CheckedWorkflow
from dfc.check.sql import StatementInfo, analyze
from dfc.check.walk import result_step
from dfc.diagnostics import DfcError, Diagnostics
from dfc.sqllex import tokenize

_PREPARABLE = frozenset(
    {"SELECT", "WITH", "VALUES", "TABLE", "INSERT", "UPDATE", "DELETE", "MERGE"}
)
# Executed for real (then rolled back) so that later statements see what they create. DO
# blocks are included: they are the usual way to create objects conditionally.
_EXECUTED_DDL = frozenset({"CREATE", "ALTER", "DROP", "COMMENT", "DO"})
_REPORTED = frozenset({"42P01", "42703", "42883", "42704", "3F000", "42601", "42702", "42803"})
# Types the runtime substitutes as bare literals (SPEC §1.4); everything else is quoted.
_BARE_TYPES = {
    16: "boolean",
    20: "bigint",
    21: "smallint",
    23: "integer",
    700: "real",
    701: "double precision",
}
_ENVELOPE_TYPES = {
    "status": 23, "ok": 16, "duration_ms": 20, "timed_out": 16, "seconds": 23, "slept": 16,
    "scheduled": 16,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Described:
    columns: tuple[str, ...]
    types: tuple[int, ...]


def check_live(workflow: CheckedWorkflow, conninfo: str, diagnostics: Diagnostics) -> None:
    """Prepare every SQL step of ``workflow`` on the server at ``conninfo``; report rejections.

    Raises `DfcError` when the server cannot be reached.
    """
    try:
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    except (psycopg.Error, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DfcError(
            f"cannot connect to the database to check the SQL steps: {first}",
            hint="check the URL given with --db (postgresql://user@host:port/dbname)",
        ) from e
    try:
        _Live(conn.pgconn, workflow, Reporter(diagnostics, workflow.trails)).run()
        check_calls_live(workflow.body, conn, diagnostics)
    finally:
        conn.close()


class _Live:
    def __init__(self, pg: pq.abc.PGconn, wf: CheckedWorkflow, rep: Reporter) -> None:
        self.pg = pg
        self.wf = wf
        self.rep = rep
        self.params = {p.name: p for p in wf.params}
        self.var_types: dict[str, str | None] = {p.name: p.type for p in wf.params}
        self.described: dict[str, _Described] = {}
        self.bound_by: dict[int, str] = {}
        self.envelopes: set[str] = set()
        for n in ast.preorder(wf.body):
            if isinstance(n, ast.Bind):
                target = result_step(n.node)
                if isinstance(target, ast.Sql):
                    self.bound_by[id(target)] = _name(n)
                elif isinstance(target, ast.Leaf) and shape(target, wf.facts).kind == "record":
                    self.envelopes.add(_name(n))  # a step's own record, not a branch's

    def _exec(self, sql: str) -> pq.abc.PGresult:
        return self.pg.exec_(sql.encode())

    def run(self) -> None:
        self._exec("BEGIN")
        self._exec("SET LOCAL statement_timeout = '15s'")
        self._exec("SET LOCAL lock_timeout = '3s'")
        try:
            for n in ast.preorder(self.wf.body):
                if isinstance(n, ast.Sql) and isinstance(n.query, ast.Str):
                    self._step(n, n.query)
        finally:
            self._exec("ROLLBACK")

    def _step(self, node: ast.Sql, s: ast.Str) -> None:
        facts = self.wf.facts(node)
        if facts is not None and facts.autocommit:
            return
        a = analyze(s.value, self.var_types)
        for i, st in enumerate(a.statements):
            last = i == len(a.statements) - 1
            refs = [r for r in a.refs if st.start <= r.start < st.end]
            built = self._substitute(s.value, st, refs)
            if built is None:
                continue
            text, params, types, segments = built
            if st.first_word in _EXECUTED_DDL and not _is_index(text):
                if params:
                    continue
                self._run_ddl(node, s, st, text, segments)
            elif st.first_word in _PREPARABLE:
                desc = self._prepare(node, s, st, text, types, segments)
                if desc is not None and last and id(node) in self.bound_by:
                    self.described[self.bound_by[id(node)]] = desc

    # -- substitution -----------------------------------------------------------------------

    def _substitute(
        self, value: str, st: StatementInfo, refs: list[Ref]
    ) -> tuple[str, int, list[int], list[tuple[int, int, bool]]] | None:
        """The statement with references replaced, its parameter count and types, and a map.

        The map lists segments ``(offset in new text, offset in value, verbatim)``.
        """
        strings = [
            (t.start + st.start, t.end + st.start)
            for t in tokenize(_neutral_slice(value, st, refs))
            if t.kind == "string" and not t.text.startswith("$")
        ]
        out: list[str] = []
        segments: list[tuple[int, int, bool]] = []
        types: list[int] = []
        numbers: dict[str, int] = {}
        pos = st.start
        length = 0

        def put(text: str, orig: int, verbatim: bool) -> None:
            nonlocal length
            segments.append((length, orig, verbatim))
            out.append(text)
            length += len(text)

        for r in refs:
            put(value[pos : r.start], pos, True)
            in_string = any(a < r.start < b for a, b in strings)
            if r.kind == "var":
                text = self._var_text(r.name, in_string)
                if text is None:
                    return None
            elif in_string:
                return None  # reported statically: the substitution would break the literal
            elif r.star:
                rel = self._relation(r.name)
                if rel is None:
                    return None
                text = rel
            else:
                key = r.text
                if key not in numbers:
                    types.append(self._ref_type(r))
                    numbers[key] = len(types)
                text = f"${numbers[key]}"
            put(text, r.start, False)
            pos = r.end
        put(value[pos : st.end], pos, True)
        return "".join(out), len(types), types, segments

    def _var_text(self, name: str, in_string: bool) -> str | None:
        p = self.params.get(name)
        if p is not None and p.default is not None and not isinstance(p.default, ast.Null):
            d = p.default
            return d.value if isinstance(d, ast.Str) else d.span.text
        if name in ("sys_instance_id", "sys_label"):
            return "0a1b2c3d" if in_string else None
        kind = p.type if p is not None else None
        if kind in ("int", "numeric"):
            return "1"
        if kind == "bool":
            return "true"
        return "x" if in_string else None

    def _ref_type(self, r: Ref) -> int:
        if r.name in self.envelopes:
            return _ENVELOPE_TYPES.get(r.column or "", 0)
        d = self.described.get(r.name)
        if d is None:
            return 0
        if r.column is None:
            oid = d.types[0] if d.types else 0
        elif r.column in d.columns:
            oid = d.types[d.columns.index(r.column)]
        else:
            return 0
        return oid if oid in _BARE_TYPES else 0

    def _relation(self, name: str) -> str | None:
        d = self.described.get(name)
        if d is None:
            return None
        cols = ", ".join(
            f"NULL::{_BARE_TYPES.get(t, 'text')} AS {_quote(c)}"
            for c, t in zip(d.columns, d.types, strict=True)
        )
        return f"(SELECT {cols or 'NULL'} WHERE false) AS {_quote(name)}"

    # -- talking to the server --------------------------------------------------------------

    def _run_ddl(
        self,
        node: ast.Sql,
        s: ast.Str,
        st: StatementInfo,
        text: str,
        segments: list[tuple[int, int, bool]],
    ) -> None:
        self._exec("SAVEPOINT dfc_check")
        res = self._exec(text)
        if res.status == pq.ExecStatus.FATAL_ERROR:
            self._report(node, s, st, res, segments)
            self._exec("ROLLBACK TO SAVEPOINT dfc_check")
        self._exec("RELEASE SAVEPOINT dfc_check")

    def _prepare(
        self,
        node: ast.Sql,
        s: ast.Str,
        st: StatementInfo,
        text: str,
        types: list[int],
        segments: list[tuple[int, int, bool]],
    ) -> _Described | None:
        self._exec("SAVEPOINT dfc_check")
        res = self.pg.prepare(b"", text.encode(), types or None)
        desc = None
        if res.status == pq.ExecStatus.FATAL_ERROR:
            self._report(node, s, st, res, segments)
            self._exec("ROLLBACK TO SAVEPOINT dfc_check")
        else:
            d = self.pg.describe_prepared(b"")
            if d.status == pq.ExecStatus.COMMAND_OK:
                desc = _Described(
                    tuple((d.fname(i) or b"").decode() for i in range(d.nfields)),
                    tuple(d.ftype(i) for i in range(d.nfields)),
                )
        self._exec("RELEASE SAVEPOINT dfc_check")
        return desc

    def _report(
        self,
        node: ast.Sql,
        s: ast.Str,
        st: StatementInfo,
        res: pq.abc.PGresult,
        segments: list[tuple[int, int, bool]],
    ) -> None:
        state = _field(res, pq.DiagnosticField.SQLSTATE)
        message = (
            _field(res, pq.DiagnosticField.MESSAGE_PRIMARY) or "the server rejected the statement"
        )
        if state not in _REPORTED:
            return
        if state == "42883" and not self._function_missing(message):
            return  # an operator or signature mismatch may come from our parameter types
        pos_text = _field(res, pq.DiagnosticField.STATEMENT_POSITION)
        start, end = st.start, st.end
        if pos_text and pos_text.isdigit():
            start = _map_back(int(pos_text) - 1, segments)
            end = _word_end(s.value, start, st.end)
        span = s.text_map.span(s.span.file, start, end) if s.text_map.runs else s.span
        hint = _field(res, pq.DiagnosticField.MESSAGE_HINT)
        self.rep.error(
            codes.LIVE_REJECTED,
            f"the database rejects this statement: {message}",
            span,
            node=node,
            notes=(f"SQLSTATE {state}",),
            help=hint or None,
        )

    def _function_missing(self, message: str) -> bool:
        """True when no function of the name in a "function f(...) does not exist" exists."""
        if not message.startswith("function "):
            return False
        name = message[len("function ") :].split("(", 1)[0].strip()
        name = name.rsplit(".", 1)[-1].strip('"')
        res = self.pg.exec_params(
            b"SELECT 1 FROM pg_catalog.pg_proc WHERE proname = $1 LIMIT 1", [name.encode()]
        )
        return res.ntuples == 0


def _name(b: ast.Bind) -> str:
    return b.name.value if isinstance(b.name, ast.Str) else b.name.name


def _field(res: pq.abc.PGresult, f: pq.DiagnosticField) -> str:
    v = res.error_field(f)
    return v.decode(errors="replace") if v else ""


def _map_back(pos: int, segments: list[tuple[int, int, bool]]) -> int:
    """The value index of a position in the substituted text."""
    for new_start, orig, verbatim in reversed(segments):
        if pos >= new_start:
            return orig + (pos - new_start) if verbatim else orig
    return segments[0][1] if segments else 0


def _word_end(value: str, start: int, limit: int) -> int:
    end = start
    while end < limit and (value[end].isalnum() or value[end] in "_$."):
        end += 1
    return max(end, start + 1)


def _neutral_slice(value: str, st: StatementInfo, refs: list[Ref]) -> str:
    shifted = [Ref(r.kind, r.name, r.start - st.start, r.end - st.start) for r in refs]
    return neutralize(value[st.start : st.end], shifted)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _is_index(text: str) -> bool:
    words = [t.upper for t in tokenize(text)[:4] if t.kind == "word"]
    return "INDEX" in words[:3]


# -- finding callees among the deployed workflows (dfc check --db) --------------------------------

_DEPLOYED = """
SELECT version, plan -> 'params' FROM dfc.workflows
 WHERE name = %s AND (%s::int IS NULL OR version = %s)
 ORDER BY version DESC LIMIT 1
"""
_HAS_REGISTRY = "SELECT to_regclass('dfc.workflows') IS NOT NULL"


def check_calls_live(
    body: ast.Expr, conn: psycopg.Connection[Any], diagnostics: Diagnostics
) -> None:
    """The calls whose callee the static pass did not find (its DFC460 hints), against the
    workflows deployed in the database of ``conn``: the hint gives way to the callee's
    parameter checks, or to a warning when no such workflow (or version) is deployed."""
    hints = {
        (d.span.start, d.span.end): d
        for d in diagnostics.items
        if d.code == codes.CALLEE_UNKNOWN and d.span is not None
    }
    if not hints:
        return
    row = conn.execute(_HAS_REGISTRY).fetchone()
    registry = bool(row and row[0])
    rep = Reporter(diagnostics)
    for call, name in calls(body):
        assert isinstance(call.workflow, ast.Str)
        hint = hints.get((call.workflow.span.start, call.workflow.span.end))
        if hint is None:
            continue
        diagnostics.items.remove(hint)
        version = pinned(call)
        found = conn.execute(_DEPLOYED, (name, version, version)).fetchone() if registry else None
        if found is None:
            missing = f"version {version} of workflow {name!r}" if version else f"workflow {name!r}"
            rep.warning(
                codes.CALLEE_UNKNOWN,
                f"{missing} is not deployed in this database; the step fails if it still is not "
                "when it runs",
                call.workflow.span,
                node=call,
                help=f"deploy it first: dfc deploy {name}.df",
            )
            continue
        deployed, params = found
        callee = Callee(
            f"workflow {name} (deployed version {deployed})",
            tuple(
                CalleeParam(str(p["name"]), str(p.get("type", "text")), "default" in p)
                for p in params or ()
            ),
        )
        check_arguments(call, callee, rep)
