"""Properties of substitution: it only ever fails with `SubstitutionError`, a value can never
change the lexical structure of a SQL statement, and references are found exactly where the
checker's one definition (`dfc.check.refs`) finds them."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfc.check import refs as checker_refs
from dfc.runtime.substitute import SubstitutionError, substitute_raw, substitute_sql
from dfc.sqllex import tokenize
from dfc.sqlquote import quote_literal

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text made mostly of the characters that matter to references and to SQL's lexer.
special = st.sampled_from(list("$${}.?*'\"\\-/\n E&U_ab1éx;()"))
texts = st.lists(
    st.one_of(
        special, st.sampled_from(["$a", "$ab", "$a.x", "$a.*", "{v}", "$$", "--", "/*", "*/"])
    ),
    max_size=40,
).map("".join)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
row_sets = st.lists(
    st.dictionaries(st.sampled_from(["x", "y", "v"]), json_values, max_size=3), max_size=3
).map(lambda rows: {"rows": rows, "row_count": len(rows)})
results = st.one_of(row_sets, json_values)
bindings = st.dictionaries(st.sampled_from(["a", "ab", "b"]), results, max_size=3)
variables = st.dictionaries(st.sampled_from(["v", "w"]), st.text(max_size=10), max_size=2)


@FAST
@given(texts, bindings, variables)
def test_only_substitution_errors(text: str, b: dict[str, Any], v: dict[str, str]) -> None:
    for substitute in (substitute_sql, substitute_raw):
        try:
            out = substitute(text, b, v)
        except SubstitutionError:
            continue
        assert isinstance(out, str)


def _shape(sql: str) -> list[tuple[str, str]]:
    """The lexical structure of a statement: token kinds, and the text of everything that is
    not a literal (so a value may change what a literal holds, never anything else)."""
    return [(t.kind, "" if t.kind in ("string", "qident") else t.text) for t in tokenize(sql)]


TEMPLATES = [
    "SELECT $h",
    "SELECT 1-$h, E$h, foo$h",
    "SELECT 'a $h b', E'a\\' $h', U&'$h', \"$h\"",
    "SELECT 1 -- $h\n, 2 /* $h /* $h */ */, $h",
    "DO $$BEGIN PERFORM $h, '$h'; END$$",
    "SELECT $q$ x $h $q$, $h",
    "INSERT INTO t SELECT * FROM $r.*",
]


@FAST
@given(st.sampled_from(TEMPLATES), st.text(max_size=30), st.text(max_size=10))
def test_a_value_never_changes_the_statement(template: str, value: str, other: str) -> None:
    hostile = {
        "h": {"rows": [{"v": value}], "row_count": 1},
        "r": {"rows": [{"c": value, "d": other}], "row_count": 1},
    }
    benign = {
        "h": {"rows": [{"v": "x"}], "row_count": 1},
        "r": {"rows": [{"c": "x", "d": "y"}], "row_count": 1},
    }
    try:
        out = substitute_sql(template, hostile, {})
    except SubstitutionError:
        return  # refused (NUL, or it would end a dollar quote): nothing runs
    assert _shape(out) == _shape(substitute_sql(template, benign, {}))


@FAST
@given(st.text(max_size=40))
def test_hostile_string_in_code_is_exactly_one_literal(value: str) -> None:
    b = {"h": {"rows": [{"v": value}], "row_count": 1}}
    try:
        out = substitute_sql("SELECT $h", b, {})
    except SubstitutionError:
        assert "\x00" in value
        return
    literal = out.removeprefix("SELECT ")
    assert literal == quote_literal(value)
    tokens = tokenize(out)
    assert [t.kind for t in tokens] == ["word", "string"]
    assert tokens[1].text == literal


class _AnyRow(dict[str, Any]):
    """A row that has every column: column ``c`` holds ``<c>``."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> Any:
        return f"<{key}>"

    def get(self, key: str, default: Any = None) -> Any:
        return f"<{key}>"


ref_texts = st.lists(
    st.sampled_from([*list("$a{}.?*_1b$ x"), "$a", "{v}", "$ab", "$a.*?", "$b.c?"]), max_size=25
).map("".join)


@FAST
@given(ref_texts)
def test_references_are_where_the_checker_finds_them(text: str) -> None:
    row = _AnyRow({"first": "<first>"})
    b = {name: {"rows": [row], "row_count": 1} for name in ("a", "b")}
    v = {"v": "[v]"}
    expected: list[str] = []
    pos = 0
    for r in checker_refs.scan(text, results=b, variables=v):
        expected.append(text[pos : r.start])
        if r.kind == "var":
            expected.append(v[r.name])
        elif r.star:
            expected.append(json.dumps([{"first": "<first>"}], separators=(",", ":")))
        else:
            expected.append(f"<{r.column}>" if r.column else "<first>")
        pos = r.end
    expected.append(text[pos:])
    assert substitute_raw(text, b, v) == "".join(expected)


