"""Node keys, idempotency keys and cron arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dfc.plan.nodes import Retry
from dfc.runtime.keys import (
    attempt_prefix,
    idempotency_key,
    iteration_prefix,
    loop_index,
    node_id,
)
from dfc.runtime.timers import CronSimError, backoff, next_fire


def test_prefixes_compose_outermost_first() -> None:
    p = attempt_prefix("", "n9", 2)
    p = iteration_prefix(p, "n2", 1)
    assert p + "n7" == "n9@2/n2#1/n7"
    assert node_id("n9@2/n2#1/n7") == "n7"
    assert node_id("n7") == "n7"


def test_idempotency_keys() -> None:
    # stable across retry attempts, distinct per loop iteration and per instance
    assert idempotency_key("abcd1234", "n9@1/n3") == idempotency_key("abcd1234", "n9@2/n3")
    assert idempotency_key("abcd1234", "n2#1/n3") != idempotency_key("abcd1234", "n2#2/n3")
    assert idempotency_key("abcd1234", "n3") != idempotency_key("abcd1235", "n3")
    assert idempotency_key("abcd1234", "n2#3/n9@2/n3") == "dfc-abcd1234-n2#3/n3"


def test_loop_index() -> None:
    keys = ["n1", "n2#1/n3", "n2#2/n3", "n2#2/n5#1/n6", "n2#2/n5#2/n6", "n9@2/n2#1/n3", "n2#x/n3"]
    index = loop_index(keys)
    assert index["n2"] == {1: ["n2#1/n3"], 2: ["n2#2/n3", "n2#2/n5#1/n6", "n2#2/n5#2/n6"]}
    assert index["n2#2/n5"] == {1: ["n2#2/n5#1/n6"], 2: ["n2#2/n5#2/n6"]}
    assert index["n9@2/n2"] == {1: ["n9@2/n2#1/n3"]}


def at(h: int, m: int, s: int = 0) -> datetime:
    return datetime(2025, 1, 1, h, m, s, tzinfo=UTC)


def test_next_fire_is_strictly_later_minute() -> None:
    assert next_fire("* * * * *", at(12, 0, 30)) == at(12, 1)
    assert next_fire("* * * * *", at(12, 0)) == at(12, 1)
    assert next_fire("0 * * * *", at(12, 0)) == at(13, 0)
    assert next_fire("*/15 * * * *", at(12, 7)) == at(12, 15)


def test_next_fire_in_a_time_zone_is_returned_in_utc() -> None:
    # 09:00 in Paris is 08:00 UTC in January
    assert next_fire("0 9 * * *", at(7, 0), "Europe/Paris") == at(8, 0)


def test_bad_cron() -> None:
    with pytest.raises(CronSimError):
        next_fire("61 * * * *", at(0, 0))


def test_backoff() -> None:
    config = Retry(backoff=1, factor=2, max_backoff=5, jitter=False)
    assert [backoff(config, k, "seed") for k in (1, 2, 3, 4, 500)] == [1, 2, 4, 5, 5]
    plain = Retry(jitter=False)
    assert backoff(plain, 1, "seed") == 1  # defaults: 1 s, doubling, at most 300 s
    assert backoff(plain, 20, "seed") == 300
    jittered = Retry(backoff=10)  # jitter is on by default
    assert backoff(jittered, 1, "a") == backoff(jittered, 1, "a")
    assert backoff(jittered, 1, "a") != backoff(jittered, 1, "b")
    assert all(0 <= backoff(jittered, 1, str(i)) <= 10 for i in range(50))
