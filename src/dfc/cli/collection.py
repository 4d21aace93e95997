"""When the ``dfc`` process collects cyclic garbage: not while it imports or checks, not at exit.

A command is short-lived and makes next to no cyclic garbage (reference counting frees the rest),
but Python's collector runs as objects pile up and walks every object still alive: the modules
imported (sqlglot, lark, click, rich, dfc), the trees of a check. For ``dfc check`` of a
2,000-node file that was about a fifth of its time (SPEC §9: well under a second; editors run it
on every save).
"""

from __future__ import annotations

import atexit
import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile; as it was before afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def frozen_at_exit() -> None:
    """Freeze every object left at exit out of the interpreter's last collections (60-140 ms
    of a ``dfc check``): the memory of an ending process goes back to the system anyway.

    Registered once however often it is called, as when tests run many commands in one process.
    """
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
