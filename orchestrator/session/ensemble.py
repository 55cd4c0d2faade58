"""Merging an ensemble step's answers: a vote, or the prompt a verifier model reads.

Pure functions over the answers the model-call activities returned, so the workflow can
merge them deterministically: the same answers always give the same result on replay.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from orchestrator.plans.schemas import OutputError, structured_output
from orchestrator.types import JsonObject, JsonValue

__all__ = ["Ballot", "VoteError", "ballot", "verifier_prompt", "vote"]


class VoteError(Exception):
    """Not enough answers agree for the vote to stand."""


@dataclass(frozen=True)
class Ballot:
    """One model's answer: its value and comparison key, or why it does not count."""

    model: str
    answer: JsonValue = None
    key: str | None = None
    error: str | None = None

    def summary(self) -> JsonObject:
        """The ballot as an audit payload entry."""
        if self.error is not None:
            return {"model": self.model, "error": self.error}
        return {"model": self.model, "answer": self.answer}


def ballot(model: str, content: str | None, schema: JsonObject | None) -> Ballot:
    """A model's final text as a ballot.

    Without a schema answers are compared after collapsing whitespace and case, so
    "Yes." and "yes." are one answer; with one, as parsed JSON with sorted keys, so field
    order and spacing do not split a vote. An answer that does not fit the schema
    does not count.
    """
    text = (content or "").strip()
    if not text:
        return Ballot(model, error="empty answer")
    if schema is None:
        return Ballot(model, answer=text, key=" ".join(text.split()).casefold())
    try:
        value = structured_output(schema, text)
    except OutputError as exc:
        return Ballot(model, error=str(exc))
    return Ballot(model, answer=value, key=json.dumps(value, sort_keys=True))


def vote(ballots: list[Ballot], needed: int) -> tuple[JsonValue, dict[str, int]]:
    """The answer at least `needed` ballots agree on, and the tally by answer key.

    The first ballot (in the step's model order) of the winning key gives the answer's
    wording.

    Raises:
        VoteError: no answer has `needed` votes, or two answers tie for the most.
    """
    counts = Counter(b.key for b in ballots if b.key is not None)
    tally = dict(counts.most_common())
    if not counts:
        raise VoteError(f"no model gave a usable answer (needed {needed} agreeing)")
    ranked = counts.most_common()
    best, votes = ranked[0]
    if len(ranked) > 1 and ranked[1][1] == votes:
        raise VoteError(f"tie: {votes} votes each for different answers (needed {needed})")
    if votes < needed:
        raise VoteError(f"best answer has {votes} of {len(ballots)} votes, needed {needed}")
    winner = next(b for b in ballots if b.key == best)
    return winner.answer, tally


def verifier_prompt(question: str, ballots: list[Ballot]) -> str:
    """What the verifier model reads: the question and every answer, numbered."""
    parts = [f"Question:\n{question}", ""]
    for number, b in enumerate(ballots, start=1):
        shown = (b.error and f"(no answer: {b.error})") or _text(b.answer)
        parts.append(f"Answer {number} (from {b.model}):\n{shown}\n")
    parts.append(
        "Check the answers against each other and the question. Reply with the single"
        " best final answer only, corrected where they are wrong."
    )
    return "\n".join(parts)


def _text(value: JsonValue) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
