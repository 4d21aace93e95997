"""Where the worker reports what it did beyond its log, for metrics (`dfc.runtime.metrics`).

A light module on purpose: the code that reports (steps, the worker) imports it, and only a
worker started with metrics imports the Prometheus client (a fifth of a second) and installs an
`Observer`. Until then each report is one comparison with None.
"""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    """What receives the reports."""

    def checkpoint(self, seconds: float) -> None:
        """A round trip that wrote checkpoints and committed them took ``seconds``."""

    def takeovers(self, n: int) -> None:
        """This worker freed ``n`` instances of dead workers."""


_observer: Observer | None = None


def install(observer: Observer | None) -> None:
    """Send this process's reports to ``observer`` (None: nowhere)."""
    global _observer
    _observer = observer


def checkpoint(seconds: float) -> None:
    """Report a checkpoint round trip (see `Observer.checkpoint`)."""
    if _observer is not None:
        _observer.checkpoint(seconds)


def takeovers(n: int) -> None:
    """Report instances freed from dead workers (see `Observer.takeovers`)."""
    if _observer is not None:
        _observer.takeovers(n)
