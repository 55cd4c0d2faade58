"""Read-only skills of the refund demo: look up a support ticket and an order.

Contracts: `tickets.get@1.0.0`, `tickets.get@1.1.0` (adds the ticket's status) and
`orders.get@1.0.0`, in the `*.contract.yaml` files beside this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from orchestrator.skills import SkillContext

DATA = Path(__file__).parent / "data"


class GetTicket(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ticket_id: str


class Ticket(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ticket_id: str
    customer: str
    email: str
    order_id: str
    subject: str
    body: str


class TicketWithStatus(Ticket):
    status: Literal["open", "pending", "closed"]


class GetOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str
    customer: str
    item: str
    amount_paid: float
    currency: str
    status: str


def _record(name: str, key: str, fields: set[str]) -> dict[str, object]:
    data: dict[str, dict[str, object]] = json.loads((DATA / name).read_text())
    if key not in data:
        raise LookupError(f"no record {key} in {name}")
    return {k: v for k, v in data[key].items() if k in fields}


async def get_ticket(args: GetTicket, ctx: SkillContext) -> Ticket:
    """Fetch a customer support ticket by id (e.g. T-1001)."""
    return Ticket.model_validate(_record("tickets.json", args.ticket_id, set(Ticket.model_fields)))


async def get_ticket_with_status(args: GetTicket, ctx: SkillContext) -> TicketWithStatus:
    """Fetch a customer support ticket by id (e.g. T-1001), with its status."""
    fields = set(TicketWithStatus.model_fields)
    return TicketWithStatus.model_validate(_record("tickets.json", args.ticket_id, fields))


async def get_order(args: GetOrder, ctx: SkillContext) -> Order:
    """Fetch an order by id (e.g. A-1001): item, amount paid, currency, delivery status."""
    return Order.model_validate(_record("orders.json", args.order_id, set(Order.model_fields)))
