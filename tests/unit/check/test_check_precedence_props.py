"""Property: the precedence warning fires exactly where the two grammars behave differently, and
its suggestion means the same under both."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfc.check import check_file, codes
from dfc.check.precedence import _Compare
from dfc.diagnostics import Diagnostics
from dfc.source import SourceFile
from dfc.syntax import parse_text

atoms = st.sampled_from(
    ["'SELECT 1'", "'SELECT 2'", "df.sleep(1)", "df.seq('SELECT 3', 'SELECT 4')"]
)


def _grow(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(["~>", "&", "|", "<->"]), inner).map(" ".join),
        inner.map(lambda a: f"{a} |=> 'n'"),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} ?> {t[1]} !> {t[2]}"),
        inner.map(lambda a: f"@> {a}"),
        inner.map(lambda a: f"({a})"),
    )


exprs = st.recursive(atoms, _grow, max_leaves=7)


def _parse(text: str, grammar: str):  # type: ignore[no-untyped-def]
    m, diags = parse_text(text, grammar=grammar)  # type: ignore[arg-type]
    if m is None or m.workflow is None or any(d.is_error for d in diags):
        return None
    return m.workflow.body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exprs)
def test_warning_iff_behaviour_differs(text: str) -> None:
    dfc = _parse(text, "dfc")
    if dfc is None:
        return
    pg = _parse(text, "pg")
    sink = Diagnostics()
    check_file(SourceFile("p.df", text), diagnostics=sink)
    warnings = [d for d in sink if d.code == codes.PRECEDENCE]
    if pg is None:
        assert warnings == []
        return
    c = _Compare()
    assert (warnings == []) == (c.sig(dfc) == c.sig(pg)), text
    for w in warnings:
        if w.help is None:
            continue
        suggestion = w.help.removeprefix("write `").removesuffix("` to mean the same in both")
        a, b = _parse(suggestion, "dfc"), _parse(suggestion, "pg")
        assert a is not None and b is not None, suggestion
        assert c.sig(a) == c.sig(b), (text, suggestion)
