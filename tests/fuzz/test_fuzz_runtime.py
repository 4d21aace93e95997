"""Random valid workflows run on the real runtime, compared with the reference evaluator
(`fuzz_run`, `fuzz_workflows`; docs/reliability.md has the modes and commands)."""

from __future__ import annotations

import pytest
from fuzz_modes import fuzz, long_timeout
from fuzz_run import cases, run_case

pytestmark = [pytest.mark.db]

DEFAULT_EXAMPLES = 20


def test_random_workflows_do_what_the_reference_evaluator_predicts(fuzz_url: str) -> None:
    assert fuzz(cases, lambda c: run_case(fuzz_url, c), examples=DEFAULT_EXAMPLES, long_mode=False)


@pytest.mark.long
@long_timeout()
def test_random_workflows_long(fuzz_url: str) -> None:
    fuzz(cases, lambda c: run_case(fuzz_url, c), examples=0, long_mode=True, round_examples=100)
