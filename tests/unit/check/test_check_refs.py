"""The reference scanner: the one definition of `$name` / `{var}` the runtime must agree with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dfc.check import check_file, codes
from dfc.check.refs import Ref, json_neutralize, neutralize, scan
from dfc.diagnostics import Diagnostics
from dfc.source import SourceFile


def texts(text: str, **kw: object) -> list[str]:
    return [text[r.start : r.end] for r in scan(text, **kw)]  # type: ignore[arg-type]


def test_forms() -> None:
    refs = scan("a $x b $y.col c $z? d $w.c? e $all.* f {v} g")
    assert [(r.kind, r.name, r.column, r.star, r.null_safe) for r in refs] == [
        ("result", "x", None, False, False),
        ("result", "y", "col", False, False),
        ("result", "z", None, False, True),
        ("result", "w", "c", False, True),
        ("result", "all", None, True, False),
        ("var", "v", None, False, False),
    ]
    assert [r.text for r in refs] == ["$x", "$y.col", "$z", "$w.c", "$all.*", "{v}"]


def test_positional_parameters_and_dollar_quotes_are_not_references() -> None:
    assert scan("SELECT $1, $$body$$, $tag$ x $tag$") == []
    assert texts("DO $fn$ BEGIN PERFORM $x; END $fn$") == ["$x"]


def test_longest_name_at_word_boundary() -> None:
    assert texts("$ab", results={"a"}) == []
    assert texts("$ab $a", results={"a", "ab"}) == ["$ab", "$a"]
    assert texts("$a_b", results={"a"}) == []
    assert texts("$a.b", results={"a"}) == ["$a.b"]
    assert texts("x$a)", results={"a"}) == ["$a"]


def test_unknown_names_are_left_alone_when_names_are_given() -> None:
    assert texts("$nope {nope} {sys_label}", results=set(), variables=set()) == ["{sys_label}"]


def test_suffixes() -> None:
    assert texts("$a.") == ["$a"]
    assert texts("$a.5") == ["$a"]
    assert texts("$a.*?") == ["$a.*"]
    assert texts("$sig::jsonb->>'timed_out'") == ["$sig"]
    assert texts("{ x } {x-y} {1x} {ok}") == ["{ok}"]


def test_neutralize_keeps_positions() -> None:
    text = "SELECT $a.b?, {v} FROM $r.*"
    out = neutralize(text, scan(text))
    assert out == "SELECT _a_b_, _v_ FROM _r__"
    assert (
        json_neutralize('{"a": $x, "b": "{v}"}', scan('{"a": $x, "b": "{v}"}'))
        == '{"a": 10, "b": "100"}'
    )


@given(st.text(alphabet=st.sampled_from("$.{}?*_ab1 '\"x\n"), max_size=60))
def test_scan_never_crashes_and_spans_are_ordered(text: str) -> None:
    refs = scan(text)
    end = 0
    for r in refs:
        assert isinstance(r, Ref)
        assert end <= r.start < r.end <= len(text)
        assert text[r.start] in "${"
        end = r.end
    out = neutralize(text, refs)
    assert len(out) == len(text)
    # Outside references nothing changes; inside, only punctuation does.
    inside = {i for r in refs for i in range(r.start, r.end)}
    assert all(out[i] == text[i] for i in range(len(text)) if i not in inside)
    assert all(out[i].isalnum() or out[i] == "_" for i in inside)


@given(st.text(max_size=80))
def test_scan_any_text(text: str) -> None:
    for r in scan(text):
        assert scan(text[r.start : r.end])[0].name == r.name


def test_in_sql_only_references_that_count() -> None:
    text = "SELECT $a, '$b' -- $c\n, $$ $d /* $e */ $$, $$$f$$, E'\\$g', {v}, '{w}' /* {x} */"
    assert [r.text for r in scan(text, sql=True)] == ["$a", "$b", "$d", "{v}", "{w}", "{x}"]
    # raw contexts (HTTP, break values) know nothing of SQL
    assert len(scan(text)) == 9  # `$$$f$$`: a `$` follows `$f`, so it is no reference


def test_a_variable_is_one_token_when_deciding() -> None:
    # `{v}$$` is one identifier, as the runtime lexes `users$$`: no dollar quote opens, so the
    # comment hides `$a`.
    assert [r.text for r in scan("SELECT {v}$$ -- $$ $a", sql=True)] == ["{v}"]
    assert [r.text for r in scan("SELECT {v} $$ -- $$ $a", sql=True)] == ["{v}", "$a"]


def _file_codes(text: str) -> list[str]:
    sink = Diagnostics()
    check_file(SourceFile("t.df", text), diagnostics=sink)
    return [d.code for d in sink.sorted()]


@pytest.mark.parametrize(
    "step",
    [
        "'CREATE FUNCTION add_one(i int) RETURNS int AS $$SELECT i + 1$$ LANGUAGE sql'",
        "$q$DO $$BEGIN PERFORM 1; END$$$q$",
        "$q$SELECT $$it's$$ AS a$q$",
        "'DO $$ BEGIN PERFORM 1; -- see $missing\nEND $$'",
    ],
)
def test_dollar_quotes_and_comments_pass_the_checker(step: str) -> None:
    assert _file_codes(step + "\n") == []


def test_unbound_references_in_bodies_are_still_reported() -> None:
    assert _file_codes("'DO $$ BEGIN PERFORM $missing; END $$'\n") == [codes.UNBOUND]
