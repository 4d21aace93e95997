"""References in step text (SPEC §1.4): every form, both contexts, quoting and boundaries."""

from __future__ import annotations

import pytest

from dfc.runtime import codes
from dfc.runtime.substitute import (
    MAX_INLINE_ROWS,
    SubstitutionError,
    is_whole_reference,
    mentions_reference,
    sql_literal,
    substitute_raw,
    substitute_sql,
)
from dfc.sqlquote import quote_literal


def rows(*dicts: dict[str, object]) -> dict[str, object]:
    return {"rows": list(dicts), "row_count": len(dicts)}


B = {
    "a": rows({"x": 1, "y": "it's"}),
    "ab": rows({"z": -3}),
    "empty": rows(),
    "nul": rows({"v": None, "w": 2}),
    "resp": {"status": 200, "body": "hi", "ok": True, "headers": {"a": "b"}},
    "sig": {"signal_name": "go", "timed_out": False, "data": {"k": [1, 2]}},
    "pair": [rows({"x": 1}), rows({"x": 2})],
    "brk": "done",
    "none": None,
    "f": rows({"v": 1.5, "j": {"a": 1}, "arr": [1, "x"], "t": True, "n": "123.4500"}),
}
V = {"table": "users", "limit": "5", "sys_instance_id": "abcd1234", "sys_label": "lbl"}


def sql(text: str) -> str:
    return substitute_sql(text, B, V)


def raw(text: str) -> str:
    return substitute_raw(text, B, V)


# -- the forms, SQL context ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT $a", "SELECT 1"),  # first column of the first row
        ("SELECT $a.y", "SELECT 'it''s'"),
        ("SELECT $a.x + 1", "SELECT 1 + 1"),
        ("SELECT $ab", "SELECT (-3)"),  # negative numbers parenthesised
        ("SELECT 1-$ab", "SELECT 1-(-3)"),  # never a `--` comment
        (
            "SELECT $f, $f.j, $f.arr, $f.t, $f.n",
            """SELECT 1.5, '{"a":1}', '[1,"x"]', true, '123.4500'""",
        ),
        ("SELECT $empty?", "SELECT NULL"),
        ("SELECT $empty.x?", "SELECT NULL"),
        ("SELECT $nul.v?", "SELECT NULL"),
        ("SELECT $nul?", "SELECT NULL"),
        ("SELECT $nul.w", "SELECT 2"),
        ("SELECT $none?", "SELECT NULL"),
        # results without rows: one quoted JSON literal; fields read top-level
        ("SELECT $resp", """SELECT '{"status":200,"body":"hi","ok":true,"headers":{"a":"b"}}'"""),
        ("SELECT $resp.status, $resp.body, $resp.ok", "SELECT 200, 'hi', true"),
        ("SELECT $resp.headers", """SELECT '{"a":"b"}'"""),
        (
            "SELECT $sig::jsonb->>'timed_out'",
            """SELECT '{"signal_name":"go","timed_out":false,"data":{"k":[1,2]}}'::jsonb->>'timed_out'""",
        ),
        ("SELECT $sig.data", """SELECT '{"k":[1,2]}'"""),
        (
            "SELECT $pair",
            """SELECT '[{"rows":[{"x":1}],"row_count":1},{"rows":[{"x":2}],"row_count":1}]'""",
        ),
        ("SELECT $brk", """SELECT '"done"'"""),
    ],
)
def test_sql_forms(text: str, expected: str) -> None:
    assert sql(text) == expected


