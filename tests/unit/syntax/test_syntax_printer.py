"""The canonical printer: spellings, line breaking, comments, idempotence."""

from __future__ import annotations

import textwrap

import pytest

from dfc import ast
from dfc.source import SourceFile
from dfc.syntax import format_expression, format_module, parse_expression, parse_text
from dfc.syntax.printer import quote


def fmt(src: str) -> str:
    m, diags = parse_text(src, "t.df")
    assert not diags, [(d.code, d.message) for d in diags]
    assert m is not None
    out = format_module(m)
    back, diags2 = parse_text(out, "t.df")
    assert not diags2 and back == m, out
    assert format_module(back) == out, "not idempotent"
    return out


def expr(src: str) -> str:
    e, diags = parse_expression(src)
    assert not diags and e is not None
    return format_expression(e)


@pytest.mark.parametrize(
    ("src", "out"),
    [
        ("df.seq('a', 'b')", "'a' ~> 'b'"),
        ("df.as('a', 'n')", "'a' |=> 'n'"),
        ("df.join('a', 'b')", "'a' & 'b'"),
        ("df.join3('a', 'b', 'c')", "df.join('a', 'b', 'c')"),
        ("df.race('a', 'b')", "'a' | 'b'"),
        ("df.if('c', 't', 'e')", "'c' ?> 't' !> 'e'"),
        ("df.loop('b')", "@> 'b'"),
        ("@> 'a' ~> 'b'", "@> ('a' ~> 'b')"),
        ("@> 'c' ?> 't' !> 'e'", "@> ('c' ?> 't' !> 'e')"),
        ("@> @> 'a'", "@> @> 'a'"),
        ("'a' ~> @> 'b' ~> 'c'", "'a' ~> @> ('b' ~> 'c')"),
        ("df.loop('b', 'c')", "df.loop('b', 'c')"),
        ("df.with_undo('a', 'u')", "'a' <-> 'u'"),
        ("df.sql('q')", "'q'"),
        ("df.sql(q)", "df.sql(q)"),
        ("DF.SLEEP(5)", "df.sleep(5)"),
        ("df.http('u', body => 'b')", "df.http('u', body => 'b')"),
        ("df.http(url => 'u', method => 'GET', timeout => 3)", "df.http('u', 'GET', timeout => 3)"),
        ("df.retry('x', 3, 1)", "df.retry('x', attempts => 3, backoff => 1)"),
        (
            "df.break(null) ~> df.break(true) ~> df.break(false)",
            "df.break(NULL) ~> df.break(TRUE) ~> df.break(FALSE)",
        ),
        ("f(step => 'SELECT 1', n => 3)", "f(step => 'SELECT 1', n => 3)"),
        ("'{\"a\": 1}'::JSONB", "'{\"a\": 1}'::jsonb"),
        ("df.sleep(- 5)", "df.sleep(-5)"),
        ("('a' ~> 'b') & 'c'", "('a' ~> 'b') & 'c'"),
        ("'a' ~> ('b' ~> 'c')", "'a' ~> ('b' ~> 'c')"),
        ("('a' ~> 'b') ~> 'c'", "'a' ~> 'b' ~> 'c'"),
        ("(@> 'a') ~> 'b'", "(@> 'a') ~> 'b'"),
        ("'a' ~> (@> 'b')", "'a' ~> @> 'b'"),
        ("('c' ?> 't') ~> 'u'", "('c' ?> 't') ~> 'u'"),
        ("'c' ?> ('c2' ?> 't') !> 'e'", "'c' ?> ('c2' ?> 't') !> 'e'"),
        ("'c' ?> (@> 't') !> 'e'", "'c' ?> (@> 't') !> 'e'"),
        # Parentheses wherever pg_durable's flat reading would group differently (DFC420).
        ("'c' ?> 't' !> 'c2' ?> 't2' !> 'e2'", "'c' ?> 't' !> ('c2' ?> 't2' !> 'e2')"),
        ("'c' ?> 'a' ~> 'b' !> 'e'", "'c' ?> ('a' ~> 'b') !> 'e'"),
        ("'a' ~> 'b' & 'c'", "'a' ~> ('b' & 'c')"),
        ("'a' | 'b' & 'c'", "'a' | ('b' & 'c')"),
        ("'x' |=> 'u' & 'y' |=> 'o'", "'x' |=> 'u' & ('y' |=> 'o')"),
        ("'a' <-> 'u' ~> 'b' <-> 'v'", "'a' <-> 'u' ~> 'b' <-> 'v'"),
        ("'a' & 'b' <-> 'u'", "'a' & ('b' <-> 'u')"),
        # Grouped differently but behaving the same: a sequence's result is its last step's.
        ("'a' ~> 'b' |=> 'n'", "'a' ~> 'b' |=> 'n'"),
        ("(('a' & 'b') | 'c') <-> 'u'", "('a' & 'b' | 'c') <-> 'u'"),
        ("('a' | 'b') & 'c'", "('a' | 'b') & 'c'"),
    ],
)
def test_canonical_spellings(src: str, out: str) -> None:
    assert expr(src) == out
    assert expr(out) == out


