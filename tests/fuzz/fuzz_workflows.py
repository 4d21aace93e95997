"""Random valid workflows for the runtime fuzzer, and the outcome a reference evaluator predicts.

A generated workflow is a dfc AST (printed with dfc's own printer before it is compiled) built
from a small vocabulary of SQL steps, each calling a function of the schema `SETUP` creates and
tagged with a label unique in the workflow (``s1``, ``s2``, ...):

- ``fz.step(inst, label, v)`` logs ``(inst, label)`` in ``fz.log`` and returns ``v`` (``v`` may be
  ``CAST($x AS int) + c`` for a ``$x`` bound earlier to such a step);
- ``fz.tick(inst, label)`` logs and returns how often ``label`` ran in the instance: loop exits;
- ``fz.flaky(inst, label, k, v)`` fails its first ``k`` runs (counted by a sequence, which a
  rollback does not undo), then logs and returns ``v``: retries;
- ``fz.boom(inst, label)`` always fails: failure, joins and compensation.

`Evaluator` runs the same AST in memory by the rules of SPEC §5.2/§5.7/§5.8 and predicts the
final status, the result, whether compensation ran, how often each label's effect exists (each
executed step exactly once) and how many signals of each name the instance consumes (the test
sends those before the worker starts; signals are buffered). The generator keeps every workflow
deterministic: a race's loser starts with a 60 s sleep, so it never runs a step before the
winner ends it; a join branch that may fail or break has only effect-free siblings
(``df.sleep(0)``); loops end by a tick counter; sleeps and signal timeouts are 0 or 1 s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import strategies as st

from dfc import ast
from dfc.json_types import JSON
from dfc.source import SourceFile, TextMap
from dfc.syntax import format_module

SETUP = """
CREATE SCHEMA fz;
CREATE TABLE fz.log (inst text NOT NULL, label text NOT NULL);
CREATE INDEX ON fz.log (inst, label);
CREATE FUNCTION fz.step(inst text, label text, v int) RETURNS int LANGUAGE sql AS
  $f$ INSERT INTO fz.log VALUES (inst, label); SELECT v $f$;
CREATE FUNCTION fz.tick(inst text, label text) RETURNS int LANGUAGE sql AS
  $f$ INSERT INTO fz.log VALUES (inst, label);
      SELECT count(*)::int FROM fz.log l WHERE l.inst = tick.inst AND l.label = tick.label $f$;
CREATE FUNCTION fz.flaky(inst text, label text, k int, v int) RETURNS int LANGUAGE plpgsql AS
  $f$ BEGIN
    IF nextval(format('fz.%I', 'q_' || inst || '_' || label)) <= k THEN
      RAISE EXCEPTION 'fz: % fails this time', label;
    END IF;
    INSERT INTO fz.log VALUES (inst, label);
    RETURN v;
  END $f$;
CREATE FUNCTION fz.boom(inst text, label text) RETURNS int LANGUAGE plpgsql AS
  $f$ BEGIN RAISE EXCEPTION 'fz: % always fails', label; END $f$;
