"""The sample skill: look an order up.

Contract: `orders.status@1.0.0.contract.yaml` beside this module. A real skill would call
your order service here (it runs in an activity, so I/O is fine); this one reads a table.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.skills import SkillContext

ORDERS: dict[str, dict[str, str | None]] = {
    "A-1001": {"status": "shipped", "carrier": "DHL", "expected_delivery": "2026-03-14"},
    "A-1002": {"status": "processing", "carrier": None, "expected_delivery": "2026-03-20"},
}


class OrderRef(BaseModel):
    """Which order."""

    model_config = ConfigDict(extra="forbid")
    order_id: str = Field(pattern=r"^A-\d+$")


class OrderStatus(BaseModel):
    """Where the order is."""

    model_config = ConfigDict(extra="forbid")
    order_id: str
    status: str
    carrier: str | None
    expected_delivery: str


async def status(args: OrderRef, ctx: SkillContext) -> OrderStatus:
    """Look up an order by id: its status, carrier and expected delivery date."""
    if args.order_id not in ORDERS:
        raise LookupError(f"no order {args.order_id}")
    found = ORDERS[args.order_id]
    return OrderStatus(
        order_id=args.order_id,
        status=str(found["status"]),
        carrier=found["carrier"],
        expected_delivery=str(found["expected_delivery"]),
    )
