"""What the gateway tells the router about a request, and what it learned from outcomes.

A plan step's routing question carries its task type, its difficulty (declared, or
estimated from its goal by `orchestrator.routing.complexity`) and, when the policy learns,
the outcome tallies of its tenant and task type (`orchestrator.routing.learning`). The
gateway asks the same router the same question: a client may declare the task type and
difficulty with `x-orchestrator-task-type` and `x-orchestrator-difficulty`; without a
difficulty, the router estimates it from the last user message (the turn being answered;
an agent's system prompt is the same long text on every call and would make every request
look hard) and the number of tools offered.

Tallies are read from the store like the route activity reads them, but at most once per
`refresh` seconds per tenant and task type: a gateway routes far more often than a plan
does, and outcomes arrive slowly, so a second's staleness changes no decision while a
query per request would be on every boundary's path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from pydantic import BaseModel, ConfigDict

from orchestrator.gateway.errors import BadRequest
from orchestrator.providers.messages import ChatMessage
from orchestrator.routing.policy import Difficulty
from orchestrator.routing.router import Router
from orchestrator.routing.types import RoutingDecision
from orchestrator.store.store import Store
from orchestrator.types import JsonObject

__all__ = [
    "DIFFICULTY_HEADER",
    "TASK_TYPE_HEADER",
    "Learned",
    "Task",
    "decision_record",
    "task_by",
    "task_of",
]

TASK_TYPE_HEADER = "x-orchestrator-task-type"
DIFFICULTY_HEADER = "x-orchestrator-difficulty"
_MAX_TASK_TYPE = 64


class Task(BaseModel):
    """The request's task type and difficulty, as the router's question carries them."""

    model_config = ConfigDict(frozen=True)

    task_type: str = "default"
    difficulty: Difficulty | None = None
    """None: the router estimates it from `prompt` and `tools`."""
    prompt: str = ""


def _last_user_text(messages: list[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.content or ""
    return ""


def task_of(headers: Mapping[str, str], messages: list[ChatMessage]) -> Task:
    """The task type and difficulty of a request, from its headers and last user message.

    Raises:
        BadRequest: a difficulty header that is not `low`, `medium` or `high`, or a task
            type that is not a short printable name.
    """
    return task_by(headers, lambda: _last_user_text(messages))


def task_by(headers: Mapping[str, str], prompt: Callable[[], str]) -> Task:
    """`task_of`, given the last user message's text, asked for only without a difficulty.

    Raises:
        BadRequest: as `task_of`.
    """
    task_type = headers.get(TASK_TYPE_HEADER, "").strip() or "default"
    if len(task_type) > _MAX_TASK_TYPE or not task_type.isprintable():
        raise BadRequest(f"{TASK_TYPE_HEADER}: a printable name of at most {_MAX_TASK_TYPE} chars")
    declared = headers.get(DIFFICULTY_HEADER, "").strip().lower()
    if declared:
        try:
            difficulty = Difficulty(declared)
        except ValueError:
            raise BadRequest(
                f"{DIFFICULTY_HEADER}: {declared!r} is not one of low, medium, high"
            ) from None
        return Task(task_type=task_type, difficulty=difficulty)
    return Task(task_type=task_type, prompt=prompt())


class Learned:
    """Loads outcome tallies into the router's learned quality, at most once per `refresh`.

    Args:
        router: The router whose `learned` is filled.
        store: Where outcomes are recorded (`routing_outcomes`).
        refresh: Seconds a load of one tenant's task type is reused.
        clock: Monotonic seconds; tests pass their own.
    """

    def __init__(
        self,
        router: Router,
        store: Store,
        refresh: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._router = router
        self._store = store
        self._refresh = refresh
        self._clock = clock
        self._loaded: dict[tuple[str, str], float] = {}

    async def load(self, tenant: str, task_type: str, policy: str | None) -> None:
        """Put the tallies of a tenant's task type in the router, when its policy learns."""
        if not self._router.policy(policy)[1].learning.enabled:
            return
        now = self._clock()
        where = (tenant, task_type)
        loaded = self._loaded.get(where)
        if loaded is not None and now - loaded < self._refresh:
            return
        self._loaded[where] = now
        tallies = await self._store.outcomes.tallies(tenant, task_type)
        self._router.learned.put(tenant, task_type, tallies)


def decision_record(decision: RoutingDecision, task: Task) -> JsonObject:
    """What an audit event keeps of a decision: task, difficulty and the winner's quality."""
    out: JsonObject = {"task_type": task.task_type, "policy": decision.policy}
    guess = decision.difficulty_estimate
    if task.difficulty is not None:
        out["difficulty"] = task.difficulty.value
        out["difficulty_source"] = "declared"
    elif guess is not None:
        out["difficulty"] = guess.difficulty.value
        out["difficulty_source"] = "estimated"
        out["difficulty_score"] = guess.score
        out["difficulty_features"] = dict(guess.features)
    for candidate in decision.candidates:
        terms = candidate.terms
        if candidate.deployment == decision.deployment and terms is not None:
            out["quality"] = terms.quality_value
            out["declared_quality"] = terms.declared_quality
            out["observations"] = terms.observations
    return out
