"""The fuzzers' two modes (docs/reliability.md), shared by the tests of this folder.

By default each property runs a fixed, derandomized number of examples, so CI sees the same
inputs every time. With ``--long`` (the shared `long_mode` fixture) each runs for
`LONG_SECONDS` of wall time instead: rounds of fresh random examples, until the budget is spent;
a failure is shrunk by hypothesis and reported like any other. ``DFC_FUZZ_MINUTES`` shortens or
lengthens the long mode (default 30).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

T = TypeVar("T")

LONG_SECONDS = float(os.environ.get("DFC_FUZZ_MINUTES", "30")) * 60

_COMMON = settings(
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


def fuzz(
    strategy: st.SearchStrategy[T],
    check: Callable[[T], None],
    *,
    examples: int,
    long_mode: bool,
    round_examples: int = 200,
) -> int:
    """Run ``check`` on examples of ``strategy``: ``examples`` derandomized ones, or in long
    mode rounds of ``round_examples`` random ones for `LONG_SECONDS`. Returns how many ran."""
    ran = 0

    def one_round(config: dict[str, Any]) -> None:
        def body(value: Any) -> None:
            nonlocal ran
            ran += 1
            check(value)

        given(strategy)(settings(_COMMON, **config)(body))()  # type: ignore[arg-type]

    if not long_mode:
        one_round(dict(max_examples=examples, derandomize=True))
        return ran
    stop = time.monotonic() + LONG_SECONDS
    rounds = 0
    while time.monotonic() < stop:
        rounds += 1
        one_round(dict(max_examples=round_examples))
    print(f"fuzz: {ran} examples in {rounds} rounds, {LONG_SECONDS / 60:.0f} min, no failure")
    return ran


def long_timeout() -> pytest.MarkDecorator:
    """The per-test timeout of a long-mode fuzzer: its budget plus a margin for the last round."""
    return pytest.mark.timeout(LONG_SECONDS + 900)