def test_template_argument_sql_node_keeps_df_sql() -> None:
    e = ast.TemplateCall(
        name="f",
        args=(
            ast.Arg(value=ast.Sql(query=_str("SELECT 1"), span=_SP), span=_SP),
            ast.Arg(value=_str("x"), span=_SP),
        ),
        span=_SP,
    )
    assert format_expression(e) == "f(df.sql('SELECT 1'), 'x')"


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("abc", "'abc'"),
        ("it's", "$$it's$$"),
        ("a\nb", "$$a\nb$$"),
        ("it's $$ here", "$sql$it's $$ here$sql$"),
        ("x'$$$sql$", "$q2$x'$$$sql$$q2$"),
        ("ends with $", "'ends with $'"),
        ("'$", "$sql$'$$sql$"),  # `$$'$$$` would close after the first `$$`
    ],
)
def test_quote(value: str, literal: str) -> None:
    assert quote(value) == literal
    e, diags = parse_expression(f"df.break({literal})")
    assert not diags and isinstance(e, ast.Break) and isinstance(e.value, ast.Str)
    assert e.value.value == value


def test_long_chain_breaks_one_step_per_line() -> None:
    src = (
        "df.start("
        + " ~> ".join(f"'SELECT {i} FROM some_rather_long_table_name'" for i in range(4))
        + ", 'job')"
    )
    assert fmt(src) == textwrap.dedent(
        """\
        df.start(
            'SELECT 0 FROM some_rather_long_table_name'
            ~> 'SELECT 1 FROM some_rather_long_table_name'
            ~> 'SELECT 2 FROM some_rather_long_table_name'
            ~> 'SELECT 3 FROM some_rather_long_table_name',
            'job'
        );
        """
    )


def test_calls_break_with_arguments_indented() -> None:
    src = (
        "'SELECT 1' |=> 'x' ~> df.http('http://example.com/a/rather/long/url/that/goes/on', 'POST',"
        ' \'{"key": "value", "other": 1}\', \'{"Content-Type": "application/json"}\') |=> \'resp\''
    )
    assert fmt(src) == textwrap.dedent(
        """\
        'SELECT 1' |=> 'x'
        ~> df.http(
            'http://example.com/a/rather/long/url/that/goes/on',
            'POST',
            '{"key": "value", "other": 1}',
            '{"Content-Type": "application/json"}'
        ) |=> 'resp';
        """
    )


def test_nested_chains_get_parenthesised_blocks() -> None:
    long = "'SELECT x FROM a_table_with_a_rather_long_name_%d'"
    src = f"{long % 1} ~> ({long % 2} & {long % 3}) ~> @> ({long % 4} ~> df.sleep(60))"
    assert fmt(src) == textwrap.dedent(
        """\
        'SELECT x FROM a_table_with_a_rather_long_name_1'
        ~> (
            'SELECT x FROM a_table_with_a_rather_long_name_2'
            & 'SELECT x FROM a_table_with_a_rather_long_name_3'
        )
        ~> @> ('SELECT x FROM a_table_with_a_rather_long_name_4' ~> df.sleep(60));
        """
    )


