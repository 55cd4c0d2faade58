"""OpenTelemetry tracing: Temporal's interceptor, and exporters from `OTEL_*` variables.

One `TracingInterceptor` instance serves the whole process: the client adds it (the span
of starting a session), and `OrchestratorPlugin` adds the same instance to workers, which
the plugin machinery then recognises and does not add twice. Spans go to the global tracer
provider, a no-op until `configure_tracing` installs one.

Even with no provider the interceptor ran on every workflow activation and every activity
(a no-op span, and a trace context serialized into each activity's headers), so the
client and the plugin add it only when a provider is installed (`tracing_interceptors`):
a process calls `configure_tracing` before it connects and builds its worker.
"""

from __future__ import annotations

import functools
import os

from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from temporalio.contrib.opentelemetry import TracingInterceptor

from orchestrator.logs import get_logger

__all__ = ["configure_tracing", "tracing_interceptor", "tracing_interceptors", "tracing_on"]

log = get_logger(__name__)

_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@functools.cache
def tracing_interceptor() -> TracingInterceptor:
    """The process's tracing interceptor (client and worker), created once."""
    return TracingInterceptor()


def tracing_on() -> bool:
    """Whether spans go anywhere: a tracer provider is installed.

    `configure_tracing`'s, or one an application embedding the runtime set itself; until
    then OpenTelemetry's global provider is a proxy whose spans are dropped.
    """
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def tracing_interceptors() -> list[TracingInterceptor]:
    """The process's tracing interceptor when tracing is on (`tracing_on`), else none."""
    return [tracing_interceptor()] if tracing_on() else []


def configure_tracing(
    service_name: str, *, processor: SpanProcessor | None = None
) -> TracerProvider | None:
    """Install a tracer provider and instrument httpx, if anything is to receive spans.

    Without `processor`, spans are exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT`
    (or `..._TRACES_ENDPOINT`) is set; the exporter reads the other standard variables
    (headers, timeout, protocol details) itself. `OTEL_SDK_DISABLED=true` turns it all off;
    `OTEL_SERVICE_NAME` overrides `service_name`.

    Args:
        service_name: `service.name` of the spans (`orchestrator-worker`, `orchestrator-api`).
        processor: Where spans go instead of OTLP (tests pass an in-memory exporter's).

    Returns:
        The installed provider, or None when tracing stays off.
    """
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if processor is None:
        if not any(os.environ.get(var) for var in _ENDPOINT_VARS):
            return None
        processor = BatchSpanProcessor(_otlp_exporter())
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)
    log.info("tracing on", service=service_name)
    return provider


def _otlp_exporter() -> SpanExporter:
    # Imported only when used: the exporter pulls in protobuf and requests.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()
