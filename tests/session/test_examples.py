"""The example plans end to end on the dev server, against their model scripts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import REPO, Env

from orchestrator.exceptions import SessionInputError
from orchestrator.plans import load_plan
from orchestrator.service import decide_approval, start_session
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.testing import wait_for_pending_approval

TRIAGE = load_plan(REPO / "workflows/incident_triage.yaml")
TRIAGE_SCRIPT = REPO / "model_scripts/incident_triage.yaml"


async def test_a_serious_incident_is_rolled_back_after_approval(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(TRIAGE_SCRIPT)
    handle = await start_session(
        env.client, TRIAGE, {"incident_id": "INC-1"}, task_queue=env.settings.task_queue
    )
    session_id = handle.id.removeprefix("session-")
    pending = await wait_for_pending_approval(env.runtime.store, session_id)
    assert pending.skill == "deploys.rollback"
    assert pending.arguments["deploy_id"] == "d-42"
    await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="oncall"
    )
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED
    evidence = result.outputs["evidence"]
    assert isinstance(evidence, dict) and set(evidence) == {"alerts", "deploys", "logs"}
    assessment = result.outputs["assess"]
    assert isinstance(assessment, dict) and assessment["severity"] == "high"
    assert "note" not in result.outputs
    assert "Rolled checkout back past deploy d-42" in str(result.final_output)
    events = await env.runtime.store.list_events(session_id)
    calls = [e.skill for e in events if e.kind is EventKind.TOOL_CALL]
    assert sorted(calls) == sorted(
        ["incidents.alerts", "incidents.deploys", "incidents.logs", "deploys.rollback"]
    )


async def test_a_minor_incident_gets_a_note_from_the_cheap_model(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(TRIAGE_SCRIPT)
    handle = await start_session(
        env.client, TRIAGE, {"incident_id": "INC-2"}, task_queue=env.settings.task_queue
    )
    result = await handle.result()
    assessment = result.outputs["assess"]
    assert isinstance(assessment, dict) and assessment["severity"] == "low"
    assert "remediate" not in result.outputs
    assert "No action needed now" in str(result.final_output)
    pins = {pin.step_id: pin.model for pin in result.model_timeline}
    assert pins == {"assess": "demo-strong", "note": "demo-fast"}
    approvals = await env.runtime.store.list_approvals(
        session_id=handle.id.removeprefix("session-")
    )
    assert approvals == []


def test_triage_input_is_checked_against_its_schema() -> None:
    assert TRIAGE.input_faults({"incident_id": "42"}) == [
        "incident_id: '42' does not match '^INC-[0-9]+$'"
    ]


async def test_a_bad_incident_id_is_refused_before_a_session_starts(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(TRIAGE_SCRIPT)
    with pytest.raises(SessionInputError, match="input does not fit: incident_id"):
        await start_session(
            env.client, TRIAGE, {"incident_id": "x"}, task_queue=env.settings.task_queue
        )


async def test_research_summary_extracts_cheaply_and_synthesises_strongly(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(REPO / "model_scripts/research_summary.yaml")
    plan = load_plan(REPO / "workflows/research_summary.yaml")
    sources = ["S-1", "S-2", "S-3", "S-4"]
    handle = await start_session(
        env.client,
        plan,
        {"topic": "heat pumps", "sources": sources},
        task_queue=env.settings.task_queue,
    )
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED
    extracted = result.outputs["extract"]
    assert isinstance(extracted, dict) and isinstance(extracted["facts"], list)
    facts = extracted["facts"]
    assert [f["source"] for f in facts if isinstance(f, dict)] == sources
    assert {pin.step_id: pin.model for pin in result.model_timeline} == {
        "extract": "demo-fast",
        "synthesize": "demo-strong",
    }
    events = await env.runtime.store.list_events(handle.id.removeprefix("session-"))
    reads = [e for e in events if e.kind is EventKind.TOOL_CALL]
    assert [e.step_id for e in reads] == ["extract"] * 4
    assert "(S-3)" in str(result.final_output)
