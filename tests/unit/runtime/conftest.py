"""Every state-machine test also checks the evaluation memo (`dfc.runtime.frontier`).

`Sim` evaluates through `plan_kit.evaluate`; here that name is wrapped so that each evaluation
runs twice, cold (no memo) and warm (the memo this simulated instance has used for all its
earlier evaluations, as a worker does), and the two must agree in every field, statuses in the
same order. The test itself sees the cold result.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import plan_kit
import pytest

from dfc.runtime.frontier import Memo
from dfc.runtime.machine import evaluate
from dfc.runtime.state import Evaluation


@pytest.fixture(autouse=True)
def warm_memo_agrees(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    memos: dict[tuple[int, str], Memo] = {}

    def both(plan: Any, **kw: Any) -> Evaluation:
        cold = evaluate(plan, **kw)
        memo = memos.setdefault((id(plan), kw["instance_id"]), Memo())
        warm = evaluate(plan, **kw, memo=memo)
        assert warm == cold
        assert list(warm.statuses.items()) == list(cold.statuses.items())
        return cold

    monkeypatch.setattr(plan_kit, "evaluate", both)
    yield
