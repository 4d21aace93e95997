"""Imports and templates (SPEC §1.6): load modules, then expand template calls.

Expansion builds a new tree in which every node object is distinct (``id(node)`` keys the
checker's maps and the plan's source map) and records, for each node that came out of a template
body, the template calls that produced it (its *trail*, outermost call first). Arguments keep the
trail of the place they were written.

Scoping: a module sees its own ``def``s and those defined in the modules it imports (not what
those modules import in turn). A template body is expanded in the module that defines it, its
arguments in the module of the call.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, assert_never

from dfc import ast
from dfc.check import codes
from dfc.check.report import Reporter
from dfc.diagnostics import Diagnostics, Label
from dfc.resources import stdlib_dir
from dfc.source import SourceFile, Span, TextMap

MAX_NODES = 100_000
"""Expansion stops with an error beyond this many nodes (templates nested exponentially)."""


@dataclass(frozen=True, slots=True)
class LoadedModule:
    """A module found by a loader: ``key`` identifies it (for cycles); ``path`` is its file."""

    key: str
    source: SourceFile
    module: ast.Module | None  # None when it does not parse (the parser reported why)
    path: Path | None = None


class ModuleLoader(Protocol):
    """Finds and parses imported modules."""

    def load(
        self, spec: str, importer: Path | None, diagnostics: Diagnostics
    ) -> LoadedModule | None:
        """The module ``spec`` (``std/NAME`` or a path) imported from the file ``importer``.

        Returns None when there is no such module. Parse errors go to ``diagnostics``.
        """
        ...


class FileLoader:
    """Loads ``std/NAME`` from dfc's standard library and other paths relative to the importer."""

    def __init__(self, stdlib: Path | None = None) -> None:
        self._stdlib = stdlib
        self._cache: dict[str, LoadedModule] = {}

    def load(
        self, spec: str, importer: Path | None, diagnostics: Diagnostics
    ) -> LoadedModule | None:
        """See `ModuleLoader.load`."""
        from dfc.syntax import parse  # the parser sits above nothing we import at module level

        if spec.startswith("std/"):
            name = spec[4:].removesuffix(".df")
            if not name or "/" in name or "\\" in name or name.startswith("."):
                return None
            path = (self._stdlib or stdlib_dir()) / f"{name}.df"
            display = f"std/{name}.df"
        else:
            base = importer.parent if importer is not None else Path()
            path = Path(os.path.normpath(base / spec))
            display = str(path)
        if not path.is_file():
            return None
        key = str(path.resolve())
        if key in self._cache:
            return self._cache[key]
        text = SourceFile.read(path).text
        source = SourceFile(display, text)
        module = parse(source, grammar="dfc", diagnostics=diagnostics)
        loaded = LoadedModule(key, source, module, path)
        self._cache[key] = loaded
        return loaded


@dataclass(eq=False)
class Template:
    """A ``def`` and the module environment it was defined in."""

    d: ast.Def
    env: ModuleEnv


@dataclass(eq=False)
class ModuleEnv:
    """A loaded module: its templates (own and imported) and parameters."""

    key: str
    source: SourceFile
    module: ast.Module
    path: Path | None
    templates: dict[str, Template] = field(default_factory=dict)
    own: dict[str, Template] = field(default_factory=dict)
    params: list[ast.Param] = field(default_factory=list)


@dataclass(slots=True)
class Expansion:
    """The result of loading and expanding a root module."""

    root: ModuleEnv
    envs: list[ModuleEnv]  # the root first, then every imported module
    body: ast.Expr | None  # the expanded workflow body (None without a workflow)
    trails: dict[int, tuple[Span, ...]]
    params: tuple[ast.Param, ...]  # the root's, then those of imported modules not redeclared