"""
"""The schema the generated steps call (run once per test database)."""

INSTANCE = "{sys_instance_id}"
SLOW = 60
"""Seconds a race loser sleeps before anything else: it never gets to run a step."""

_FILE = SourceFile("<generated>", "")
_SP = _FILE.span(0, 0)
_NO_MAP = TextMap((), 0)


def _str(value: str) -> ast.Str:
    return ast.Str(value=value, span=_SP, text_map=_NO_MAP)


def _num(n: int) -> ast.Num:
    return ast.Num(text=str(n), span=_SP)


# -- the steps ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Value:
    """An integer a step returns: ``const``, plus ``$ref`` when ``ref`` is set."""

    const: int
    ref: str | None = None

    def sql(self) -> str:
        return str(self.const) if self.ref is None else f"CAST(${self.ref} AS int) + {self.const}"


@dataclass(frozen=True, slots=True)
class Step:
    """What the SQL step labelled ``label`` does (`SETUP` has the functions)."""

    label: str
    kind: str  # "step", "tick", "flaky", "boom"
    value: Value = Value(0)
    fails: int = 0  # flaky: how many runs fail first
    exit_at: int = 0  # tick: the count at which the condition turns
    below: bool = False  # tick: `count < exit_at` (do-while) rather than `count >= exit_at`

    def sql(self) -> str:
        head = f"'{INSTANCE}', '{self.label}'"
        match self.kind:
            case "step":
                return f"SELECT fz.step({head}, {self.value.sql()}) AS v"
            case "tick":
                op = "<" if self.below else ">="
                return f"SELECT fz.tick({head}) {op} {self.exit_at} AS c"
            case "flaky":
                # A utility statement makes the step run alone, never in a batch: a step that
                # fails in a batch runs again alone to store its failure, which would count a
                # second run of one attempt.
                return (
                    f"SET LOCAL fz.alone = 'on'; "
                    f"SELECT fz.flaky({head}, {self.fails}, {self.value.sql()}) AS v"
                )
            case "boom":
                return f"SELECT fz.boom({head}) AS v"
        raise AssertionError(self.kind)


def sql_node(step: Step) -> ast.Sql:
    """The SQL step node running ``step``."""
    return ast.Sql(query=_str(step.sql()), span=_SP)


@dataclass(frozen=True, slots=True)
class Generated:
    """A generated workflow: its AST, printed text, steps by label, and signal names sent."""

    body: ast.Expr
    steps: Mapping[str, Step]
    sent: frozenset[str]  # signal names the test sends (the others time out)

    def text(self) -> str:
        wf = ast.Workflow(body=self.body, label=None, options=(), span=_SP)
        return format_module(ast.Module(decls=(), workflow=wf, span=_SP))

    @property
    def flaky(self) -> list[str]:
        return [s.label for s in self.steps.values() if s.kind == "flaky"]


# -- the generator --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ctx:
    """Where a node is generated: may it break (inside a loop), fail, and which ``$names``
    (bound to integer steps) are surely bound there."""

    depth: int
    in_loop: bool = False
    may_fail: bool = True
    refs: tuple[str, ...] = ()


@dataclass(slots=True)
class _Gen:
    draw: st.DrawFn
    steps: dict[str, Step] = field(default_factory=dict)
    signals: dict[str, bool] = field(default_factory=dict)  # name -> sent
    names: int = 0

    def label(self) -> str:
        return f"s{len(self.steps) + 1}"

    def add(self, step: Step) -> ast.Sql:
        self.steps[step.label] = step
        return sql_node(step)

    def value(self, ctx: Ctx) -> Value:
        const = self.draw(st.integers(-5, 20))
        ref = self.draw(st.sampled_from((None, *ctx.refs)))
        return Value(const, ref)

    def new_name(self) -> str:
        self.names += 1
        return f"r{self.names}"

    # A node and the names (bound to integer steps) it surely binds once it completes.
    def node(self, ctx: Ctx) -> tuple[ast.Expr, tuple[str, ...]]:
        kinds = ["step", "step", "bound", "sleep", "signal"]
        if ctx.may_fail:
            kinds += ["boom", "flaky"]
        if ctx.in_loop:
            kinds += ["break"]
        if ctx.depth > 0:
            # Mostly composites while depth remains: trees of a few dozen nodes.
            composites = [
                "seq",
                "seq",
                "seq",
                "join",
                "race",
                "if",
                "loop",
                "retry",
                "undo",
                "undo",
            ]
            kinds = composites if self.draw(st.integers(0, 2)) else kinds + 2 * composites
        match self.draw(st.sampled_from(kinds)):
            case "step":
                return self.add(Step(self.label(), "step", self.value(ctx))), ()
            case "bound":
                name = self.new_name()
                step = self.add(Step(self.label(), "step", self.value(ctx)))
                return ast.Bind(node=step, name=_str(name), span=_SP), (name,)
            case "boom":
                return self.add(Step(self.label(), "boom")), ()
            case "flaky":
                return self.retry(ctx)
            case "sleep":
                seconds = self.draw(st.sampled_from((0, 0, 0, 0, 1)))
                return ast.Sleep(seconds=_num(seconds), span=_SP), ()
            case "signal":
                return self.signal(), ()
            case "break":
                return self.brk(ctx), ()
            case "seq":
                inner = replace(ctx, depth=ctx.depth - 1)
                left, b1 = self.node(inner)
                right, b2 = self.node(replace(inner, refs=ctx.refs + b1))
                return ast.Seq(left=left, right=right, span=_SP), b1 + b2
            case "join":
                return self.join(ctx)
            case "race":
                return self.race(ctx), ()
            case "if":
                return self.if_(ctx), ()
            case "loop":
                return self.loop(ctx), ()
            case "retry":
                return self.retry(ctx)
            case "undo":
                # The undone node completes or fails; a break out of it is not generated.
                a, bound = self.node(replace(ctx, depth=ctx.depth - 1, in_loop=False))
                undo = self.add(Step(self.label(), "step", Value(0)))
                return ast.Compensate(node=a, undo=undo, span=_SP), bound
        raise AssertionError("unreachable")

    def signal(self) -> ast.WaitSignal:
        name = f"g{len(self.signals) + 1}"
        sent = self.draw(st.sampled_from((True, True, True, False)))
        self.signals[name] = sent
        # A signal that is never sent needs a timeout; a sent one may have one.
        timeout = None if sent and self.draw(st.booleans()) else _num(1)
        return ast.WaitSignal(name=_str(name), timeout=timeout, span=_SP)

    def brk(self, ctx: Ctx) -> ast.Break:
        choices: list[ast.LitArg | None] = [None, _str("7"), _str("done"), _str('{"k": [1, 2]}')]
        choices += [_str(f"${r}") for r in ctx.refs]
        return ast.Break(value=self.draw(st.sampled_from(choices)), span=_SP)

    def retry(self, ctx: Ctx) -> tuple[ast.Expr, tuple[str, ...]]:
        attempts = self.draw(st.integers(1, 3))
        # Where nothing may fail, the flaky step fails fewer times than the retry tries.
        fails = self.draw(st.integers(0, attempts if ctx.may_fail else attempts - 1))
        flaky: ast.Expr = self.add(Step(self.label(), "flaky", self.value(ctx), fails=fails))
        bound: tuple[str, ...] = ()
        if self.draw(st.booleans()):
            name = self.new_name()
            flaky, bound = ast.Bind(node=flaky, name=_str(name), span=_SP), (name,)
        inner = flaky
        if ctx.depth > 0 and self.draw(st.booleans()):
            # Steps before the flaky one run again with every attempt; their undos of failed
            # attempts are dropped.
            pre, b = self.node(replace(ctx, depth=ctx.depth - 1, may_fail=False, in_loop=False))
            inner, bound = ast.Seq(left=pre, right=flaky, span=_SP), b + bound
        node = ast.Retry(
            node=inner,
            attempts=_num(attempts),
            backoff=_num(0),
            jitter=ast.Bool(value=False, span=_SP),
            span=_SP,
        )
        return node, bound

    def join(self, ctx: Ctx) -> tuple[ast.Expr, tuple[str, ...]]:
        inner = replace(ctx, depth=ctx.depth - 1, in_loop=False)
        n = self.draw(st.integers(2, 3))
        if ctx.may_fail and self.draw(st.booleans()):
            # One branch that may fail; its siblings must not leave effects behind when they
            # are cancelled.
            risky, bound = self.node(inner)
            at = self.draw(st.integers(0, n - 1))
            sleep = ast.Sleep(seconds=_num(0), span=_SP)
            branches = [sleep] * (n - 1)
            branches.insert(at, risky)
            return ast.Join(branches=tuple(branches), span=_SP), bound
        safe = replace(inner, may_fail=False)
        made = [self.node(safe) for _ in range(n)]
        return ast.Join(branches=tuple(b for b, _ in made), span=_SP), sum((b for _, b in made), ())

    def race(self, ctx: Ctx) -> ast.Race:
        inner = replace(ctx, depth=ctx.depth - 1)
        fast, _ = self.node(inner)
        slow_sleep = ast.Sleep(seconds=_num(SLOW), span=_SP)
        slow: ast.Expr = slow_sleep
        if self.draw(st.booleans()):
            after, _ = self.node(replace(inner, depth=0))
            slow = ast.Seq(left=slow_sleep, right=after, span=_SP)
        branches = (slow, fast) if self.draw(st.booleans()) else (fast, slow)
        return ast.Race(branches=branches, span=_SP)

    def if_(self, ctx: Ctx) -> ast.If:
        inner = replace(ctx, depth=ctx.depth - 1)
        if self.draw(st.booleans()):
            cond: ast.Expr = self.add(
                Step(self.label(), "step", Value(self.draw(st.sampled_from((0, 1)))))
            )
        else:
            cond, _ = self.node(replace(inner, in_loop=False))
        then, _ = self.node(inner)
        orelse, _ = self.node(inner)
        return ast.If(cond=cond, then=then, orelse=orelse, span=_SP)

    def loop(self, ctx: Ctx) -> ast.Loop:
        inner = replace(ctx, depth=ctx.depth - 1, in_loop=True)
        times = self.draw(st.integers(1, 3))
        if self.draw(st.booleans()):
            # Forever, left by a break when the tick reaches `times`.
            tick = self.add(Step(self.label(), "tick", exit_at=times))
            exit_ = ast.If(cond=tick, then=self.brk(inner), orelse=self.node(inner)[0], span=_SP)
            body: ast.Expr = exit_
            if self.draw(st.booleans()):
                pre, _ = self.node(inner)
                body = ast.Seq(left=pre, right=exit_, span=_SP)
            return ast.Loop(body=body, span=_SP)
        # Do-while: the body starts with a step (an iteration must run one), the tick decides.
        first = self.add(Step(self.label(), "step", self.value(ctx)))
        rest, _ = self.node(replace(inner, refs=ctx.refs))
        body = ast.Seq(left=first, right=rest, span=_SP)
        cond = self.add(Step(self.label(), "tick", exit_at=times, below=True))
        return ast.Loop(body=body, cond=cond, span=_SP)


@st.composite
def workflows(draw: st.DrawFn, max_depth: int = 4) -> Generated:
    """A random valid workflow with everything its evaluation needs."""
    gen = _Gen(draw)
    depth = draw(st.integers(2, max_depth))
    body, _ = gen.node(Ctx(depth=depth, may_fail=draw(st.integers(0, 3)) > 0))
    sent = frozenset(n for n, s in gen.signals.items() if s)
    return Generated(body=body, steps=dict(gen.steps), sent=sent)


# -- the reference evaluator ----------------------------------------------------------------------


class Failed(Exception):
    """A node failed."""


class Broke(Exception):
    """A ``df.break`` leaves the nearest loop with ``value``."""

    def __init__(self, value: JSON) -> None:
        super().__init__(value)
        self.value = value


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the evaluator predicts for one instance."""

    status: str
    result: JSON
    compensated: bool
    effects: Counter[str]
    signals: Counter[str]  # how many signals of each name the instance consumes


