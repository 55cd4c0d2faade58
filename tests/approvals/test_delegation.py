"""Delegation and partial approvals on a real dev server, through the JSON API.

The worker reads the same approvers file the API serves, so the workflow's own checks
(the update validators) and the API's agree; where they could differ, the workflow is
asked directly too. Audit events are awaited with deadlines, never slept for, and each
finished session's history is replayed (the approval-events-v1 wait is deterministic).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _demo import DEMO_SCRIPT, client_of, waiting_refund, write_approvers
from conftest import Env
from starlette.applications import Starlette
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from orchestrator.approvals.api import approval_routes
from orchestrator.approvals.delegation import delegate_approval
from orchestrator.exceptions import ApprovalError
from orchestrator.plugin import workflow_runner
from orchestrator.service import decide_approval
from orchestrator.session.types import SessionResult
from orchestrator.session.workflow import AgentSessionWorkflow
from orchestrator.store.records import (
    ApprovalRecord,
    ApprovalStatus,
    AuditEvent,
    EventKind,
    SessionStatus,
)
from orchestrator.testing import eventually


@dataclass
class Gate:
    env: Env
    http: httpx.AsyncClient
    pending: ApprovalRecord

    async def post(self, who: str, what: str, body: object) -> httpx.Response:
        return await self.http.post(
            f"/api/approvals/{self.pending.approval_id}/{what}",
            json=body,
            headers={"Authorization": f"Bearer tok-{who}"},
        )

    async def show(self) -> dict[str, object]:
        answer = await self.http.get(
            f"/api/approvals/{self.pending.approval_id}",
            headers={"Authorization": "Bearer tok-sam"},
        )
        assert answer.status_code == 200, answer.text
        view: dict[str, object] = answer.json()
        return view

    async def event(self, kind: EventKind, count: int = 1) -> list[AuditEvent]:
        """The request's events of `kind`, once there are `count` of them."""

        async def probe() -> list[AuditEvent] | None:
            events = await self.env.runtime.store.list_events(self.pending.session_id, kind=kind)
            mine = [e for e in events if e.payload.get("approval_id") == self.pending.approval_id]
            return mine if len(mine) >= count else None

        return await eventually(probe, what=f"{count} {kind.value} event(s)")

    async def result(self) -> SessionResult:
        handle = self.env.client.get_workflow_handle(
            self.pending.workflow_id, result_type=SessionResult
        )
        return await handle.result()

    async def assert_replays(self) -> None:
        """The finished session's history replays: the wait's new commands are deterministic."""
        history = await self.env.client.get_workflow_handle(
            self.pending.workflow_id
        ).fetch_history()
        replayer = Replayer(
            workflows=[AgentSessionWorkflow],
            data_converter=pydantic_data_converter,
            workflow_runner=workflow_runner(),
        )
        outcome = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert outcome.replay_failure is None, outcome.replay_failure


GateFactory = Callable[[dict[str, object]], Awaitable[Gate]]


@pytest.fixture
async def gate(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[GateFactory]:
    """A refund waiting for finance under a policy, and the API over the same file."""
    opened: list[httpx.AsyncClient] = []

    async def make(policy: dict[str, object]) -> Gate:
        directory = write_approvers(tmp_path, monkeypatch, policy)
        env = await env_factory(DEMO_SCRIPT)
        pending = await waiting_refund(env, "support-bot")
        routes = approval_routes(env.runtime.store, directory, client_of(env), env.runtime.skills)
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=Starlette(routes=routes)), base_url="http://api"
        )
        opened.append(http)
        return Gate(env, http, pending)

    yield make
    for http in opened:
        await http.aclose()