def test_conditional_layout_and_else_if() -> None:
    # pg_durable reads `c ?> t !> c2 ?> t2 !> e2` as a conditional whose condition is
    # `c ?> t !> c2`: an else-if is parenthesised.
    c = "'SELECT count(*) > 100 FROM a_rather_long_table_name_for_the_test'"
    src = f"{c} ?> 'SELECT 1' !> {c} ?> 'SELECT 2' !> 'SELECT 3' ~> 'SELECT 4'"
    assert fmt(src) == textwrap.dedent(
        f"""\
        {c}
        ?> 'SELECT 1'
        !> (
            {c}
            ?> 'SELECT 2'
            !> ('SELECT 3' ~> 'SELECT 4')
        );
        """
    )


def test_declarations_layout() -> None:
    src = (
        "import 'std/batch'; param n INT = 5; param u; def f(a, b = 'x') = a ~> b;"
        " def long_template_name(step, attempts = 5) = df.retry(step, attempts => attempts, backoff => 2, factor => 3);"
        " f('SELECT 1')"
    )
    assert fmt(src) == textwrap.dedent(
        """\
        import 'std/batch';

        param n int = 5;
        param u text;

        def f(a, b = 'x') = a ~> b;

        def long_template_name(step, attempts = 5) =
            df.retry(step, attempts => attempts, backoff => 2, factor => 3);

        f('SELECT 1');
        """
    )


def test_comments_are_kept() -> None:
    src = textwrap.dedent(
        """\
        -- File header.

        /* Block header */
        param a int = 1;  -- the first
        -- about b
        param b text;
        def f(x) = x ~> 'SELECT 1';  -- trailing def
        df.start(
            -- step one
            'SELECT 1' |=> 'one'  -- trailing one
            -- step two
            ~> df.http(
                '{u}',  -- the url
                -- method
                'POST'
            )
            ~> ('a' & /* inner */ 'b'),
            -- the label
            'lbl'  -- label trailing
        ); -- end of workflow
        -- final words
        """
    )
    assert fmt(src) == textwrap.dedent(
        """\
        -- File header.

        /* Block header */
        param a int = 1;  -- the first
        -- about b
        param b text;

        def f(x) = x ~> 'SELECT 1';  -- trailing def

        df.start(
            -- step one
            'SELECT 1' |=> 'one'  -- trailing one
            -- step two
            ~> df.http(
                '{u}',  -- the url
                -- method
                'POST'
            )
            ~> (
                'a'
                /* inner */
                & 'b'
            ),
            -- the label
            'lbl'  -- label trailing
        );  -- end of workflow
        -- final words
        """
    )


def test_comment_forces_a_group_to_break() -> None:
    assert fmt("df.sleep(-- wait\n5)") == "df.sleep(\n    -- wait\n    5\n);\n"
    assert fmt("@> -- forever\ndf.sleep(1)") == "@> (\n    -- forever\n    df.sleep(1)\n);\n"
    assert fmt("'c' ?> 't' -- then\n!> 'e'") == "'c'\n?> 't'  -- then\n!> 'e';\n"


def test_comment_inside_a_concatenated_literal_moves_after_it() -> None:
    out = fmt("'a' ~> 'SELECT 1'\n-- between parts\n' + 1' ~> 'b'")
    assert out == "'a'\n~> 'SELECT 1 + 1'\n-- between parts\n~> 'b';\n"


def test_layout_of_examples_is_stable() -> None:
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.df")):
        src = path.read_text()
        assert fmt(src) == src, f"{path.name} is not in canonical form"


def test_invalid_cannot_be_formatted() -> None:
    m, _ = parse_text("'a' ~> ~> 'b'")
    assert m is not None
    with pytest.raises(ValueError, match="errors"):
        format_module(m)


_SP = SourceFile("<t>", "").span(0, 0)


def _str(v: str) -> ast.Str:
    from dfc.source import TextMap

    return ast.Str(value=v, span=_SP, text_map=TextMap((), 0))


def test_the_deepest_nesting_the_parser_accepts_formats() -> None:
    # The printer recurses once per nesting level; this used to be a RecursionError.
    n = ast.MAX_DEPTH - 1
    src = "df.retry(" * n + "'SELECT 1'" + ")" * n
    m, diags = parse_text(src)
    assert diags == [] and m is not None
    out = format_module(m)
    back, diags = parse_text(out)
    assert diags == [] and back == m
