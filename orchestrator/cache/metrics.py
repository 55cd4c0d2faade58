"""The cache's Prometheus families, on the process's registry beside the runtime's."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter

from orchestrator.observability.metrics import METRICS

__all__ = ["CACHE_EMBEDDING_USD", "CACHE_LOOKUPS", "CACHE_SAVED_USD"]

CACHE_LOOKUPS: Final = Counter(
    "orchestrator_cache_lookups",
    "Response cache lookups by model name and result (exact, semantic, miss, or why skipped).",
    ["name", "result"],
    registry=METRICS.registry,
)
CACHE_SAVED_USD: Final = Counter(
    "orchestrator_cache_saved_usd",
    "What the answers served from the response cache cost when they were made, in USD.",
    ["name"],
    registry=METRICS.registry,
)
CACHE_EMBEDDING_USD: Final = Counter(
    "orchestrator_cache_embedding_usd",
    "What embedding questions for semantic lookups cost, in USD (to net against the savings).",
    ["name"],
    registry=METRICS.registry,
)
