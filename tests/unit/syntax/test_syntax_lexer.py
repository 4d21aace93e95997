"""The hand-written lexer: every string form, escapes, exact text maps, comments, errors."""

from __future__ import annotations

import pytest

from dfc.source import SourceFile
from dfc.syntax import codes
from dfc.syntax.lexer import Lexed, StringValue, lex


def scan(text: str) -> Lexed:
    return lex(SourceFile("t.df", text))


def kinds(text: str) -> list[str]:
    return [t.type for t in scan(text).tokens]


def string(text: str) -> StringValue:
    """The decoded value of the only string literal in ``text`` (which must lex cleanly)."""
    out = scan(text)
    assert out.diagnostics == [], [d.message for d in out.diagnostics]
    assert len(out.strings) == 1, out.strings
    return next(iter(out.strings.values()))


def offsets(text: str) -> list[int]:
    """File offset of every character of the decoded value, through the TextMap."""
    sv = string(text)
    return [sv.text_map.offset(i) for i in range(len(sv.value))]


def codes_of(text: str) -> list[str]:
    return [d.code for d in scan(text).diagnostics]


# -- string forms ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "value"),
    [
        ("'abc'", "abc"),
        ("''", ""),
        ("'it''s'", "it's"),
        ("''''", "'"),
        ("'a\\nb'", "a\\nb"),  # standard_conforming_strings: backslashes are literal
        ("E'a\\nb'", "a\nb"),
        ("e'tab\\there'", "tab\there"),
        ("E'\\b\\f\\r'", "\b\f\r"),
        ("E'\\\\'", "\\"),
        ("E'\\''", "'"),
        ("E'it''s'", "it's"),
        ("E'\\x41\\x4a'", "AJ"),
        ("E'\\x4'", "\x04"),
        ("E'\\101\\7'", "A\x07"),
        ("E'\\u00e9'", "é"),
        ("E'\\U0001F600'", "😀"),
        ("E'\\uD83D\\uDE00'", "😀"),
        ("E'\\xc3\\xa9'", "é"),  # byte escapes form UTF-8, as in PostgreSQL
        ("E'\\q'", "q"),  # unknown escapes stand for the character
        ("E'\\xg'", "xg"),
        ("N'national'", "national"),
        ("U&'d\\0061t\\+000061'", "data"),
        ("U&'d!0061t!!' UESCAPE '!'", "dat!"),
        ("$$it's$$", "it's"),
        ("$$$$", ""),
        ("$sql$SELECT $$x$$$sql$", "SELECT $$x$$"),
        ("$a$ \\n $b$ $a$", " \\n $b$ "),
        ("$_1$x$_1$", "x"),
    ],
)
def test_string_values(src: str, value: str) -> None:
    assert string(src).value == value


def test_all_string_forms_are_one_token_kind() -> None:
    assert kinds("'a' ~> E'b' ~> $$c$$ ~> $t$d$t$ ~> U&'e' ~> N'f'") == [
        "STRING",
        "SEQ",
        "STRING",
        "SEQ",
        "STRING",
        "SEQ",
        "STRING",
        "SEQ",
        "STRING",
        "SEQ",
        "STRING",
        "$END",
    ]


# -- text maps --------------------------------------------------------------------------------------


def test_text_map_plain() -> None:
    assert offsets("  'abc'") == [3, 4, 5]


def test_text_map_doubled_quote_maps_to_first_quote() -> None:
    #             0123456789
    assert offsets("'it''s'") == [1, 2, 3, 5]


def test_text_map_e_escapes() -> None:
    # E'a\nb\x41c'  →  a \n b A c
    src = "E'a\\nb\\x41c'"
    assert string(src).value == "a\nbAc"
    assert offsets(src) == [2, 3, 5, 6, 10]


def test_text_map_unicode_escapes() -> None:
    src = "E'\\u00e9x\\uD83D\\uDE00y'"
    assert string(src).value == "éx😀y"
    assert offsets(src) == [2, 8, 9, 21]


def test_text_map_dollar_quotes() -> None:
    src = "$tag$SELECT 'x'$tag$"
    assert offsets(src) == list(range(5, 15))


def test_text_map_concatenation_across_lines() -> None:
    src = "'ab'\n  -- comment\n  'cd'"
    sv = string(src)
    assert sv.value == "abcd"
    assert [sv.text_map.offset(i) for i in range(4)] == [1, 2, 21, 22]
    assert src[21:23] == "cd"


