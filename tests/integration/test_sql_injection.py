"""No value can change a statement, under any session setting a step can change (real PostgreSQL).

Every hostile value is substituted at every place a reference can stand, and the text runs in a
session where ``standard_conforming_strings`` and ``backslash_quote`` take each of their values
(set earlier on the connection, as an earlier step could, or earlier in the same text). Each run
must leave ``victim`` in place and read back exactly the value; the only runs that may fail are
those the rules refuse: a value that would end the enclosing dollar quote, a quote inside a
bit-string literal, and a ``U&''`` literal while standard_conforming_strings is off, which
PostgreSQL itself refuses.

Then the same with generated values (hypothesis: hostile pieces strung together with any text)
under every setting a step can change (``escape_string_warning``, ``search_path``,
``client_encoding``, ``DateStyle``, ``IntervalStyle``, ``extra_float_digits``,
``bytea_output`` too), NUL and 1 MB values; through the worker, signal payloads and step results
read back exactly after steps changed those settings; and ``{var}`` values: typed params
refuse what is not their type before anything runs, and no value may open a comment with the
code next to it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_support import info, run, run_until_done, start

from dfc.compiler import compile_source
from dfc.diagnostics import DfcError
from dfc.json_types import JSON
from dfc.params import ParamValueError, substitution_text
from dfc.runtime import instances
from dfc.runtime.substitute import SubstitutionError, substitute_sql
from dfc.source import SourceFile
from dfc.sqlquote import dumps
from dfc.store.db import connect
from dfc.store.registry import deploy

pytestmark = [pytest.mark.db, pytest.mark.timeout(300)]

HOSTILE = [
    "\\'); DROP TABLE victim; --",
    "'); DROP TABLE victim; --",
    "' || (SELECT 'x' FROM victim) || '",
    "\\",
    "\\\\'",
    "\\'",
    "''",
    "'",
    '"; DROP TABLE victim; --',
    "$$",
    "$f$; DROP TABLE victim; $f$",
    "$$; DROP TABLE victim; $$",
    "*/ DROP TABLE victim; /*",
    "/* unclosed",
    "-- DROP TABLE victim",
    "\n; DROP TABLE victim; --",
    "\r DROP TABLE victim; --",
    ";",
    "\x01\x08\t\x1b\x7f control",
    "E'\\x41' U&'\\0041' \\u0041 \\x41",
    "é ‮ \u2028 ∑",
    "x" * 20_000 + "\\'); DROP TABLE victim; --",
]


@dataclass(frozen=True)
class Place:
    """Where a reference stands: the step text, and how the value is read back."""

    text: str
    expected: Callable[[str], str]
    read: str | None = None  # a query reading the value back, when the text does not return it
    column_name: bool = False  # the value comes back as the name of the result's column


PLACES = {
    "code": Place("SELECT $h AS v", lambda v: v),
    "code after a backslash literal": Place(r"SELECT 'a\' || $h AS v", lambda v: "a\\" + v),
    "plain literal": Place("SELECT 'x $h y' AS v", lambda v: f"x {v} y"),
    "plain literal with a backslash": Place(r"SELECT 'a\ $h' AS v", lambda v: f"a\\ {v}"),
    "continued literal": Place("SELECT 'x'\n'$h' AS v", lambda v: "x" + v),
    "escape literal": Place(r"SELECT E'x\t$h' AS v", lambda v: "x\t" + v),
    "unicode literal": Place(r"SELECT U&'x\0041 $h' AS v", lambda v: "xA " + v),
    "national literal": Place("SELECT N'x $h y'::text AS v", lambda v: f"x {v} y"),
    "quoted identifier": Place('SELECT 1 AS "x $h"', lambda v: f"x {v}", column_name=True),
    "line comment": Place("SELECT 'x' AS v -- $h\n", lambda v: "x"),
    "block comment": Place("SELECT 'x' /* $h /* $h */ */ AS v", lambda v: "x"),
    "dollar-quoted body": Place(
        "DO $f$ BEGIN PERFORM set_config('dfc.v', $h, false); END $f$",
        lambda v: v,
        read="SELECT current_setting('dfc.v')",
    ),
    "literal in a dollar-quoted body": Place(
        "DO $f$ BEGIN PERFORM set_config('dfc.v', 'x $h', false); END $f$",
        lambda v: "x " + v,
        read="SELECT current_setting('dfc.v')",
    ),
    "function body": Place(
        "CREATE OR REPLACE FUNCTION pg_temp.dfc_v() RETURNS text LANGUAGE sql "
        "AS $f$ SELECT $h::text $f$",
        lambda v: v,
        read="SELECT pg_temp.dfc_v()",
    ),
    "relation": Place("SELECT v FROM $h.*", lambda v: v),
    "relation column": Place("SELECT * FROM $k.*", lambda v: v, column_name=True),
    "bit string": Place("SELECT B'$h' AS v", lambda v: v),
}

SETTINGS = [
    (scs, bq) for scs in ("on", "off") for bq in ("on", "off", "safe_encoding")
]  # fmt: skip


@pytest.fixture(scope="module")
def session(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("CREATE TABLE victim (id int)")
        yield c


def _truncated(name: str) -> str:
    """A name as PostgreSQL keeps it: at most 63 bytes, cut at a character boundary."""
    return name.encode()[:63].decode("utf-8", errors="ignore")


def _refused(place: str, value: str, scs: str) -> bool:
    """Whether the rules refuse this run (it must then fail without running anything)."""
    if place in ("dollar-quoted body", "literal in a dollar-quoted body", "function body"):
        return "$f$" in value
    if place == "bit string":
        return True  # a quote is refused; anything else is not a binary digit
    if place == "relation column" and value == "":
        return True  # PostgreSQL has no empty column name (nor gives one as a result's)
    return place == "unicode literal" and scs == "off"


@pytest.mark.parametrize(("scs", "bq"), SETTINGS)
@pytest.mark.parametrize("place", PLACES)
def test_no_value_changes_the_statement(
    session: psycopg.Connection[Any], place: str, scs: str, bq: str
) -> None:
    p = PLACES[place]
    session.execute(f"SET standard_conforming_strings = {scs}")
    session.execute(f"SET backslash_quote = {bq}")
    try:
        for value in HOSTILE:
            b = {
                "h": {"rows": [{"v": value}], "row_count": 1},
                "k": {"rows": [{value: 1}], "row_count": 1},
            }
            try:
                sql = substitute_sql(p.text, b, {})
                cur = session.execute(sql)
                if p.read is not None:
                    cur = session.execute(p.read)
            except (SubstitutionError, psycopg.Error) as e:
                assert _refused(place, value, scs), f"{place} / {value!r}: {e}"
                continue
            finally:
                victim = session.execute("SELECT to_regclass('victim')").fetchone()
                assert victim == ("victim",), f"{place} / {value!r} dropped the table"
            assert not _refused(place, value, scs), f"{place} / {value!r} ran"
            assert cur.description is not None and len(cur.description) == 1
            if p.column_name:
                assert cur.description[0].name == _truncated(p.expected(value))
            else:
                assert cur.fetchall() == [(p.expected(value),)], f"{place} / {value!r}"
    finally:
        session.execute("RESET standard_conforming_strings")
        session.execute("RESET backslash_quote")


def test_a_set_earlier_in_the_same_text_reaches_dollar_quoted_bodies(
    session: psycopg.Connection[Any],
) -> None:
    # PostgreSQL reads a whole multi-statement text at once, but a DO body only when it runs:
    # after the SET. The literal holding the value must mean the same then.
    value = "\\'); DROP TABLE victim; --"
    text = (
        "SET standard_conforming_strings = off; "
        "DO $f$ BEGIN PERFORM set_config('dfc.v', 'x $h', false); END $f$"
    )
    try:
        session.execute(substitute_sql(text, {"h": {"rows": [{"v": value}], "row_count": 1}}, {}))
        assert session.execute("SELECT current_setting('dfc.v')").fetchone() == ("x " + value,)
        assert session.execute("SELECT to_regclass('victim')").fetchone() == ("victim",)
    finally:
        session.execute("RESET standard_conforming_strings")


# -- through the worker ------------------------------------------------------------------------


def _plan(text: str) -> Any:
    comp = compile_source(SourceFile("inj.df", text))
    assert comp.plan is not None, [d.message for d in comp.sorted_diagnostics]
    return comp.plan


@pytest.mark.parametrize(
    "flow",
    [
        # the SET in the same step as the literal; then in an earlier step
        "$q$SELECT $v$\\'); DROP TABLE victim; --$v$ AS v$q$ |=> 'h'\n"
        "~> $q$SET standard_conforming_strings = off; SELECT 'x $h' AS v$q$\n",
        "$q$SELECT $v$\\'); DROP TABLE victim; --$v$ AS v$q$ |=> 'h'\n"
        "~> 'SET standard_conforming_strings = off'\n"
        "~> $q$SELECT 'x $h' AS v$q$\n",
    ],
)
def test_a_step_turning_standard_conforming_strings_off_cannot_be_injected(
    db_url: str, session: psycopg.Connection[Any], flow: str
) -> None:
    out = run(db_url, _plan(flow))
    assert out.status == "completed", out.error
    assert out.result["rows"] == [{"v": "x \\'); DROP TABLE victim; --"}]
    assert session.execute("SELECT to_regclass('victim')").fetchone() == ("victim",)


def test_ident_params_are_refused_at_start_when_they_could_end_a_context(
    db_url: str, session: psycopg.Connection[Any]
) -> None:
    plan = _plan("param t ident;\n'SELECT to_regclass(''{t}'')::text AS r'\n")
    with pytest.raises(DfcError, match="parameter t must be a SQL identifier"):
        run(db_url, plan, {"t": '"x\'); DROP TABLE victim; --"'})
    assert session.execute("SELECT to_regclass('victim')").fetchone() == ("victim",)
    session.execute('CREATE TABLE "Order Items" (id int)')
    out = run(db_url, plan, {"t": '"Order Items"'})
    assert out.status == "completed", out.error
    assert out.result["rows"] == [{"r": '"Order Items"'}]


# -- generated values, every session setting a step can change ---------------------------------

# Pieces that end, open or escape something somewhere in SQL, and characters PostgreSQL or a
# client could read otherwise than as written; hypothesis strings them together with any text.
PIECES = [
    "'", "''", "\\", "\\'", "\\\\", '"', "$$", "$f$", "$h", "$k", "$tag$", "$1", "*/", "/*", "--",
    ";", "E'", "U&'", "N'", "B'", "X'", "UESCAPE", "{v}", "\\x41", "\\u0041", "\\0", "\ufffd",
    "\u202e", "\u2028", "\ufeff", "é", "ü", "ß", "Ω", "Я", "中", "日本", "한", "😀", "\U0010ffff",
    "\\\ud7ff", "\x7f", "\x80", "\x9f", "ﾊ", "表", "\\\\'",
    *(chr(c) for c in range(1, 0x20)),
]  # fmt: skip

# Any text PostgreSQL can hold: no NUL (tested apart) and no lone surrogates, which no UTF-8
# text (so no query) can carry.
_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=6)
VALUES = st.lists(st.one_of(st.sampled_from(PIECES), _TEXT), max_size=10).map("".join)

# Settings a step may change, as the SET statements it would run. Each is applied either by an
# earlier statement on the session (an earlier step, with no reset between: harsher than the
# worker, which resets the session after every step) or at the start of the same text.
SESSION_SETTINGS = {
    "standard_conforming_strings off": "SET standard_conforming_strings = off",
    "off, backslash_quote on": "SET standard_conforming_strings = off; SET backslash_quote = on",
    "off, backslash_quote safe": "SET standard_conforming_strings = off; "
    "SET backslash_quote = safe_encoding",
    "backslash_quote off": "SET backslash_quote = off",
    "escape_string_warning off": "SET standard_conforming_strings = off; "
    "SET escape_string_warning = off",
    "escape_string_warning on": "SET escape_string_warning = on",
    "search_path empty": "SET search_path = ''",
    "search_path temp first": "SET search_path = pg_temp, public",
    "DateStyle": "SET DateStyle = 'SQL, DMY'",
    "IntervalStyle": "SET IntervalStyle = 'sql_standard'",
    "extra_float_digits": "SET extra_float_digits = -15",
    "bytea_output": "SET bytea_output = 'escape'",
    "all at once": "SET standard_conforming_strings = off; SET backslash_quote = on; "
    "SET escape_string_warning = off; SET search_path = ''; SET DateStyle = 'German, DMY'; "
    "SET IntervalStyle = 'postgres_verbose'; SET extra_float_digits = 3; "
    "SET bytea_output = 'escape'",
}

# client_encoding only at the start of the text: the server decodes a text before running any
# of it, and the worker resets the session after each step, so a later text is sent and read in
# UTF-8 again (an encoding the client switched to would be psycopg's to write in, not dfc's).
# Results then come back in that encoding: a value it cannot represent fails the statement, as
# PostgreSQL converts results; nothing else may change.
CLIENT_ENCODINGS = ["SJIS", "BIG5", "GBK", "LATIN1", "WIN1252", "EUC_JP"]

_GENERATED_PLACES = [p for p in PLACES if p != "bit string"]  # refuses everything but digits


def _readback(session: psycopg.Connection[Any], p: Place, sql: str) -> tuple[Any, str | None]:
    """Run ``sql`` (then ``p.read``): the value read back, or the column name."""
    cur = session.execute(sql)
    while cur.nextset():  # the last statement's result
        pass
    if p.read is not None:
        cur = session.execute(p.read)
    assert cur.description is not None and len(cur.description) == 1
    if p.column_name:
        return None, cur.description[0].name
    return cur.fetchall(), None


_GENERATED = {
    "value": VALUES,
    "place": st.sampled_from(_GENERATED_PLACES),
    "setting": st.sampled_from(sorted(SESSION_SETTINGS)),
    "same_text": st.booleans(),
}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(**_GENERATED)
def test_generated_values_never_change_the_statement(
    session: psycopg.Connection[Any], value: str, place: str, setting: str, same_text: bool
) -> None:
    _never_changes_the_statement(session, value, place, setting, same_text)


@pytest.mark.long
@pytest.mark.timeout(3600)
@settings(max_examples=50_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(**_GENERATED)
def test_generated_values_never_change_the_statement_long(
    session: psycopg.Connection[Any], value: str, place: str, setting: str, same_text: bool
) -> None:
    _never_changes_the_statement(session, value, place, setting, same_text)


def _never_changes_the_statement(
    session: psycopg.Connection[Any], value: str, place: str, setting: str, same_text: bool
) -> None:
    """Run ``value`` at ``place`` under ``setting``: the table stays, the value reads back."""
    p = PLACES[place]
    scs_off = "standard_conforming_strings = off" in SESSION_SETTINGS[setting]
    b = {
        "h": {"rows": [{"v": value}], "row_count": 1},
        "k": {"rows": [{value: 1}], "row_count": 1},
    }
    try:
        try:
            sql = substitute_sql(p.text, b, {})
        except SubstitutionError:
            assert _refused(place, value, "on"), f"{place} / {value!r}"
            return
        if same_text:
            sql = SESSION_SETTINGS[setting] + "; " + sql
        else:
            session.execute(SESSION_SETTINGS[setting])
        try:
            rows, name = _readback(session, p, sql)
        except psycopg.Error as e:
            assert _refused(place, value, "off" if scs_off else "on"), f"{place} / {value!r}: {e}"
            return
    finally:
        session.execute("RESET ALL")
        assert session.execute("SELECT to_regclass('victim')").fetchone() == ("victim",)
    if p.column_name:
        assert name == _truncated(p.expected(value)), f"{place} / {value!r}"
    else:
        assert rows == [(p.expected(value),)], f"{place} / {value!r}"


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    value=VALUES,
    place=st.sampled_from([p for p in _GENERATED_PLACES if not PLACES[p].column_name]),
    encoding=st.sampled_from(CLIENT_ENCODINGS),
)
def test_a_client_encoding_set_in_the_text_changes_nothing_but_the_results_encoding(
    session: psycopg.Connection[Any], value: str, place: str, encoding: str
) -> None:
    p = PLACES[place]
    b = {"h": {"rows": [{"v": value}], "row_count": 1}}
    try:
        sql = substitute_sql(p.text, b, {})
    except SubstitutionError:
        assert _refused(place, value, "on"), f"{place} / {value!r}"
        return
    try:
        rows, _ = _readback(session, p, f"SET client_encoding = '{encoding}'; " + sql)
    except psycopg.errors.UntranslatableCharacter as e:
        assert f'has no equivalent in encoding "{encoding}"' in str(e)
        assert not all(c.isascii() for c in value)
        return
    finally:
        session.execute("RESET ALL")
        assert session.execute("SELECT to_regclass('victim')").fetchone() == ("victim",)
    expected = p.expected(value)
    # The result came back in `encoding` and psycopg decoded it with the matching codec.
    assert rows == [(expected,)], f"{place} / {value!r} in {encoding}"


@pytest.mark.parametrize("text", ["SELECT $h AS v", "SELECT 'x $h' AS v", "SELECT v FROM $h.*"])
def test_nul_fails_the_step_with_a_clear_error_and_nothing_runs(text: str) -> None:
    b = {"h": {"rows": [{"v": "a\x00'); DROP TABLE victim; --"}], "row_count": 1}}
    with pytest.raises(SubstitutionError) as e:
        substitute_sql(text, b, {})
    assert "NUL character, which PostgreSQL text cannot hold" in e.value.message
    assert e.value.message.startswith("the value of $h")


def test_a_megabyte_value_reads_back_exactly(session: psycopg.Connection[Any]) -> None:
    chunk = "".join(PIECES)
    value = (chunk * (1_048_576 // len(chunk) + 1))[:1_048_576]
    b = {"h": {"rows": [{"v": value}], "row_count": 1}}
    for text in ("SELECT $h AS v", "SELECT 'x' || '$h' AS v", "SELECT v FROM $h.*"):
        sql = substitute_sql(text, b, {})
        session.execute("SET standard_conforming_strings = off; SET backslash_quote = on")
        try:
            rows = session.execute(sql).fetchall()
        finally:
            session.execute("RESET ALL")
        assert rows == [(("x" if "'x'" in text else "") + value,)]
    assert session.execute("SELECT to_regclass('victim')").fetchone() == ("victim",)


# -- through the worker: signal payloads and results, settings changed by steps -----------------

# What a step of the flow below runs before it reads the values back, in the same text (client
# encodings included: the text was decoded before they take effect) and in an earlier step.
WORKER_SETTINGS = {
    **SESSION_SETTINGS,
    "client_encoding SJIS": "SET client_encoding = 'SJIS'",
    "client_encoding BIG5": "SET client_encoding = 'BIG5'",
}

# Values every setting is tried with (in one signal payload each), and how the payload is sent.
E2E_VALUES = [*HOSTILE, "".join(PIECES), "\ufffd\u202eמעורב 混合 смешанный", "\\" * 7 + "'" * 7]


def _flow(setting: str) -> str:
    """Wait for the payload, bind values from it, change the setting in a step of its own, then
    change it again and read every value back in one statement."""
    return (
        "df.wait_for_signal('go') |=> 's'\n"
        "~> $q$SELECT ($s::jsonb)->'data' AS j$q$ |=> 'd'\n"
        f"~> $q${setting}$q$\n"
        f"~> $q${setting}; SELECT $d::text AS j, 'in a literal: $d' AS l, $s.data::text AS p,"
        " $d AS c$q$\n"
    )


@pytest.mark.timeout(120)
def test_signal_payloads_and_results_read_back_exactly_under_every_setting(
    db_url: str, session: psycopg.Connection[Any]
) -> None:
    ids: dict[str, tuple[str, JSON]] = {}
    with connect(db_url) as conn:
        for setting, statement in WORKER_SETTINGS.items():
            for kind, payload in (
                ("object", {"values": E2E_VALUES}),
                ("ascii", {"values": [v for v in E2E_VALUES if v.isascii()]}),
                ("text", "\\'); DROP TABLE victim; -- not JSON: " + "".join(PIECES)),
            ):
                plan = _plan(_flow(statement))
                deploy(conn, plan)
                (iid,) = start(db_url, plan)
                text = payload if isinstance(payload, str) else json.dumps(payload)
                instances.signal(conn, iid, "go", text)
                ids[f"{setting} / {kind}"] = (iid, payload)
    asyncio.run(run_until_done(db_url, [iid for iid, _ in ids.values()], timeout=100))
    for what, (iid, payload) in ids.items():
        out = info(db_url, iid)
        encoding = what.startswith("client_encoding")
        if encoding and out.status == "failed" and not what.endswith("ascii"):
            # Results come back in the client encoding: what it cannot hold fails the step.
            assert out.error["sqlstate"] == "22P05", (what, out.error)
            continue
        assert out.status == "completed", (what, out.error)
        # A JSON payload's values come back as its compact JSON text, a text payload as itself.
        text = payload if isinstance(payload, str) else dumps(payload)
        assert out.result["rows"] == [
            {"j": text, "l": "in a literal: " + text, "p": text, "c": text}
        ], what
        if not isinstance(payload, str):
            assert json.loads(text) == payload
    assert session.execute("SELECT to_regclass('victim')").fetchone() == ("victim",)


@pytest.mark.parametrize(
    "payload",
    [
        '{"v": "\\ud800"}',  # a lone high surrogate escape
        '["\\udfff", "ok"]',  # a lone low one
        '{"\\ud800": 1}',  # in a key
        '"\\udc00 \\u0000"',
    ],
)
def test_a_payload_with_a_lone_surrogate_escape_arrives_as_its_text(
    db_url: str, payload: str
) -> None:
    # No UTF-8 text can hold a lone surrogate: read as JSON, the payload could never be
    # checkpointed and the instance would retry it forever. It arrives as the text it is.
    plan = _plan(
        "df.wait_for_signal('go') |=> 's'\n"
        "~> $q$SELECT $s.data AS d, jsonb_typeof(($s::jsonb)->'data') AS t$q$ |=> 'r'\n"
        "~> df.loop(df.break('$r.d'))\n"
    )
    (iid,) = start(db_url, plan)
    with connect(db_url) as conn:
        instances.signal(conn, iid, "go", payload)
    asyncio.run(run_until_done(db_url, [iid], timeout=20))
    out = info(db_url, iid)
    assert out.status == "completed", out.error
    assert out.result == payload  # the break value, the same text again


# -- typed parameters ----------------------------------------------------------------------------

# What a value of each type may become: nothing but the type's own spelling.
SAFE_TEXT = {
    "int": re.compile(r"-?[0-9]+"),
    "bool": re.compile(r"true|false"),
    "numeric": re.compile(r"[+-]?(?:[0-9_]+\.?[0-9_]*|\.[0-9_]+)(?:[eE][+-]?[0-9]+)?"),
    "ident": re.compile(r'(?:[A-Za-z_][A-Za-z0-9_]*|"[^"\'\\$;\x00-\x1f\x7f]+")'
                        r'(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|"[^"\'\\$;\x00-\x1f\x7f]+"))?'),
}  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    type_=st.sampled_from(sorted(SAFE_TEXT)),
    value=st.one_of(VALUES, st.sampled_from(["1", " 42 ", "-7", "1.5", "TRUE", "off", "a.b"])),
)
def test_typed_params_become_their_types_spelling_or_are_refused(type_: str, value: str) -> None:
    try:
        text = substitution_text(type_, value)
    except ParamValueError as e:
        assert e.problem(repr(value))  # something to say
        return
    assert SAFE_TEXT[type_].fullmatch(text), (type_, value, text)
    if type_ == "ident":
        assert not any(bad in text for bad in ("--", "/*", "*/"))


@pytest.mark.parametrize(
    ("declared", "value", "message"),
    [
        (
            "int",
            "1; DROP TABLE victim",
            "parameter p must be an integer, got '1; DROP TABLE victim'",
        ),
        ("int", "1 --", "parameter p must be an integer"),
        ("int", "0x10", "parameter p must be an integer"),
        ("bool", "true; DROP TABLE victim", "parameter p must be a boolean (true or false)"),
        ("bool", "", "parameter p must be a boolean"),
        ("numeric", "1 OR true", "parameter p must be a number"),
        ("numeric", "NaN", "parameter p must be a finite number"),
        ("ident", "victim; DROP TABLE victim", "parameter p must be a SQL identifier"),
        ("ident", '"a""b"', "parameter p must be a SQL identifier"),
        ("ident", '"x--y"', "a quoted identifier may not hold '--'"),
        ("ident", '"x\ny"', "a quoted identifier may not hold control characters"),
        ("json", "{'a': 1}", "parameter p must be valid JSON"),
    ],
)
def test_a_typed_param_refuses_garbage_before_anything_runs(
    db_url: str, session: psycopg.Connection[Any], declared: str, value: str, message: str
) -> None:
    plan = _plan(f"param p {declared};\n'DROP TABLE victim; SELECT {{p}} AS v'\n")
    before = session.execute("SELECT count(*) FROM dfc.instances").fetchone()
    with pytest.raises(DfcError) as e:
        run(db_url, plan, {"p": value})
    assert message in e.value.message
    assert session.execute("SELECT count(*) FROM dfc.instances").fetchone() == before
    assert session.execute("SELECT to_regclass('victim')").fetchone() == ("victim",)


def test_a_text_param_is_raw_text_as_the_spec_says(
    db_url: str, session: psycopg.Connection[Any]
) -> None:
    # SPEC §1.4: `{var}` is substituted as raw text, whatever its type; `text` accepts any value,
    # so a text param is SQL the starter writes. (Typed params and `$name` values are the safe
    # ways to put data into a statement.) This pins that contract: a text value is spliced in
    # verbatim and runs, which is why `dfc start --var` needs the same trust as writing a step.
    plan = _plan("param p text;\n'SELECT {p} AS v'\n")
    out = run(db_url, plan, {"p": "'a' || 'b'"})
    assert out.status == "completed", out.error
    assert out.result["rows"] == [{"v": "ab"}]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("SELECT 10-{p} AS v", "-5"),  # would be `10--5`: the rest of the line a comment
        ("SELECT 10/{p} AS v", "*5"),
        ("SELECT {p}-1 AS v", "5-"),
        ("DO $f$ BEGIN PERFORM 10-{p}; END $f$", "-5"),
    ],
)
def test_a_var_that_would_open_a_comment_with_its_neighbour_fails_the_step(
    text: str, value: str
) -> None:
    with pytest.raises(SubstitutionError) as e:
        substitute_sql(text, {}, {"p": value})
    assert e.value.message.startswith("the value of {p} would make a comment opener (-- or /*)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("SELECT 10 - {p} AS v", 15), ("SELECT 10-({p}) AS v", 15), ("SELECT '10-{p}' AS v", "10--5")],
)
def test_a_negative_int_param_reads_as_written_where_it_cannot_open_a_comment(
    db_url: str, session: psycopg.Connection[Any], text: str, expected: object
) -> None:
    out = run(db_url, _plan(f"param p int;\n$q${text}$q$\n"), {"p": "-5"})
    assert out.status == "completed", out.error
    assert out.result["rows"] == [{"v": expected}]


def test_a_negative_int_param_glued_to_a_minus_fails_the_step(db_url: str) -> None:
    out = run(db_url, _plan("param p int;\n$q$SELECT 10-{p} AS v, 'never' AS w$q$\n"), {"p": -5})
    assert out.status == "failed"
    assert "the value of {p} would make a comment opener" in out.error["message"]
