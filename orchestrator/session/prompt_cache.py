"""What the router is told about a step's calls: how many it binds, and what is warm.

`RouteRequest.expected_calls` and `RouteRequest.warm_input_tokens` let the router price
prompt caching (`orchestrator.routing.scoring.expected_cost`); `RouteRequest.horizon_steps`
and `RouteRequest.session_prefix_tokens` let it price a pin over the session's steps left
(`orchestrator.routing.scoring.session_cost`). All are computed here from what the
workflow already holds (the plan, the recorded step states, the usage of model calls, the
step's prompt head and `workflow.now()`), so a replay computes the same values; the route
decision's record (the `model_pinned` event) carries them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from orchestrator.plans.models import (
    AgentStep,
    AnyStep,
    BranchStep,
    LoopStep,
    ParallelStep,
    Plan,
    children,
)
from orchestrator.providers.messages import ChatMessage, ToolDefinition
from orchestrator.routing.scoring import MIN_CACHED_TOKENS

if TYPE_CHECKING:
    from orchestrator.session.types import StepState

__all__ = [
    "FIRST_LOOP_CALLS",
    "PROMPT_CACHE_LIFE",
    "PromptHead",
    "expected_calls",
    "measured",
    "prompt_head",
    "served",
    "session_prefix_tokens",
    "steps_left",
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


def measured(head: PromptHead, held: PromptHead | None) -> PromptHead:
    """`head` at the tokens per character the pinned deployment last reported (`held`).

    A fresh head counts at the default rate; once the pin has answered, its own count is
    the better measure of the same tool definitions (as `warm_input_tokens` reads it).
    """
    if held is None:
        return head
    return head.model_copy(update={"tokens_per_char": held.tokens_per_char})


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


def _certain(step: AnyStep) -> int:
    """Agent steps that run whenever `step` runs, as far as the plan's structure says.

    A branch runs one arm, which its condition picks at run time: the fewer of its arms'.
    A loop runs its body at least once, and how often more its `until` says at run time:
    one iteration. A parallel group counts its steps (the plan refuses agent steps there,
    so it is 0 today). Ensemble and sub-plan steps ask no pinned model (each ensemble
    model answers once; a sub-plan is a session with its own pins): 0, as any other step.
    """
    if isinstance(step, AgentStep):
        return 1
    if isinstance(step, BranchStep):
        return min(_certain_in(step.then), _certain_in(step.else_))
    if isinstance(step, LoopStep | ParallelStep):
        return _certain_in(step.steps)
    return 0


def _certain_in(block: list[AnyStep]) -> int:
    return sum(_certain(step) for step in block)


def _path(block: list[AnyStep], wanted: str) -> list[tuple[list[AnyStep], int]] | None:
    """Where the step `wanted` is written: each enclosing block and the index in it."""
    for index, step in enumerate(block):
        if step.id == wanted:
            return [(block, index)]
        for _, inner in children(step):
            found = _path(inner, wanted)
            if found is not None:
                return [(block, index), *found]
    return None


def steps_left(plan: Plan, step: AgentStep) -> float:
    """Agent steps the session is sure to run from `step` on, this one included.

    The steps written after it in its block, then after each construct that holds it, out
    to the plan's end, each counted as `_certain` does: a branch ahead as its shorter arm,
    a loop ahead as one iteration; inside a loop, the rest of the current iteration only
    (whether another follows is decided at run time). What the structure leaves to run
    time is not counted, so the figure is a floor, the same at every replay: the router
    prices the pin's prompt cache over these steps (`RouteRequest.horizon_steps`). A
    later iteration's step (`id#n`) counts as its written step; 1 for a step the plan
    does not hold.
    """
    path = _path(list(plan.steps), step.id.partition("#")[0])
    if path is None:
        return 1.0
    return float(1 + sum(_certain_in(block[index + 1 :]) for block, index in path))


def _tools(step: AgentStep) -> list[str]:
    return [ref.partition("@")[0].strip() for ref in step.skills]


def session_prefix_tokens(plan: Plan, step: AgentStep, head: PromptHead) -> int:
    """Tokens of `head` that every later step of the session re-reads from the pin's cache.

    A step's prompt head is its tool definitions, then its system message, then its opening
    user message (`prompt_head`), and a provider's cache matches whole leading blocks. The
    system message names the step (`Step: <id>`), so no later step shares it: what a later
    step re-reads is the tools block, and only when it offers the same tools. So the prefix
    is the tools block, in tokens at the head's `tokens_per_char`, when every agent step
    that may run after this decision (those written after it, and inside a loop the whole
    body, which may run again) offers the same skills in the same order; 0 otherwise, for
    a step without tools, or below `MIN_CACHED_TOKENS` (a provider caches nothing shorter).
    From the plan and the step's own head alone, so a replay computes the same.
    """
    tools = _tools(step)
    if not tools or not head.sizes:
        return 0
    written = list(plan.all_steps())
    ancestors = [
        block[i].id for block, i in _path(list(plan.steps), step.id.partition("#")[0]) or []
    ]
    loops = [s.id for s in written if isinstance(s, LoopStep) and s.id in ancestors]
    anchor = loops[0] if loops else step.id.partition("#")[0]
    start = next((i for i, s in enumerate(written) if s.id == anchor), len(written))
    later = [s for s in written[start + 1 :] if isinstance(s, AgentStep)]
    if any(_tools(s) != tools for s in later):
        return 0
    tokens = int(head.sizes[0] * head.tokens_per_char)
    return tokens if tokens >= MIN_CACHED_TOKENS else 0
