"""The one SQL lexer: PostgreSQL's rules for what is code, literal and comment."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dfc.sqllex import Token, escaped, lex, tokenize


def kinds(text: str) -> list[tuple[str, str]]:
    return [(t.kind, t.text) for t in lex(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # dollar quotes: `$` + optional tag + `$`; a tag cannot contain `$`
        ("$$SELECT 1$$", [("string", "$$SELECT 1$$")]),
        ("$q$DO $$x$$$q$", [("string", "$q$DO $$x$$$q$")]),
        ("$a$ $b$ $a$", [("string", "$a$ $b$ $a$")]),
        ("$1", [("param", "$1")]),
        ("$x", [("op", "$"), ("word", "x")]),
        # identifiers may hold `$`: `a$b$` is one word, not a dollar quote
        ("a$b$ x", [("word", "a$b$"), ("word", "x")]),
        ("é$$", [("word", "é$$")]),
        # string forms
        ("'it''s'", [("string", "'it''s'")]),
        ("E'\\''", [("string", "E'\\''")]),
        ("'a\\' 'b'", [("string", "'a\\'"), ("string", "'b'")]),
        ("U&'d\\0061t'", [("string", "U&'d\\0061t'")]),
        ('U&"a"', [("qident", 'U&"a"')]),
        ("N'x'", [("string", "N'x'")]),
        ("B'10''01'", [("string", "B'10'"), ("string", "'01'")]),  # no '' inside B''
        ("X'1F'", [("string", "X'1F'")]),
        ("xe'a'", [("word", "xe"), ("string", "'a'")]),
        ('"a""b"', [("qident", '"a""b"')]),
        # comments: `--` ends at \n or \r; block comments nest
        ("1 -- x\r2", [("number", "1"), ("comment", "-- x"), ("number", "2")]),
        ("/* a /* b */ c */1", [("comment", "/* a /* b */ c */"), ("number", "1")]),
        ("+/*c*/", [("op", "+"), ("comment", "/*c*/")]),
        # only PostgreSQL's whitespace separates: a no-break space is an identifier character
        ("\u00a0e'a\\'", [("word", "\u00a0e"), ("string", "'a\\'")]),
    ],
)
def test_tokens(text: str, expected: list[tuple[str, str]]) -> None:
    assert kinds(text) == expected


def test_forms_and_bodies() -> None:
    text = "E'a' U&'b' N'c' B'1' X'f' 'd' \"e\" U&\"f\" $t$g$t$"
    toks = tokenize(text)
    assert [t.form for t in toks] == [
        "escape",
        "unicode",
        "national",
        "bit",
        "hex",
        "plain",
        "ident",
        "unicode_ident",
        "dollar",
    ]
    assert [text[t.body_start : t.body_end] for t in toks] == list("abc1fdefg")
    assert toks[-1].tag == "$t$"


def test_continued_literals_keep_the_mode_of_the_first() -> None:
    text = "E'a'\n  -- note\n'\\'' 'b'"
    toks = lex(text)
    assert [(t.kind, t.continues) for t in toks] == [
        ("string", False),
        ("comment", False),
        ("string", True),  # read as E'': `\'` is a quote, not the end
        ("string", False),  # no newline before it: a new literal
    ]
    assert toks[2].text == "'\\''"
    assert [t.continues for t in lex("'a' /* c */\n'b'")] == [False, False, False]


@pytest.mark.parametrize(
    ("text", "form", "message"),
    [
        ("SELECT 'abc", "plain", "unterminated string literal"),
        ("SELECT E'ab\\'", "escape", "unterminated string literal"),
        ('SELECT "ab', "ident", "unterminated quoted identifier"),
        ("SELECT $x$ab", "dollar", "unterminated $x$ quote"),
        ("SELECT /* /* */", "block", "unterminated /* comment"),
    ],
)
def test_unterminated(text: str, form: str, message: str) -> None:
    last = lex(text)[-1]
    assert (last.kind, last.form, last.message) == ("error", form, message)
    assert last.end == len(text) and last.body_end == len(text)


def test_lexing_a_slice_stays_inside_it() -> None:
    text = "x $$ a -- b $$ y"
    toks = lex(text, 4, 12)  # the body of the dollar quote
    assert [(t.kind, t.text) for t in toks] == [("word", "a"), ("comment", "-- b ")]


def test_escaped_dollar_in_escape_strings() -> None:
    text = "E'\\$a \\\\$b \\\\\\$c'"
    tok = tokenize(text)[0]
    assert [escaped(text, tok, i) for i, c in enumerate(text) if c == "$"] == [True, False, True]
    plain = "'\\$a'"
    assert not escaped(plain, tokenize(plain)[0], 2)


@given(st.text(alphabet=st.sampled_from(list("$ab1'\"Ee&Uu\\-/*\n\r ;()x")), max_size=60))
def test_tokens_are_ordered_and_never_raise(text: str) -> None:
    end = 0
    toks: list[Token] = lex(text)
    for t in toks:
        assert end <= t.start < t.end <= len(text)
        assert text[t.start : t.end] == t.text
        assert t.start <= t.body_start <= t.body_end <= t.end or t.form == ""
        end = t.end
    assert all(t.kind != "error" for t in toks[:-1])
