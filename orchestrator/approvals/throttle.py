"""Sign-in throttling for the inbox: failed attempts per name and per client address.

A password guesser gets `limit` failures per `window` on one name (5 in 15 minutes by
default) and a few more from one address over any names (20), then a 429 with
`Retry-After` until the oldest counted failure leaves the window. A successful sign-in
clears the name's count (the address's stays: one right password does not license a
spray from the same place). A refused attempt is not checked and does not count, so the
scrypt work is not spent on it either.

The decision (`wait_seconds`) is a pure function of the failure times; `SignInThrottle`
keeps those times in memory, per API process. Replicas behind a load balancer each count
on their own, so the effective limit is per replica. Addresses are the client's as the
HTTP server sees them: uvicorn takes `X-Forwarded-For` only from the proxies it trusts
(`FORWARDED_ALLOW_IPS`, loopback by default).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["MAX_KEYS", "SignInThrottle", "ThrottleRule", "wait_seconds"]

MAX_KEYS = 10_000
"""Most names (and, separately, addresses) tracked at once; the stalest are forgotten first."""


@dataclass(frozen=True)
class ThrottleRule:
    """At most `limit` failures within any `window_seconds`."""

    limit: int
    window_seconds: float


def wait_seconds(failures: Sequence[float], now: float, rule: ThrottleRule) -> float:
    """How long a new attempt must wait given earlier failure times; 0 when it may go now.

    `failures` are ascending times (seconds). An attempt is refused while `rule.limit`
    failures lie within the window; it may go once the oldest of them leaves it.
    """
    recent = [t for t in failures if now - t < rule.window_seconds]
    if len(recent) < rule.limit:
        return 0.0
    return recent[-rule.limit] + rule.window_seconds - now


@dataclass
class SignInThrottle:
    """Failure times by name and by address, and whether a new attempt may go."""

    per_name: ThrottleRule = ThrottleRule(limit=5, window_seconds=15 * 60)
    per_address: ThrottleRule = ThrottleRule(limit=20, window_seconds=15 * 60)
    _names: dict[str, list[float]] = field(default_factory=dict)
    _addresses: dict[str, list[float]] = field(default_factory=dict)

    def retry_after(self, name: str, address: str, now: float) -> int:
        """Whole seconds a sign-in as `name` from `address` must wait (0: it may go)."""
        wait = max(
            wait_seconds(self._names.get(name, ()), now, self.per_name),
            wait_seconds(self._addresses.get(address, ()), now, self.per_address),
        )
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, name: str, address: str, now: float) -> None:
        """Count a failed sign-in against the name and the address."""
        _add(self._names, name, now, self.per_name)
        _add(self._addresses, address, now, self.per_address)

    def succeeded(self, name: str) -> None:
        """A right password clears the name's failures."""
        self._names.pop(name, None)


def _add(table: dict[str, list[float]], key: str, now: float, rule: ThrottleRule) -> None:
    """Record a failure, keeping only those still in the window and at most `MAX_KEYS` keys."""
    times = [t for t in table.pop(key, []) if now - t < rule.window_seconds]
    table[key] = [*times[-rule.limit :], now]  # re-inserted: dict order is staleness order
    while len(table) > MAX_KEYS:
        del table[next(iter(table))]