def test_star_relation() -> None:
    assert sql("SELECT * FROM $a.*") == (
        """SELECT * FROM (VALUES (1, 'it''s'::text)) AS "a"("x", "y")"""
    )
    assert sql("SELECT * FROM $f.*") == (
        """SELECT * FROM (VALUES (1.5, '{"a":1}'::jsonb, '[1,"x"]'::jsonb, true, """
        """'123.4500'::text)) AS "f"("v", "j", "arr", "t", "n")"""
    )
    two = {"r": rows({"id": 1, "s": None}, {"id": 2, "s": "b"})}
    assert substitute_sql("$r.*", two, {}) == (
        """(VALUES (1, NULL), (2, 'b'::text)) AS "r"("id", "s")"""
    )
    assert sql("SELECT * FROM $empty.*") == 'SELECT * FROM (SELECT NULL WHERE false) AS "empty"'
    quoted = {"q": rows({'we"ird': 1})}
    assert substitute_sql("$q.*", quoted, {}) == '(VALUES (1)) AS "q"("we""ird")'


def test_star_limit() -> None:
    big = {"big": rows(*({"i": i} for i in range(MAX_INLINE_ROWS + 1)))}
    with pytest.raises(SubstitutionError) as e:
        substitute_sql("SELECT * FROM $big.*", big, {})
    assert e.value.code == codes.TOO_MANY_ROWS
    assert "table" in e.value.message
    ok = {"big": rows(*({"i": i} for i in range(MAX_INLINE_ROWS)))}
    assert substitute_sql("$big.*", ok, {}).startswith("(VALUES (0), (1)")


def test_star_needs_rows() -> None:
    for text in ("$resp.*", "$sig.*"):
        with pytest.raises(SubstitutionError) as e:
            sql(text)
        assert e.value.code == codes.NOT_A_ROW_SET
        with pytest.raises(SubstitutionError):
            raw(text)


def test_missing_value_errors_name_the_reference_and_suggest_fixes() -> None:
    with pytest.raises(SubstitutionError) as e:
        sql("SELECT $empty")
    assert e.value.code == codes.MISSING_VALUE
    assert e.value.reference == "$empty"
    assert "$empty?" in e.value.message and "df.if_rows('empty'" in e.value.message
    with pytest.raises(SubstitutionError) as e:
        sql("SELECT $nul.v")
    assert "$nul.v?" in e.value.message and "NULL" in e.value.message
    with pytest.raises(SubstitutionError):
        sql("SELECT $none")
    with pytest.raises(SubstitutionError):
        raw("$empty.x")


def test_missing_column_verbatim_in_sql_fails_raw() -> None:
    assert sql("SELECT $a.nope, $resp.nope") == "SELECT $a.nope, $resp.nope"
    for text in ("$a.nope", "$resp.nope", "$a.nope?"):
        with pytest.raises(SubstitutionError) as e:
            raw(text)
        assert e.value.code == codes.UNKNOWN_FIELD
    with pytest.raises(SubstitutionError) as e:
        raw("$a.nope")
    assert "x, y" in e.value.message  # the columns that do exist


# -- boundaries and what stays untouched -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "SELECT $1, $2::int",  # positional parameters
        "SELECT $$a$$",  # dollar quotes
        "SELECT $unknown, $unknown.col, $unknown?",  # no such binding
        "SELECT $abc",  # `$a` never matches inside `$abc`
        "SELECT $a$b",  # nor before a `$`
        "SELECT {nope}",  # unknown variable
    ],
)
def test_untouched(text: str) -> None:
    assert sql(text) == text
    assert raw(text) == text


def test_glued_references_cannot_make_prefixed_literals() -> None:
    # `E$x` must not become the escape string E'...', where a backslash could end the literal.
    b = {"x": rows({"v": "\\'; DROP TABLE t; --"})}
    assert substitute_sql("SELECT E$x", b, {}) == "SELECT E E'\\\\''; DROP TABLE t; --'"
    assert substitute_sql("SELECT foo$x.v", b, {}) == "SELECT foo E'\\\\''; DROP TABLE t; --'"
    assert substitute_raw("foo$x", b, {}) == "foo\\'; DROP TABLE t; --"
    # The grammar is dfc.references': only ASCII word characters and `$` continue a name.
    assert sql("SELECT $aé") == "SELECT 1é"


