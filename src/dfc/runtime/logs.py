"""Structured worker logs: one line per step and per instance event, on standard error.

Text lines read ``TIME INSTANCE EVENT KEY STATUS DURATION [details]``; JSON lines carry the same
fields with stable names (``ts``, ``instance``, ``event``, ``node``, ``key``, ``status``, ``ms``,
...) for log shippers. ``quiet`` keeps only errors and worker-level lines (benchmarks); ``errors_only`` only errors
(``dfc run``, which shows a tree instead).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from dfc.runtime.state import Evaluation, NodeRecord


class StepLog:
    """Writes worker log lines in ``text`` or ``json`` format."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        fmt: str = "text",
        quiet: bool = False,
        errors_only: bool = False,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.fmt = fmt
        self.quiet = quiet or errors_only
        self.errors_only = errors_only
        self._lock = threading.Lock()

    def _emit(
        self, fields: dict[str, Any], *, important: bool = False, error: bool = False
    ) -> None:
        if (self.quiet and not important) or (self.errors_only and not error):
            return
        ts = datetime.now(UTC)
        if self.fmt == "json":
            line = json.dumps({"ts": ts.isoformat(timespec="milliseconds"), **fields}, default=str)
        else:
            parts = [ts.strftime("%H:%M:%S.") + f"{ts.microsecond // 1000:03d}"]
            for name in ("instance", "event", "key", "status"):
                if fields.get(name) is not None:
                    parts.append(str(fields[name]))
            if fields.get("ms") is not None:
                parts.append(f"{fields['ms']:.1f}ms")
            for k, v in fields.items():
                if k not in ("instance", "event", "key", "status", "ms", "node") and v is not None:
                    parts.append(f"{k}={v}")
            line = " ".join(parts)
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # a closed or broken log stream must not stop the worker

    def step(self, instance: str, rec: NodeRecord, ms: float, kind: str | None = None) -> None:
        """A SQL or HTTP step finished (completed or failed)."""
        if self.quiet:  # once per step: skip building a line that would be dropped
            return
        fields = _node_fields(instance, rec, kind or "step")
        fields["ms"] = round(ms, 2)
        if rec.status == "failed" and isinstance(rec.error, Mapping):
            fields["error"] = rec.error.get("message")
            fields["sqlstate"] = rec.error.get("sqlstate")
        self._emit(fields)

    def record(self, instance: str, rec: NodeRecord, kind: str | None = None) -> None:
        """The machine decided something (timer started or fired, signal consumed, ...)."""
        if self.quiet:
            return
        fields = _node_fields(instance, rec, kind or "node")
        if rec.wake_at is not None and rec.status == "waiting":
            fields["until"] = rec.wake_at.isoformat(timespec="seconds")
        self._emit(fields)

    def released(self, instance: str, run_at: datetime | None, ev: Evaluation | None) -> None:
        waiting = "signal" if run_at is None else run_at.isoformat(timespec="milliseconds")
        self._emit({"instance": instance, "event": "released", "until": waiting})

    def finished(self, instance: str, status: str, error: Any) -> None:
        fields: dict[str, Any] = {"instance": instance, "event": "instance", "status": status}
        if isinstance(error, Mapping):
            fields["error"] = error.get("message")
            if error.get("at"):
                fields["at"] = error.get("at")
        self._emit(fields)

    def event(self, instance: str | None, event: str, message: str | None = None) -> None:
        self._emit({"instance": instance, "event": event, "message": message})

    def error(self, instance: str | None, message: str) -> None:
        self._emit(
            {"instance": instance, "event": "error", "message": message}, important=True, error=True
        )

    def info(self, message: str, **fields: Any) -> None:
        self._emit({"event": "worker", "message": message, **fields}, important=True)


def _node_fields(instance: str, rec: NodeRecord, event: str) -> dict[str, Any]:
    """The fields of a line about one node's record."""
    return {
        "instance": instance,
        "event": event.lower(),
        "node": rec.node_id,
        "key": rec.key,
        "status": rec.status,
    }
