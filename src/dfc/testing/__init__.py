"""dfc's test kit: run workflows in tests on the real runtime with a virtual clock.

Installed with dfc as a pytest plugin: a test takes the ``dfc_env`` fixture (an `Env`) and
deploys, starts, signals and inspects workflows; sleeps, timeouts, retry backoff and cron waits
fire when the clock is advanced (``env.advance('2h')``) or skipped to by ``env.result(id)`` and
``env.run_until_idle()``; HTTP steps are answered by fakes (``env.http.fake(...)``). See
docs/testing.md.
"""

from __future__ import annotations

from dfc.testing.clock import VirtualClock, duration
from dfc.testing.env import Env, EnvError
from dfc.testing.http import HttpFakes, Reply, Request

__all__ = ["Env", "EnvError", "HttpFakes", "Reply", "Request", "VirtualClock", "duration"]
