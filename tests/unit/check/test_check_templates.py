"""Template expansion and imports, on hand-built modules."""

from __future__ import annotations

from astbuild import (
    bind,
    call,
    codes_of,
    defn,
    imp,
    module,
    name,
    retry,
    run,
    seq,
    sleep,
    sql,
)

from dfc import ast
from dfc.check import codes


def test_expansion_substitutes_nodes_and_literals() -> None:
    wb = defn("with_backoff", ["step", ("n", 5)], retry(name("step"), attempts=name("n")))
    nap = defn("nap", ["secs"], sleep(name("secs")))
    wf, d = run(
        seq(
            call("with_backoff", "SELECT 1", n=3), call("nap", 7), call("with_backoff", "SELECT 2")
        ),
        wb,
        nap,
    )
    assert codes_of(d) == []
    assert wf is not None
    first, second, third = (wf.body.left.left, wf.body.left.right, wf.body.right)  # type: ignore[attr-defined]
    assert isinstance(first, ast.Retry) and first.attempts == ast.Num(text="3", span=first.span)
    assert isinstance(first.node, ast.Sql) and first.node.query.value == "SELECT 1"  # type: ignore[union-attr]
    assert isinstance(second, ast.Sleep) and second.seconds.text == "7"  # type: ignore[union-attr]
    assert isinstance(third, ast.Retry) and third.attempts.text == "5"  # type: ignore[union-attr]
    # Nodes from the template body carry the call's span; the argument keeps its own (none).
    assert len(wf.trail(first)) == 1
    assert wf.trail(first.node) == ()
    assert all(not isinstance(n, ast.TemplateCall | ast.Name) for n in ast.preorder(wf.body))


def test_every_node_is_distinct() -> None:
    twice = defn("twice", ["x"], seq(name("x"), name("x")))
    wf, _ = run(call("twice", call("twice", sql("SELECT 1"))), twice)
    assert wf is not None
    nodes = list(ast.preorder(wf.body))
    assert len(nodes) == 7
    assert len({id(n) for n in nodes}) == len(nodes)
    sqls = [n for n in nodes if isinstance(n, ast.Sql)]
    assert len(sqls) == 4 and set(wf.sql_facts) == {id(n) for n in sqls}


def test_nested_templates_have_nested_trails() -> None:
    inner = defn("inner", [], "SELECT 'inner'")
    outer = defn("outer", [], seq(call("inner"), "SELECT 'outer'"))
    wf, _ = run(call("outer"), inner, outer)
    assert wf is not None
    left = wf.body.left  # type: ignore[attr-defined]
    assert len(wf.trail(left)) == 2
    assert len(wf.trail(wf.body)) == 1


def test_template_errors() -> None:
    pair = defn("pair", ["a", "b"], seq(name("a"), name("b")))
    assert codes_of(run(call("nope"))[1]) == [codes.UNKNOWN_TEMPLATE]
    assert codes_of(run(call("pair", "SELECT 1"), pair)[1]) == [codes.TEMPLATE_ARGS]
    assert codes_of(run(call("pair", "SELECT 1", "SELECT 2", "SELECT 3"), pair)[1]) == [
        codes.TEMPLATE_ARGS
    ]
    assert codes_of(run(call("pair", "SELECT 1", c="SELECT 2"), pair)[1]) == [
        codes.TEMPLATE_ARGS,
        codes.TEMPLATE_ARGS,
    ]
    again = defn("again", ["x"], seq(name("x"), call("again", name("x"))))
    assert codes_of(run(call("again", "SELECT 1"), again)[1]) == [codes.RECURSIVE_TEMPLATE]
    ping = defn("ping", [], call("pong"))
    pong = defn("pong", [], call("ping"))
    assert codes_of(run("SELECT 1", ping, pong)[1]) == [codes.RECURSIVE_TEMPLATE]
    dup = defn("pair", ["x"], name("x"))
    assert codes_of(run(call("pair", "SELECT 1", "SELECT 2"), pair, dup)[1]) == [
        codes.NAME_COLLISION
    ]
    typo = defn("typo", ["step"], name("stpe"))
    assert codes_of(run("SELECT 1", typo)[1]) == [codes.UNKNOWN_NAME]
    nap = defn("nap", ["s"], sleep(name("s")))
    assert codes_of(run(call("nap", sleep(1)), nap)[1]) == [codes.ARGUMENT_KIND]
    step = defn("step", ["x"], name("x"))
    assert codes_of(run(call("step", 42), step)[1]) == [codes.ARGUMENT_KIND]


def test_bind_name_from_parameter() -> None:
    fetch = defn("fetch", ["q", "into"], bind(sql(name("q")), name("into")))
    wf, d = run(seq(call("fetch", "SELECT 1 AS v", "r"), "SELECT $r.v"), fetch)
    assert codes_of(d) == [] and wf is not None


def test_expansion_too_large() -> None:
    decls = [defn("t0", ["x"], seq(name("x"), name("x")))]
    for i in range(1, 20):
        decls.append(defn(f"t{i}", ["x"], call(f"t{i - 1}", call(f"t{i - 1}", name("x")))))
    assert codes_of(run(call("t19", "SELECT 1"), *decls)[1]) == [codes.EXPANSION_TOO_LARGE]


def test_imports() -> None:
    lib = module(None, defn("nap", [], sleep(1)), defn("step", [], "SELECT 1"))
    other = module(None, defn("nap", [], sleep(2)))
    mods = {"std/lib": lib, "std/other": other}
    wf, d = run(seq(call("nap"), call("step")), imp("std/lib"), modules=mods)
    assert codes_of(d) == [] and wf is not None
    assert codes_of(run("SELECT 1", imp("std/missing"), modules=mods)[1]) == [codes.UNKNOWN_MODULE]
    assert codes_of(run("SELECT 1", imp("std/lib"), imp("std/other"), modules=mods)[1]) == [
        codes.NAME_COLLISION
    ]
    # Not transitive: a module's imports are its own.
    uses = module(None, imp("std/lib"), defn("twice", [], seq(call("nap"), call("nap"))))
    mods["std/uses"] = uses
    assert codes_of(run(call("twice"), imp("std/uses"), modules=mods)[1]) == []
    assert codes_of(run(call("nap"), imp("std/uses"), modules=mods)[1]) == [codes.UNKNOWN_TEMPLATE]


def test_import_cycle() -> None:
    a = module(None, imp("std/b"), defn("fa", [], "SELECT 1"))
    b = module(None, imp("std/a"), defn("fb", [], "SELECT 2"))
    _, d = run(call("fa"), imp("std/a"), modules={"std/a": a, "std/b": b})
    assert codes_of(d) == [codes.IMPORT_CYCLE]
    assert "std/a → std/b → std/a" in d[0].message
