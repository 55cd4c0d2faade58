"""Gateway pins: which deployment answers each gateway session, shared across processes.

A gateway process keeps nothing about sessions in memory: every request reads its
session's pin here, so several gateway processes behind one load balancer, or one that
restarted, agree on the deployment serving an open tool loop. The first process to pin a
session wins (`INSERT ... ON CONFLICT DO NOTHING`); a later change is a compare-and-set on
`version`, so two processes that switch the same session at once cannot both succeed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.dialects import postgresql, sqlite

from orchestrator.store.ledger import Ledger
from orchestrator.store.tables import GatewayPinRow

__all__ = ["PIN_SELECT", "Pin", "PinLedger", "put_statement"]

Phase = Literal["loop", "final"]


class Pin(BaseModel):
    """A session's pinned deployment and where its conversation stood at the last answer."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    session_id: str
    deployment: str
    key_id: str
    tenant: str
    team: str
    phase: Phase
    version: int
    updated_at: datetime


class PinLedger(Ledger):
    """Pin operations on the store's database; reach it as `Store.pins`."""

    async def get(self, session_id: str) -> Pin | None:
        """The session's pin, or None when it has none."""
        with self._errors("read gateway pin"):
            async with self._sessions() as session:
                row = await session.get(GatewayPinRow, session_id)
                return None if row is None else Pin.model_validate(row)

    async def put(self, pin: Pin, *, expected_version: int | None) -> tuple[Pin, bool]:
        """Pin a session, unless another process changed it first.

        Args:
            pin: The pin wanted; its `version` is ignored (the store assigns it).
            expected_version: The version read before deciding; None when the session had
                no pin.

        Returns:
            The pin now in the store, and whether it is the one asked for.
        """
        stmt, version = put_statement(self._dialect, pin, expected_version)
        with self._errors("write gateway pin"):
            async with self._sessions.begin() as session:
                won = (await session.execute(stmt)).scalar_one_or_none() is not None
        if won:
            return pin.model_copy(update={"version": version}), True
        current = await self.get(pin.session_id)
        return (current if current is not None else pin), False


PIN_SELECT: Final = sa.select(GatewayPinRow.__table__).where(
    GatewayPinRow.session_id == sa.bindparam("session_id", type_=sa.String())
)
"""Reads one session's pin (parameter `session_id`) as plain columns, for
`Pin.model_validate(row._mapping)`; one statement object, so it is compiled once."""


def put_statement(
    dialect: str, pin: Pin, expected_version: int | None
) -> tuple[sa.Insert | sa.Update, int]:
    """The statement that writes `pin` and the version it writes; it returns a row if it won.

    A first pin is an `INSERT ... ON CONFLICT DO NOTHING` (the first process wins); a change
    is a compare-and-set on `expected_version`.
    """
    values = pin.model_dump()
    if expected_version is None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        values["version"] = 1
        return (
            insert(GatewayPinRow)
            .values(values)
            .on_conflict_do_nothing(index_elements=[GatewayPinRow.session_id])
            .returning(GatewayPinRow.version)
        ), 1
    values["version"] = expected_version + 1
    row = GatewayPinRow
    return (
        sa.update(row)
        .where(row.session_id == pin.session_id, row.version == expected_version)
        .values(values)
        .returning(row.version)
        .execution_options(synchronize_session=False)
    ), expected_version + 1
