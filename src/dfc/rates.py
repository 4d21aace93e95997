"""Rate limits of workflows (``df.start(..., rate_limit => '10/minute')``): how the text reads and
the spacing it puts between two starts.

A limit of N per period is kept as a smooth rate, one start every period / N (a leaky bucket
with no burst, as the queue enforces it: `dfc.flow_enqueue`, migration 0014), so that a
downstream API never sees more than N calls in any window of one period.
"""

from __future__ import annotations

import re

_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_ALIASES = {"s": "second", "sec": "second", "min": "minute", "m": "minute", "h": "hour", "d": "day"}
_RATE = re.compile(r"\s*(\d+)\s*/\s*([a-z]+?)s?\s*", re.IGNORECASE)

FORM = "N/second, N/minute, N/hour or N/day, e.g. '10/minute'"
"""What a rate limit looks like, for error messages."""


def spacing(text: str) -> float | None:
    """Seconds between two starts under the rate limit ``text`` (``'10/minute'`` gives 6.0);
    None when ``text`` is not a rate limit (see `FORM`) or its count is 0."""
    m = _RATE.fullmatch(text)
    if m is None:
        return None
    unit = m.group(2).lower()
    period = _PERIODS.get(_ALIASES.get(unit, unit))
    count = int(m.group(1))
    if period is None or count < 1:
        return None
    return period / count
