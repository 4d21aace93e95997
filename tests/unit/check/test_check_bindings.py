"""The binding dataflow analysis and the column checks, on hand-built trees."""

from __future__ import annotations

import pytest
from astbuild import (
    bind,
    brk,
    codes_of,
    http,
    if_,
    if_rows,
    join,
    loop,
    race,
    retry,
    run,
    seq,
    signal,
    sleep,
    undo,
)

from dfc.check import codes
from dfc.compiler import check_source
from dfc.source import SourceFile

OK: list[object] = []


def diag_codes(body: object) -> list[str]:
    return [c for c in codes_of(run(body)[1]) if c != codes.UNUSED_BINDING]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (seq(bind("SELECT 1 AS v", "a"), "SELECT $a"), OK),
        (seq("SELECT $a"), [codes.UNBOUND]),
        (seq("SELECT $a", bind("SELECT 1", "a")), [codes.NOT_BOUND_HERE]),
        (bind("SELECT $a", "a"), [codes.NOT_BOUND_HERE]),
        (join(bind("SELECT 1", "a"), "SELECT $a"), [codes.NOT_BOUND_HERE]),
        (race(bind("SELECT 1", "a"), "SELECT $a"), [codes.NOT_BOUND_HERE]),
        (seq(join(bind("SELECT 1", "a"), bind("SELECT 2", "b")), "SELECT $a, $b"), OK),
        # After a race only the winner's bindings are visible.
        (seq(race(bind("SELECT 1", "a"), sleep(5)), "SELECT $a"), [codes.NOT_BOUND_HERE]),
        (seq(race(bind("SELECT 1", "a"), sleep(5)), "SELECT $a?"), OK),
        (if_("SELECT true", bind("SELECT 1", "a"), "SELECT $a"), [codes.NOT_BOUND_HERE]),
        (
            seq(if_("SELECT true", bind("SELECT 1", "a"), "SELECT 2"), "SELECT $a"),
            [codes.NOT_BOUND_HERE],
        ),
        (seq(if_("SELECT true", bind("SELECT 1", "a"), bind("SELECT 2", "a")), "SELECT $a"), OK),
        (seq(if_("SELECT true", bind("SELECT 1 AS x", "a"), "SELECT 2"), "SELECT $a.x?"), OK),
        (if_(bind("SELECT true", "c"), "SELECT $c", "SELECT $c"), OK),
        # Loops: body bindings are visible later in the iteration, to the condition and after.
        (seq(loop(seq(bind("SELECT 1", "a"), "SELECT $a"), "SELECT $a > 0"), "SELECT $a"), OK),
        (loop(seq("SELECT $a", bind("SELECT 1", "a"), sleep(1))), [codes.NOT_BOUND_HERE]),
        (seq(bind("SELECT 1", "a"), loop(seq("SELECT $a", sleep(1)))), OK),
        (
            seq(
                loop(
                    seq(bind("SELECT 1 AS n", "r"), brk()),
                ),
                "SELECT $r",
            ),
            OK,
        ),
        (
            seq(
                loop(
                    seq("SELECT 1", if_("SELECT true", brk(), bind("SELECT 1", "r")), sleep(1)),
                    "SELECT 1",
                ),
                "SELECT $r",
            ),
            [codes.NOT_BOUND_HERE],
        ),
        # A break's value sees the bindings before it.
        (loop(seq(bind("SELECT 1", "r"), brk("$r"))), OK),
        (loop(brk("$r")), [codes.UNBOUND]),
        # Compensation: undo sees what was bound before its step completed.
        (seq(undo(bind("SELECT 1", "a"), "SELECT $a"), "SELECT 2"), OK),
        (
            seq(undo("SELECT 1", "SELECT $b"), bind("SELECT 2", "b"), "SELECT $b"),
            [codes.NOT_BOUND_HERE],
        ),
        (seq(retry(bind("SELECT 1", "a"), attempts=3), "SELECT $a"), OK),
        (seq(bind("SELECT 1", "a"), if_rows("a", "SELECT 1", "SELECT 2")), OK),
        (if_rows("nope", "SELECT 1", "SELECT 2"), [codes.UNBOUND]),
        (
            seq(
                bind(http("https://x.test"), "r"), http("https://x.test/$r.status", body="$r.body")
            ),
            OK,
        ),
    ],
)
def test_reachability(body: object, expected: list[str]) -> None:
    assert diag_codes(body) == expected


def test_duplicate_binding_in_branches() -> None:
    assert diag_codes(join(bind("SELECT 1", "n"), bind("SELECT 2", "n"))) == [codes.BRANCH_BINDING]
    assert diag_codes(race(bind("SELECT 1", "n"), seq("SELECT 0", bind("SELECT 2", "n")))) == [
        codes.BRANCH_BINDING
    ]


