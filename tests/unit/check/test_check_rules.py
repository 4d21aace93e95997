"""Structure and literal rules, parameters and options, on hand-built trees."""

from __future__ import annotations

import pytest
from astbuild import (
    bind,
    brk,
    codes_of,
    cron,
    http,
    if_,
    join,
    loop,
    module,
    multipart,
    param,
    retry,
    run,
    seq,
    signal,
    sleep,
    timeout,
    undo,
)

from dfc import ast
from dfc.check import codes

OK: list[str] = []


def found(body: object, *decls: ast.Decl) -> list[str]:
    return [c for c in codes_of(run(body, *decls)[1]) if c != codes.UNUSED_BINDING]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (seq("SELECT 1", brk()), [codes.BREAK_OUTSIDE_LOOP]),
        (loop(seq("SELECT 1", brk())), OK),
        (loop(seq("SELECT 1", sleep(1)), brk()), OK),  # a break in the condition ends the loop
        (loop(seq(undo("SELECT 1", brk()), sleep(1))), [codes.BREAK_OUTSIDE_LOOP]),
        (loop(seq("SELECT 1", brk(), "SELECT 2")), [codes.UNREACHABLE]),
        (loop(seq("SELECT 1", if_("SELECT true", brk(), brk()), "SELECT 2")), [codes.UNREACHABLE]),
        (loop(seq("SELECT 1", if_("SELECT true", brk(), "SELECT 3"), "SELECT 2")), OK),
        (seq(loop(seq("SELECT 1", sleep(60))), "SELECT 2"), [codes.UNREACHABLE]),
        (loop("DELETE FROM q WHERE done"), [codes.HOT_LOOP]),
        (loop(seq("DELETE FROM q WHERE done", sleep(5))), OK),
        (loop("DELETE FROM q WHERE done", "SELECT count(*) > 0 FROM q"), OK),
        (loop(loop(seq("SELECT 1", brk()))), [codes.HOT_LOOP]),  # the inner break is not ours
        (if_("SELECT true", "SELECT 1"), [codes.IF_WITHOUT_ELSE]),
    ],
)
def test_structure(body: object, expected: list[str]) -> None:
    assert found(body) == expected


def test_depth() -> None:
    deep: object = "SELECT 1"
    for _ in range(257):
        deep = retry(deep)
    assert found(deep) == [codes.TOO_DEEP]
    shallow: object = "SELECT 1"
    for _ in range(200):
        shallow = retry(shallow)
    assert found(shallow) == OK
    # A long chain is one level.
    assert found(seq(*(f"SELECT {i}" for i in range(3000)))) == OK


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (sleep(5), OK),
        (sleep(-5), [codes.BAD_SECONDS]),
        (sleep(1.5), [codes.BAD_SECONDS]),
        (sleep("soon"), [codes.BAD_SECONDS]),
        (sleep("30"), OK),
        (sleep(None), [codes.BAD_SECONDS]),
        (timeout("SELECT 1", 0.5), [codes.BAD_SECONDS]),
        (signal("go", -1), [codes.BAD_SECONDS]),
        (signal("go", None), OK),
        (signal(42), [codes.BAD_LITERAL]),
        (signal(""), [codes.BAD_LITERAL]),
        (cron("0 3 * * *"), OK),
        (cron("0 9 * * MON-FRI"), OK),
        (cron("*/15 0-6 1,15 JAN-MAR sun"), OK),
        (cron("0 25 * * *"), [codes.BAD_CRON]),
        (cron("0 3 * *"), [codes.BAD_CRON]),
        (cron("0 3 * * * *"), [codes.BAD_CRON]),
        (cron("@daily"), [codes.BAD_CRON]),
        (http("https://example.com"), OK),
        (http("{api}/hook"), OK),
        (http("example.com/hook"), [codes.BAD_URL]),
        (http("$next"), [codes.BAD_URL]),
        (http("https://x.test", "get"), OK),
        (http("https://x.test", "FETCH"), [codes.BAD_METHOD]),
        (http("https://x.test", "GET", None, '{"A": "b {tok}", "C": $n}'), OK),
        (http("https://x.test", "GET", None, "$headers"), OK),
        (http("https://x.test", "GET", None, "Authorization: x"), [codes.BAD_HEADERS]),
        (http("https://x.test", "GET", None, "[1]"), [codes.BAD_HEADERS]),
        (http("https://x.test", timeout=-3), [codes.BAD_SECONDS]),
        (multipart("https://x.test", "POST", '[{"name": "f", "data_b64": "$file"}]'), OK),
        (multipart("https://x.test", "POST", '{"name": "f"}'), [codes.BAD_PARTS]),
        (multipart("https://x.test", "POST", '[{"name": "f"}]'), [codes.BAD_PARTS]),
        (retry("SELECT 1", attempts=3, backoff=0.5, factor=2, max_backoff=60, jitter=True), OK),
        (retry("SELECT 1", attempts=0), [codes.BAD_RETRY]),
        (retry("SELECT 1", attempts=2.5), [codes.BAD_RETRY]),
        (retry("SELECT 1", factor=0.5), [codes.BAD_RETRY]),
        (retry("SELECT 1", jitter="maybe"), [codes.BAD_RETRY]),
        (bind("SELECT 1", "bad-name"), [codes.BAD_RESULT_NAME]),
    ],
)
def test_literals(body: object, expected: list[str]) -> None:
    # References in these bodies are unbound on purpose: only the literal rules matter here.
    assert [c for c in found(body) if c != codes.UNBOUND] == expected


def test_cron_error_names_the_field() -> None:
    _, d = run(cron("0 25 * * *"))
    assert d[0].message == "invalid hour field `25` in cron expression"


@pytest.mark.parametrize(
    ("decl", "expected"),
    [
        (param("n", "int", 5), OK),
        (param("n", "int", "many"), [codes.PARAM_DEFAULT]),
        (param("n", "int", 1.5), [codes.PARAM_DEFAULT]),
        (param("n", "numeric", "1.25"), OK),
        (param("n", "bool", "yes"), OK),
        (param("n", "bool", 3), [codes.PARAM_DEFAULT]),
        (param("n", "json", '{"a": 1}'), OK),
        (param("n", "json", "{a: 1}"), [codes.PARAM_DEFAULT]),
        (param("n", "ident", "archive.orders"), OK),
        (param("n", "ident", "orders; DROP TABLE x"), [codes.PARAM_DEFAULT]),
        (param("n", "ident", None), [codes.PARAM_DEFAULT]),  # refused at start too
    ],
)
def test_param_defaults(decl: ast.Param, expected: list[str]) -> None:
    assert found("SELECT {n}", decl) == expected


def test_variables() -> None:
    assert found("SELECT {n}, {sys_instance_id}", param("n", "int", 1)) == OK
    assert found("SELECT {m}", param("n", "int", 1)) == [codes.UNDECLARED_VAR]
    assert found("SELECT {m}") == OK  # no params declared: pg_durable style
    assert found("SELECT 1", param("n"), param("n")) == [codes.DUPLICATE_PARAM]


def test_result_is_none_on_error_and_a_workflow_otherwise() -> None:
    wf, _ = run(seq(bind("SELECT 1 AS a", "x"), "SELECT $x"), param("p", "int", 3))
    assert wf is not None
    assert wf.name == "hand"
    assert [p.name for p in wf.params] == ["p"]
    assert run(seq("SELECT $nope"))[0] is None
    assert run(module(None, param("p")))[0] is None


def test_join_nodes() -> None:
    assert found(join("SELECT 1", "SELECT 2", "SELECT 3")) == OK
