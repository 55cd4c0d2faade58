"""Outcome signals in the store: written once per key, conflicts refused, tallied per
deployment for a tenant's task type (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.observability.metrics import METRICS
from orchestrator.routing.learning import Signal, Tally
from orchestrator.session.outcomes import record_outcome
from orchestrator.session.types import Credit
from orchestrator.store import Store
from orchestrator.store.outcomes import OutcomeKeyConflict, OutcomeRecord

T0 = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)


def outcome(key: str, **changes: Any) -> OutcomeRecord:
    fields: dict[str, Any] = {
        "outcome_key": key,
        "session_id": "s-1",
        "tenant": "acme",
        "task_type": "code",
        "deployment": "mid",
        "signal": Signal.ESCALATED,
        "score": 0.0,
        "step_id": "draft",
        "created_at": T0,
    }
    return OutcomeRecord(**{**fields, **changes})


async def test_outcomes_are_tallied_per_deployment_for_a_tenants_task_type(store: Store) -> None:
    assert await store.outcomes.record(outcome("a"))
    assert await store.outcomes.record(outcome("b", signal=Signal.ACCEPTED, score=1.0))
    assert await store.outcomes.record(outcome("c", signal=Signal.FEEDBACK, score=0.25))
    assert await store.outcomes.record(
        outcome("d", deployment="big", score=1.0, signal=Signal.ACCEPTED)
    )
    await store.outcomes.record(outcome("e", tenant="other"))
    await store.outcomes.record(outcome("f", task_type="chat"))
    tallies = await store.outcomes.tallies("acme", "code")
    assert tallies == {"mid": Tally(1.25, 1.75), "big": Tally(1.0, 0.0)}
    assert [o.outcome_key for o in await store.outcomes.list("s-1")] == list("abcdef")


async def test_a_repeated_outcome_is_a_no_op_and_a_different_one_under_its_key_an_error(
    store: Store,
) -> None:
    assert await store.outcomes.record(outcome("k"))
    assert not await store.outcomes.record(outcome("k"))
    with pytest.raises(OutcomeKeyConflict, match="'k' was already recorded with different"):
        await store.outcomes.record(outcome("k", score=1.0, signal=Signal.FEEDBACK))
    assert await store.outcomes.tallies("acme", "code") == {"mid": Tally(0.0, 1.0)}


async def test_an_activity_outcome_is_counted_in_the_metrics_once(store: Store) -> None:
    labels = {"tenant": "m-co", "deployment": "mid", "task_type": "code", "signal": "escalated"}

    def counted() -> float:
        value = METRICS.registry.get_sample_value("orchestrator_routing_outcomes_total", labels)
        return value or 0.0

    before = counted()
    credit = Credit(deployment="mid", task_type="code", tenant="m-co")
    for _ in range(2):  # a retried activity writes, and counts, nothing twice
        await record_outcome(
            store, credit, Signal.ESCALATED, key="run:1:accept", session_id="s", step_id="a"
        )
    assert counted() - before == 1
