"""Gateway rate limits counted in the store, so every gateway process enforces the same one.

A key's requests and tokens are counted per minute (`gateway_rate_windows`), and a limit
is checked against a sliding minute: this minute's count plus the last minute's weighted
by the share of it still inside the 60 s before now (the sliding-window counter; exact
when traffic is even within a minute, and never lets through more than the limit plus
the last minute's unevenness). A request is admitted by one conditional upsert that adds
it only while this minute's count is under what the limit leaves it, so two processes
racing for the last place cannot both take it. Minutes are wall-clock (`time.time()`),
which every process on a host shares; hosts must keep their clocks in step (NTP), as the
window is a minute and a skew of a second moves it by a sixtieth.

Tokens are added when an answer says how many it used, so a burst of large requests can
pass a token limit once before the count closes on it.
"""

from __future__ import annotations

import math

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection

from orchestrator.store.ledger import Ledger, rows_here
from orchestrator.store.tables import RateWindowRow

__all__ = ["WINDOW_SECONDS", "RateLedger", "RateRefusal"]

WINDOW_SECONDS = 60.0


_ROW = RateWindowRow
_TABLE = RateWindowRow.__tablename__

# Built once with named parameters, so SQLAlchemy compiles each once; the upserts are text
# that SQLite and PostgreSQL both speak (SQLAlchemy compiles its dialects' `ON CONFLICT`
# constructs anew on every execution). `window` is a keyword of both: quoted.
_COUNTS = sa.select(_ROW.window, _ROW.requests, _ROW.tokens).where(
    _ROW.key_id == sa.bindparam("k_key"),
    _ROW.window >= sa.bindparam("k_previous"),
    _ROW.window <= sa.bindparam("k_window"),
)
_TAKE = sa.text(
    f'INSERT INTO {_TABLE} (key_id, "window", requests, tokens) VALUES (:key_id, :window, 1, 0)'
    f' ON CONFLICT (key_id, "window") DO UPDATE SET requests = {_TABLE}.requests + 1'
    f" WHERE {_TABLE}.requests + 1 <= CAST(:room AS DOUBLE PRECISION) RETURNING requests"
)
_FORGET = sa.delete(_ROW).where(
    _ROW.key_id == sa.bindparam("k_key"), _ROW.window < sa.bindparam("k_before")
)
_USED = sa.text(
    f'INSERT INTO {_TABLE} (key_id, "window", requests, tokens)'
    " VALUES (:key_id, :window, 0, :tokens)"
    f' ON CONFLICT (key_id, "window") DO UPDATE SET tokens = {_TABLE}.tokens + excluded.tokens'
)


class RateRefusal(BaseModel):
    """Why a request was refused, and how long until it would be admitted."""

    model_config = ConfigDict(frozen=True)

    what: str
    """The limit, as a person reads it (`2 requests per minute`)."""
    retry_after: int
    """Whole seconds, at least 1."""


class RateLedger(Ledger):
    """Per-key request and token counts; reach it as `Store.rates`.

    An admission (its reads and its conditional upsert) is one transaction, written once
    over a blocking `Connection`: on a SQLite file on the calling thread when the file's
    write lock is free (`write_here`), otherwise in a pooled transaction (`run_sync`).
    """

    @staticmethod
    def _counts(
        conn: Connection, key_id: str, window: int
    ) -> tuple[tuple[int, int], tuple[int, int]]:
        """(requests, tokens) of the previous and the current minute."""
        rows = rows_here(
            conn, _COUNTS, {"k_key": key_id, "k_previous": window - 1, "k_window": window}
        )
        found = {w: (r, t) for w, r, t in rows}
        return found.get(window - 1, (0, 0)), found.get(window, (0, 0))

    async def admit(
        self, key_id: str, rpm: int | None, tpm: int | None, now: float
    ) -> RateRefusal | None:
        """Count one request of a key, unless it is over a limit: then say which.

        Args:
            key_id: The key.
            rpm: Requests per minute; None for no limit.
            tpm: Tokens per minute; None for no limit.
            now: Seconds since the epoch.
        """
        return await self._write(
            "count a gateway request", lambda conn: self.admit_here(conn, key_id, rpm, tpm, now)
        )

    def admit_here(
        self, conn: Connection, key_id: str, rpm: int | None, tpm: int | None, now: float
    ) -> RateRefusal | None:
        """`admit` in the caller's transaction (with the request's budget reservation)."""
        minute = now / WINDOW_SECONDS
        window = math.floor(minute)
        elapsed = minute - window
        weight = 1.0 - elapsed
        (prev_requests, prev_tokens), (requests, tokens) = self._counts(conn, key_id, window)
        if tpm is not None:
            used = tokens + prev_tokens * weight
            if used >= tpm:
                wait = _wait(prev_tokens, tpm - tokens, elapsed)
                return RateRefusal(
                    what=f"{tpm} tokens per minute ({math.floor(used)} used)", retry_after=wait
                )
        room = rpm - prev_requests * weight if rpm is not None else None
        if room is not None and (room < 1 or not self._take(conn, key_id, window, room)):
            # Re-read: what the racing processes left decides how long to wait.
            _, (requests, _) = self._counts(conn, key_id, window)
            wait = _wait(prev_requests, (rpm or 0) - requests - 1, elapsed)
            return RateRefusal(what=f"{rpm} requests per minute", retry_after=wait)
        return None

    @staticmethod
    def _take(conn: Connection, key_id: str, window: int, room: float) -> bool:
        """Add a request to the minute's count if it stays within `room`; whether it did."""
        taken = rows_here(conn, _TAKE, {"key_id": key_id, "window": window, "room": room})
        if taken and taken[0][0] == 1:
            # A new minute: the key's minutes before the last one are done with.
            rows_here(conn, _FORGET, {"k_key": key_id, "k_before": window - 1})
        return bool(taken)

    async def used(self, key_id: str, tokens: int, now: float) -> None:
        """Add the tokens an answer used to the key's count of this minute."""
        if tokens <= 0:
            return
        await self._write(
            "count gateway usage", lambda conn: self.used_here(conn, key_id, tokens, now)
        )

    @staticmethod
    def used_here(conn: Connection, key_id: str, tokens: int, now: float) -> None:
        """`used` in the caller's transaction (the gateway's group commit)."""
        if tokens <= 0:
            return
        values = {"key_id": key_id, "window": math.floor(now / WINDOW_SECONDS), "tokens": tokens}
        rows_here(conn, _USED, values)


def _wait(previous: float, left: float, elapsed: float) -> int:
    """Seconds until the last minute's weighted share fits in what the limit leaves.

    `left` is the limit less this minute's count and the request itself; the last
    minute's share is `previous * (1 - elapsed)` and shrinks as time passes. When this
    minute alone leaves no room, only the next minute frees any (and this one, then the
    weighted last one, may still be too much: the answer is a lower bound, and the client
    asks again).
    """
    if previous > 0 and left >= 0:
        needed = 1.0 - left / previous
        seconds = max(0.0, needed - elapsed) * WINDOW_SECONDS
    else:
        seconds = (1.0 - elapsed) * WINDOW_SECONDS
    return max(1, math.ceil(round(seconds, 6)))