def expand(
    module: ast.Module, source: SourceFile, diagnostics: Diagnostics, loader: ModuleLoader
) -> Expansion:
    """Load the imports of ``module`` and expand its workflow's template calls."""
    rep = Reporter(diagnostics)
    modules = _Modules(rep, loader)
    path = Path(source.name) if not source.name.startswith("<") else None
    key = str(path.resolve()) if path is not None else f"<root:{source.name}>"
    root = modules.env(key, source, module, path)
    for env in modules.envs.values():
        _check_defs(env, rep)
    params = list(root.params)
    seen = {p.name for p in params}
    for env in modules.envs.values():
        if env is root:
            continue
        for p in env.params:
            if p.name not in seen:
                seen.add(p.name)
                params.append(p)
    expander = _Expander(rep, [p.name for p in params])
    body = None
    if module.workflow is not None:
        try:
            body = expander.expr(module.workflow.body, root, (), {})
        except _TooLarge as e:
            rep.error(
                codes.EXPANSION_TOO_LARGE,
                f"expanding the templates produces more than {MAX_NODES:,} nodes",
                e.span,
                help="templates that use a step parameter twice double in size at each level",
            )
            body = None
    # Keep only the trails of nodes in the result: ids of collected temporaries may be reused.
    trails = {}
    if body is not None:
        trails = {
            id(n): expander.trails[id(n)] for n in ast.preorder(body) if id(n) in expander.trails
        }
    return Expansion(root, list(modules.envs.values()), body, trails, tuple(params))


# --------------------------------------------------------------------------------------------
# Modules


class _Modules:
    def __init__(self, rep: Reporter, loader: ModuleLoader) -> None:
        self.rep = rep
        self.loader = loader
        self.envs: dict[str, ModuleEnv] = {}
        self.stack: list[tuple[str, str]] = []  # (key, display name) of modules being loaded

    def env(self, key: str, source: SourceFile, module: ast.Module, path: Path | None) -> ModuleEnv:
        env = ModuleEnv(key, source, module, path)
        self.envs[key] = env
        self.stack.append((key, source.name))
        imported: set[str] = set()
        for decl in module.decls:
            match decl:
                case ast.Import(path=spec):
                    self._import(env, spec, imported)
                case ast.Def(name=name):
                    t = Template(decl, env)
                    if name in env.templates:
                        self._collision(name, _def_name_span(decl), env.templates[name])
                        continue
                    env.templates[name] = t
                    env.own[name] = t
                case ast.Param():
                    env.params.append(decl)
                case ast.Schedule():
                    pass  # the checker reads the root's; a module without a workflow has none
                case _:
                    assert_never(decl)
        self.stack.pop()
        return env

    def _import(self, env: ModuleEnv, spec: ast.Str, imported: set[str]) -> None:
        loaded = self.loader.load(spec.value, env.path, self.rep.sink)
        if loaded is None:
            std = (
                [p.stem for p in sorted(stdlib_dir().glob("*.df"))]
                if spec.value.startswith("std/")
                else []
            )
            self.rep.error(
                codes.UNKNOWN_MODULE,
                f"module '{spec.value}' not found",
                spec.span,
                help=("the standard library has: " + ", ".join(f"std/{s}" for s in std))
                if std
                else "a path is relative to the importing file, e.g. './common.df'",
            )
            return
        chain = [k for k, _ in self.stack]
        if loaded.key in chain:
            names = [_short(n) for _, n in self.stack[chain.index(loaded.key) :]]
            names.append(_short(loaded.source.name))
            self.rep.error(
                codes.IMPORT_CYCLE,
                "import cycle: " + " → ".join(names),
                spec.span,
                help="move the shared templates into a module that both import",
            )
            return
        if loaded.key in imported or loaded.module is None:
            return
        imported.add(loaded.key)
        sub = self.envs.get(loaded.key) or self.env(
            loaded.key, loaded.source, loaded.module, loaded.path
        )
        for name, t in sub.own.items():
            if name in env.templates and env.templates[name] is not t:
                self._collision(name, spec.span, env.templates[name], imported_from=spec.value)
                continue
            env.templates[name] = t

    def _collision(
        self, name: str, span: Span, first: Template, imported_from: str | None = None
    ) -> None:
        where = f" (imported from '{imported_from}')" if imported_from else ""
        self.rep.error(
            codes.NAME_COLLISION,
            f"template `{name}`{where} is already defined",
            span,
            labels=(Label(_def_name_span(first.d), "first defined here"),),
            help="rename one of them",
        )


