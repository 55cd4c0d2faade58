"""The budget ledger: atomic per-session reservations and recorded spend.

A budget scope (`tenant/team`) has, per period, a committed total: the sum over its
sessions of the larger of what each reserved and what each spent. A new session reserves
with one conditional `UPDATE ... WHERE committed + reserve <= limit`, so however many
sessions start at once, in however many processes, they cannot together commit more than
the limit. Spend beyond a session's reservation raises `committed` by the excess; settling
a finished session gives back what it reserved but did not spend.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.store.ledger import Ledger, LedgerParts, rows_here
from orchestrator.store.tables import BudgetReservationRow, BudgetSpendRow, BudgetUsageRow

__all__ = ["BudgetLedger", "BudgetUsage", "Reservation", "Spend"]


@dataclass(frozen=True)
class BudgetUsage:
    """A scope's figures for one period."""

    scope: str
    period: str
    committed_usd: float = 0.0
    committed_tokens: int = 0
    spent_usd: float = 0.0
    spent_tokens: int = 0


@dataclass(frozen=True)
class Reservation:
    """What a session asks to hold of one budget, and the limits it is checked against."""

    scope: str
    period: str
    usd: float
    tokens: int
    limit_usd: float | None
    limit_tokens: int | None


@dataclass(frozen=True)
class Spend:
    """One call's cost, to add to a session's spend in each of its `(scope, period)` pairs.

    `key` makes it count once however often the call's activity is retried.
    """

    session_id: str
    scopes: list[tuple[str, str]]
    usd: float
    tokens: int
    key: str


_HOLD = BudgetReservationRow
_USAGE = BudgetUsageRow

# The ledger's statements, built once with named parameters: SQLAlchemy then compiles each
# once (building and compiling them per call cost more than running them). The inserts
# `ON CONFLICT` are text, which both SQLite and PostgreSQL speak: SQLAlchemy compiles its
# dialects' `ON CONFLICT` constructs anew on every execution.
_HELD = sa.select(_HOLD.scope).where(
    _HOLD.session_id == sa.bindparam("k_session"), _HOLD.scope == sa.bindparam("k_scope")
)
_HOLDING = sa.select(
    _HOLD.period, _HOLD.reserved_usd, _HOLD.spent_usd, _HOLD.reserved_tokens, _HOLD.spent_tokens
).where(_HOLD.session_id == sa.bindparam("k_session"), _HOLD.scope == sa.bindparam("k_scope"))
_NEW_HOLD = sa.insert(_HOLD)
_NEW_USAGE = sa.text(
    f"INSERT INTO {_USAGE.__tablename__}"
    " (scope, period, committed_usd, committed_tokens, spent_usd, spent_tokens)"
    " VALUES (:scope, :period, 0.0, 0, 0.0, 0) ON CONFLICT DO NOTHING"
)
_NEW_SPEND = sa.text(
    f"INSERT INTO {BudgetSpendRow.__tablename__} (spend_key, session_id, cost_usd, tokens)"
    " VALUES (:spend_key, :session_id, :cost_usd, :tokens)"
    " ON CONFLICT DO NOTHING RETURNING spend_key"
)
_SPEND_HOLD = (
    sa.update(_HOLD)
    .where(_HOLD.session_id == sa.bindparam("k_session"), _HOLD.scope == sa.bindparam("k_scope"))
    .values(
        spent_usd=_HOLD.spent_usd + sa.bindparam("d_usd"),
        spent_tokens=_HOLD.spent_tokens + sa.bindparam("d_tokens"),
    )
)
_SPEND_USAGE = (
    sa.update(_USAGE)
    .where(_USAGE.scope == sa.bindparam("k_scope"), _USAGE.period == sa.bindparam("k_period"))
    .values(
        spent_usd=_USAGE.spent_usd + sa.bindparam("d_usd"),
        spent_tokens=_USAGE.spent_tokens + sa.bindparam("d_tokens"),
        committed_usd=_USAGE.committed_usd + sa.bindparam("d_committed_usd"),
        committed_tokens=_USAGE.committed_tokens + sa.bindparam("d_committed_tokens"),
    )
)
_SETTLE = (
    sa.update(_HOLD)
    .where(_HOLD.session_id == sa.bindparam("k_session"), _HOLD.settled.is_(False))
    .values(settled=True)
    .returning(
        _HOLD.scope,
        _HOLD.period,
        _HOLD.reserved_usd,
        _HOLD.spent_usd,
        _HOLD.reserved_tokens,
        _HOLD.spent_tokens,
    )
)
_GIVE_BACK = (
    sa.update(_USAGE)
    .where(_USAGE.scope == sa.bindparam("k_scope"), _USAGE.period == sa.bindparam("k_period"))
    .values(
        committed_usd=_USAGE.committed_usd - sa.bindparam("d_usd"),
        committed_tokens=_USAGE.committed_tokens - sa.bindparam("d_tokens"),
    )
)


