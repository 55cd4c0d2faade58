"""`build_story` and metric labels from synthetic audit rows: every path, no server."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import REPO
from rich.console import Console

from orchestrator.audit import build_inventory, build_story, spend_by_skill
from orchestrator.audit.story import call_label
from orchestrator.cli.transcript import print_transcript
from orchestrator.observability.metrics import reason_label
from orchestrator.session.payloads import EVENT_OUTPUT_BYTES, recorded_output
from orchestrator.settings import Settings
from orchestrator.store.records import (
    ApprovalRecord,
    ApprovalStatus,
    AuditEvent,
    EventKind,
    SessionRecord,
    SessionStatus,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(n: int, kind: EventKind, **fields: Any) -> AuditEvent:
    return AuditEvent(
        event_key=f"k{n}",
        session_id="s",
        workflow_id="wf",
        run_id="r",
        kind=kind,
        created_at=T0 + timedelta(seconds=n),
        **fields,
    )


def record(**fields: Any) -> SessionRecord:
    """The session row of the synthetic stories below."""
    base: dict[str, Any] = {"session_id": "s", "workflow_id": "wf", "run_id": "r"}
    base |= {"plan_name": "p", "plan_version": "1", "started_at": T0}
    return SessionRecord(**(base | fields))


def test_story_of_a_failover_a_rejection_and_a_continued_run() -> None:
    session = record(plan_version="2")
    events = [
        ev(0, EventKind.SESSION_STARTED, payload={"skills": {"a.b": "1.0.0"}, "requested_by": "x"}),
        ev(1, EventKind.STEP_STARTED, step_id="one", payload={"type": "agent"}),
        ev(
            2,
            EventKind.MODEL_PINNED,
            step_id="one",
            model="m1",
            payload={"boundary": "session_start", "reason": "any model", "previous": None},
        ),
        ev(
            3,
            EventKind.MODEL_CALL,
            step_id="one",
            model="m1",
            cost_usd=0.5,
            input_tokens=10,
            output_tokens=2,
            payload={"round": 0, "tool_calls": ["a_b", "zz"]},
        ),
        ev(4, EventKind.TOOL_ERROR, step_id="one", payload={"tool": "zz", "error": "unknown"}),
        ev(
            5,
            EventKind.TOOL_ERROR,
            step_id="one",
            skill="a.b",
            payload={"version": "1.0.0", "error": "bad args", "call_id": "0.0"},
        ),
        ev(
            6,
            EventKind.MODEL_PINNED,
            step_id="one",
            model="m2",
            payload={
                "boundary": "forced_failover",
                "reason": "failover",
                "previous": "m1",
                "cause": "503",
                "rules_fired": ["eu-only"],
            },
        ),
        ev(7, EventKind.TOOL_ERROR, step_id="one", payload={"skill": "a.b", "error": "timeout"}),
        ev(8, EventKind.STEP_FAILED, step_id="one", payload={"error": "gave up"}),
        ev(9, EventKind.CONTINUED_AS_NEW, step_id="two", payload={"point": "step:1"}),
    ]
    rejected = ApprovalRecord(
        approval_id="ap",
        session_id="s",
        workflow_id="wf",
        run_id="r",
        step_id="one",
        kind="tool_call",
        skill="a.b",
        skill_version="1.0.0",
        summary="do it",
        binding_hash="h",
        status=ApprovalStatus.REJECTED,
        requested_at=T0,
        decided_by="ann",
        decided_at=T0 + timedelta(seconds=5),
        reason="too much",
    )

    story = build_story(session, events, [rejected])

    assert story.skills == {"a.b": "1.0.0"} and story.requested_by == "x"
    assert [(s.step_id, s.status, s.error) for s in story.steps] == [("one", "failed", "gave up")]
    assert [(p.model, p.switched, p.cause) for p in story.model_timeline] == [
        ("m1", False, None),
        ("m2", True, "503"),
    ]
    assert story.model_timeline[1].rules_fired == ["eu-only"]
    assert [(t.skill, t.outcome) for t in story.tool_calls] == [
        ("zz", "invalid_call"),
        ("a.b", "invalid_arguments"),
        ("a.b", "rejected"),
        ("a.b", "failed"),
    ]
    assert story.approvals[0].decided_by == "ann" and story.approvals[0].reason == "too much"
    assert (story.cost_usd, story.input_tokens, story.output_tokens) == (0.5, 10, 2)
    assert story.runs == 2

    [(first, second)] = [tuple(r.key for r in spend_by_skill(events))]
    assert {first, second} == {"a.b", "zz"}


def test_reason_labels_stay_bounded() -> None:
    assert reason_label("switch requested: the ticket is urgent") == "switch requested"
    assert (
        reason_label("demo-strong named by the step; score 0.91") == "demo-strong named by the step"
    )
    assert reason_label("") == "unspecified"
    assert len(reason_label("x" * 500)) == 48


def test_inventory_reads_connector_declarations(tmp_path: Path) -> None:
    for name in ("models.yaml", "skills", "workflows"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    (tmp_path / "connectors").mkdir()
    (tmp_path / "connectors" / "crm.yaml").write_text(
        "name: crm\nversion: '2'\nowner: sales-ops\nregion: eu\n"
        "data_classes: [customer_pii]\nrisk: reversible_write\n"
    )

    assets = build_inventory(Settings(project_dir=tmp_path, state_dir=tmp_path / "state"))

    [crm] = [a for a in assets if a.kind == "connector"]
    assert (crm.name, crm.version, crm.owner, crm.region, crm.risk) == (
        "crm",
        "2",
        "sales-ops",
        "eu",
        "reversible_write",
    )
    assert crm.data_classes == ["customer_pii"]
    assert [a.kind for a in assets] == sorted(
        [a.kind for a in assets], key=["model", "skill", "connector", "plan"].index
    )


def test_tool_calls_are_numbered_as_people_count() -> None:
    """Call ids stay 0-based (keys are built from them); people read round 1, call 1."""
    assert call_label("0.0") == "1.1"
    assert call_label("2.1") == "3.2"
    assert call_label("f1.0.3") == "1.4 (failover 1)"
    assert call_label("step") is None
    assert call_label(None) is None


def test_story_carries_step_outputs_and_the_final_output() -> None:
    session = record(status=SessionStatus.COMPLETED, output="all done")
    events = [
        ev(0, EventKind.STEP_STARTED, step_id="look", payload={"type": "skill"}),
        ev(1, EventKind.STEP_COMPLETED, step_id="look", payload={"output": {"n": 3}}),
        ev(2, EventKind.STEP_STARTED, step_id="say", payload={"type": "agent"}),
        ev(3, EventKind.TOOL_CALL, step_id="say", skill="a.b", payload={"call_id": "1.0"}),
        ev(4, EventKind.STEP_COMPLETED, step_id="say", payload={"output": "all done"}),
        ev(5, EventKind.STEP_STARTED, step_id="old"),
        ev(6, EventKind.STEP_COMPLETED, step_id="old"),
    ]
    story = build_story(session, events, [])
    assert [(s.step_id, s.output) for s in story.steps] == [
        ("look", {"n": 3}),
        ("say", "all done"),
        ("old", None),
    ]
    assert story.final_output == "all done"
    [tool] = story.tool_calls
    assert (tool.call_id, tool.call) == ("1.0", "2.1")
    dumped = story.model_dump(mode="json")
    assert dumped["final_output"] == "all done"
    assert dumped["steps"][0]["output"] == {"n": 3}


def test_a_large_step_output_is_recorded_as_a_stand_in() -> None:
    small = {"rows": list(range(10))}
    assert recorded_output("s", small) == small
    big = "x" * (EVENT_OUTPUT_BYTES + 1)
    kept = recorded_output("s", big)
    assert isinstance(kept, dict) and kept["truncated"] is True
    assert kept["size_bytes"] == EVENT_OUTPUT_BYTES + 3
    assert "the output of step 's'" in str(kept["note"])


def test_the_run_transcript_counts_model_calls_from_one() -> None:
    console = Console(record=True, width=200)
    events = [
        ev(0, EventKind.MODEL_CALL, step_id="s", model="m", payload={"round": 0}),
        ev(1, EventKind.MODEL_CALL, step_id="s", model="m", payload={"round": 1}),
    ]
    print_transcript(console, record(), events, None)
    text = console.export_text()
    assert "model call 1 -> m: final answer" in text
    assert "model call 2 -> m" in text and "model call 0" not in text