def _short(name: str) -> str:
    """A module's name for messages: ``std/x.df`` or the file name."""
    return name if name.startswith("std/") else Path(name).name


def _def_name_span(d: ast.Def) -> Span:
    """The span of the name in ``def NAME(...)`` (the whole definition for a hand-built one)."""
    return d.name_span or d.span


# --------------------------------------------------------------------------------------------
# Checks of template definitions (all of them, used or not)


def _check_defs(env: ModuleEnv, rep: Reporter) -> None:
    """Unknown names and templates, arity and recursion in ``def`` bodies.

    (Two parameters with one name are the parser's DFC137, reported for imported files too.)
    """
    for t in env.own.values():
        names = [p.name for p in t.d.params]
        for n in _def_nodes(t.d):
            if isinstance(n, ast.Name) and n.name not in names:
                _unknown_name(rep, n, names)
            elif isinstance(n, ast.TemplateCall):
                target = env.templates.get(n.name)
                if target is None:
                    _unknown_template(rep, n, env)
                else:
                    _bind_args(rep, n, target, report=True)
    # Recursion: a cycle in the graph of template calls.
    state: dict[int, int] = {}  # id(Template) -> 1 visiting, 2 done
    path: list[Template] = []

    def visit(t: Template) -> None:
        state[id(t)] = 1
        path.append(t)
        for n in _def_nodes(t.d):
            if not isinstance(n, ast.TemplateCall):
                continue
            target = t.env.templates.get(n.name)
            if target is None:
                continue
            s = state.get(id(target))
            if s == 1:
                cycle = [x.d.name for x in path[path.index(target) :]] + [target.d.name]
                rep.error(
                    codes.RECURSIVE_TEMPLATE,
                    "recursive template: " + " → ".join(f"`{c}`" for c in cycle),
                    n.span,
                    help="templates expand before the workflow runs; repeat work with df.loop",
                )
            elif s is None:
                visit(target)
        path.pop()
        state[id(t)] = 2

    for t in env.own.values():
        if id(t) not in state:
            visit(t)


def _def_nodes(d: ast.Def) -> Iterator[ast.Expr | ast.LitArg]:
    """Every expression node and literal argument of a template body and its defaults."""
    roots: list[ast.Expr | ast.Lit] = [d.body]
    roots += [p.default for p in d.params if p.default is not None]
    stack: list[ast.Expr | ast.LitArg] = list(reversed(roots))
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, ast.Str | ast.Num | ast.Null | ast.Bool | ast.Name | ast.SqlExpr):
            continue
        stack.extend(reversed(_literal_fields(n)))
        if isinstance(n, ast.TemplateCall):
            stack.extend(reversed([a.value for a in n.args]))
        else:
            stack.extend(reversed(ast.children(n)))


_LITERAL_HELP = "pass a literal here: a number, a string, TRUE/FALSE or NULL"


def _literal_fields(n: ast.Expr) -> list[ast.LitArg]:
    """The literal arguments of a built-in node (which may be template parameters)."""
    out: list[ast.LitArg] = []
    for f in dataclasses.fields(n):
        if f.name in n.NODE_FIELDS:
            continue
        v = getattr(n, f.name)
        if isinstance(v, ast.Str | ast.Num | ast.Null | ast.Bool | ast.Name | ast.SqlExpr):
            out.append(v)
    if isinstance(n, ast.Call):
        out.extend(a.value for a in n.args)
    return out


