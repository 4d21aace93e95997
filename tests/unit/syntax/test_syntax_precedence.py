"""Operator precedence: the dfc table (SPEC §1.2) against pg_durable's flat parse."""

from __future__ import annotations

from typing import Any

import pytest

from dfc import ast
from dfc.syntax import codes, format_expression, parse_expression


def sx(e: Any) -> str:
    """A compact s-expression: SQL steps by their text, operators by their symbol."""
    match e:
        case ast.Sql(query=ast.Str(value=v)):
            return v
        case ast.Seq(left=a, right=b):
            return f"(~> {sx(a)} {sx(b)})"
        case ast.Join(branches=bs):
            return "(& " + " ".join(map(sx, bs)) + ")"
        case ast.Race(branches=bs):
            return "(| " + " ".join(map(sx, bs)) + ")"
        case ast.Bind(node=a, name=n):
            return f"(|=> {sx(a)} {sx(n)})"
        case ast.Compensate(node=a, undo=u):
            return f"(<-> {sx(a)} {sx(u)})"
        case ast.If(cond=c, then=t, orelse=None):
            return f"(?> {sx(c)} {sx(t)})"
        case ast.If(cond=c, then=t, orelse=o):
            return f"(?> {sx(c)} {sx(t)} {sx(o)})"
        case ast.Loop(body=b, cond=None):
            return f"(@> {sx(b)})"
        case ast.Str(value=v):
            return f"'{v}'"
        case ast.Name(name=n):
            return n
        case ast.Sleep(seconds=s):
            return f"sleep{s.text}"  # type: ignore[union-attr]
    return type(e).__name__


def parse(text: str, grammar: str) -> ast.Expr:
    expr, diags = parse_expression(text, grammar=grammar)  # type: ignore[arg-type]
    assert not diags, [(d.code, d.message) for d in diags]
    assert expr is not None
    return expr


# Each case: (source, dfc parse, pg parse). The cases of SPEC §1.2 that differ come first.
DIFFER = [
    ("a ~> b & c", "(~> a (& b c))", "(& (~> a b) c)"),
    ("a ~> b | c", "(~> a (| b c))", "(| (~> a b) c)"),
    ("a | b & c", "(| a (& b c))", "(& (| a b) c)"),
    ("@> a ~> b", "(@> (~> a b))", "(~> (@> a) b)"),
    ("a ~> b |=> 'n'", "(~> a (|=> b 'n'))", "(|=> (~> a b) 'n')"),
    ("a ~> @> b ~> c", "(~> a (@> (~> b c)))", "(~> (~> a (@> b)) c)"),
    ("c1 ?> t1 !> c2 ?> t2 !> e", "(?> c1 t1 (?> c2 t2 e))", "(?> (?> c1 t1 c2) t2 e)"),
    ("a ?> b ?> c !> d", "(?> a (?> b c d))", "(?> (?> a b) c d)"),
    ("a & b ~> c & d", "(~> (& a b) (& c d))", "(& (~> (& a b) c) d)"),
    ("a <-> u ~> b <-> v", "(~> (<-> a u) (<-> b v))", "(<-> (~> (<-> a u) b) v)"),
    ("@> a ?> b !> c", "(@> (?> a b c))", "(?> (@> a) b c)"),
]
AGREE = [
    ("a ~> b ~> c", "(~> (~> a b) c)"),
    ("a & b & c", "(& (& a b) c)"),
    ("a | b | c", "(| (| a b) c)"),
    ("c ?> t !> e", "(?> c t e)"),
    ("c ?> t", "(?> c t)"),
    ("(a ~> b) & c", "(& (~> a b) c)"),
    ("a ~> (b & c)", "(~> a (& b c))"),
    ("x |=> 'n' ~> y", "(~> (|=> x 'n') y)"),
    ("x |=> 'n' |=> 'm'", "(|=> (|=> x 'n') 'm')"),
    ("a <-> u ~> b", "(~> (<-> a u) b)"),
    ("@> (a ~> b)", "(@> (~> a b))"),
    ("a ~> @> b", "(~> a (@> b))"),
    ("@> @> a", "(@> (@> a))"),
    ("(c ?> t) ~> u", "(~> (?> c t) u)"),
    ("c ?> (t ~> u) !> e", "(?> c (~> t u) e)"),
]


