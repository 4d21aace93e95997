"""Where a `$name` reference counts in SQL: the one rule the checker and the runtime share."""

from __future__ import annotations

import pytest

from dfc.references import REFERENCE, place, sql_code


def counted(text: str) -> list[str]:
    """The references of ``text`` that count, each as ``$name`` or ``$name@literal-form``."""
    code = sql_code(text)
    out: list[str] = []
    for m in REFERENCE.finditer(text):
        if m.group("name") is None:
            continue
        where = place(code, m.start())
        if where is None:
            continue
        form = "" if where.literal is None else "@" + where.literal.form
        out.append(f"${m.group('name')}{form}" + "^" * (len(where.path) - 1))
    return out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # never inside a dollar quote's delimiter
        ("CREATE FUNCTION f(i int) RETURNS int AS $$SELECT i + 1$$ LANGUAGE sql", []),
        ("DO $$BEGIN PERFORM 1; END$$", []),
        ("SELECT $$it's$$ AS a", []),
        # dollar-quoted bodies are code (^ marks one level of dollar quote)
        ("DO $$ BEGIN PERFORM $a; END $$", ["$a^"]),
        ("DO $f$ BEGIN PERFORM '$a', $$ $b $$; END $f$", ["$a@plain^", "$b^^"]),
        # never in comments, also inside bodies
        ("DO $$ BEGIN PERFORM 1; -- see $missing\nEND $$", []),
        ("SELECT 1 /* $a /* $b */ $c */, $d -- $e", ["$d"]),
        # literals of every form count, except where an E'' escape takes the `$`
        (
            "SELECT '$a', E'$b', U&'$c', N'$d', B'$e', X'$f', \"$g\", U&\"$h\"",
            [
                "$a@plain",
                "$b@escape",
                "$c@unicode",
                "$d@national",
                "$e@bit",
                "$f@hex",
                "$g@ident",
                "$h@unicode_ident",
            ],
        ),
        ("SELECT E'\\$a \\\\$b'", ["$b@escape"]),
        # a continued literal: the second segment is read like the first
        ("SELECT E'x'\n'\\$a $b'", ["$b@escape"]),
        # a body that is not valid code is lexed as far as it goes
        ("SELECT $q$ '$a $q$, $b", ["$a@plain^", "$b"]),
        ("SELECT $q$ /* $a $q$, $b", ["$b"]),
    ],
)
def test_where_references_count(text: str, expected: list[str]) -> None:
    assert counted(text) == expected


def test_a_reference_before_a_closing_tag_is_no_reference() -> None:
    # `$a` followed by `$` is not a reference at all (the grammar of references decides).
    assert counted("SELECT $q$ x $a$q$") == []