def test_rebinding_warns_and_unused_hints() -> None:
    _, d = run(seq(bind("SELECT 1", "x"), "SELECT $x", bind("SELECT 2", "x"), "SELECT $x"))
    assert codes_of(d) == [codes.REBINDING]
    _, d = run(seq(bind("SELECT 1", "x"), "SELECT 2"))
    assert codes_of(d) == [codes.UNUSED_BINDING]
    assert d[0].severity == "hint"


def test_messages_explain_why() -> None:
    def message(body: object) -> str:
        return next(d.message for d in run(body)[1] if d.code == codes.NOT_BOUND_HERE)

    assert "parallel branch" in message(join(bind("SELECT 1", "a"), "SELECT $a"))
    assert "other arm" in message(if_("SELECT true", bind("SELECT 1", "a"), "SELECT $a"))
    assert "before it is bound" in message(seq("SELECT $a", bind("SELECT 1", "a")))
    assert "inside the step" in message(bind("SELECT $a", "a"))
    assert "only some paths" in message(
        seq(if_("SELECT true", bind("SELECT 1", "a"), "SELECT 2"), "SELECT $a")
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (seq(bind("SELECT id, email FROM users", "u"), "SELECT $u.email"), OK),
        (seq(bind("SELECT id, email FROM users", "u"), "SELECT $u.mail"), [codes.UNKNOWN_COLUMN]),
        (seq(bind("SELECT * FROM users", "u"), "SELECT $u.anything"), OK),
        (seq(bind("UPDATE t SET x = 1", "u"), "SELECT $u"), [codes.NO_ROWS]),
        (seq(bind("UPDATE t SET x = 1", "u"), "SELECT $u.x"), [codes.NO_ROWS]),
        (
            seq(bind("UPDATE t SET x = 1", "u"), if_rows("u", "SELECT 1", "SELECT 2")),
            [codes.NO_ROWS],
        ),
        (seq(bind("UPDATE t SET x = 1 RETURNING id", "u"), "SELECT $u.id"), OK),
        (seq(bind(http("https://x.test"), "r"), "SELECT $r.status, $r.ok"), OK),
        (seq(bind(http("https://x.test"), "r"), "SELECT $r.code"), [codes.UNKNOWN_COLUMN]),
        (seq(bind(signal("go", 10), "s"), "SELECT $s.timed_out, $s.data"), OK),
        (seq(bind(signal("go", 10), "s"), "SELECT $s.payload"), [codes.UNKNOWN_COLUMN]),
        (seq(bind(sleep(1), "z"), "SELECT $z.slept"), OK),
        (seq(bind(seq("SELECT 1", "SELECT 2 AS two"), "q"), "SELECT $q.two"), OK),
        (seq(bind(if_("SELECT true", "SELECT 1 AS a", "SELECT 2 AS a"), "q"), "SELECT $q.a"), OK),
        (seq(bind(if_("SELECT true", "SELECT 1 AS a", "SELECT 2 AS b"), "q"), "SELECT $q.zzz"), OK),
    ],
)
def test_columns(body: object, expected: list[str]) -> None:
    assert diag_codes(body) == expected


def test_unknown_column_lists_the_columns() -> None:
    _, d = run(seq(bind("SELECT id, email FROM users", "u"), "SELECT $u.emial"))
    (diag,) = [x for x in d if x.code == codes.UNKNOWN_COLUMN]
    assert "(it has: email, id)" in diag.message
    assert diag.help == "did you mean `$u.email`?"


def test_references_in_sql_comments_are_not_uses() -> None:
    assert diag_codes(seq("SELECT 1 -- was: SELECT $old")) == []
    _, d = run(seq(bind("SELECT 1 AS v", "x"), "SELECT 2 /* $x */"))
    assert codes_of(d) == [codes.UNUSED_BINDING]


def test_the_earlier_bindings_of_a_message_are_labelled_in_source_order() -> None:
    # They were ordered by the nodes' addresses, which differ from run to run.
    arms = " | ".join(f"'SELECT {i}' |=> 'a'" for i in range(30))
    text = f"df.start(({arms}) ~> ('SELECT 1' ?> 'SELECT 2' |=> 'a' !> 'SELECT 3'), 'w');\n"
    comp = check_source(SourceFile("t.df", text))
    (diag,) = [d for d in comp.sorted_diagnostics if d.code == codes.REBINDING]
    starts = [label.span.start for label in diag.labels]
    assert len(starts) == 30
    assert starts == sorted(starts)
