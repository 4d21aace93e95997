"""OpenTelemetry traces of instance runs and their steps (the optional extra ``dfc[otel]``;
docs/operations.md, "OpenTelemetry traces").

Each run of an instance by a worker (its first, and each after a timer, a signal or a crash) is a
span, ``dfc.instance NAME``, and each SQL or HTTP step in it a child span, ``dfc.step KIND
NODE``, with the plan node's source location (``code.filepath``, ``code.lineno``,
``code.column``) and the instance, node and key as attributes; a failed step's span has status
ERROR. Every run of one instance belongs to one trace, whose id derives from the instance id,
under a parent span that stands for the whole instance and is never exported (an instance can
last for days, across processes). An HTTP step sends the W3C ``traceparent`` of its span, so the
service it calls shows up inside the workflow's trace.

Nothing is traced until `install` (a program embedding dfc's worker, with its own tracer
provider) or `configure_from_env` (``dfc worker`` and ``dfc run``, from the standard ``OTEL_*``
variables). Until then the hooks cost one comparison with None, and this module imports no
OpenTelemetry package.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dfc.diagnostics import DfcError
from dfc.runtime.state import HttpRequest, NodeRecord

if TYPE_CHECKING:
    from dfc.runtime.steps import Lease

_tracer: Any = None  # an opentelemetry.trace.Tracer once installed
_provider: Any = None  # the provider `configure_from_env` made, shut down by `shutdown`


def install(provider: Any) -> None:
    """Trace with ``provider`` (an OpenTelemetry ``TracerProvider``; None: stop tracing)."""
    global _tracer
    _tracer = None if provider is None else provider.get_tracer("dfc")


def configure_from_env() -> str | None:
    """Set up tracing as the standard ``OTEL_*`` variables say; returns the exporters set up
    (for the worker's log), or None when they ask for no traces.

    Traces are on when ``OTEL_TRACES_EXPORTER`` names exporters (``otlp``, ``console``; ``none``
    turns them off) or an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT``,
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), unless ``OTEL_SDK_DISABLED=true``. The exporters
    read their own variables (endpoint, headers, protocol, timeout); the resource reads
    ``OTEL_SERVICE_NAME`` (default ``dfc``) and ``OTEL_RESOURCE_ATTRIBUTES``; the sampler
    ``OTEL_TRACES_SAMPLER``. Raises `DfcError` when traces are asked for and the extra is not
    installed, or for an unknown exporter.
    """
    global _provider
    env = os.environ
    names = env.get("OTEL_TRACES_EXPORTER")
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or (not names and not endpoint):
        return None
    wanted = [n.strip() for n in (names or "otlp").split(",") if n.strip() and n.strip() != "none"]
    if not wanted:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise DfcError(
            "OTEL_* variables ask for traces, but the OpenTelemetry SDK is not installed",
            hint="install it with `pip install 'dfc[otel]'`, or unset OTEL_TRACES_EXPORTER",
        ) from None
    defaults = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": "dfc"}
    provider = TracerProvider(resource=Resource.create(defaults))
    for name in wanted:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    _provider = provider
    install(provider)
    return ", ".join(wanted)


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise DfcError(
                "OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter, which is not installed",
                hint="install it with `pip install 'dfc[otel]'`",
            ) from None
        return OTLPSpanExporter()
    raise DfcError(
        f"unknown OTEL_TRACES_EXPORTER {name!r}",
        hint="dfc exports traces with otlp (OTLP over HTTP) or console, or none",
    )


def shutdown() -> None:
    """Export what is buffered and stop (the end of ``dfc worker`` or ``dfc run``)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None
    install(None)


def _instance_context(instance_id: str) -> Any:
    """The context of the span that stands for the whole instance: ids from its id."""
    from opentelemetry import trace

    digest = hashlib.sha256(f"dfc-instance:{instance_id}".encode()).digest()
    parent = trace.SpanContext(
        trace_id=int.from_bytes(digest[:16], "big"),
        span_id=int.from_bytes(digest[16:24], "big"),
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


class RunSpan:
    """The span of an instance run: the parent of its steps' spans, told how the run ended
    (nothing when tracing is off)."""

    def __init__(self, span: Any = None) -> None:
        self.span = span
        self.context: Any = None
        if span is not None:
            from opentelemetry import trace

            self.context = trace.set_span_in_context(span)

    def outcome(self, outcome: str) -> None:
        """How the run ended (``completed``, ``released``, ...)."""
        if self.span is not None:
            self.span.set_attribute("dfc.outcome", outcome)


OFF = RunSpan()
"""The run span when tracing is off."""


@contextlib.contextmanager
def instance_run(lease: Lease) -> Iterator[RunSpan]:
    """The span of one run of the instance ``lease`` holds (current while it runs, so the
    steps' spans are its children)."""
    if _tracer is None:
        yield OFF
        return
    attributes = {"dfc.instance_id": lease.instance_id, "dfc.workflow": lease.plan.name}
    with _tracer.start_as_current_span(
        f"dfc.instance {lease.plan.name}",
        context=_instance_context(lease.instance_id),
        attributes=attributes,
    ) as span:
        yield RunSpan(span)


def start_step(run: RunSpan, lease: Lease, key: str, node_id: str) -> Any:
    """The span of the step at ``key``, started now as a child of ``run`` (None when tracing is
    off). One task runs a step, or a chain of steps that commit one another
    (`dfc.runtime.steps.Chain`, possibly from a batch lane's task): each gets its span in turn."""
    if run.span is None or _tracer is None:
        return None
    node = lease.plan.nodes.get(node_id)
    kind = node.type if node is not None else "STEP"
    attributes: dict[str, Any] = {
        "dfc.instance_id": lease.instance_id,
        "dfc.node_id": node_id,
        "dfc.key": key,
        "dfc.node_kind": kind,
    }
    where = lease.plan.where(node_id)
    if where is not None:
        attributes |= {
            "code.filepath": where.file,
            "code.lineno": where.line,
            "code.column": where.column,
        }
    return _tracer.start_span(
        f"dfc.step {kind} {node_id}", context=run.context, attributes=attributes
    )


def end_step(span: Any, rec: NodeRecord | None) -> None:
    """End a step's span with the record its step wrote (None: none, e.g. it was cancelled or
    the lease was lost); a failed step's span has status ERROR."""
    if span is None:
        return
    if rec is not None:
        span.set_attribute("dfc.status", rec.status)
        if rec.status == "failed":
            from opentelemetry.trace import Status, StatusCode

            message = rec.error.get("message") if isinstance(rec.error, dict) else None
            span.set_status(Status(StatusCode.ERROR, str(message or "failed")))
    span.end()


def with_traceparent(span: Any, request: HttpRequest) -> HttpRequest:
    """``request`` with the W3C ``traceparent`` (and ``tracestate``) headers of the step's
    ``span``, replacing any the workflow wrote; unchanged when tracing is off."""
    if span is None:
        return request
    from opentelemetry import trace
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier, context=trace.set_span_in_context(span))
    if not carrier:
        return request
    names = {k.lower() for k in carrier}
    headers = {k: v for k, v in request.headers.items() if k.lower() not in names}
    return dataclasses.replace(request, headers={**headers, **carrier})
