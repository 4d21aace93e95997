"""`Flow`, the binding state of the dataflow analysis: forks hold only their branch's changes."""

from __future__ import annotations

from dfc.check.bindings import Flow


def bound(f: Flow, *names: str) -> Flow:
    for i, name in enumerate(names):
        f.bind(name, 1000 + i)
    return f


def test_a_fork_reads_through_and_holds_only_what_its_branch_binds() -> None:
    base = bound(Flow(), *(f"r{i}" for i in range(1000)))
    branch = base.fork()
    branch.bind("x", 1)
    assert branch.bound("r7") and branch.reaching("r7") == {1007}
    assert list(branch.reach) == ["x"]  # not a copy of the 1,000 names before it
    assert not base.bound("x")


def test_merge_of_a_join_adds_every_branch_and_of_an_if_what_both_arms_bind() -> None:
    base = bound(Flow(), "a")
    left, right = base.fork(), base.fork()
    left.bind("b", 1)
    left.bind("c", 2)
    right.bind("c", 3)
    joined = base.merge([left, right], all_ran=True)
    assert joined is base
    assert all(joined.bound(n) for n in "abc")
    assert joined.reaching("c") == {2, 3}

    base = bound(Flow(), "a")
    left, right = base.fork(), base.fork()
    left.bind("b", 1)
    left.bind("c", 2)
    right.bind("c", 3)
    either = base.merge([left, right], all_ran=False)
    assert either.bound("a") and either.bound("c") and not either.bound("b")
    assert either.reaching("b") == {1}


def test_merge_with_the_state_itself_is_an_if_without_else() -> None:
    base = bound(Flow(), "a")
    then = base.fork()
    then.bind("b", 1)
    after = base.merge([then, base], all_ran=False)
    assert not after.bound("b") and after.reaching("b") == {1}


def test_dead_paths_do_not_count_and_a_join_with_one_is_dead() -> None:
    base = bound(Flow(), "a")
    live, dead = base.fork(), Flow(dead=True)
    live.bind("b", 1)
    assert base.merge([live, dead], all_ran=True).dead
    base = bound(Flow(), "a")
    live = base.fork()
    live.bind("b", 1)
    after = base.merge([live, Flow(dead=True)], all_ran=False)
    assert after.bound("b")
    assert base.merge([Flow(dead=True)], all_ran=False).dead


def test_a_snapshot_keeps_its_state_when_the_flows_below_its_base_change() -> None:
    loop_start = bound(Flow(), "a")
    body = loop_start.fork()
    body.bind("b", 1)
    arm = body.fork()
    arm.bind("c", 2)
    exit_ = arm.snapshot(loop_start)
    assert exit_.parent is loop_start
    body.bind("b", 3)  # later steps of the body
    arm.bind("d", 4)
    assert exit_.reaching("b") == {1} and exit_.bound("c") and not exit_.bound("d")