def q(src: str) -> str:
    """Quote the single-letter step names: `a ~> b` → `'a' ~> 'b'` (names in '' stay)."""
    out = []
    for word in src.split(" "):
        core = word.strip("()")
        if core.isidentifier():
            word = word.replace(core, f"'{core}'")
        out.append(word)
    return " ".join(out)


@pytest.mark.parametrize(("src", "dfc", "pg"), DIFFER)
def test_dfc_and_pg_parses_differ(src: str, dfc: str, pg: str) -> None:
    assert sx(parse(q(src), "dfc")) == dfc
    assert sx(parse(q(src), "pg")) == pg


@pytest.mark.parametrize(("src", "both"), AGREE)
def test_dfc_and_pg_parses_agree(src: str, both: str) -> None:
    assert sx(parse(q(src), "dfc")) == both
    assert sx(parse(q(src), "pg")) == both


@pytest.mark.parametrize(
    ("src", "tree"),
    [
        ("a <-> u |=> 'n'", "(|=> (<-> a u) 'n')"),
        ("a |=> 'n' & b", "(& (|=> a 'n') b)"),
        ("a & b | c", "(| (& a b) c)"),
        ("a | b ~> c", "(~> (| a b) c)"),
        ("a ~> b ?> c !> d", "(?> (~> a b) c d)"),
        ("c ?> t ~> u !> e", "(?> c (~> t u) e)"),
        ("c ?> @> t", "(?> c (@> t))"),
        ("c ?> t !> @> e ~> f", "(?> c t (@> (~> e f)))"),
        ("a & @> b ~> c", "(& a (@> (~> b c)))"),
        ("a <-> @> b", "(<-> a (@> b))"),
    ],
)
def test_dfc_precedence_table(src: str, tree: str) -> None:
    assert sx(parse(q(src), "dfc")) == tree


def test_else_needs_an_incomplete_if_in_pg() -> None:
    # `c ?> t ~> u !> e` is unambiguous in dfc but an error in pg_durable (SPEC §1.2).
    _, diags = parse_expression(q("c ?> t ~> u !> e"), grammar="pg")
    assert [d.code for d in diags] == [codes.ELSE_WITHOUT_IF]
    _, diags = parse_expression(q("c ?> t !> e !> f"), grammar="pg")
    assert [d.code for d in diags] == [codes.ELSE_WITHOUT_IF]


def test_else_without_if_in_dfc() -> None:
    _, diags = parse_expression(q("a ~> b !> c"))
    assert [d.code for d in diags] == [codes.ELSE_WITHOUT_IF]


def test_n_ary_join_is_flat_and_operator_join_nests() -> None:
    assert sx(parse("df.join('a', 'b', 'c')", "dfc")) == "(& a b c)"
    assert sx(parse("df.join3('a', 'b', 'c')", "dfc")) == "(& a b c)"
    assert sx(parse("'a' & 'b' & 'c'", "dfc")) == "(& (& a b) c)"


def test_loop_forms_are_the_same_node() -> None:
    assert parse("df.loop('a')", "dfc") == parse("@> 'a'", "dfc")
    assert parse("df.seq('a', 'b')", "dfc") == parse("'a' ~> 'b'", "dfc")
    assert parse("df.as('a', 'n')", "dfc") == parse("'a' |=> 'n'", "dfc")
    assert parse("df.if('c', 't', 'e')", "dfc") == parse("'c' ?> 't' !> 'e'", "dfc")
    assert parse("df.race('a', 'b')", "dfc") == parse("'a' | 'b'", "dfc")
    assert parse("df.with_undo('a', 'u')", "dfc") == parse("'a' <-> 'u'", "dfc")
    assert parse("df.sql('a')", "dfc") == parse("'a'", "dfc")


@pytest.mark.parametrize("src", [s for s, _, _ in DIFFER] + [s for s, _ in AGREE])
def test_printer_keeps_the_dfc_meaning(src: str) -> None:
    tree = parse(q(src), "dfc")
    assert parse(format_expression(tree), "dfc") == tree


@pytest.mark.parametrize(("src", "_dfc", "_pg"), DIFFER)
def test_printer_reproduces_pg_meaning_in_dfc_syntax(src: str, _dfc: str, _pg: str) -> None:
    # A pg parse printed canonically reads the same in dfc: the parentheses are explicit.
    tree = parse(q(src), "pg")
    assert parse(format_expression(tree), "dfc") == tree