def test_text_map_concatenation_keeps_e_mode() -> None:
    # As in PostgreSQL: the continuation of an E'' literal is decoded with E'' rules.
    src = "E'a\\t'\n'\\n'"
    sv = string(src)
    assert sv.value == "a\t\n"
    assert [sv.text_map.offset(i) for i in range(3)] == [2, 3, 8]


def test_text_map_mixed_forms_concatenate() -> None:
    src = "'a''b'\n$$c'd$$\nE'\\x65'"
    sv = string(src)
    assert sv.value == "a'bc'de"
    assert [src[sv.text_map.offset(i)] for i in range(len(sv.value))] == [
        "a",
        "'",
        "b",
        "c",
        "'",
        "d",
        "\\",
    ]


def test_text_map_end_maps_past_the_value() -> None:
    sv = string("E'ab\\n'")
    assert sv.text_map.offset(sv.text_map.length) == 6  # just past the escape, at the closing quote
    sv = string("'abc'")
    assert sv.text_map.offset(3) == 4


def test_text_map_spans_point_into_the_file() -> None:
    file = SourceFile("t.df", "df.sql('SELECT ''x'' FROM t')")
    sv = next(iter(lex(file).strings.values()))
    k = sv.value.index("FROM")
    span = sv.text_map.span(file, k, k + 4)
    assert span.text == "FROM"
    q = sv.value.index("'")
    assert file.text[sv.text_map.offset(q) : sv.text_map.offset(q) + 2] == "''"


def test_empty_string_text_map() -> None:
    sv = string("x ~> ''")
    assert sv.value == ""
    assert sv.text_map.offset(0) == 6


# -- comments and other tokens ---------------------------------------------------------------------


def test_comments_are_kept_not_tokens() -> None:
    out = scan("-- a\n'x' /* b /* nested */ c */ ~> 'y' -- d")
    assert [t.type for t in out.tokens] == ["STRING", "SEQ", "STRING", "$END"]
    assert [c.text for c in out.comments] == ["-- a", "/* b /* nested */ c */", "-- d"]
    assert [c.block for c in out.comments] == [False, True, False]


def test_crlf_line_comment_excludes_carriage_return() -> None:
    out = scan("-- a\r\n'x'")
    assert out.comments[0].text == "-- a"


def test_keywords_and_builtins_are_case_insensitive() -> None:
    out = scan("SELECT DF.SLEEP(1); Select df . Http('u'); param Def IMPORT null True false")
    assert [t.type for t in out.tokens][:5] == ["SELECT", "DFNAME", "_LPAR", "NUMBER", "_RPAR"]
    dfnames = [str(t) for t in out.tokens if t.type == "DFNAME"]
    assert dfnames == ["sleep", "http"]
    assert [t.type for t in out.tokens][-7:-1] == [
        "PARAM",
        "DEF",
        "IMPORT",
        "NULL",
        "TRUE",
        "FALSE",
    ]


def test_identifiers_keep_their_case() -> None:
    out = scan("myTemplate(Step)")
    assert [str(t) for t in out.tokens if t.type == "IDENT"] == ["myTemplate", "Step"]


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("a ~> b", ["IDENT", "SEQ", "IDENT"]),
        ("a |=> b", ["IDENT", "BIND", "IDENT"]),
        ("a&b|c", ["IDENT", "AMP", "IDENT", "PIPE", "IDENT"]),
        ("a ?> b !> c", ["IDENT", "THEN", "IDENT", "ELSE", "IDENT"]),
        ("@>a", ["LOOP", "IDENT"]),
        ("a<->b", ["IDENT", "UNDO", "IDENT"]),
        ("a ~>@> b", ["IDENT", "SEQ", "LOOP", "IDENT"]),  # an operator run splits into known ones
        ("x => 1, y := 2", ["IDENT", "ARROW", "NUMBER", "_COMMA", "IDENT", "ARROW", "NUMBER"]),
        ("'x'::jsonb", ["STRING", "DCOLON", "IDENT"]),
        ("-5", ["MINUS", "NUMBER"]),
        ("1.5 .5 1e3 2.5E-2", ["NUMBER", "NUMBER", "NUMBER", "NUMBER"]),
        ('"My Type"', ["QIDENT"]),
        ("param x = 1;", ["PARAM", "IDENT", "EQ", "NUMBER", "_SEMI"]),
    ],
)
def test_token_kinds(src: str, expected: list[str]) -> None:
    assert kinds(src) == [*expected, "$END"]