def _claim_statement(usd_limit: bool, tokens_limit: bool) -> sa.Executable:
    """`committed += the reservation` where it stays within the limits that are set."""
    fits = [_USAGE.scope == sa.bindparam("k_scope"), _USAGE.period == sa.bindparam("k_period")]
    if usd_limit:
        fits.append(_USAGE.committed_usd + sa.bindparam("d_usd") <= sa.bindparam("limit_usd"))
    if tokens_limit:
        fits.append(
            _USAGE.committed_tokens + sa.bindparam("d_tokens") <= sa.bindparam("limit_tokens")
        )
    return (
        sa.update(_USAGE)
        .where(*fits)
        .values(
            committed_usd=_USAGE.committed_usd + sa.bindparam("d_usd"),
            committed_tokens=_USAGE.committed_tokens + sa.bindparam("d_tokens"),
        )
        .returning(_USAGE.scope)
    )


_CLAIMS = {
    (usd, tokens): _claim_statement(usd, tokens)
    for usd in (False, True)
    for tokens in (False, True)
}


def _excess(spent: float, reserved: float) -> float:
    return max(0.0, spent - reserved)


_SCOPES_KEPT = 4096
"""Sessions whose reservation scopes `session_scopes` remembers (least recently read dropped)."""


def _hold_row(
    session_id: str, scope: str, period: str, usd: float, tokens: int
) -> dict[str, object]:
    """A new reservation row: `usd` and `tokens` held, nothing spent, not settled."""
    return {
        "session_id": session_id,
        "scope": scope,
        "period": period,
        "reserved_usd": usd,
        "reserved_tokens": tokens,
        "spent_usd": 0.0,
        "spent_tokens": 0,
        "settled": False,
    }


class _Refused(Exception):
    """A reservation that did not fit: raised to roll back the ones made before it."""

    def __init__(self, want: Reservation) -> None:
        super().__init__(want.scope)
        self.want = want


