"""The options of ``df.map`` (fan-out) and their defaults, for every stage that needs them.

The checker validates the literals written against these, the plan's `dfc.plan.nodes.Map`
fills in the defaults from here, and the documentation quotes them; nothing else repeats them.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

OnError = Literal["fail", "collect"]
"""What a failing row does: fail the map and cancel the others, or leave an error object in its
slot of the result and let the other rows run."""

ON_ERROR: Final[tuple[str, ...]] = get_args(OnError)
DEFAULT_ON_ERROR: Final[OnError] = "fail"
DEFAULT_CONCURRENCY: Final = 8
"""How many rows run at once when the workflow does not say."""
MAX_CONCURRENCY: Final = 1000
"""The most rows one map may run at once (each running row may hold a database connection)."""
DEFAULT_ITEM: Final = "item"
"""The name the current row is bound to in the body (``$item``, ``$item.col``)."""
