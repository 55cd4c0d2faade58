"""Feedback on a session over real HTTP and through the Python handle: authenticated like
the other session routes, credited to the deployment each step ended on, idempotent by key,
a different feedback under a used key refused, audited once and counted in the metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from event_serving import new_session, serving
from temporalio.client import Client

from orchestrator.handle import SessionHandle
from orchestrator.observability.metrics import METRICS
from orchestrator.routing.learning import Tally
from orchestrator.session.feedback import FeedbackError
from orchestrator.store import AuditEvent, EventKind, SessionStatus, Store
from orchestrator.store.outcomes import OutcomeKeyConflict


async def pin(store: Store, session_id: str, step: str, model: str, n: int) -> None:
    await store.append_event(
        AuditEvent(
            event_key=f"session-{session_id}:{step}:model_pinned:{n}",
            session_id=session_id,
            workflow_id=f"session-{session_id}",
            run_id="run-1",
            kind=EventKind.MODEL_PINNED,
            step_id=step,
            model=model,
            payload={"task_type": "code" if step == "draft" else "default"},
            created_at=datetime.now(UTC),
        )
    )


async def pinned_session(store: Store, session_id: str, tenant: str = "bo-co") -> None:
    await new_session(store, session_id, tenant=tenant)
    await pin(store, session_id, "draft", "cheap-a", 1)
    await pin(store, session_id, "draft", "strong-a", 2)  # escalated: the last pin counts
    await pin(store, session_id, "reply", "cheap-a", 3)


async def test_feedback_is_credited_to_each_steps_last_deployment_once_per_key(
    store: Store, tmp_path: Path
) -> None:
    await pinned_session(store, "fb")
    await new_session(store, "theirs", tenant="acme")
    async with serving(store, tmp_path) as served, served.client("bo") as bo:
        async with httpx.AsyncClient(base_url=served.url) as anonymous:
            refused = await anonymous.post("/api/sessions/fb/feedback", json={})
            assert refused.status_code == 401
        other = await bo.post("/api/sessions/theirs/feedback", json={"key": "k", "score": 1})
        assert other.status_code == 404

        ok = await bo.post("/api/sessions/fb/feedback", json={"key": "k1", "score": 0})
        assert ok.status_code == 200, ok.text
        assert ok.json()["recorded"] == [
            {"step_id": "draft", "deployment": "strong-a"},
            {"step_id": "reply", "deployment": "cheap-a"},
        ]
        again = await bo.post("/api/sessions/fb/feedback", json={"key": "k1", "score": 0})
        assert again.status_code == 200
        assert await store.outcomes.tallies("bo-co", "code") == {"strong-a": Tally(0.0, 1.0)}
        assert await store.outcomes.tallies("bo-co", "default") == {"cheap-a": Tally(0.0, 1.0)}

        clash = await bo.post("/api/sessions/fb/feedback", json={"key": "k1", "score": 1})
        assert clash.status_code == 409
        assert (
            "'feedback:fb:k1:draft' was already recorded with different score"
            in (clash.json()["error"])
        )
        step = await bo.post(
            "/api/sessions/fb/feedback",
            json={"key": "k2", "score": 0.75, "step_id": "reply", "comment": "good tone"},
        )
        assert step.json()["recorded"] == [{"step_id": "reply", "deployment": "cheap-a"}]
        assert await store.outcomes.tallies("bo-co", "default") == {"cheap-a": Tally(0.75, 1.25)}
        outcomes = await store.outcomes.list("fb")
        assert outcomes[-1].detail == "bo: good tone"

        for body, expected in (
            ({"key": "k3", "score": 2}, "bad feedback: score: Input should be less than"),
            ({"score": 1}, "bad feedback: key: Field required"),
            ({"key": "k4", "score": 1, "step_id": "nope"}, "has no agent step 'nope'"),
        ):
            bad = await bo.post("/api/sessions/fb/feedback", json=body)
            assert bad.status_code == 400
            assert expected in bad.json()["error"]


async def test_the_python_handle_gives_feedback(store: Store, client: Client) -> None:
    await pinned_session(store, "py")
    handle = SessionHandle(client, store, "py")
    written = await handle.feedback(1.0, key="run-7", step_id="draft")
    assert [(o.deployment, o.task_type, o.score) for o in written] == [("strong-a", "code", 1.0)]
    await handle.feedback(1.0, key="run-7", step_id="draft")  # the same again: a no-op
    assert await store.outcomes.tallies("bo-co", "code") == {"strong-a": Tally(1.0, 0.0)}
    with pytest.raises(OutcomeKeyConflict, match="different score"):
        await handle.feedback(0.0, key="run-7", step_id="draft")
    with pytest.raises(FeedbackError, match="no session 'gone'"):
        await SessionHandle(client, store, "gone").feedback(1.0, key="x")


def feedback_count(deployment: str, task_type: str) -> float:
    labels = {
        "tenant": "bo-co",
        "deployment": deployment,
        "task_type": task_type,
        "signal": "feedback",
    }
    return METRICS.registry.get_sample_value("orchestrator_routing_outcomes_total", labels) or 0.0


async def test_feedback_is_audited_and_counted_once_per_key(store: Store, tmp_path: Path) -> None:
    await pinned_session(store, "au")
    await store.update_session("au", status=SessionStatus.COMPLETED)
    before = feedback_count("strong-a", "code"), feedback_count("cheap-a", "default")
    async with serving(store, tmp_path) as served, served.client("bo") as bo:
        body = {"key": "k1", "score": 0.25, "step_id": "draft", "comment": "too long"}
        for _ in range(2):  # the same feedback again: no new outcome, event or count
            ok = await bo.post("/api/sessions/au/feedback", json=body)
            assert ok.status_code == 200, ok.text
        clash = await bo.post("/api/sessions/au/feedback", json={**body, "comment": "fine"})
        assert clash.status_code == 409
        # The session ended before the feedback: a watcher that has seen everything is done.
        last = await store.stream.last_event("au")
        assert last is not None and last.kind is EventKind.FEEDBACK_RECORDED
        done = await bo.get("/api/sessions/au/events", headers={"Last-Event-ID": str(last.seq)})
        assert done.status_code == 204
        # One that resumes just before the feedback gets it, then `end` (not keepalives).
        before_last = str((last.seq or 0) - 1)
        rest = await bo.get("/api/sessions/au/events", headers={"Last-Event-ID": before_last})
        assert rest.status_code == 200
        assert f"id: {last.seq}\n" in rest.text and "event: end\n" in rest.text
    events = await store.list_events("au", kind=EventKind.FEEDBACK_RECORDED)
    assert [(e.event_key, e.step_id, e.payload) for e in events] == [
        (
            "feedback:au:k1",
            "draft",
            {"key": "k1", "score": 0.25, "comment": "too long", "given_by": "bo"},
        )
    ]
    assert feedback_count("strong-a", "code") - before[0] == 1
    assert feedback_count("cheap-a", "default") == before[1]  # only the step named
    histogram = METRICS.registry.get_sample_value(
        "orchestrator_feedback_score_bucket", {"deployment": "strong-a", "le": "0.25"}
    )
    assert histogram is not None and histogram >= 1