def test_token_offsets() -> None:
    out = scan("  df.sleep( 5 )")
    assert [(t.type, t.start_pos, t.end_pos) for t in out.tokens] == [
        ("DFNAME", 2, 10),
        ("_LPAR", 10, 11),
        ("NUMBER", 12, 13),
        ("_RPAR", 14, 15),
        ("$END", 15, 15),
    ]


# -- errors ---------------------------------------------------------------------------------------


def test_unterminated_string_points_at_opening_quote() -> None:
    out = scan("df.sql('SELECT 1) ~> df.sleep(1)")
    (d,) = out.diagnostics
    assert d.code == codes.UNTERMINATED_STRING
    assert d.span is not None and d.span.start == 7 and d.span.end == 8
    assert out.swallowed_from == 7
    assert [t.type for t in out.tokens] == ["DFNAME", "_LPAR", "ERROR", "$END"]


def test_unterminated_e_string_with_escaped_quote() -> None:
    out = scan("x ~> E'abc\\'")
    (d,) = out.diagnostics
    assert (d.code, d.span.start) == (codes.UNTERMINATED_STRING, 5)  # type: ignore[union-attr]


def test_unterminated_dollar_quote_points_at_opening_tag() -> None:
    out = scan("'a' ~> $sql$SELECT 1$$")
    (d,) = out.diagnostics
    assert d.code == codes.UNTERMINATED_DOLLAR
    assert d.span is not None and (d.span.start, d.span.end) == (7, 12)


def test_unterminated_comment_points_at_outer_opening() -> None:
    out = scan("'a' /* one /* two */ three")
    (d,) = out.diagnostics
    assert d.code == codes.UNTERMINATED_COMMENT
    assert d.span is not None and d.span.start == 4


def test_lexer_collects_several_errors_and_keeps_going() -> None:
    out = scan("df.sleep(10s) # x\n~> E'\\u12' ~> {url} ~> $ref ~> 'ok'")
    assert [d.code for d in out.diagnostics] == [
        codes.BAD_NUMBER,
        codes.UNEXPECTED_CHAR,
        codes.BAD_ESCAPE,
        codes.VAR_OUTSIDE_STRING,
        codes.REF_OUTSIDE_STRING,
    ]
    assert kinds("df.sleep(10s) # x\n~> 'ok'")[-2:] == ["STRING", "$END"]


@pytest.mark.parametrize(
    ("src", "code"),
    [
        ("E'\\u00e'", codes.BAD_ESCAPE),
        ("E'\\U0001F60'", codes.BAD_ESCAPE),
        ("E'\\uD800x'", codes.BAD_ESCAPE),
        ("E'\\uDC00'", codes.BAD_ESCAPE),
        ("E'\\u0000'", codes.BAD_ESCAPE),
        ("E'\\xff'", codes.BAD_ESCAPE),
        ("E'\\0'", codes.BAD_ESCAPE),
        ("U&'\\00g1'", codes.BAD_ESCAPE),
        ("X'1F'", codes.UNSUPPORTED_LITERAL),
        ("B'0101'", codes.UNSUPPORTED_LITERAL),
        ("10s", codes.BAD_NUMBER),
        ("0x1F", codes.BAD_NUMBER),
        ("a -> b", codes.UNKNOWN_OPERATOR),
        ("a + b", codes.UNKNOWN_OPERATOR),
        ("$1", codes.UNEXPECTED_CHAR),
        ("`x`", codes.UNEXPECTED_CHAR),
        ("df.(1)", codes.UNEXPECTED_CHAR),
        ('"abc', codes.UNTERMINATED_STRING),
    ],
)
def test_lexical_errors(src: str, code: str) -> None:
    assert code in codes_of(src)


def test_unknown_operator_stands_in_for_the_meant_one() -> None:
    out = scan("'a' -> 'b'")
    assert [t.type for t in out.tokens] == ["STRING", "SEQ", "STRING", "$END"]
    assert out.tokens[1].start_pos in out.flagged
    assert "'~>'" in (out.diagnostics[0].help or "")


def test_strings_on_one_line_stay_separate_tokens() -> None:
    # The parser reports them (DFC105); the lexer does not merge them.
    out = scan("'a' 'b'")
    assert [t.type for t in out.tokens] == ["STRING", "STRING", "$END"]
    assert out.diagnostics == []


def test_block_comment_between_lines_still_concatenates() -> None:
    assert string("'a' /* x */\n'b'").value == "ab"