# -- the checker and the runtime find the same references in SQL ---------------------------------
#
# Texts are generated from pieces whose meaning is known: references named `r<n>` stand where
# they count (code, every form of literal, dollar-quoted bodies, nested), those named `c<n>` in
# comments (nested too, also inside bodies). The checker must report exactly the `r` references,
# and the runtime must substitute exactly them, in the same order.


class _Names:
    """Hands out fresh reference names during one draw."""

    def __init__(self) -> None:
        self.n = 0

    def take(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"


_SUFFIXES = ["", ".v", "?", ".v?", ".*"]
_WORDS = ["SELECT", "x", "1", "+", "(", ")", ",", ";", "::int", "a$b$", "$1", "{v}", "\n", "é"]
_TEXT = st.sampled_from(["a", " ", "x y", ";", "--", "/", "*", "(", "é", "\t", "{v}"])


@st.composite
def _ref(draw: st.DrawFn, names: _Names, prefix: str) -> str:
    return f" ${names.take(prefix)}{draw(st.sampled_from(_SUFFIXES))} "


@st.composite
def _literal(draw: st.DrawFn, names: _Names) -> str:
    form = draw(st.sampled_from(["'", "E'", "U&'", "N'", "B'", "X'", '"', 'U&"']))
    quote = form[-1]
    units = [_TEXT, _ref(names, "r")]
    if form not in ("B'", "X'"):  # these have no way to write a quote
        units.append(st.just(quote * 2))
    if form == "E'":
        units.append(st.sampled_from(["\\\\", "\\'", "\\n", "\\$c0"]))
    body = "".join(draw(st.lists(st.one_of(*units), max_size=5)))
    more = ""
    if quote == "'" and draw(st.booleans()):  # continued across a newline, maybe a comment
        more = draw(st.sampled_from(["\n", " -- $c0\n ", "\n-- $c0\n"])) + "' $r0x '"
    return form + body + quote + more


@st.composite
def _comment(draw: st.DrawFn, names: _Names) -> str:
    inner = " ".join(
        draw(
            st.lists(st.one_of(_TEXT.filter(lambda t: t not in "/*"), _ref(names, "c")), max_size=4)
        )
    )
    if draw(st.booleans()):
        return "--" + inner.replace("\n", " ") + "\n"
    nested = draw(st.booleans())
    return "/*" + inner + (" /* $c0 */ " if nested else "") + "*/"


@st.composite
def _code(draw: st.DrawFn, names: _Names, tags: tuple[str, ...], depth: int) -> str:
    pieces = [
        st.sampled_from(_WORDS),
        _ref(names, "r"),
        _literal(names),
        _comment(names),
    ]
    free = [t for t in ("$$", "$q$", "$body$", "$t1$") if t not in tags]
    if depth < 3 and free:
        pieces.append(_dollar(names, tags, free, depth))
    return " ".join(draw(st.lists(st.one_of(*pieces), max_size=6)))


@st.composite
def _dollar(
    draw: st.DrawFn, names: _Names, tags: tuple[str, ...], free: list[str], depth: int
) -> str:
    tag = draw(st.sampled_from(free))
    return tag + " " + draw(_code(names, (*tags, tag), depth + 1)) + " " + tag


@st.composite
def sql_texts(draw: st.DrawFn) -> str:
    return draw(_code(_Names(), (), 0))


_MARK = re.compile(r"«(\w+)»")


class _MarkRow(dict[str, Any]):
    """A row that has every column, each holding the mark of its result."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> Any:
        return super().__getitem__("v")


def _marks(text: str, names: list[str]) -> str:
    """``text`` substituted with each result's values marked ``«name»``."""
    b = {n: {"rows": [_MarkRow(v=f"«{n}»")], "row_count": 1} for n in names}
    return substitute_sql(text, b, {"v": "v_1"})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sql_texts())
def test_checker_and_runtime_find_the_same_references(text: str) -> None:
    every = [r.name for r in checker_refs.scan(text) if r.kind == "result"]
    expected = [n for n in every if n.startswith("r") and n != "r0x"]
    assert "r0x" not in every or text.count("$r0x") == every.count("r0x")
    found = [r.name for r in checker_refs.scan(text, sql=True) if r.kind == "result"]
    assert [n for n in found if n != "r0x"] == expected  # never a `c`: comments hold none
    assert _MARK.findall(_marks(text, every)) == found


messy = st.lists(
    st.sampled_from(
        [
            *"$'\"\\-/*\n E&Uux;()",
            *("$a", "$b.v", "$a?", "$a.*", "{v}", "$$", "$q$", "--", "/*", "*/"),
            *("E'", "B'", "U&'", "\\'", "''"),
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messy)
def test_checker_and_runtime_agree_on_any_text(text: str) -> None:
    refs = checker_refs.scan(text, results={"a", "b"}, variables={"v"}, sql=True)
    found = [r.name for r in refs if r.kind == "result"]
    assert _MARK.findall(_marks(text, ["a", "b"])) == found
