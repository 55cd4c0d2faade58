"""Requests and tokens per minute per key, over a sliding one-minute window.

Counted in this process: with several gateway processes behind a balancer, each enforces
the key's limits on what it serves (divide the limits by the process count, or pin a
key's clients to one process). Tokens are counted when an answer says how many it used,
so a burst of large requests can pass a token limit once before the window closes on it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.gateway.errors import RateLimited
from orchestrator.gateway.keys import GatewayKey

__all__ = ["RateLimiter"]

_WINDOW = 60.0


@dataclass
class _Window:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    token_total: int = 0

    def trim(self, now: float) -> None:
        start = now - _WINDOW
        while self.requests and self.requests[0] <= start:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= start:
            self.token_total -= self.tokens.popleft()[1]


class RateLimiter:
    """Admits a key's requests while it is under its limits.

    Args:
        clock: Seconds, monotonic; tests pass their own.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def admit(self, key: GatewayKey) -> None:
        """Count one request of `key`, or refuse it.

        Raises:
            RateLimited: over requests or tokens per minute; `Retry-After` says when the
                oldest counted request leaves the window.
        """
        limit = key.rate_limit
        if limit.requests_per_minute is None and limit.tokens_per_minute is None:
            return
        now = self._clock()
        window = self._windows.setdefault(key.id, _Window())
        window.trim(now)
        rpm, tpm = limit.requests_per_minute, limit.tokens_per_minute
        if rpm is not None and len(window.requests) >= rpm:
            self._refuse(key, f"{rpm} requests per minute", window.requests[0], now)
        if tpm is not None and window.token_total >= tpm:
            self._refuse(
                key,
                f"{tpm} tokens per minute ({window.token_total} used)",
                window.tokens[0][0],
                now,
            )
        window.requests.append(now)

    def used(self, key: GatewayKey, tokens: int) -> None:
        """Count the tokens an answer used against the key's tokens per minute."""
        if key.rate_limit.tokens_per_minute is None or tokens <= 0:
            return
        window = self._windows.setdefault(key.id, _Window())
        window.tokens.append((self._clock(), tokens))
        window.token_total += tokens

    @staticmethod
    def _refuse(key: GatewayKey, what: str, oldest: float, now: float) -> None:
        wait = max(1, math.ceil(oldest + _WINDOW - now))
        raise RateLimited(
            f"key {key.id!r} is over its rate limit of {what}; retry in {wait}s",
            headers={"retry-after": str(wait)},
        )
