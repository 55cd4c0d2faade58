"""Live per-deployment metrics: latency EWMA and p95, error rate, rate-limit cooldowns.

`call_model` reports every call here; the router reads it. A failure or a 429 puts the
deployment into cooldown (for `Retry-After` when the endpoint says, else a backoff that
doubles with each consecutive failure), and the router avoids it until the cooldown ends.

The numbers are per worker process: each worker learns from the calls it makes. The router
scores on `scored_latency_ms`, `scored_latency_spread` and `scored_error_rate`, which follow
the EWMAs but move only when these drift materially (latency by a quarter, its spread with
it, error rate by 0.05); `version` changes exactly when they move or a cooldown starts or ends,
so a decision cached under one version is the decision a fresh computation would make.

A latency is known only to within its spread: a deployment's calls wander (load, the
provider's own drift) and each sample is noisy. The spread is the typical size of a
sample's relative departure from the EWMA before it (the root of an EWMA of the squared
log ratio), so it grows with both noise and drift; the router treats latency differences
within it as ties (`orchestrator.routing.scoring.optimistic_latencies`).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["DeploymentStats", "LiveMetrics"]

_ALPHA = 0.2
"""Weight of the newest sample in the latency and error EWMAs."""

_SPREAD_ALPHA = 0.05
"""Weight of the newest sample in the EWMA of squared log ratios behind the latency spread:
slower than the latency's own, since a square of one noisy sample says little."""


@dataclass
class DeploymentStats:
    """What is known about one deployment right now."""

    latency_ewma_ms: float | None = None
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    error_rate: float = 0.0
    """EWMA of failures (1) and successes (0)."""
    calls: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    cooldown_until: float = 0.0
    cooldown_cause: str | None = None
    rate_limited: bool = False
    scored_latency_ms: float | None = None
    """What the router scores on: the EWMA as of its last material move."""
    latency_log_var: float = 0.0
    """EWMA of the squared log ratio of each sample to the latency EWMA before it."""
    scored_latency_spread: float = 0.0
    """What the router scores on: the latency spread (`latency_spread`) as of the scored
    latency's last material move; 0 until then."""

    @property
    def latency_spread(self) -> float:
        """Typical relative departure of a sample from the EWMA, in log units (0.1: ~10%)."""
        return math.sqrt(self.latency_log_var)

    scored_error_rate: float = 0.0

    @property
    def p95_ms(self) -> float | None:
        """95th percentile of recent latencies."""
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


_LATENCY_DRIFT = 0.25
_ERROR_DRIFT = 0.05


class LiveMetrics:
    """Per-deployment stats, updated from every call.

    Args:
        clock: Seconds on a monotonic clock; tests pass a fake one to end cooldowns
            without waiting.
        base_cooldown: Seconds of cooldown after a first failure without `Retry-After`.
        max_cooldown: Longest cooldown a failure (not a `Retry-After`) can cause.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        base_cooldown: float = 5.0,
        max_cooldown: float = 300.0,
    ) -> None:
        self.clock = clock
        self.base_cooldown = base_cooldown
        self.max_cooldown = max_cooldown
        self.version = 0
        self._stats: dict[str, DeploymentStats] = {}

    def stats(self, deployment: str) -> DeploymentStats:
        """The stats of a deployment (created empty on first use)."""
        found = self._stats.get(deployment)
        if found is None:
            found = self._stats[deployment] = DeploymentStats()
        return found

    def peek(self, deployment: str) -> DeploymentStats | None:
        """The stats of a deployment, or None if it was never called."""
        return self._stats.get(deployment)

    def snapshot(self) -> dict[str, DeploymentStats]:
        """Every deployment seen so far."""
        return dict(self._stats)

    def record_success(self, deployment: str, latency_ms: float) -> None:
        """A call answered in `latency_ms`."""
        s = self.stats(deployment)
        s.calls += 1
        s.samples.append(latency_ms)
        before = s.latency_ewma_ms
        if before is None:
            s.latency_ewma_ms = latency_ms
        else:
            s.latency_ewma_ms = _ALPHA * latency_ms + (1 - _ALPHA) * before
            if latency_ms > 0 and before > 0:
                ratio = math.log(latency_ms / before)
                s.latency_log_var += _SPREAD_ALPHA * (ratio * ratio - s.latency_log_var)
        s.error_rate *= 1 - _ALPHA
        s.consecutive_failures = 0
        s.rate_limited = False
        self._rescore(s)

    def _rescore(self, s: DeploymentStats) -> None:
        ewma, scored = s.latency_ewma_ms, s.scored_latency_ms
        moved = ewma is not None and (
            scored is None or abs(ewma - scored) > _LATENCY_DRIFT * scored
        )
        if moved:
            # The spread is taken with the latency: it moves slowly, and a move of its own
            # would invalidate every cached decision for a change that rarely turns one.
            s.scored_latency_ms = ewma
            s.scored_latency_spread = s.latency_spread
        if abs(s.error_rate - s.scored_error_rate) > _ERROR_DRIFT or (
            s.error_rate < _ERROR_DRIFT / 2 < s.scored_error_rate
        ):
            s.scored_error_rate = s.error_rate
            moved = True
        if moved:
            self.version += 1

    def record_failure(
        self, deployment: str, cause: str, *, rate_limited: bool = False, retry_after: float | None
    ) -> float:
        """A call failed; start (or extend) a cooldown. Returns the cooldown in seconds."""
        s = self.stats(deployment)
        s.calls += 1
        s.failures += 1
        s.consecutive_failures += 1
        if not rate_limited:
            # A 429 says the deployment is busy, not that it is faulty.
            s.error_rate = _ALPHA + (1 - _ALPHA) * s.error_rate
        s.rate_limited = rate_limited
        if retry_after is not None:
            seconds = retry_after
        else:
            seconds = min(self.max_cooldown, self.base_cooldown * 2 ** (s.consecutive_failures - 1))
        s.cooldown_until = max(s.cooldown_until, self.clock() + seconds)
        s.cooldown_cause = cause
        self._rescore(s)
        self.version += 1
        return seconds

    def cooldown_left(self, deployment: str) -> float:
        """Seconds until the deployment may be chosen again; 0 when it is not cooling down."""
        s = self._stats.get(deployment)
        if s is None or not s.cooldown_until:
            return 0.0
        left = s.cooldown_until - self.clock()
        if left <= 0:
            s.cooldown_until = 0.0
            self.version += 1
            return 0.0
        return left
