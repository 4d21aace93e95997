"""OpenTelemetry traces (issue 13): a span per instance run and per step, with the plan node's
source location, and the W3C ``traceparent`` of the step sent on HTTP steps, collected with the
SDK's in-memory exporter from an in-process worker."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from runtime_support import QuietHandler, info, local_http_server, run_until_done

from dfc.compiler import compile_source
from dfc.runtime import instances, tracing
from dfc.source import SourceFile
from dfc.store.db import connect
from dfc.store.registry import deploy

pytestmark = [pytest.mark.db, pytest.mark.timeout(60)]

FLOW = """'SELECT 1 AS a' |=> 'a'
~> 'SELECT $a + 1 AS b'
~> df.http('{base}/hook', 'GET') |=> 'call'
~> 'SELECT 3 AS c'
"""


class _Recorder(QuietHandler):
    headers_seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        _Recorder.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        self.reply(200)


@pytest.fixture
def base(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    _Recorder.headers_seen.clear()
    with local_http_server(_Recorder) as url:
        monkeypatch.setenv("DFC_HTTP_ALLOW", url.removeprefix("http://"))
        yield url


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)
        provider.shutdown()


def run(db_url: str, name: str, text: str) -> str:
    comp = compile_source(SourceFile(f"{name}.df", text))
    assert comp.plan is not None, comp.sorted_diagnostics
    with connect(db_url) as conn:
        version = deploy(conn, comp.plan).version
        with conn.transaction():
            iid = instances.start(conn, comp.plan.name, version)
    asyncio.run(run_until_done(db_url, [iid], timeout=30))
    return iid


def test_an_instance_run_and_its_steps_are_spans_and_http_carries_the_traceparent(
    db_url: str, base: str, spans: InMemorySpanExporter
) -> None:
    iid = run(db_url, "traced", FLOW.replace("{base}", base))
    assert info(db_url, iid).status == "completed"
    found: list[ReadableSpan] = list(spans.get_finished_spans())
    (run_span,) = [s for s in found if s.name == "dfc.instance traced"]
    steps = sorted(
        (s for s in found if s.name.startswith("dfc.step ")),
        key=lambda s: s.attributes["code.lineno"],  # type: ignore[index]
    )
    assert [(s.name.split()[1], s.attributes["code.lineno"]) for s in steps] == [
        ("SQL", 1),
        ("SQL", 2),  # a chained step (committed with the next one's start) has its own span
        ("HTTP", 3),
        ("SQL", 4),
    ]
    assert run_span.attributes is not None and run_span.attributes["dfc.instance_id"] == iid
    trace_id = run_span.context.trace_id
    for s in steps:
        assert s.attributes is not None
        assert s.context.trace_id == trace_id
        assert s.parent is not None and s.parent.span_id == run_span.context.span_id
        assert s.attributes["code.filepath"] == "traced.df"
        assert s.attributes["dfc.status"] == "completed"
        assert s.attributes["dfc.instance_id"] == iid
    # every run of the instance is in the trace its id names
    digest = hashlib.sha256(f"dfc-instance:{iid}".encode()).digest()
    assert trace_id == int.from_bytes(digest[:16], "big")

    (seen,) = _Recorder.headers_seen
    http = steps[2]
    assert seen["traceparent"] == f"00-{trace_id:032x}-{http.context.span_id:016x}-01"


def test_a_failed_step_span_has_status_error(db_url: str, spans: InMemorySpanExporter) -> None:
    iid = run(db_url, "broken", "'SELECT 1 AS a'\n~> 'SELECT 1/0'\n")
    assert info(db_url, iid).status == "failed"
    (failed,) = [s for s in spans.get_finished_spans() if s.name.startswith("dfc.step SQL")
                 and s.attributes and s.attributes["code.lineno"] == 2]  # fmt: skip
    assert failed.status.status_code is StatusCode.ERROR
    assert "division by zero" in str(failed.status.description)


def test_without_tracing_no_header_is_added(db_url: str, base: str) -> None:
    run(db_url, "untraced", FLOW.replace("{base}", base))
    (seen,) = _Recorder.headers_seen
    assert "traceparent" not in seen


def test_dfc_run_exports_spans_as_the_otel_variables_say(db_url: str, tmp_path: Path) -> None:
    flow = tmp_path / "consoled.df"
    flow.write_text("'SELECT 1 AS a'\n")
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "billing"}
    command = [sys.executable, "-m", "dfc", "run", str(flow), "--db", db_url]
    r = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert '"name": "dfc.instance consoled"' in r.stdout
    assert '"name": "dfc.step SQL n1"' in r.stdout
    assert '"service.name": "billing"' in r.stdout
    env["OTEL_TRACES_EXPORTER"] = "zipkin"
    r = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "unknown OTEL_TRACES_EXPORTER 'zipkin'" in r.stderr


@pytest.mark.parametrize(
    ("env", "exporters"),
    [
        ({}, None),
        ({"OTEL_TRACES_EXPORTER": "none"}, None),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, None),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
    ],
)
def test_traces_are_on_only_when_the_otel_variables_ask(
    env: dict[str, str], exporters: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        assert tracing.configure_from_env() == exporters
    finally:
        tracing.shutdown()