def _rows(col: str, value: JSON) -> JSON:
    return {"rows": [{col: value}], "row_count": 1}


def truthy(value: JSON) -> bool:
    """SPEC §5.2 IF, written again from the SPEC (not imported from the runtime)."""
    if isinstance(value, dict) and isinstance(value.get("rows"), list):
        rows = value["rows"]
        return bool(rows) and bool(rows[0]) and truthy(next(iter(rows[0].values())))
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "false", "f", "no", "0"):
            return False
        try:
            return float(text) != 0
        except ValueError:
            return True
    return len(value) > 0


@dataclass(slots=True)
class Evaluator:
    """Runs a `Generated` workflow in memory (one instance)."""

    wf: Generated
    effects: Counter[str] = field(default_factory=Counter)
    flaky_runs: Counter[str] = field(default_factory=Counter)
    signals: Counter[str] = field(default_factory=Counter)
    undos: list[tuple[ast.Expr, dict[str, JSON]]] = field(default_factory=list)

    def run(self) -> Outcome:
        try:
            result, _ = self.eval(self.wf.body, {})
        except Failed:
            compensated = bool(self.undos)
            for undo, scope in reversed(self.undos):
                self.eval(undo, scope)
            return Outcome("failed", None, compensated, self.effects, self.signals)
        return Outcome("completed", result, False, self.effects, self.signals)

    def ref(self, scope: Mapping[str, JSON], name: str) -> JSON:
        bound = scope[name]
        assert isinstance(bound, dict)
        return next(iter(bound["rows"][0].values()))

    def value(self, v: Value, scope: Mapping[str, JSON]) -> int:
        if v.ref is None:
            return v.const
        got = self.ref(scope, v.ref)
        assert isinstance(got, int)
        return got + v.const

    def sql(self, step: Step, scope: Mapping[str, JSON]) -> JSON:
        match step.kind:
            case "step":
                self.effects[step.label] += 1
                return _rows("v", self.value(step.value, scope))
            case "tick":
                self.effects[step.label] += 1
                count = self.effects[step.label]
                return _rows("c", count < step.exit_at if step.below else count >= step.exit_at)
            case "flaky":
                self.flaky_runs[step.label] += 1
                if self.flaky_runs[step.label] <= step.fails:
                    raise Failed(step.label)
                self.effects[step.label] += 1
                return _rows("v", self.value(step.value, scope))
            case "boom":
                raise Failed(step.label)
        raise AssertionError(step.kind)

    def eval(self, n: ast.Expr, scope: dict[str, JSON]) -> tuple[JSON, dict[str, JSON]]:
        """The node's result and the bindings after it (raises `Failed` or `Broke`)."""
        match n:
            case ast.Sql(query=ast.Str(value=text)):
                label = text.split(f"'{INSTANCE}', '", 1)[1].split("'", 1)[0]
                return self.sql(self.wf.steps[label], scope), scope
            case ast.Bind(node=inner, name=ast.Str(value=name)):
                result, scope = self.eval(inner, scope)
                return result, {**scope, name: result}
            case ast.Seq(left=left, right=right):
                _, scope = self.eval(left, scope)
                return self.eval(right, scope)
            case ast.Join(branches=branches):
                results = []
                after = dict(scope)
                for b in branches:  # effects are independent of the interleaving
                    r, s = self.eval(b, scope)
                    results.append(r)
                    after.update(s)
                return results, after
            case ast.Race(branches=branches):
                (winner,) = [b for b in branches if not _slow(b)]
                return self.eval(winner, scope)
            case ast.If(cond=cond, then=then, orelse=orelse):
                c, scope = self.eval(cond, scope)
                assert orelse is not None
                return self.eval(then if truthy(c) else orelse, scope)
            case ast.Loop(body=body, cond=cond):
                while True:
                    try:
                        result, scope = self.eval(body, scope)
                        if cond is None:
                            continue
                        c, scope = self.eval(cond, scope)
                    except Broke as b:
                        return b.value, scope
                    if not truthy(c):
                        return result, scope
            case ast.Break(value=value):
                raise Broke(self.break_value(value, scope))
            case ast.Sleep(seconds=ast.Num(text=seconds)):
                return {"slept": True, "seconds": int(seconds)}, scope
            case ast.WaitSignal(name=ast.Str(value=name)):
                if name not in self.wf.sent:
                    return {"signal_name": name, "timed_out": True, "data": None}, scope
                self.signals[name] += 1
                data = {"i": self.signals[name]}
                return {"signal_name": name, "timed_out": False, "data": data}, scope
            case ast.Retry(node=inner, attempts=ast.Num(text=attempts)):
                for attempt in range(1, int(attempts) + 1):
                    undos = len(self.undos)
                    try:
                        return self.eval(inner, scope)
                    except Failed:
                        del self.undos[undos:]  # failed attempts are not undone
                        if attempt == int(attempts):
                            raise
                raise AssertionError("unreachable")
            case ast.Compensate(node=inner, undo=undo):
                result, after = self.eval(inner, scope)
                self.undos.append((undo, after))
                return result, after
        raise AssertionError(f"the generator does not make {n!r}")

    def break_value(self, value: ast.LitArg | None, scope: Mapping[str, JSON]) -> JSON:
        import json

        if value is None:
            return None
        assert isinstance(value, ast.Str)
        text = value.value
        if text.startswith("$"):
            text = str(self.ref(scope, text[1:]))
        try:
            parsed: JSON = json.loads(text)
        except ValueError:
            return text
        return parsed


def _slow(n: ast.Expr) -> bool:
    """Whether a race branch is the generated loser (it starts with the long sleep)."""
    while isinstance(n, ast.Seq):
        n = n.left
    return isinstance(n, ast.Sleep) and n.seconds == _num(SLOW)


def predict(wf: Generated) -> Outcome:
    """The outcome of one instance of ``wf``."""
    return Evaluator(wf).run()


def walk(n: ast.Expr) -> Iterator[ast.Expr]:
    """Every node of a generated tree."""
    yield n
    for name in type(n).NODE_FIELDS:
        child: Any = getattr(n, name)
        for c in child if isinstance(child, tuple) else (child,):
            if c is not None:
                yield from walk(c)
