"""Requests and tokens per minute per key, counted in the store by every gateway process.

Several gateway processes behind a balancer share one store, so they share each key's
counts: a key over its limit is refused by every process, whichever served its earlier
requests (`orchestrator.store.rate_windows`: a sliding-minute counter, admitted by one
conditional upsert). A key without limits costs no store access. Tokens are counted when
an answer says how many it used, so a burst of large requests can pass a token limit once
before the count closes on it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from sqlalchemy import Connection

from orchestrator.gateway.errors import RateLimited
from orchestrator.gateway.keys import GatewayKey
from orchestrator.store.group_commit import LedgerWrite
from orchestrator.store.rate_windows import RateLedger, RateRefusal
from orchestrator.store.store import Store

__all__ = ["RateLimiter"]


class RateLimiter:
    """Admits a key's requests while it is under its limits.

    Args:
        store: Where every process counts.
        writing: Where store writes go (one at a time on SQLite, see `Gateway.writing`).
        clock: Seconds since the epoch; tests pass their own.
    """

    def __init__(
        self,
        store: Store,
        writing: Callable[[], contextlib.AbstractAsyncContextManager[object]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._writing = writing
        self._clock = clock

    async def admit(self, key: GatewayKey) -> None:
        """Count one request of `key`, or refuse it.

        Raises:
            RateLimited: over requests or tokens per minute; `Retry-After` says when the
                sliding minute will have room again.
        """
        limit = key.rate_limit
        rpm, tpm = limit.requests_per_minute, limit.tokens_per_minute
        if rpm is None and tpm is None:
            return
        async with self._writing():
            refused = await self._store.rates.admit(key.id, rpm, tpm, self._clock())
        if refused is not None:
            raise _limited(key, refused)

    def admission(self, key: GatewayKey) -> Callable[[Connection], None] | None:
        """`admit` as a write in the caller's transaction; None when the key has no limits.

        The gateway runs it with the request's budget holds, in one transaction. The write
        raises `RateLimited` when the key is over a limit; its transaction then writes
        nothing.
        """
        limit = key.rate_limit
        rpm, tpm = limit.requests_per_minute, limit.tokens_per_minute
        if rpm is None and tpm is None:
            return None
        rates, key_id, now = self._store.rates, key.id, self._clock()

        def admit(conn: Connection) -> None:
            refused = rates.admit_here(conn, key_id, rpm, tpm, now)
            if refused is not None:
                raise _limited(key, refused)

        return admit

    def used_write(self, key: GatewayKey, tokens: int) -> LedgerWrite | None:
        """`used` as a write of the request's own batch (`GroupCommit`); None: nothing to count."""
        if key.rate_limit.tokens_per_minute is None or tokens <= 0:
            return None
        key_id, now = key.id, self._clock()
        return LedgerWrite(lambda conn: RateLedger.used_here(conn, key_id, tokens, now))

    async def used(self, key: GatewayKey, tokens: int) -> None:
        """Count the tokens an answer used against the key's tokens per minute."""
        if key.rate_limit.tokens_per_minute is None or tokens <= 0:
            return
        async with self._writing():
            await self._store.rates.used(key.id, tokens, self._clock())


def _limited(key: GatewayKey, refused: RateRefusal) -> RateLimited:
    return RateLimited(
        f"key {key.id!r} is over its rate limit of {refused.what}; retry in {refused.retry_after}s",
        headers={"retry-after": str(refused.retry_after)},
    )
