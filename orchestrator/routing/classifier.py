"""A classifier deployment's opinion of a step's difficulty, with the heuristic as fallback.

The local heuristic (`orchestrator.routing.complexity`) reads surface features; a small model
reads the task. When the models file names one (`routing.complexity.classifier`), the route
activity asks it, through the registry and the provider adapters like any model call, for
one word: `low`, `medium` or `high`. The heuristic is always computed first (it costs
microseconds) and stands whenever the classifier cannot answer in time, fails, or answers
something that is not exactly one level: a second opinion must never stop a step from being
routed, nor make routing wait on a slow endpoint.

The result is a `DifficultyEstimate` with `source`, the classifier's name, its cost and
tokens, and why the heuristic was used if it was; the router records it in the decision,
so a replay reads it and never asks again. The heuristic's score and features stay in it
beside the classifier's level, so a person can see where the two disagree.

Building the request and reading the answer are pure; `classify_difficulty` does the one
call.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Literal

from orchestrator.exceptions import ProviderError
from orchestrator.providers.adapters import Model
from orchestrator.providers.messages import ChatMessage, ModelRequest
from orchestrator.providers.registry import ModelEntry
from orchestrator.routing.complexity import DifficultyEstimate, estimate_difficulty
from orchestrator.routing.policy import Complexity, Difficulty

__all__ = [
    "CLASSIFIER_INSTRUCTIONS",
    "MAX_TASK_CHARS",
    "Classified",
    "classifier_request",
    "classify_difficulty",
    "parse_level",
]

CLASSIFIER_INSTRUCTIONS = (
    "You rate how hard a task is for a language model. Answer with exactly one word:"
    " low (a lookup, a greeting, a short factual or formatting task), medium (several steps"
    " or some judgement), or high (code, mathematics, deep analysis, many parts)."
)
"""The system message of a classifier request; the task follows as the user message."""

MAX_TASK_CHARS = 8_000
"""The task text sent to the classifier is cut to this many characters (its head): a
classifier is chosen for being cheap, and the head says what kind of task it is."""

_LEVEL = re.compile(r"\b(low|medium|high)\b", re.IGNORECASE)


def classifier_request(
    model: str, text: str, *, tools: int, output_schema: bool, max_tokens: int
) -> ModelRequest:
    """The request that asks the classifier model `model` for the level of a task."""
    extras = []
    if tools:
        extras.append(f"The model may call {tools} tool(s).")
    if output_schema:
        extras.append("Its answer must fit a JSON Schema.")
    task = text[:MAX_TASK_CHARS] + (f"\n\n{' '.join(extras)}" if extras else "")
    return ModelRequest(
        model=model,
        messages=[
            ChatMessage(role="system", content=CLASSIFIER_INSTRUCTIONS),
            ChatMessage(role="user", content=f"Task:\n{task}\n\nDifficulty (low, medium, high):"),
        ],
        max_tokens=max_tokens,
        temperature=0.0,
        stream=False,
    )


def parse_level(answer: str | None) -> Difficulty | None:
    """The level an answer names, when it names exactly one (any case); otherwise None.

    "High." and `{"difficulty": "high"}` are `high`; "medium or high" names two and is
    refused rather than guessed.
    """
    levels = {m.lower() for m in _LEVEL.findall(answer or "")}
    return Difficulty(levels.pop()) if len(levels) == 1 else None


@dataclass(frozen=True)
class Classified:
    """What asking the classifier gave: the estimate to route on, and the call's facts."""

    estimate: DifficultyEstimate
    duration_ms: float
    result: Literal["ok", "timeout", "error", "unparseable"] = "ok"
    """How the call went (a metrics label): only `ok` routes on the classifier's level."""
    failure: ProviderError | None = None
    """The provider error, when the call failed (for the live metrics)."""


async def classify_difficulty(
    name: str,
    entry: ModelEntry,
    provider: Model,
    text: str,
    *,
    tools: int,
    output_schema: bool,
    config: Complexity,
) -> Classified:
    """Ask the classifier deployment `name` for the level of a task; the heuristic on failure.

    Never raises for the classifier's sake: a timeout (`config.timeout_seconds`), a provider
    error or an answer that is not one level gives the heuristic's estimate with `fallback`
    saying why. The cost of an answered call is counted whether or not it was usable.
    """
    heuristic = estimate_difficulty(text, tools=tools, output_schema=output_schema)
    request = classifier_request(
        entry.model, text, tools=tools, output_schema=output_schema, max_tokens=config.max_tokens
    )
    started = time.perf_counter()

    def took() -> float:
        return (time.perf_counter() - started) * 1000

    def fallback(why: str, **spent: float) -> DifficultyEstimate:
        return heuristic.model_copy(update={"classifier": name, "fallback": why, **spent})

    try:
        response = await asyncio.wait_for(provider.complete(request), config.timeout_seconds)
    except TimeoutError:
        why = f"timed out after {config.timeout_seconds:g}s"
        return Classified(fallback(why), took(), "timeout")
    except ProviderError as exc:
        return Classified(fallback(f"failed: {exc}"), took(), "error", exc)
    duration_ms = took()
    spent = {"cost_usd": entry.usage_cost(response.usage), "tokens": response.usage.total_tokens}
    level = parse_level(response.message.content)
    if level is None:
        answer = (response.message.content or "")[:80]
        why = f"answered {answer!r}, not one level"
        return Classified(fallback(why, **spent), duration_ms, "unparseable")
    return Classified(
        heuristic.model_copy(
            update={"difficulty": level, "source": "classifier", "classifier": name, **spent}
        ),
        duration_ms,
    )
