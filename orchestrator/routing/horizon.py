"""The boundary decision over the session's horizon: what a choice is worth until it ends.

A decision at a safe boundary is not for one step. The deployment chosen serves the steps
that follow until a step needs a stronger quality floor than it has (then the session must
switch, and the new deployment's prompt cache starts cold), and staying on a dearer one
costs its extra price on every step it serves. Sessions have a character: a session whose
steps have been hard tends to stay hard. So the router can weigh each candidate by what it
is expected to be worth over the steps the session has left, given what its later steps
are likely to be, estimated from the session's own past steps.

The model, kept simple enough to be a pure function:

- later steps are drawn independently from the session's odds (`StepOdds`: the shares of
  task type and difficulty among its steps so far, as the caller estimates them);
- a later step is worth `later(d)` on a candidate `d` that meets its floor: the step's
  score with the quality term taken over the later steps `d` can serve (the cost, latency
  and rule terms are this step's);
- `d` is forced off a later step with probability `r_d`: the odds of the steps whose
  quality floor it does not meet. It serves each later step until then: expected later
  steps `M_d = sum over j = 1 .. L-1 of (1 - r_d)^j` of the `L - 1` after this one;
- after that the session is served by the best candidate no later step forces off (`safe`);
- a switch costs the policy's `stickiness` (its price of a switch, in score units): one now
  if `d` is not the pinned deployment, and one later with the chance
  `F_d = 1 - (1 - r_d)^(L - 1)` that a later step forces `d` off.

    value(d) = score(d) + M_d * later(d) + (L - 1 - M_d) * later(safe)
               - stickiness * ([d != pin] + F_d)

This step's advantage counts once; a candidate's advantage on the session's usual steps
counts for each later step it would last. With one step left (`L = 1`) this is the router's
stickiness rule exactly: the pin is kept while its score is within `stickiness` of the best.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.routing.policy import Difficulty

__all__ = ["StepOdds", "forced_odds", "horizon_values", "later_steps_served"]


class StepOdds(BaseModel):
    """How likely a later step of the session is to be of this task type and difficulty."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_type: str = "default"
    difficulty: Difficulty
    share: float = Field(ge=0, le=1)


def forced_odds(
    quality: Mapping[str, float],
    later: Sequence[StepOdds],
    floors: Mapping[Difficulty, float],
) -> float:
    """Probability that a later step needs more quality than a deployment has.

    `quality` is the deployment's quality by task type (each later step's task type must be
    in it). The shares are normalised, so they need not sum to 1; no odds, no risk.
    """
    total = sum(o.share for o in later)
    if total <= 0:
        return 0.0
    short = sum(o.share for o in later if quality[o.task_type] < floors.get(o.difficulty, 0.0))
    return short / total


def later_steps_served(risk: float, steps: float) -> float:
    """Expected later steps a deployment serves, of the `steps - 1` after this one.

    Each later step forces it off with probability `risk`; its run ends at the first.
    """
    later = max(steps - 1.0, 0.0)
    if risk <= 0.0:
        return later
    if risk >= 1.0:
        return 0.0
    stay = 1.0 - risk
    return float(stay * (1.0 - stay**later) / risk)


def horizon_values(
    scores: Mapping[str, float],
    later: Mapping[str, float],
    risks: Mapping[str, float],
    *,
    current: str | None,
    stickiness: float,
    steps: float,
) -> dict[str, float]:
    """Each candidate's expected value over the `steps` the session has left (see above).

    `scores` are this step's scores by deployment (all eligible), `later` each one's worth
    on a later step it can serve (missing: its score), `risks` each one's `forced_odds`
    (missing: 0), `current` the pinned deployment (None: no switch is paid now).
    """
    steps = max(steps, 1.0)
    risk = {d: min(max(risks.get(d, 0.0), 0.0), 1.0) for d in scores}
    worth = {d: later.get(d, s) for d, s in scores.items()}
    least = min(risk.values())
    safe = max(worth[d] for d in scores if risk[d] == least)
    values: dict[str, float] = {}
    for d, score in scores.items():
        served = later_steps_served(risk[d], steps)
        forced = float(1.0 - (1.0 - risk[d]) ** (steps - 1.0)) if risk[d] > least else 0.0
        now = 1.0 if current is not None and d != current else 0.0
        values[d] = (
            score + served * worth[d] + (steps - 1.0 - served) * safe - stickiness * (now + forced)
        )
    return values