def test_longest_name_wins() -> None:
    assert sql("SELECT $ab, $a") == "SELECT (-3), 1"
    assert sql("SELECT $a.x.y") == "SELECT 1.y"
    assert sql("$a;$a,$a)") == "1;1,1)"
    assert raw("$a.") == "1."  # a dot not followed by a name ends the reference


def test_dollar_tag_named_like_a_binding_is_a_quote() -> None:
    assert sql("SELECT $a$ text $a$") == "SELECT $a$ text $a$"


# -- variables -----------------------------------------------------------------------------------


def test_vars_are_raw_and_first_and_never_rescanned() -> None:
    assert sql("SELECT * FROM {table} LIMIT {limit}") == "SELECT * FROM users LIMIT 5"
    assert raw("{sys_instance_id}/{sys_label}") == "abcd1234/lbl"
    sneaky = {"v": "$a {table}"}
    assert substitute_sql("SELECT '{v}', {v}", B, sneaky) == "SELECT '$a {table}', $a {table}"
    assert substitute_raw("{v}", B, sneaky) == "$a {table}"


# -- quoting: nothing a value holds changes the statement ----------------------------------------

HOSTILE = [
    "'; DROP TABLE t; --",
    "\\'; DROP TABLE t; --",
    "it''s",
    "$$; DROP TABLE t; $$",
    "*/ DROP TABLE t; /*",
    "\n DROP TABLE t; --",
    '"; DROP TABLE t; --',
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_strings_stay_one_literal(value: str) -> None:
    b = {"h": rows({"v": value})}
    assert substitute_sql("SELECT $h", b, {}) == "SELECT " + quote_literal(value)


@pytest.mark.parametrize("value", HOSTILE)
def test_inside_string_literals_values_are_escaped_not_quoted(value: str) -> None:
    b = {"h": rows({"v": value})}
    doubled = value.replace("'", "''")
    if "\\" in value:  # an escape string, which no session setting reads differently
        assert substitute_sql("SELECT 'x$h'", b, {}) == (
            "SELECT E'x" + doubled.replace("\\", "\\\\") + "'"
        )
    else:
        assert substitute_sql("SELECT 'x$h'", b, {}) == f"SELECT 'x{doubled}'"
    assert (
        substitute_sql("SELECT E'x$h'", b, {})
        == "SELECT E'x" + value.replace("'", "''").replace("\\", "\\\\") + "'"
    )
    assert (
        substitute_sql('SELECT 1 AS "$h"', b, {})
        == 'SELECT 1 AS "' + value.replace('"', '""') + '"'
    )


def test_inside_literals_common_idioms() -> None:
    b = {"who": rows({"name": "Bob"}), "n": rows({"v": 5}), "r": {"a": 1}}
    assert substitute_sql("SELECT 'Hello $who'", b, {}) == "SELECT 'Hello Bob'"
    assert substitute_sql("SELECT '$n'::int", b, {}) == "SELECT '5'::int"
    assert substitute_sql("SELECT '$r'::jsonb", b, {}) == """SELECT '{"a":1}'::jsonb"""
    assert substitute_sql("SELECT '$who.*'", b, {}) == """SELECT '[{"name":"Bob"}]'"""
    assert substitute_sql("SELECT 'it''s $who'", b, {}) == "SELECT 'it''s Bob'"
    assert substitute_sql(r"SELECT E'\'$who'", b, {}) == r"SELECT E'\'Bob'"


def test_comments_are_left_alone() -> None:
    b = {"h": rows({"v": "\nDROP TABLE t; --"})}
    text = "SELECT 1 -- uses $h\n, 2 /* $h /* nested $h */ $h */ + $h"
    assert substitute_sql(text, b, {}) == (
        "SELECT 1 -- uses $h\n, 2 /* $h /* nested $h */ $h */ + '\nDROP TABLE t; --'"
    )


def test_dollar_quoted_bodies_are_code_and_cannot_be_closed_by_a_value() -> None:
    b = {
        "h": rows({"v": "x"}),
        "bad": rows({"v": "$$; DROP TABLE t; --"}),
        "tag": rows({"v": "a $f$ b"}),
    }
    assert substitute_sql("DO $$BEGIN PERFORM $h; END$$", b, {}) == "DO $$BEGIN PERFORM 'x'; END$$"
    assert substitute_sql("DO $f$BEGIN RAISE NOTICE '%', '$h'; END$f$", b, {}) == (
        "DO $f$BEGIN RAISE NOTICE '%', 'x'; END$f$"
    )
    for text in ("DO $$BEGIN PERFORM $bad; END$$", "DO $$ BEGIN PERFORM 'x$bad'; END $$"):
        with pytest.raises(SubstitutionError) as e:
            substitute_sql(text, b, {})
        assert e.value.code == codes.UNSAFE_VALUE
    with pytest.raises(SubstitutionError):
        substitute_sql("DO $$ $f$ $tag $f$ $$", b, {})  # an inner tag counts too
    # outside any dollar quote the same value is just a literal
    assert substitute_sql("SELECT $bad", b, {}) == "SELECT '$$; DROP TABLE t; --'"


def test_nul_characters_fail() -> None:
    b = {"z": rows({"v": "a\x00b"})}
    with pytest.raises(SubstitutionError) as e:
        substitute_sql("SELECT $z", b, {})
    assert e.value.code == codes.UNSAFE_VALUE
    assert substitute_raw("$z", b, {}) == "a\x00b"


def test_sql_literal_scalars() -> None:
    assert sql_literal(None) == "NULL"
    assert sql_literal(True) == "true"
    assert sql_literal(0) == "0"
    assert sql_literal(-0.5) == "(-0.5)"
    assert sql_literal(1e300) == "1e+300"
    assert sql_literal(float("nan")) == "'NaN'::float8"
    assert sql_literal(float("-inf")) == "'-Infinity'::float8"
    assert sql_literal({"a": "'"}) == """'{"a":"''"}'"""


# -- raw context ----------------------------------------------------------------------------------


def test_raw_forms() -> None:
    assert raw("id=$a&name=$a.y") == "id=1&name=it's"
    assert raw('{"rows": $a.*}') == '{"rows": [{"x":1,"y":"it\'s"}]}'
    assert raw("$resp") == '{"status":200,"body":"hi","ok":true,"headers":{"a":"b"}}'
    assert raw("$resp.status $resp.ok $resp.headers") == '200 true {"a":"b"}'
    assert raw("$empty? $nul.v?") == "null null"
    assert raw("$f.j $f.t $brk") == '{"a":1} true "done"'
    assert raw("$empty.*") == "[]"


def test_helpers() -> None:
    assert is_whole_reference("$blob")
    assert is_whole_reference(" $blob.data? ")
    assert not is_whole_reference("x$blob")
    assert not is_whole_reference("$blob.*")
    assert mentions_reference("abc$a", B)
    assert not mentions_reference("$ab$", B)
    assert not mentions_reference("$zzz", B)


# -- where references count: the rule of dfc.references, shared with the checker ----------------


def test_dollar_quote_delimiters_and_comments_in_bodies_are_never_references() -> None:
    b = {"SELECT": rows({"v": 1}), "BEGIN": rows({"v": 2}), "missing": rows({"v": 3})}
    for text in (
        "CREATE FUNCTION add_one(i int) RETURNS int AS $$SELECT i + 1$$ LANGUAGE sql",
        "DO $$BEGIN PERFORM 1; END$$",
        "SELECT $$it's$$ AS a",
        "DO $$ BEGIN PERFORM 1; -- see $missing\nEND $$",
        "DO $$ BEGIN /* $missing */ PERFORM 1; END $$",
    ):
        assert substitute_sql(text, b, {}) == text


def test_an_escaped_dollar_in_an_escape_string_starts_no_reference() -> None:
    assert sql(r"SELECT E'\$a', E'\\$a'") == r"SELECT E'\$a', E'\\1'"


# -- whatever standard_conforming_strings is ------------------------------------------------------


def test_plain_literals_with_a_backslash_become_escape_strings_where_values_go() -> None:
    b = {"h": rows({"v": "\\'); DROP TABLE victim; --"}), "n": rows({"v": 1})}
    # the value's backslash: the literal is written so that no setting changes it
    assert substitute_sql("SELECT 'x $h'", b, {}) == ("SELECT E'x \\\\''); DROP TABLE victim; --'")
    # the user's own backslashes keep their standard meaning, in the code around a value too
    assert substitute_sql(r"SELECT 'a\', $n, 'b'", b, {}) == r"SELECT E'a\\', 1, 'b'"
    assert substitute_sql(r"SELECT '\'", b, {}) == r"SELECT '\'"  # no value: unchanged
    assert substitute_sql(r"SELECT N'\' || $n", b, {}) == r"SELECT NCHAR E'\\' || 1"
    assert substitute_sql(r"SELECT t'\' || $n", b, {}) == r"SELECT t E'\\' || 1"
    # a continued literal is one literal: only its first segment takes the E
    assert substitute_sql("SELECT 'a $n'\n'\\'", b, {}) == "SELECT E'a 1'\n'\\\\'"
    # a dollar-quoted body without values is left as it is (it may not be SQL at all)
    assert substitute_sql(r"SELECT $n; CREATE FUNCTION f() AS $$ '\' $$", b, {}) == (
        r"SELECT 1; CREATE FUNCTION f() AS $$ '\' $$"
    )
    assert substitute_sql(r"DO $$ BEGIN PERFORM 'a\', $n; END $$", b, {}) == (
        r"DO $$ BEGIN PERFORM E'a\\', 1; END $$"
    )


def test_bit_strings_cannot_hold_a_quote() -> None:
    b = {"h": rows({"v": "' || pg_sleep(10)::text || '"}), "ok": rows({"v": "0101"})}
    assert substitute_sql("SELECT B'$ok', X'$ok'", b, {}) == "SELECT B'0101', X'0101'"
    for text in ("SELECT B'$h'", "SELECT X'$h'"):
        with pytest.raises(SubstitutionError) as e:
            substitute_sql(text, b, {})
        assert e.value.code == codes.UNSAFE_VALUE


def test_unicode_literals_double_their_escape_character() -> None:
    b = {"h": rows({"v": "a\\0041!0041'"})}
    assert substitute_sql("SELECT U&'$h'", b, {}) == "SELECT U&'a\\\\0041!0041'''"
    assert substitute_sql("SELECT U&'$h' UESCAPE '!'", b, {}) == (
        "SELECT U&'a\\0041!!0041''' UESCAPE '!'"
    )
    assert substitute_sql('SELECT U&"$h"', b, {}) == 'SELECT U&"a\\\\0041!0041\'"'


def test_a_value_cannot_close_a_dollar_quote_early_from_its_end() -> None:
    # Inside the unterminated literal of the body, a value ending in `$b` would make the
    # closing `$b$` start one character early.
    b = {"v": rows({"x": "x$b"})}
    with pytest.raises(SubstitutionError) as e:
        substitute_sql("SELECT $b$ '$v?$b$", b, {})
    assert e.value.code == codes.UNSAFE_VALUE


def test_a_variable_holding_a_double_quote_cannot_stand_in_a_quoted_identifier() -> None:
    v = {"t": '"x"'}
    assert substitute_sql("SELECT to_regclass('{t}'), {t}", B, v) == (
        """SELECT to_regclass('"x"'), "x\""""
    )
    with pytest.raises(SubstitutionError) as e:
        substitute_sql('SELECT 1 AS "col_{t}"', B, v)
    assert e.value.code == codes.UNSAFE_VALUE
    assert "{t}" in e.value.message
    assert substitute_sql('SELECT 1 AS "col_{t}"', B, {"t": "x"}) == 'SELECT 1 AS "col_x"'