def _unknown_name(
    rep: Reporter, n: ast.Name, names: list[str], node: object = None, params: Iterable[str] = ()
) -> None:
    close = difflib.get_close_matches(n.name, names, n=1)
    if close:
        help_ = f"did you mean `{close[0]}`?"
    elif n.name in params:
        help_ = f"`{n.name}` is a param: it is used as {{{n.name}}} inside step text, not as a name"
    else:
        help_ = "a bare name stands for a template parameter; SQL steps are strings, built-ins start with df."
    rep.error(codes.UNKNOWN_NAME, f"unknown name `{n.name}`", n.span, node=node, help=help_)


def _unknown_template(
    rep: Reporter, call: ast.TemplateCall, env: ModuleEnv, node: object = None
) -> None:
    close = difflib.get_close_matches(call.name, list(env.templates), n=1)
    rep.error(
        codes.UNKNOWN_TEMPLATE,
        f"no template named `{call.name}`",
        call.span,
        node=node,
        help=f"did you mean `{close[0]}`?"
        if close
        else "define it with `def` or import the module that defines it",
    )


def _bind_args(
    rep: Reporter, call: ast.TemplateCall, t: Template, *, report: bool, node: object = None
) -> dict[str, ast.Arg] | None:
    """Match a call's arguments to the template's parameters; None (and errors) on mismatch."""
    params = [p.name for p in t.d.params]
    out: dict[str, ast.Arg] = {}
    problems: list[tuple[str, Span]] = []
    positional = [a for a in call.args if a.name is None]
    if len(positional) > len(params):
        extra = positional[len(params)]
        problems.append(
            (
                f"`{t.d.name}` takes {len(params)} argument{'s' * (len(params) != 1)} but "
                f"{len(positional)} were given",
                extra.span,
            )
        )
    for name, a in zip(params, positional, strict=False):
        out[name] = a
    for a in call.args:
        if a.name is None:
            continue
        if a.name not in params:
            problems.append((f"`{t.d.name}` has no parameter `{a.name}`", a.span))
        elif a.name in out:
            problems.append((f"argument `{a.name}` is given twice", a.span))
        else:
            out[a.name] = a
    for p in t.d.params:
        if p.name not in out and p.default is None:
            problems.append((f"missing argument `{p.name}` for template `{t.d.name}`", call.span))
    if problems:
        if report:
            for msg, span in problems:
                rep.error(
                    codes.TEMPLATE_ARGS,
                    msg,
                    span,
                    node=node,
                    labels=(Label(_def_name_span(t.d), "template defined here"),),
                    help=f"`{t.d.name}` has parameters ({', '.join(_param_text(p) for p in t.d.params)})",
                )
        return None
    return out


def _param_text(p: ast.DefParam) -> str:
    return p.name if p.default is None else f"{p.name} = {p.default.span.text}"


# --------------------------------------------------------------------------------------------
# Expansion

Value = ast.Expr | ast.Lit
Subst = dict[str, tuple[Value, tuple[Span, ...]]]  # parameter -> (argument, its trail)


class _TooLarge(Exception):
    def __init__(self, span: Span) -> None:
        self.span = span


