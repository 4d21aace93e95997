"""Parameter types (dfc.params): the checker's defaults and the values given at start agree."""

from __future__ import annotations

import pytest

from dfc.compiler import compile_source
from dfc.diagnostics import DfcError
from dfc.params import ParamValueError, substitution_text, typed_value
from dfc.plan.model import Plan
from dfc.runtime.instances import validate_vars
from dfc.source import SourceFile

HOSTILE_IDENT = '"x\'); DROP TABLE victim; --"'

# (type, the value as written in a default, the value as given at start, its text or None)
CASES = [
    ("bool", "'y'", "y", None),
    ("bool", "'n'", "n", None),
    ("bool", "'maybe'", "maybe", None),
    *(("bool", f"'{w}'", w, "true") for w in ("true", "t", "yes", "on", "1", " TRUE ")),
    *(("bool", f"'{w}'", w, "false") for w in ("false", "f", "no", "off", "0", "Off")),
    ("bool", "TRUE", True, "true"),
    ("bool", "1", 1, "true"),
    ("bool", "NULL", None, None),
    ("int", "500", "500", "500"),
    ("int", "' 7 '", " 7 ", "7"),
    ("int", "'many'", "many", None),
    ("int", "1.5", "1.5", None),
    ("int", "TRUE", True, None),
    ("int", "NULL", None, None),
    ("numeric", "1.5", "1.5", "1.5"),
    ("numeric", "'NaN'", "NaN", None),
    ("numeric", "'x'", "x", None),
    ("json", '\'{"b": 1, "a": [2]}\'', '{"b": 1, "a": [2]}', '{"a":[2],"b":1}'),
    ("json", "'{oops'", "{oops", None),
    ("json", "NULL", None, "null"),
    ("text", "NULL", None, ""),
    ("text", "'it''s'", "it's", "it's"),
    ("ident", "'orders'", "orders", "orders"),
    ("ident", "'archive.orders'", "archive.orders", "archive.orders"),
    ("ident", "'\"Order Items\"'", '"Order Items"', '"Order Items"'),
    ("ident", "'public.\"Order Items\"'", 'public."Order Items"', 'public."Order Items"'),
    ("ident", "$v$" + HOSTILE_IDENT + "$v$", HOSTILE_IDENT, None),
    ("ident", "'orders; DROP TABLE x'", "orders; DROP TABLE x", None),
    ("ident", "'a$b'", "a$b", None),  # `$` could end a dollar quote
    ("ident", "'\"a$b\"'", '"a$b"', None),
    ("ident", "'\"a\\b\"'", '"a\\b"', None),
    ("ident", "'\"a--b\"'", '"a--b"', None),
    ("ident", "'\"a*/b\"'", '"a*/b"', None),
    ("ident", "'\"a/*b\"'", '"a/*b"', None),
    ("ident", '\'"a""b"\'', '"a""b"', None),
    ("ident", "E'\"a\\nb\"'", '"a\nb"', None),
    ("ident", "'a.b.c'", "a.b.c", None),
    ("ident", "NULL", None, None),
]


def _plan(type_: str) -> Plan:
    comp = compile_source(SourceFile("p.df", f"param p {type_};\n'SELECT {{p}}'\n"))
    assert comp.plan is not None, comp.sorted_diagnostics
    return comp.plan


def _checker_accepts(type_: str, default: str) -> bool:
    comp = compile_source(SourceFile("p.df", f"param p {type_} = {default};\n'SELECT {{p}}'\n"))
    return comp.plan is not None


@pytest.mark.parametrize(("type_", "default", "given", "text"), CASES)
def test_both_places_agree(type_: str, default: str, given: object, text: str | None) -> None:
    assert _checker_accepts(type_, default) == (text is not None)
    if text is None:
        with pytest.raises(DfcError, match="parameter p must be"):
            validate_vars(_plan(type_), {"p": given})
    else:
        assert validate_vars(_plan(type_), {"p": given}) == {"p": text}


def test_messages_name_the_parameter_and_the_problem() -> None:
    comp = compile_source(SourceFile("p.df", "param flag bool = 'y';\n'SELECT {flag}'\n"))
    (d,) = comp.sorted_diagnostics
    assert d.message == (
        "the default of `flag` is not a valid bool: 'y' is not a boolean (true or false)"
    )
    assert d.help == "TRUE or FALSE"
    with pytest.raises(DfcError) as e:
        validate_vars(_plan("ident"), {"p": HOSTILE_IDENT})
    assert e.value.message.startswith("parameter p must be a SQL identifier")
    assert "may not hold" in e.value.message


def test_substitution_text_raises_only_param_value_errors() -> None:
    assert substitution_text("text", {"b": 1, "a": 2}) == '{"a":2,"b":1}'
    with pytest.raises(ParamValueError) as e:
        substitution_text("int", "x")
    assert e.value.problem("'x'") == "'x' is not an integer"


@pytest.mark.parametrize(
    ("type_", "given", "value"),
    [
        ("int", "100", 100),
        ("int", " -3 ", -3),
        ("numeric", "2.50", 2.5),
        ("bool", "yes", True),
        ("bool", "off", False),
        ("json", '{"b": [1, null], "a": "x"}', {"a": "x", "b": [1, None]}),
        ("text", "100", "100"),
        ("ident", "archive.orders", "archive.orders"),
        ("int", "1" * 5000, "1" * 5000),  # more digits than Python converts: stays text
    ],
)
def test_typed_value_reads_the_substitution_text_as_its_type(
    type_: str, given: str, value: object
) -> None:
    assert typed_value(type_, substitution_text(type_, given)) == value