class BudgetLedger(Ledger):
    """Budget operations on the store's database; reach it as `Store.budgets`.

    `session_scopes` is read on every model call to book its spend. A session's
    reservations are made once, by the routing decision at its start, before its first
    model call, and never change after; so the answer is remembered per session instead
    of read again for each call (a `reserve` through this ledger forgets it).

    Each operation is one transaction, written once over a blocking `Connection`: on a
    SQLite file it runs on the calling thread when the file's write lock is free
    (`write_here`: through the pool each statement was a hand-off to the driver's thread
    and back, most of a gateway request's own CPU for a key with budgets); otherwise, and
    on PostgreSQL, it runs in a pooled transaction (`run_sync`). The same conditional
    `UPDATE` admits a reservation either way.
    """

    def __init__(self, parts: LedgerParts) -> None:
        super().__init__(parts)
        self._scopes: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()

    @staticmethod
    def _ensure_usage(conn: Connection, scope: str, period: str) -> None:
        rows_here(conn, _NEW_USAGE, {"scope": scope, "period": period})

    async def reserve(
        self,
        session_id: str,
        wanted: list[Reservation],
        first: Callable[[Connection], object] | None = None,
    ) -> Reservation | None:
        """Reserve for a session in every budget of `wanted`, all or nothing.

        Idempotent per session and scope: a retried call finds its reservation and holds
        nothing more.

        Args:
            session_id: The session (a gateway request's ledger id) that holds.
            wanted: The reservations.
            first: Other writes of the caller's, run first in the same transaction (the
                gateway's rate admission): one commit for both. An exception of its own
                reaches the caller, and nothing of the transaction is written; a
                reservation that does not fit undoes its writes too.

        Returns:
            None when every reservation was made (or already held); otherwise the first
            reservation that did not fit, and nothing was reserved.
        """
        self._scopes.pop(session_id, None)

        def body(conn: Connection) -> None:
            if first is not None:
                first(conn)
            self._reserve(conn, session_id, wanted)

        try:
            await self._write("reserve budget", body)
        except _Refused as refused:
            return refused.want
        return None

    def _reserve(self, conn: Connection, session_id: str, wanted: list[Reservation]) -> None:
        """`reserve` in the caller's transaction; `_Refused` for a reservation that did not fit."""
        for want in wanted:
            key = {"k_session": session_id, "k_scope": want.scope}
            if rows_here(conn, _HELD, key):
                continue
            self._ensure_usage(conn, want.scope, want.period)
            claim = _CLAIMS[want.limit_usd is not None, want.limit_tokens is not None]
            claimed = rows_here(
                conn,
                claim,
                {
                    "k_scope": want.scope,
                    "k_period": want.period,
                    "d_usd": want.usd,
                    "d_tokens": want.tokens,
                    "limit_usd": want.limit_usd,
                    "limit_tokens": want.limit_tokens,
                },
            )
            if not claimed:
                raise _Refused(want)
            rows_here(
                conn,
                _NEW_HOLD,
                _hold_row(session_id, want.scope, want.period, want.usd, want.tokens),
            )

    async def record_spend(
        self,
        session_id: str,
        scopes: list[tuple[str, str]],
        usd: float,
        tokens: int,
        *,
        key: str,
        settle: bool = False,
    ) -> bool:
        """Add one call's cost to a session's spend in each `(scope, period)`, once per `key`.

        With `settle`, the session is settled in the same transaction (`settle`): a gateway
        request holds its reservations for its one call.

        Returns:
            False when `key` was recorded before (a retried call): nothing changed.
        """
        spend = Spend(session_id, scopes, usd, tokens, key)
        return await self._write("record spend", lambda conn: self.spend_here(conn, spend, settle))

    def spend_here(self, conn: Connection, spend: Spend, settle: bool = False) -> bool:
        """`record_spend` in the caller's transaction (the gateway's group commit).

        Returns:
            False when `spend.key` was recorded before (a retried call): nothing changed
            (the session is still settled with `settle`).
        """
        new = self._spend(conn, spend)
        if settle:
            self._settle(conn, spend.session_id)
        return new

    async def spend_in(self, session: AsyncSession, spend: Spend) -> bool:
        """`record_spend` inside the caller's transaction.

        `Store.append_events(spend=...)` writes a model call's spend and its audit event
        in one commit.

        Returns:
            False when `spend.key` was recorded before (a retried call): nothing changed.
        """
        return await session.run_sync(lambda sync: self._spend(sync.connection(), spend))

    def _spend(self, conn: Connection, spend: Spend) -> bool:
        """`record_spend` in the caller's transaction."""
        session_id, usd, tokens = spend.session_id, spend.usd, spend.tokens
        new = rows_here(
            conn,
            _NEW_SPEND,
            {"spend_key": spend.key, "session_id": session_id, "cost_usd": usd, "tokens": tokens},
        )
        if not new:
            return False
        for scope, period in spend.scopes:
            key = {"k_session": session_id, "k_scope": scope}
            holding = rows_here(conn, _HOLDING, key)
            if not holding:
                rows_here(conn, _NEW_HOLD, _hold_row(session_id, scope, period, 0.0, 0))
                self._ensure_usage(conn, scope, period)
                held_period, r_usd, s_usd, r_tok, s_tok = period, 0.0, 0.0, 0, 0
            else:
                held_period, r_usd, s_usd, r_tok, s_tok = holding[0]
            rows_here(conn, _SPEND_HOLD, {**key, "d_usd": usd, "d_tokens": tokens})
            rows_here(
                conn,
                _SPEND_USAGE,
                {
                    "k_scope": scope,
                    "k_period": held_period,
                    "d_usd": usd,
                    "d_tokens": tokens,
                    "d_committed_usd": _excess(s_usd + usd, r_usd) - _excess(s_usd, r_usd),
                    "d_committed_tokens": int(
                        _excess(s_tok + tokens, r_tok) - _excess(s_tok, r_tok)
                    ),
                },
            )
        return True

    async def settle(self, session_id: str) -> None:
        """Give back what a finished session reserved but did not spend; once only."""
        await self._write("settle budget", lambda conn: self._settle(conn, session_id))

    @staticmethod
    def _settle(conn: Connection, session_id: str) -> None:
        """`settle` in the caller's transaction."""
        claimed = rows_here(conn, _SETTLE, {"k_session": session_id})
        for scope, period, r_usd, s_usd, r_tok, s_tok in claimed:
            rows_here(
                conn,
                _GIVE_BACK,
                {
                    "k_scope": scope,
                    "k_period": period,
                    "d_usd": max(0.0, r_usd - s_usd),
                    "d_tokens": max(0, r_tok - s_tok),
                },
            )

    async def usage(self, scope: str, period: str) -> BudgetUsage:
        """A scope's figures for a period (zeros when nothing was recorded)."""
        with self._errors("read budget"):
            async with self._sessions() as session:
                row = await session.get(BudgetUsageRow, (scope, period))
        if row is None:
            return BudgetUsage(scope=scope, period=period)
        return BudgetUsage(
            scope=scope,
            period=period,
            committed_usd=row.committed_usd,
            committed_tokens=row.committed_tokens,
            spent_usd=row.spent_usd,
            spent_tokens=row.spent_tokens,
        )

    async def session_scopes(self, session_id: str) -> list[tuple[str, str]]:
        """The `(scope, period)` pairs a session holds reservations in (see the class)."""
        known = self._scopes.get(session_id)
        if known is not None:
            self._scopes.move_to_end(session_id)
            return list(known)
        held = BudgetReservationRow
        stmt = sa.select(held.scope, held.period).where(held.session_id == session_id)
        # The first model call's read: on a SQLite file on the calling thread (`read_here`).
        rows = self._read_here(lambda conn: conn.execute(stmt).all())
        if rows is None:
            with self._errors("read reservations"):
                async with self._sessions() as session:
                    rows = (await session.execute(stmt)).all()
        scopes = [(scope, period) for scope, period in rows]
        self._scopes[session_id] = scopes
        if len(self._scopes) > _SCOPES_KEPT:
            self._scopes.popitem(last=False)
        return list(scopes)
