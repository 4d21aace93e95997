"""Where the runtime reads the time: the system clock, or a test's virtual clock.

The machine is a pure function of ``now`` (`dfc.runtime.machine.evaluate`); the engine and the
worker read ``now`` from a `Clock`, so that a test can run the real runtime on a clock it moves
(`dfc.testing`). SQL that decides what is due compares with the server's ``now()`` for the
system clock (those statements are unchanged, plans and all) and with the clock's time only
for a virtual one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """The time for an engine and its worker."""

    @property
    def real(self) -> bool:
        """Whether this is the real time, so that SQL may compare due times with the server's
        ``now()`` (True for the system clock; a virtual clock may be ahead of it)."""
        ...

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    """The real time, as the host tells it."""

    real = True

    def now(self) -> datetime:
        """``datetime.now(UTC)``."""
        return datetime.now(UTC)


SYSTEM = SystemClock()
"""The clock of every worker that is not given another one."""