class _Expander:
    def __init__(self, rep: Reporter, params: Iterable[str] = ()) -> None:
        self.rep = rep
        self.params = frozenset(params)
        self.trails: dict[int, tuple[Span, ...]] = {}
        self.count = 0
        self.active: list[Template] = []
        self.calls: list[Span] = []

    def _new(self, n: ast.Expr, trail: tuple[Span, ...]) -> ast.Expr:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge(self.calls[0] if self.calls else n.span)
        if trail:
            self.trails[id(n)] = trail
        else:  # the id may belong to a collected node that had a trail
            self.trails.pop(id(n), None)
        return n

    def expr(
        self, e: ast.Expr, env: ModuleEnv | None, trail: tuple[Span, ...] | None, subst: Subst
    ) -> ast.Expr:
        """A copy of ``e`` with template calls and parameters replaced.

        ``trail`` None copies an already expanded tree, keeping each node's own trail.
        """
        tr = trail if trail is not None else self.trails.get(id(e), ())
        match e:
            case ast.Seq():
                # Chains are left-deep and long: walk the left spine without recursion.
                spine: list[ast.Seq] = []
                cur: ast.Expr = e
                while isinstance(cur, ast.Seq):
                    spine.append(cur)
                    cur = cur.left
                acc = self.expr(cur, env, trail, subst)
                for s in reversed(spine):
                    s_trail = trail if trail is not None else self.trails.get(id(s), ())
                    right = self.expr(s.right, env, trail, subst)
                    acc = self._new(ast.Seq(left=acc, right=right, span=s.span), s_trail)
                return acc
            case ast.Name(name=name):
                return self._param_node(e, name, subst, tr)
            case ast.TemplateCall():
                return self._call(e, env, tr, subst)
            case ast.Invalid():
                return self._new(ast.Invalid(span=e.span), tr)
            case ast.Sql(query=q):
                q2 = self._as_str(self._lit(q, subst, e, "a SQL step needs a string"), q, e)
                return self._new(ast.Sql(query=q2, span=e.span), tr)
            case ast.Bind(node=x, name=name):
                x2 = self.expr(x, env, trail, subst)
                n2 = self._as_str(self._lit(name, subst, e, "a result name is a string"), name, e)
                return self._new(ast.Bind(node=x2, name=n2, span=e.span), tr)
            case ast.IfRows(name=name, then=t, orelse=o):
                n2 = self._as_str(self._lit(name, subst, e, "a result name is a string"), name, e)
                t2 = self.expr(t, env, trail, subst)
                o2 = self.expr(o, env, trail, subst)
                return self._new(ast.IfRows(name=n2, then=t2, orelse=o2, span=e.span), tr)
            case ast.Leaf() | ast.Wrapper() | ast.Join() | ast.Race() | ast.If() | ast.Loop():
                return self._new(self._rebuild(e, env, trail, subst), tr)
            case ast.Map():
                return self._new(self._rebuild(e, env, trail, subst), tr)
        assert_never(e)

    def _rebuild(
        self, e: ast.Expr, env: ModuleEnv | None, trail: tuple[Span, ...] | None, subst: Subst
    ) -> ast.Expr:
        """A built-in node with its children expanded and its literal parameters substituted."""
        changes: dict[str, object] = {}
        for f in dataclasses.fields(e):
            if f.name == "span":
                continue
            v = getattr(e, f.name)
            if f.name in e.NODE_FIELDS:
                if isinstance(v, tuple):
                    changes[f.name] = tuple(self.expr(b, env, trail, subst) for b in v)
                else:
                    changes[f.name] = None if v is None else self.expr(v, env, trail, subst)
            elif isinstance(v, ast.Name):
                lit = self._lit(v, subst, e, _LITERAL_HELP)
                # On error keep the name: literal rules skip it, and the result is None anyway.
                changes[f.name] = lit if lit is not None else v
            elif isinstance(e, ast.Call) and f.name == "args":
                changes[f.name] = tuple(
                    replace(a, value=self._lit(a.value, subst, e, _LITERAL_HELP) or a.value)
                    for a in e.args
                )
            else:
                changes[f.name] = v
        return type(e)(span=e.span, **changes)  # type: ignore[arg-type]

    def _lit(self, v: ast.LitArg, subst: Subst, node: ast.Expr, need: str) -> ast.LitArg | None:
        """A literal argument with a template parameter replaced by its (literal) argument.

        None when that is impossible (an error was reported).
        """
        if not isinstance(v, ast.Name):
            return v
        if v.name not in subst:
            _unknown_name(self.rep, v, list(subst), node=node, params=self.params)
            return None
        arg, _ = subst[v.name]
        if isinstance(arg, ast.Str | ast.Num | ast.Null | ast.Bool):
            return arg
        if isinstance(arg, ast.Sql) and isinstance(arg.query, ast.Str):
            return arg.query  # a string argument was read as a SQL step
        self._wrong_kind(v, node, arg, "a literal", "a step", need)
        return None

    def _wrong_kind(
        self,
        param: ast.Name,
        node: ast.Expr,
        arg: ast.Expr | ast.Lit,
        used: str,
        given: str,
        help_: str,
    ) -> None:
        """Report a template parameter used as one kind (a step, a literal) whose argument is the
        other."""
        self.rep.error(
            codes.ARGUMENT_KIND,
            f"parameter `{param.name}` is used as {used} here, but its argument is {given}",
            param.span,
            node=node,
            labels=(Label(arg.span, "the argument"),),
            help=help_,
        )

    def _as_str(self, v: ast.LitArg | None, orig: ast.LitArg, node: ast.Expr) -> ast.Str:
        """``v`` where only a string is allowed (reporting any other literal)."""
        if isinstance(v, ast.Str):
            return v
        if v is not None:
            self.rep.error(
                codes.ARGUMENT_KIND,
                "a string is needed here",
                v.span,
                node=node,
                labels=(Label(orig.span, "used here"),) if orig is not v else (),
            )
        return ast.Str(value="", span=orig.span, text_map=TextMap((), 0))

    def _param_node(
        self, n: ast.Name, name: str, subst: Subst, trail: tuple[Span, ...]
    ) -> ast.Expr:
        """A template parameter in node position: a copy of its argument."""
        if name not in subst:
            _unknown_name(self.rep, n, list(subst), params=self.params)
            return self._new(ast.Invalid(span=n.span), trail)
        arg, arg_trail = subst[name]
        if isinstance(arg, ast.Str):
            return self._new(ast.Sql(query=arg, span=arg.span), arg_trail)
        if isinstance(arg, ast.Num | ast.Null | ast.Bool):
            need = "pass a step, e.g. a SQL string or df.sleep(...)"
            self._wrong_kind(n, n, arg, "a step", "a literal", need)
            return self._new(ast.Invalid(span=n.span), trail)
        return self.expr(arg, None, None, {})  # a fresh copy: a parameter may be used twice

    def _call(
        self, call: ast.TemplateCall, env: ModuleEnv | None, trail: tuple[Span, ...], subst: Subst
    ) -> ast.Expr:
        t = env.templates.get(call.name) if env is not None else None
        if t is None or env is None:
            if env is not None:
                _unknown_template(self.rep, call, env)
            return self._new(ast.Invalid(span=call.span), trail)
        if t in self.active:
            return self._new(ast.Invalid(span=call.span), trail)  # reported by _check_defs
        bound = _bind_args(self.rep, call, t, report=True)
        if bound is None:
            return self._new(ast.Invalid(span=call.span), trail)
        inner = (*trail, call.span)
        new: Subst = {}
        for p in t.d.params:
            a = bound.get(p.name)
            if a is not None:
                new[p.name] = self._arg(a.value, env, trail, subst)
            elif isinstance(p.default, ast.Str | ast.Num | ast.Null | ast.Bool):
                new[p.name] = (p.default, inner)
            elif p.default is not None:
                new[p.name] = (self.expr(p.default, t.env, inner, {}), inner)
        self.active.append(t)
        self.calls.append(call.span)
        try:
            return self.expr(t.d.body, t.env, inner, new)
        finally:
            self.active.pop()
            self.calls.pop()

    def _arg(
        self, v: ast.Expr | ast.Lit, env: ModuleEnv, trail: tuple[Span, ...], subst: Subst
    ) -> tuple[Value, tuple[Span, ...]]:
        """An argument, expanded where it was written."""
        if isinstance(v, ast.Name):
            if v.name in subst:
                return subst[v.name]
            _unknown_name(self.rep, v, list(subst), params=self.params)
            return ast.Invalid(span=v.span), trail
        if isinstance(v, ast.Str | ast.Num | ast.Null | ast.Bool):
            return v, trail
        return self.expr(v, env, trail, subst), trail
