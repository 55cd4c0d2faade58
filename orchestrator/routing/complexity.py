"""A cheap local estimate of a step's difficulty, for steps that declare none.

Routers sold as "complexity routers" run a classifier on every prompt; a first guess needs
no model at all. What makes a step hard is mostly visible in what it asks: a long brief, code
to write or read, mathematics, several questions at once, many tools to juggle, an answer
that must fit a schema. Each of these adds points; the sum is cut into the same three levels
a plan step may declare (`low`, `medium`, `high`), so an estimated step meets the same
quality floor as a declared one.

The function is pure and only adds points, so it is monotonic: adding a feature to a prompt
never makes it look easier. The router calls it inside the routing activity and records the
estimate (level, score and the features that drove it) in the decision, so a replay reads
the recorded answer instead of estimating again.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from orchestrator.routing.policy import Difficulty

__all__ = ["HIGH_AT", "MEDIUM_AT", "DifficultyEstimate", "estimate_difficulty"]

MEDIUM_AT = 1.0
"""A score at or above this is `medium`."""
HIGH_AT = 2.5
"""A score at or above this is `high`."""

_CODE = re.compile(
    r"```|\bdef \w+\(|\bclass \w+[:(]|\bfunction\b|=>|\breturn\b|\bimport \w+|"
    r"\b(?:implement|refactor|debug|compile|stack ?trace|traceback|regex|sql|api)\b",
    re.IGNORECASE,
)
_MATH = re.compile(
    r"\\(?:frac|sum|int|sqrt)|\$[^$\n]+\$|\d\s*[\^*/]\s*\d|"
    r"\b(?:prove|proof|derive|equation|integral|derivative|theorem|probability|matrix)\b",
    re.IGNORECASE,
)
_REASONING = re.compile(
    r"\b(?:analy[sz]e|compare|trade-?offs?|step by step|justify|design|architect|"
    r"diagnose|root cause|optimi[sz]e|evaluate|plan)\b",
    re.IGNORECASE,
)
_PARTS = re.compile(r"\?|^\s*(?:\d+[.)]|[-*•])\s+", re.MULTILINE)


class DifficultyEstimate(BaseModel):
    """The level a step was given, and why: recorded in its routing decision."""

    difficulty: Difficulty
    score: float
    """Sum of the feature points; `medium` from `MEDIUM_AT`, `high` from `HIGH_AT`."""
    features: dict[str, float] = Field(default_factory=dict)
    """The points each feature that fired added (features that added nothing are left out)."""
    source: Literal["heuristic", "classifier"] = "heuristic"
    """Who gave the level: the local heuristic, or the classifier deployment."""
    classifier: str | None = None
    """The classifier deployment asked (`routing.complexity.classifier`), if one was."""
    fallback: str | None = None
    """Why the heuristic's level was used although a classifier was asked (a timeout, an
    error, an answer that is not a level)."""
    cost_usd: float = 0.0
    """What asking the classifier cost (added to the session's budgets)."""
    tokens: int = 0
    """Tokens the classifier call used."""


def _capped(value: float, cap: float) -> float:
    return round(min(value, cap), 3)


def estimate_difficulty(
    text: str, *, tools: int = 0, output_schema: bool = False
) -> DifficultyEstimate:
    """Estimate how hard a step is from its goal and instructions, tools and output schema.

    Points (each capped, so one feature alone cannot make a step `high`):
    length up to 1.5 (0.5 per 100 words), code 1, mathematics 1, reasoning words 0.5 each up
    to 1, extra questions or list items 0.5 each up to 1.5, tools 0.25 each up to 1, an
    output schema 0.5.
    """
    features = {
        "length": _capped(len(text.split()) / 200, 1.5),
        "code": 1.0 if _CODE.search(text) else 0.0,
        "math": 1.0 if _MATH.search(text) else 0.0,
        "reasoning": _capped(0.5 * len(set(m.lower() for m in _REASONING.findall(text))), 1.0),
        "parts": _capped(0.5 * max(0, len(_PARTS.findall(text)) - 1), 1.5),
        "tools": _capped(0.25 * max(0, tools), 1.0),
        "output_schema": 0.5 if output_schema else 0.0,
    }
    score = round(sum(features.values()), 3)
    level = (
        Difficulty.HIGH
        if score >= HIGH_AT
        else Difficulty.MEDIUM
        if score >= MEDIUM_AT
        else Difficulty.LOW
    )
    return DifficultyEstimate(
        difficulty=level, score=score, features={k: v for k, v in features.items() if v}
    )
