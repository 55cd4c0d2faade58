"""Which budgets apply to a session, and what a new session reserves of each."""

from __future__ import annotations

from datetime import datetime

from orchestrator.exceptions import BudgetExceededError
from orchestrator.routing.policy import Budget
from orchestrator.store.budgets import BudgetUsage, Reservation
from orchestrator.store.store import Store

__all__ = [
    "applicable",
    "check_new_session",
    "period_of",
    "refusal",
    "reservation",
    "share_used",
]


def applicable(budgets: list[Budget], tenant: str, team: str) -> list[Budget]:
    """The tenant-wide budgets and the team's own."""
    return [b for b in budgets if b.tenant == tenant and b.team in ("*", team)]


def period_of(budget: Budget, now: datetime) -> str:
    """The period a moment falls in: `2026-11-24`, `2026-11` or `total`."""
    if budget.period == "day":
        return now.strftime("%Y-%m-%d")
    if budget.period == "month":
        return now.strftime("%Y-%m")
    return "total"


def reservation(budget: Budget, now: datetime) -> Reservation:
    """What a new session holds of `budget`."""
    return Reservation(
        scope=budget.scope,
        period=period_of(budget, now),
        usd=budget.session_reserve_usd,
        tokens=budget.session_reserve_tokens,
        limit_usd=budget.limit_usd,
        limit_tokens=budget.limit_tokens,
    )


def share_used(budget: Budget, usage: BudgetUsage) -> float:
    """The larger of the money and token shares committed, 0..1 (more when overspent)."""
    shares = [0.0]
    if budget.limit_usd:
        shares.append(usage.committed_usd / budget.limit_usd)
    if budget.limit_tokens:
        shares.append(usage.committed_tokens / budget.limit_tokens)
    return max(shares)


def refusal(budget: Budget, usage: BudgetUsage) -> str:
    """Why a new session does not fit, with the figures."""
    parts: list[str] = []
    if budget.limit_usd is not None:
        parts.append(
            f"${usage.committed_usd:.4f} of ${budget.limit_usd:.2f} committed,"
            f" a session reserves ${budget.session_reserve_usd:.2f}"
        )
    if budget.limit_tokens is not None:
        parts.append(
            f"{usage.committed_tokens} of {budget.limit_tokens} tokens committed,"
            f" a session reserves {budget.session_reserve_tokens}"
        )
    return (
        f"budget {budget.scope} ({budget.period} {usage.period}) is exhausted: "
        + "; ".join(parts)
        + "; new sessions are refused until the period ends or the limit is raised"
    )


async def check_new_session(
    store: Store, budgets: list[Budget], tenant: str, team: str, now: datetime
) -> None:
    """Refuse a session that no budget of its tenant and team could cover now.

    A check for a clear error before anything starts; the reservation the session makes at
    its first routing decision is what holds atomically against concurrent sessions.

    Raises:
        BudgetExceededError: naming the budget and its figures.
    """
    for budget in applicable(budgets, tenant, team):
        usage = await store.budgets.usage(budget.scope, period_of(budget, now))
        over_usd = budget.limit_usd is not None and (
            usage.committed_usd + budget.session_reserve_usd > budget.limit_usd
        )
        over_tokens = budget.limit_tokens is not None and (
            usage.committed_tokens + budget.session_reserve_tokens > budget.limit_tokens
        )
        if over_usd or over_tokens:
            raise BudgetExceededError(refusal(budget, usage))
