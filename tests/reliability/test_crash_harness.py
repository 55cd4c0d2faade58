"""The crash harness in a reduced form: a few sessions of the demo and the longer plan,
the worker SIGKILLed at random points six times; nothing is lost, paid twice, re-run
after a gate, or switched inside a tool loop. The full form: `make chaos`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from conftest import REPO

from orchestrator.chaos import ChaosConfig, TappedRequest, example_workloads, run_chaos
from orchestrator.chaos.checks import (
    GateTimes,
    audit_problems,
    pin_violations,
    reruns_after_gates,
    timeline_violations,
)
from orchestrator.session.types import Boundary, ModelPin
from orchestrator.settings import Settings
from orchestrator.store.records import AuditEvent, EventKind


async def test_sessions_survive_a_worker_killed_at_random_points(settings: Settings) -> None:
    report = await run_chaos(
        ChaosConfig(
            settings=settings,
            workloads=example_workloads(REPO),
            sessions=4,
            kills=6,
            seed=8,
        )
    )
    print(report.summary())
    assert report.problems() == []
    assert report.ok
    assert report.runs == 4
    assert report.completed == 4
    assert report.kills == 6
    assert report.worker_starts == 7
    # Sessions 1 and 3 start with their setup resolved by the starter: both ways are hit.
    assert report.started_ahead == 2
    assert report.lost == 0
    assert report.duplicate_effects == 0
    # The six kills try each point once, in a random order; these always come up.
    assert {"model_call", "after_answer", "approval_wait"} <= set(report.kill_points)
    # Both plans pay one refund per session, each found in the skill's own ledger.
    assert [s.effects for s in report.sessions] == [1, 1, 1, 1]
    assert {s.plan for s in report.sessions} == {"customer-refund", "refund-audit"}


# The checks themselves, on made-up trails: each finds the fault it is there for.


def _event(kind: EventKind, step: str | None, key: str, **fields: object) -> AuditEvent:
    return AuditEvent(
        event_key=key,
        session_id="s",
        workflow_id="session-s",
        run_id="r",
        kind=kind,
        step_id=step,
        created_at=datetime.now(UTC),
        **fields,
    )


def _call(
    round_no: int, model: str, tools: int = 0, attempt: int = 0, tries: int = 1
) -> AuditEvent:
    return _event(
        EventKind.MODEL_CALL,
        "a",
        f"m{attempt}.{round_no}" + (f":try{tries}" if tries > 1 else ""),
        model=model,
        payload={
            "round": round_no,
            "attempt": attempt,
            "tool_calls": ["t"] * tools,
            "final": not tools,
            **({"try": tries} if tries > 1 else {}),
        },
    )


def _tool(call_id: str) -> AuditEvent:
    return _event(EventKind.TOOL_CALL, "a", f"t{call_id}", payload={"call_id": call_id})


def test_a_model_switch_inside_a_step_is_a_violation_unless_forced() -> None:
    assert pin_violations([_call(0, "x", 1), _tool("0.0"), _call(1, "x")]) == []
    switched = [_call(0, "x", 1), _tool("0.0"), _call(1, "y")]
    assert len(pin_violations(switched)) == 1
    forced = _event(
        EventKind.MODEL_PINNED, "a", "pin", model="y", payload={"boundary": "forced_failover"}
    )
    assert pin_violations([_call(0, "x", 1), forced, _call(0, "y", attempt=1)]) == []


def test_a_step_pinned_twice_without_a_forced_cause_is_a_violation() -> None:
    def pin(step: str, boundary: Boundary) -> ModelPin:
        return ModelPin(step_id=step, model="x", boundary=boundary, reason="r")

    fine = [pin("a", Boundary.SESSION_START), pin("b", Boundary.STEP_CHANGE)]
    assert timeline_violations(fine) == []
    assert timeline_violations([*fine, pin("b", Boundary.FORCED_FAILOVER)]) == []
    assert len(timeline_violations([*fine, pin("b", Boundary.STEP_CHANGE)])) == 1


def test_audit_gaps_are_found() -> None:
    whole = [
        _event(EventKind.SESSION_STARTED, None, "start"),
        _event(EventKind.STEP_STARTED, "a", "a:start"),
        _call(0, "x", 2),
        _tool("0.0"),
        _tool("0.1"),
        _call(1, "x"),
        _event(EventKind.STEP_COMPLETED, "a", "a:done"),
        _event(EventKind.SESSION_COMPLETED, None, "done"),
    ]
    assert audit_problems(whole, completed=True) == []
    assert len(audit_problems([e for e in whole if e.event_key != "t0.1"], completed=True)) == 1
    assert len(audit_problems([e for e in whole if e.event_key != "m0.1"], completed=True)) == 1
    assert len(audit_problems([e for e in whole if e.event_key != "a:done"], completed=True)) == 1
    assert len(audit_problems([e for e in whole if e.event_key != "m0.0"], completed=True)) == 1
    twice = audit_problems([*whole[:3], whole[2], *whole[3:]], completed=True)
    assert "event key m0.0 written 2 times" in twice
    # A retried model-call activity asked the model again: its own row, not a gap.
    retried = [*whole[:5], _call(1, "x", tries=2), *whole[5:]]
    assert audit_problems(retried, completed=True) == []


def test_a_connector_call_without_its_mcp_call_row_is_found() -> None:
    def connector_call(call_id: str, outcome: str = "ok") -> list[AuditEvent]:
        out = _event(
            EventKind.MCP_CALL,
            "a",
            f"out{call_id}",
            payload={"call_id": call_id, "connector": "time", "outcome": outcome},
        )
        done = _event(
            EventKind.TOOL_CALL,
            "a",
            f"t{call_id}",
            payload={"call_id": call_id, "connector": "time"},
        )
        return [out, done]

    whole = [
        _event(EventKind.SESSION_STARTED, None, "start"),
        _event(EventKind.STEP_STARTED, "a", "a:start"),
        _call(0, "x", 2),
        *connector_call("0.0"),
        *connector_call("0.1"),
        _call(1, "x"),
        _event(EventKind.STEP_COMPLETED, "a", "a:done"),
        _event(EventKind.SESSION_COMPLETED, None, "done"),
    ]
    assert audit_problems(whole, completed=True) == []
    lost = [e for e in whole if e.event_key != "out0.1"]
    assert audit_problems(lost, completed=True) == [
        "step a: connector call 0.1 to time has no mcp_call record"
    ]
    assert audit_problems(lost, completed=False) != []


def test_a_turn_asked_again_after_its_gate_is_found() -> None:
    gate = GateTimes("ap", "s", seen_at=10.0, decided_at=20.0)
    asked = [TappedRequest("s", "a", 0, 1.0), TappedRequest("s", "a", 1, 21.0)]
    assert reruns_after_gates(asked, [gate]) == []
    again = [*asked, TappedRequest("s", "a", 0, 22.0), TappedRequest("other", "a", 0, 23.0)]
    assert reruns_after_gates(again, [gate]) == ["step a turn 0 asked again after approval ap"]
