"""The gateway's own Prometheus families, on the process's registry beside the runtime's."""

from __future__ import annotations

from typing import Final, TypeVar

from prometheus_client import Counter, Histogram

from orchestrator.observability.metrics import LATENCY_BUCKETS, METRICS

__all__ = ["GATEWAY_LATENCY", "GATEWAY_REQUESTS", "child"]

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

_MetricT = TypeVar("_MetricT", Counter, Histogram)

_CHILDREN: dict[tuple[int, tuple[str, ...]], Counter | Histogram] = {}


def child(family: _MetricT, *values: str) -> _MetricT:
    """`family.labels(*values)`, looked up once per label set and kept.

    `labels` checks and converts its values and takes a lock on every call: three of them
    per request cost more than the counting itself. The label sets are the same few
    (APIs, boundaries, outcomes, deployments), so the children are kept here.
    """
    key = (id(family), values)
    found = _CHILDREN.get(key)
    if found is None:
        found = family.labels(*values)
        _CHILDREN[key] = found
    return found  # type: ignore[return-value]
