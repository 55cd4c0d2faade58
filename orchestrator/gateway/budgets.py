"""What one gateway request reserves of its budgets, and the refusal when it does not fit.

Each request holds its worst case (its input, plus `max_tokens` of output, at the prices
of the dearest deployment it could end on) in every budget of its key, and of its tenant
and team in the models file, with one atomic reservation in the ledger
(`orchestrator.store.budgets`), keyed by the request. After the answer the ledger records
what the call really cost and gives back the rest. However many requests race, in however
many gateway processes, committed spend cannot pass a limit.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from orchestrator.gateway.errors import OverBudget
from orchestrator.gateway.keys import GatewayKey, KeyBudget
from orchestrator.providers.messages import ModelRequest
from orchestrator.providers.registry import ModelRegistry
from orchestrator.routing.budgets import applicable, reservation
from orchestrator.routing.policy import Budget
from orchestrator.store.budgets import BudgetUsage, Reservation

__all__ = [
    "estimate_input_tokens",
    "holds",
    "key_budgets",
    "refusal",
    "wanted",
    "worst_case",
]

_CHARS_PER_TOKEN = 4


def estimate_input_tokens(request: ModelRequest) -> int:
    """A generous count of the request's input tokens (about four characters each)."""
    chars = sum(len(m.content or "") for m in request.messages)
    chars += sum(
        len(c.arguments_json) + len(c.name) for m in request.messages for c in m.tool_calls
    )
    chars += sum(len(t.name) + len(t.description) + len(str(t.parameters)) for t in request.tools)
    return chars // _CHARS_PER_TOKEN + 8 * len(request.messages) + 1


def worst_case(
    registry: ModelRegistry, deployments: list[str], input_tokens: int, output_tokens: int
) -> float:
    """The dearest cost of the request on any deployment that might answer it."""
    return max(
        (registry.models[d].cost(input_tokens, output_tokens) for d in deployments), default=0.0
    )


def _key_budget(key: GatewayKey, budget: KeyBudget) -> Budget:
    return Budget(
        tenant=key.tenant,
        team=key.team,
        period=budget.period,
        limit_usd=budget.limit_usd,
        limit_tokens=budget.limit_tokens,
    )


def key_budgets(key: GatewayKey, registry: ModelRegistry) -> list[tuple[Budget, str]]:
    """The budgets a request of `key` reserves in, with their scopes.

    The key's own, then its tenant's and team's.
    """
    budgets = [(_key_budget(key, b), key.budget_scope) for b in key.budgets]
    budgets.extend((b, b.scope) for b in applicable(registry.budgets, key.tenant, key.team))
    return budgets


def holds(
    budgets: list[tuple[Budget, str]], usd: float, tokens: int, now: datetime
) -> list[Reservation]:
    """The reservations of one request of `usd` and `tokens` in each of `budgets`."""
    return [
        replace(reservation(budget, now), scope=scope, usd=usd, tokens=tokens)
        for budget, scope in budgets
    ]


def wanted(
    key: GatewayKey, registry: ModelRegistry, usd: float, tokens: int, now: datetime
) -> list[Reservation]:
    """The reservations one request makes: the key's budgets, then its tenant's and team's."""
    return holds(key_budgets(key, registry), usd, tokens, now)


def refusal(want: Reservation, usage: BudgetUsage) -> OverBudget:
    """The 402 for a reservation that did not fit, with the budget's figures."""
    parts: list[str] = []
    if want.limit_usd is not None:
        parts.append(
            f"${usage.committed_usd:.4f} of ${want.limit_usd:.4f} committed,"
            f" this request needs up to ${want.usd:.4f}"
        )
    if want.limit_tokens is not None:
        parts.append(
            f"{usage.committed_tokens} of {want.limit_tokens} tokens committed,"
            f" this request needs up to {want.tokens}"
        )
    return OverBudget(
        f"budget {want.scope} ({want.period}) cannot cover this request: "
        + "; ".join(parts)
        + "; lower max_tokens, wait for the period to end, or raise the limit"
    )