async def test_only_the_delegate_decides_a_delegated_request(gate: GateFactory) -> None:
    g = await gate({})
    outside = await g.post("lee", "delegation", {"to": "ode"})
    assert outside.status_code == 422 and "ode is not in finance" in outside.json()["error"]
    unknown = await g.post("lee", "delegation", {"to": "nobody"})
    assert unknown.status_code == 422 and "no approver named" in unknown.json()["error"]
    assert (await g.post("sam", "delegation", {"to": "kim"})).status_code == 403
    assert (await g.post("lee", "delegation", {"too": "kim"})).status_code == 422
    itself = await g.post("lee", "delegation", {"to": "lee"})
    assert itself.status_code == 409 and "another member" in itself.json()["error"]
    # The workflow refuses a delegate outside the group even when a surface does not check.
    with pytest.raises(ApprovalError, match="ode is not in finance"):
        await delegate_approval(
            g.env.client,
            g.env.runtime.store,
            g.pending.approval_id,
            delegated_by="lee",
            groups=["finance"],
            to="ode",
            to_groups=["ops"],
        )
    assert not await g.env.runtime.store.list_events(
        g.pending.session_id, kind=EventKind.APPROVAL_DELEGATED
    )

    handed = await g.post("lee", "delegation", {"to": "kim", "reason": "kim owns this account"})
    assert handed.status_code == 200, handed.text
    assert handed.json() == {
        "approval_id": g.pending.approval_id,
        "delegate": "kim",
        "group": "finance",
    }
    [event] = await g.event(EventKind.APPROVAL_DELEGATED)
    assert event.payload["delegated_by"] == "lee" and event.payload["to"] == "kim"
    assert event.payload["reason"] == "kim owns this account"
    assert (await g.show())["delegate"] == "kim"

    for who in ("lee", "max"):
        refused = await g.post(who, "decision", {"decision": "approve"})
        assert refused.status_code == 403 and "delegated to kim" in refused.json()["error"]
    with pytest.raises(ApprovalError, match="delegated to kim"):
        await decide_approval(
            g.env.client,
            g.env.runtime.store,
            g.pending.approval_id,
            approve=True,
            decided_by="max",
            groups=["finance"],
        )
    record = await g.env.runtime.store.get_approval(g.pending.approval_id)
    assert record is not None and record.status is ApprovalStatus.PENDING

    approved = await g.post("kim", "decision", {"decision": "approve"})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert (await g.result()).status is SessionStatus.COMPLETED
    record = await g.env.runtime.store.get_approval(g.pending.approval_id)
    assert record is not None and record.decided_by == "kim"
    await g.assert_replays()


async def test_the_first_of_two_approvals_is_an_audit_event_when_it_happens(
    gate: GateFactory,
) -> None:
    g = await gate({"two_person_risks": ["irreversible_write"]})
    first = await g.post("lee", "decision", {"decision": "approve"})
    assert first.status_code == 200 and first.json()["status"] == "awaiting_more_approvals"
    [partial] = await g.event(EventKind.APPROVAL_PARTIAL)
    assert partial.payload["approved_by"] == "lee" and partial.payload["progress"] == "1 of 2"
    view = await g.show()
    assert view["approved_by"] == ["lee"] and view["required"] == 2
    assert view["status"] == "pending"
    calls = await g.env.runtime.store.list_events(g.pending.session_id, kind=EventKind.TOOL_CALL)
    assert "payments.refund" not in [e.skill for e in calls]

    # lee hands the second approval to kim; nobody may hand it to lee, who approved already.
    again = await g.post("kim", "delegation", {"to": "lee"})
    assert again.status_code == 409 and "already approved" in again.json()["error"]
    assert (await g.post("lee", "delegation", {"to": "kim"})).status_code == 200
    await g.event(EventKind.APPROVAL_DELEGATED)
    second = await g.post("kim", "decision", {"decision": "approve"})
    assert second.status_code == 200 and second.json()["status"] == "approved"
    assert (await g.result()).status is SessionStatus.COMPLETED

    events = await g.env.runtime.store.list_events(g.pending.session_id)
    kinds = [e.kind for e in events if e.payload.get("approval_id") == g.pending.approval_id]
    assert kinds.index(EventKind.APPROVAL_PARTIAL) < kinds.index(EventKind.APPROVAL_DECIDED)
    assert kinds.count(EventKind.APPROVAL_PARTIAL) == 1
    await g.assert_replays()


async def test_an_escalation_ends_a_delegation(gate: GateFactory) -> None:
    g = await gate({"escalation": {"finance": "ops"}, "timeout_seconds": 4.0})
    assert (await g.post("lee", "delegation", {"to": "kim"})).status_code == 200
    await g.event(EventKind.APPROVAL_ESCALATED)

    async def moved() -> dict[str, object] | None:
        view = await g.show()
        return view if view["group"] == "ops" else None

    view = await eventually(moved, what="the request to move to ops")
    assert view["delegate"] is None and view["chain"] == []
    assert (await g.post("kim", "decision", {"decision": "approve"})).status_code == 403
    assert (await g.post("ode", "decision", {"decision": "approve"})).status_code == 200
    assert (await g.result()).status is SessionStatus.COMPLETED
    await g.assert_replays()
