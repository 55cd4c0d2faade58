"""What the router is told at a user turn: how many calls the turn binds, and what is warm.

Pure functions over the request (the conversation an agent client re-sends each turn), so
the gateway keeps no state for them: `RouteRequest.expected_calls` and
`RouteRequest.warm_input_tokens` (`orchestrator.routing.scoring.expected_cost`).
"""

from __future__ import annotations

from orchestrator.gateway.budgets import estimate_input_tokens
from orchestrator.providers.messages import ModelRequest
from orchestrator.routing.scoring import MIN_CACHED_TOKENS

__all__ = ["calls_per_turn", "warm_prefix_tokens"]


def warm_prefix_tokens(request: ModelRequest) -> int:
    """Tokens of `request` that the deployment which answered its last turn holds warm.

    That deployment's last call was sent everything before the last assistant message (its
    answer, which a provider caches only once it is sent back as input): the tools and
    those messages, counted with the gateway's own estimator. 0 without an earlier answer,
    or when that is shorter than `MIN_CACHED_TOKENS` (a provider caches nothing shorter).
    """
    messages = request.messages
    last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=0)
    if last == 0:
        return 0
    warm = estimate_input_tokens(request.model_copy(update={"messages": messages[:last]}))
    return warm if warm >= MIN_CACHED_TOKENS else 0


def calls_per_turn(request: ModelRequest) -> float:
    """Calls a new user turn is expected to make: the conversation's own mean so far.

    Each assistant message of the conversation is one call's answer; the user turns before
    the new one are those it answered. 1 before any turn was answered. Rounded to a tenth,
    so turns of similar conversations share the router's ranking cache.
    """
    messages = request.messages
    turns = sum(1 for m in messages[:-1] if m.role == "user")
    calls = sum(1 for m in messages if m.role == "assistant")
    if turns == 0 or calls == 0:
        return 1.0
    return round(max(1.0, calls / turns), 1)
