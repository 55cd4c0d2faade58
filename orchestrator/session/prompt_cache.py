"""What the router is told about a step's calls: how many it binds, and what is warm.

`RouteRequest.expected_calls` and `RouteRequest.warm_input_tokens` let the router price
prompt caching (`orchestrator.routing.scoring.expected_cost`). Both are computed here from
what the workflow already holds (the plan, the recorded step states, the usage of model
calls and `workflow.now()`), so a replay computes the same values; the route decision's
record (the `model_pinned` event) carries them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from orchestrator.plans.models import AgentStep, Plan
from orchestrator.providers.messages import ChatMessage, ToolDefinition
from orchestrator.routing.scoring import MIN_CACHED_TOKENS

if TYPE_CHECKING:
    from orchestrator.session.types import StepState

__all__ = [
    "FIRST_LOOP_CALLS",
    "PROMPT_CACHE_LIFE",
    "PromptHead",
    "expected_calls",
    "prompt_head",
    "served",
    "warm_input_tokens",
]

PROMPT_CACHE_LIFE = timedelta(minutes=5)
"""How long a provider keeps a prompt prefix after its last use (Anthropic's default cache,
OpenAI's shortest): a pin whose last call is older holds nothing warm."""

FIRST_LOOP_CALLS = 2.0
"""Calls a step that offers tools is expected to make before the session has finished one:
the fewest of a step that uses a tool at all (the call that asks for it, and the answer)."""


class PromptHead(BaseModel):
    """The head of the prompt a deployment last served in this session, and when.

    The head is what every call of a step's tool loop repeats first: the tool definitions,
    the system message and the step's opening user message, each as a digest and a size.
    A provider's prompt cache matches a prefix, so a new step's prompt reads from the cache
    the leading blocks it shares with this head (a block is the unit that matches: an
    Anthropic cache breakpoint closes a block, and the step's system text differs from the
    next step's early, in its step id).
    """

    deployment: str
    blocks: list[str] = Field(default_factory=list)
    """Digest of each block, in prompt order."""
    sizes: list[int] = Field(default_factory=list)
    """Characters of each block."""
    tokens_per_char: float = 0.25
    """The last call's reported input tokens over its prompt's characters."""
    at: datetime | None = None
    """When the deployment last answered (workflow time)."""

    @property
    def chars(self) -> int:
        """Characters of the whole head."""
        return sum(self.sizes)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def prompt_head(tools: list[ToolDefinition], messages: list[ChatMessage]) -> PromptHead:
    """The head of a step's prompt (no deployment yet): tools, system and opening messages."""
    texts = [json.dumps([t.model_dump(mode="json") for t in tools], sort_keys=True)]
    texts += [f"{m.role}\x00{m.content or ''}" for m in messages[:2]]
    return PromptHead(
        deployment="", blocks=[_digest(t) for t in texts], sizes=[len(t) for t in texts]
    )


def served(
    head: PromptHead, deployment: str, messages: list[ChatMessage], input_tokens: int, at: datetime
) -> PromptHead:
    """`head` as `deployment` holds it after answering `messages` (`input_tokens` reported)."""
    chars = head.sizes[0] + sum(len(m.content or "") for m in messages)
    ratio = input_tokens / chars if input_tokens > 0 and chars > 0 else head.tokens_per_char
    return head.model_copy(update={"deployment": deployment, "tokens_per_char": ratio, "at": at})


def warm_input_tokens(held: PromptHead | None, head: PromptHead, now: datetime) -> int:
    """Tokens of a new prompt (`head`) that the deployment holding `held` has warm.

    The leading blocks the two heads share, in tokens at the rate the deployment reported
    for its last call; 0 when it last answered longer ago than `PROMPT_CACHE_LIFE`, or when
    they share fewer than `MIN_CACHED_TOKENS` (a provider caches nothing shorter). A
    deployment that declares no cached price is priced the same either way.
    """
    if held is None or held.at is None or now - held.at > PROMPT_CACHE_LIFE:
        return 0
    chars = 0
    for mine, theirs, size in zip(head.blocks, held.blocks, head.sizes, strict=False):
        if mine != theirs:
            break
        chars += size
    warm = int(chars * held.tokens_per_char)
    return warm if warm >= MIN_CACHED_TOKENS else 0


def expected_calls(plan: Plan, steps: list[StepState], step: AgentStep) -> float:
    """How many calls a decision for `step` at a safe boundary binds, on average.

    A step that offers no tools makes one call. One that offers tools makes as many as the
    session's finished tool-offering steps made on average (their recorded `rounds`, so a
    replay reads the same), or `FIRST_LOOP_CALLS` before any has finished; never more than
    the step's `max_rounds`. The session's own mean rather than `max_rounds`: the bound is
    a limit, usually far above what a step makes, and would price every loop as its worst.
    Rounded to a tenth so decisions of similar sessions share the router's ranking cache.
    """
    if not step.skills:
        return 1.0
    looped = {s.id for s in plan.all_steps() if isinstance(s, AgentStep) and s.skills}
    rounds = [
        s.rounds
        for s in steps
        if s.id.partition("#")[0] in looped and s.status == "completed" and s.rounds
    ]
    mean = sum(rounds) / len(rounds) if rounds else FIRST_LOOP_CALLS
    return round(max(1.0, min(mean, float(step.max_rounds))), 1)
