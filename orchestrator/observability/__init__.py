"""Prometheus metrics and OpenTelemetry traces for workers and the API process.

Metrics are recorded on the worker by an activity interceptor (never in workflow code, so
replays count nothing twice) and served at `/metrics`; store-derived gauges are read at
scrape time, so every process reports the same figure. Traces follow a session from the
client that starts it through the workflow, its activities and the provider's HTTP calls,
via Temporal's `TracingInterceptor`; exporters are configured by the standard `OTEL_*`
environment variables.
"""

from orchestrator.observability.interceptor import MetricsInterceptor
from orchestrator.observability.metrics import METRICS, Metrics
from orchestrator.observability.server import health_app, serve_http
from orchestrator.observability.tracing import (
    configure_tracing,
    tracing_interceptor,
    tracing_interceptors,
)

__all__ = [
    "METRICS",
    "Metrics",
    "MetricsInterceptor",
    "configure_tracing",
    "health_app",
    "serve_http",
    "tracing_interceptor",
    "tracing_interceptors",
]
