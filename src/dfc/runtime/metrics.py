"""Prometheus metrics of a worker process (`dfc worker --metrics-port N`; docs/operations.md).

What happens in the worker is counted in memory as it happens, at a few microseconds per step:
steps by kind and outcome, their durations, checkpoint round trips, retries, HTTP calls by status
class, finished instances, lease takeovers. What the database knows (the queue, the instances by
status) is read when Prometheus scrapes, by one statement (`dfc.store.metrics`), never per step.

The metrics live in a registry of their own, served by the official client's HTTP server on a
thread of the worker process. One worker process, one set of metrics: `enable` makes them the
receiver of the process's reports (`dfc.runtime.observe`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dfc.runtime import observe
from dfc.runtime.logs import StepLog
from dfc.runtime.state import NodeRecord
from dfc.store.db import connect
from dfc.store.metrics import gauges_txn

_STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_CHECKPOINT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
_LATER_ATTEMPT = re.compile(r"@(?!1/)\d+/")  # a key segment of a retry's attempt 2, 3, ...


class WorkerMetrics:
    """The metrics of one worker process and the registry that serves them."""

    def __init__(self, url: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.steps = Counter(
            "dfc_steps", "SQL and HTTP steps run, by node kind and outcome.", ["kind", "outcome"],
            registry=r,
        )  # fmt: skip
        self.step_seconds = Histogram(
            "dfc_step_duration_seconds",
            "How long steps took, their checkpoint included, by node kind.",
            ["kind"],
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "dfc_checkpoint_duration_seconds",
            "Round trips that write checkpoints and commit them without running a step.",
            buckets=_CHECKPOINT_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "dfc_step_retries", "Steps run again by df.retry (attempt 2 and later).", registry=r
        )
        self.http = Counter(
            "dfc_http_requests",
            "HTTP steps by response status class (2xx ... 5xx), or error without a response.",
            ["status_class"],
            registry=r,
        )
        self.finished = Counter(
            "dfc_instances_finished", "Instances this worker finished, by status.", ["status"],
            registry=r,
        )  # fmt: skip
        self.taken_over = Counter(
            "dfc_lease_takeovers",
            "Instances this worker took back from dead workers (their leases freed).",
            registry=r,
        )
        r.register(_DatabaseCollector(url))
        # Labelled children looked up once: `labels()` costs more than the increment.
        self._by_kind: dict[tuple[str, str], tuple[Any, Any]] = {}

    def step(self, rec: NodeRecord, ms: float, kind: str) -> None:
        """A SQL or HTTP step ended with ``rec`` after ``ms`` milliseconds."""
        children = self._by_kind.get((kind, rec.status))
        if children is None:
            children = (self.steps.labels(kind, rec.status), self.step_seconds.labels(kind))
            self._by_kind[(kind, rec.status)] = children
        children[0].inc()
        children[1].observe(ms / 1000)
        if "@" in rec.key and _LATER_ATTEMPT.search(rec.key):
            self.retries.inc()
        if kind in ("HTTP", "HTTP_MULTIPART"):
            self.http.labels(_status_class(rec)).inc()

    def checkpoint(self, seconds: float) -> None:
        """`dfc.runtime.observe.Observer.checkpoint`."""
        self.checkpoint_seconds.observe(seconds)

    def takeovers(self, n: int) -> None:
        """`dfc.runtime.observe.Observer.takeovers`."""
        self.taken_over.inc(n)

    def serve(self, port: int, addr: str) -> int:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread; returns the port (``0``
        asks the system for a free one)."""
        server, _ = start_http_server(port, addr, registry=self.registry)
        return int(server.server_port)


def _status_class(rec: NodeRecord) -> str:
    holder = rec.result if rec.status == "completed" else rec.error
    status = holder.get("status") if isinstance(holder, Mapping) else None
    return f"{status // 100}xx" if isinstance(status, int) else "error"


class _DatabaseCollector(Collector):
    """The queue and the instances, read from the database at each scrape on a connection of
    its own (opened on first use, again after an error)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()  # scrapes may overlap; one connection serves one at a time

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "dfc_database_up", "1 when the last scrape could read the database, else 0."
        )
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self.url)
                g = gauges_txn(self._conn)
            except Exception:  # any failure: report it as a gauge, never fail the scrape
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                up.add_metric([], 0)
                yield up
                return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "dfc_queue_due", "Instances due to run that no worker holds.", value=g.due
        )
        yield GaugeMetricFamily(
            "dfc_queue_oldest_due_seconds",
            "How long the longest-waiting due instance has waited for a worker.",
            value=g.oldest_due_s,
        )
        by_status = GaugeMetricFamily("dfc_instances", "Instances by status.", labels=["status"])
        for status in ("pending", "running", "completed", "failed", "cancelled"):
            by_status.add_metric([status], g.instances.get(status, 0))
        yield by_status


class MeteredLog(StepLog):
    """The worker's log, also counting each step and finished instance in ``metrics``."""

    def __init__(self, metrics: WorkerMetrics, **options: Any) -> None:
        super().__init__(**options)
        self.metrics = metrics

    def step(self, instance: str, rec: NodeRecord, ms: float, kind: str | None = None) -> None:
        self.metrics.step(rec, ms, kind or "step")
        super().step(instance, rec, ms, kind)

    def finished(self, instance: str, status: str, error: Any) -> None:
        self.metrics.finished.labels(status).inc()
        super().finished(instance, status, error)


def serve(url: str, port: int, addr: str) -> tuple[WorkerMetrics, int]:
    """Create this process's worker metrics (reading the database at ``url`` on scrapes), serve
    them on ``addr:port`` (`WorkerMetrics.serve`; `OSError` when it cannot) and make them receive
    the worker's reports (`dfc.runtime.observe`). Returns them and the port."""
    metrics = WorkerMetrics(url)
    bound = metrics.serve(port, addr)
    observe.install(metrics)
    return metrics, bound
