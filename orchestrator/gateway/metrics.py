"""The gateway's own Prometheus families, on the process's registry beside the runtime's."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Histogram

from orchestrator.observability.metrics import LATENCY_BUCKETS, METRICS

__all__ = ["GATEWAY_LATENCY", "GATEWAY_REQUESTS"]

GATEWAY_REQUESTS: Final = Counter(
    "orchestrator_gateway_requests",
    "Requests through the gateway by API, boundary and outcome (ok or the error status).",
    ["api", "boundary", "outcome"],
    registry=METRICS.registry,
)
GATEWAY_LATENCY: Final = Histogram(
    "orchestrator_gateway_request_seconds",
    "Time from a gateway request's arrival to its answer, by API and outcome.",
    ["api", "outcome"],
    buckets=LATENCY_BUCKETS,
    registry=METRICS.registry,
)
