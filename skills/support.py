"""Read-only skills of the refund demo: look up a support ticket and an order."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from orchestrator.skills import RiskLevel, SkillContext, skill

DATA = Path(__file__).parent / "data"


class GetTicket(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ticket_id: str


class Ticket(BaseModel):
    ticket_id: str
    customer: str
    email: str
    order_id: str
    subject: str
    body: str


class GetOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str


class Order(BaseModel):
    order_id: str
    customer: str
    item: str
    amount_paid: float
    currency: str
    status: str


def _load(name: str) -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads((DATA / name).read_text())
    return data


@skill(name="tickets.get", version="1.0.0", risk=RiskLevel.READ_ONLY)
async def get_ticket(args: GetTicket, ctx: SkillContext) -> Ticket:
    """Fetch a customer support ticket by id (e.g. T-1001)."""
    tickets = _load("tickets.json")
    if args.ticket_id not in tickets:
        raise LookupError(f"no ticket {args.ticket_id}")
    return Ticket.model_validate(tickets[args.ticket_id])


@skill(name="orders.get", version="1.0.0", risk=RiskLevel.READ_ONLY)
async def get_order(args: GetOrder, ctx: SkillContext) -> Order:
    """Fetch an order by id (e.g. A-1001): item, amount paid, currency, delivery status."""
    orders = _load("orders.json")
    if args.order_id not in orders:
        raise LookupError(f"no order {args.order_id}")
    return Order.model_validate(orders[args.order_id])
