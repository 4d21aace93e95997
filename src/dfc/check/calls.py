"""Child workflows: the parameters ``df.call`` and ``df.spawn`` pass, against the callee's
``param`` declarations (DFC460-464).

A callee is known when it is the workflow being checked (a call of itself), a file
``NAME.df`` beside the calling file whose workflow is named ``NAME`` (the default name of a
file is its stem), or, with ``dfc check --db``, a deployed workflow (`dfc.check.live`). An
unknown callee is a hint: it is looked up when the step runs. Only the callee's declarations
are read (its file is parsed and its imports expanded, not checked), so two workflows that
call each other are fine.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dfc import ast
from dfc.check import codes
from dfc.check.expand import FileLoader, expand
from dfc.check.refs import scan
from dfc.check.report import Reporter
from dfc.diagnostics import Diagnostics
from dfc.params import ParamValueError, substitution_text
from dfc.source import SourceFile


@dataclass(frozen=True, slots=True)
class CalleeParam:
    """A parameter of a called workflow: its name, its type, whether it has a default."""

    name: str
    type: str
    has_default: bool


@dataclass(frozen=True, slots=True)
class Callee:
    """What the checker knows of a called workflow: where it was found (for messages) and its
    parameters."""

    where: str
    params: tuple[CalleeParam, ...]


CalleeFinder = Callable[[str, int | None], Callee | None]
"""Finds a callee by name and pinned version (None: the latest); None when it is unknown."""


def calls(body: ast.Expr) -> Iterator[tuple[ast.Call, str]]:
    """The ``df.call``/``df.spawn`` nodes of ``body`` whose workflow is a string literal, with
    that name."""
    for n in ast.preorder(body):
        if isinstance(n, ast.Call) and isinstance(n.workflow, ast.Str):
            yield n, n.workflow.value


def pinned(call: ast.Call) -> int | None:
    """The version ``call`` pins, when it is a valid literal (DFC464 reports the others)."""
    v = call.version
    if isinstance(v, ast.Num) and v.is_integer and int(v.text) >= 1:
        return int(v.text)
    if isinstance(v, ast.Str) and v.value.strip().isdigit() and int(v.value) >= 1:
        return int(v.value)
    return None


def check_calls(
    body: ast.Expr,
    rep: Reporter,
    find: CalleeFinder,
) -> None:
    """Check the parameters each call passes against its callee, when ``find`` knows it;
    a hint for a callee it does not."""
    for call, name in calls(body):
        callee = find(name, pinned(call))
        if callee is None:
            assert isinstance(call.workflow, ast.Str)
            rep.hint(
                codes.CALLEE_UNKNOWN,
                f"workflow {name!r} is not in this project; it is looked up when the step runs",
                call.workflow.span,
                node=call,
                help=f"put {name}.df beside this file, or check with --db URL against the "
                "deployed workflows, to have its parameters checked here",
            )
            continue
        check_arguments(call, callee, rep)


def check_arguments(call: ast.Call, callee: Callee, rep: Reporter) -> None:
    """The arguments of ``call`` against the parameters of ``callee``."""
    fn = "df.call" if call.wait else "df.spawn"
    declared = {p.name: p for p in callee.params}
    for a in call.args:
        p = declared.get(a.name)
        if p is None:
            if not declared:
                # A workflow without params takes any {var} (pg_durable style): nothing to match.
                continue
            near = difflib.get_close_matches(a.name, list(declared), n=1)
            rep.error(
                codes.CALLEE_PARAM,
                f"{callee.where} has no parameter {a.name}",
                a.span,
                node=call,
                help=(f"did you mean {near[0]}? " if near else "")
                + "its parameters are "
                + ", ".join(declared),
            )
            continue
        _check_type(a, p, callee, rep, call)
    given = {a.name for a in call.args}
    missing = [p.name for p in callee.params if not p.has_default and p.name not in given]
    if missing:
        rep.error(
            codes.CALLEE_MISSING,
            f"{fn} does not give {', '.join(missing)}, which {callee.where} requires",
            call.span,
            node=call,
            help="pass " + ", ".join(f"{m} => value" for m in missing),
        )


def _check_type(
    a: ast.CallArg, p: CalleeParam, callee: Callee, rep: Reporter, call: ast.Call
) -> None:
    v = a.value
    if not isinstance(v, ast.Str | ast.Num | ast.Bool | ast.Null):
        return  # a template parameter or a SQL expression (refused by the literal rules)
    if isinstance(v, ast.Str) and scan(v.value):
        return  # its value is known when the step runs, and checked then
    try:
        substitution_text(p.type, ast.literal_value(v))
    except ParamValueError as e:
        rep.error(
            codes.CALLEE_TYPE,
            f"parameter {a.name} of {callee.where} takes {p.type}: {e.problem(v.span.text)}",
            v.span,
            node=call,
            help=f"pass {e.expected}",
        )


# -- finding callees beside the calling file -----------------------------------------------------


def sibling_finder(source: SourceFile, name: str, params: Iterable[ast.Param]) -> CalleeFinder:
    """Finds callees among the files beside ``source`` (``NAME.df``); the workflow being checked,
    named ``name`` with ``params``, finds itself."""
    own = Callee(f"workflow {name}", tuple(_callee_params(params)))
    here = Path(source.name).parent if not source.name.startswith("<") else None
    cache: dict[str, Callee | None] = {}

    def find(callee: str, version: int | None) -> Callee | None:
        if callee == name:
            return own
        if here is None or "/" in callee or "\\" in callee or callee.startswith("."):
            return None
        if callee not in cache:
            cache[callee] = _from_file(here / f"{callee}.df", callee)
        return cache[callee]

    return find


def _from_file(path: Path, name: str) -> Callee | None:
    """The callee declared by the file at ``path`` when its workflow is named ``name``."""
    from dfc.syntax import parse  # the parser sits above nothing we import at module level

    if not path.is_file():
        return None
    try:
        source = SourceFile.read(path)
    except OSError:
        return None
    quiet = Diagnostics()  # the callee's own problems are reported when it is checked
    module = parse(source, grammar="dfc", diagnostics=quiet)
    if module is None or module.workflow is None:
        return None
    label = module.workflow.label
    if (label.value if label is not None else source.stem) != name:
        return None
    exp = expand(module, source, quiet, FileLoader())
    return Callee(f"workflow {name} ({path.name})", tuple(_callee_params(exp.params)))


def _callee_params(params: Iterable[ast.Param]) -> Iterator[CalleeParam]:
    for p in params:
        yield CalleeParam(p.name, p.type, p.default is not None)
