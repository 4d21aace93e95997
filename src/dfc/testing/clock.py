"""The test kit's virtual clock and the durations tests write (``'2h'``, ``'1d 12h'``)."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*")


def duration(value: str | timedelta | float) -> timedelta:
    """``value`` as a timedelta: a timedelta, seconds, or text such as ``'90s'``, ``'2h'``,
    ``'1d 12h'``, ``'1w'`` (units ms, s, m, h, d, w); raises ValueError for anything else or a
    negative duration."""
    if isinstance(value, timedelta):
        out = value
    elif isinstance(value, int | float):
        out = timedelta(seconds=value)
    else:
        text = value.strip()
        parts = _PART.findall(text)
        if not text or _PART.sub("", text):
            raise ValueError(
                f"invalid duration {value!r}: write numbers with units ms, s, m, h, d or w, "
                "such as '90s', '2h' or '1d 12h'"
            )
        out = timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))
    if out < timedelta(0):
        raise ValueError(f"invalid duration {value!r}: the clock only moves forward")
    return out


class VirtualClock:
    """The real time plus an offset that only grows (`dfc.runtime.clock.Clock`).

    It never runs behind the real time, so what the database stamps with its own ``now()`` (a
    start, a signal, a lease given back) is never in the virtual future; and it keeps running
    between moves, as the real runtime expects of a clock. `advance` moves it forward.
    """

    real = False

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The virtual time."""
        return datetime.now(UTC) + self._offset

    @property
    def offset(self) -> timedelta:
        """How far the virtual time is ahead of the real time."""
        return self._offset

    def advance(self, by: timedelta) -> None:
        """Move the clock ``by`` forward."""
        if by < timedelta(0):
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += by

    def advance_to(self, when: datetime) -> None:
        """Move the clock to ``when`` (nothing when it is already there or later)."""
        with self._lock:
            ahead = when - (datetime.now(UTC) + self._offset)
            if ahead > timedelta(0):
                self._offset += ahead
