"""The approvals JSON API over a real dev server: auth, groups, bad bodies, decisions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _demo import DEMO_SCRIPT, client_of, waiting_refund
from conftest import Env
from starlette.applications import Starlette

from orchestrator.approvals.api import approval_routes
from orchestrator.approvals.people import ApproverDirectory, hash_token
from orchestrator.session.types import SessionResult
from orchestrator.store.records import ApprovalRecord, ApprovalStatus, EventKind, SessionStatus

TOKENS = {"maria": "tok-maria", "lee": "tok-lee", "kim": "tok-kim", "sam": "tok-sam"}
DIRECTORY = ApproverDirectory.model_validate(
    {
        "groups": ["finance", "support-leads"],
        "policy": {"default_group": "support-leads", "skills": {"payments.refund": "finance"}},
        "users": {
            "maria": {"groups": ["finance"], "tokens": [hash_token(TOKENS["maria"])]},
            "lee": {"groups": ["finance"], "tokens": [hash_token(TOKENS["lee"])]},
            "kim": {"groups": ["finance"], "tokens": [hash_token(TOKENS["kim"])]},
            "sam": {"groups": ["support-leads"], "tokens": [hash_token(TOKENS["sam"])]},
        },
    }
)


@dataclass
class Api:
    env: Env
    http: httpx.AsyncClient
    pending: ApprovalRecord

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[who]}"}

    async def decide(self, who: str, body: object) -> httpx.Response:
        return await self.http.post(
            f"/api/approvals/{self.pending.approval_id}/decision", json=body, headers=self.auth(who)
        )

    async def status(self) -> ApprovalStatus:
        record = await self.env.runtime.store.get_approval(self.pending.approval_id)
        assert record is not None
        return record.status


@pytest.fixture
async def api(env_factory: Callable[[Path], Awaitable[Env]]) -> AsyncIterator[Api]:
    """A demo refund session started by maria, waiting for its refund's approval."""
    env = await env_factory(DEMO_SCRIPT)
    pending = await waiting_refund(env, "maria")
    client = client_of(env)

    app = Starlette(
        routes=approval_routes(env.runtime.store, DIRECTORY, client, env.runtime.skills)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://inbox") as http:
        yield Api(env, http, pending)


async def test_list_and_show_need_a_token_and_name_the_deciding_group(api: Api) -> None:
    assert (await api.http.get("/api/approvals")).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert (await api.http.get("/api/approvals", headers=bad)).status_code == 401

    listed = await api.http.get("/api/approvals", headers=api.auth("sam"))
    assert listed.status_code == 200
    [item] = [a for a in listed.json()["approvals"] if a["approval_id"] == api.pending.approval_id]
    assert item["skill"] == "payments.refund" and item["group"] == "finance"

    shown = await api.http.get(f"/api/approvals/{api.pending.approval_id}", headers=api.auth("lee"))
    assert shown.status_code == 200 and shown.json()["binding_hash"] == api.pending.binding_hash
    missing = await api.http.get("/api/approvals/apr_nope", headers=api.auth("lee"))
    assert missing.status_code == 404 and "apr_nope" in missing.json()["error"]
    wrong = await api.http.get("/api/approvals?status=maybe", headers=api.auth("lee"))
    assert wrong.status_code == 400 and "status" in wrong.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"decision": "maybe"}, "decision: Input should be 'approve' or 'reject'"),
        ({"decision": "approve", "binding_hash": "x"}, "binding_hash: Extra inputs"),
        ({}, "decision: Field required"),
        ([1, 2], "body: Input should be an object"),
        ({"decision": "reject"}, "reason: a rejection needs a reason"),
        ({"decision": "reject", "reason": "   "}, "reason: a rejection needs a reason"),
    ],
)
async def test_a_bad_body_is_a_clear_422_and_changes_nothing(
    api: Api, body: object, message: str
) -> None:
    answer = await api.decide("lee", body)
    assert answer.status_code == 422
    assert message in answer.json()["error"]
    assert await api.status() is ApprovalStatus.PENDING


async def test_outsiders_and_the_requester_cannot_decide(api: Api) -> None:
    outsider = await api.decide("sam", {"decision": "approve"})
    assert outsider.status_code == 403
    assert "sam is not in the group that decides this request (finance)" in outsider.json()["error"]
    own = await api.decide("maria", {"decision": "approve"})
    assert own.status_code == 403
    assert "maria started this session" in own.json()["error"]
    no_token = await api.http.post(
        f"/api/approvals/{api.pending.approval_id}/decision", json={"decision": "approve"}
    )
    assert no_token.status_code == 401
    assert await api.status() is ApprovalStatus.PENDING


async def test_an_approval_over_the_api_releases_the_session_once(api: Api) -> None:
    answer = await api.decide("lee", {"decision": "approve", "reason": "order checked"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "approval_id": api.pending.approval_id,
        "status": "approved",
        "decided_by": "lee",
        "duplicate": False,
    }
    handle = api.env.client.get_workflow_handle(api.pending.workflow_id, result_type=SessionResult)
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED
    assert await api.status() is ApprovalStatus.APPROVED

    again = await api.decide("lee", {"decision": "approve"})
    assert again.status_code == 200 and again.json()["duplicate"] is True
    flip = await api.decide("lee", {"decision": "reject", "reason": "changed my mind"})
    assert flip.status_code == 409 and "already approved by lee" in flip.json()["error"]

    events = await api.env.runtime.store.list_events(api.pending.session_id)
    refunds = [e for e in events if e.kind is EventKind.TOOL_CALL and e.skill == "payments.refund"]
    assert len(refunds) == 1


async def test_concurrent_decisions_release_the_action_once(api: Api) -> None:
    answers = await asyncio.gather(
        *(api.decide(who, {"decision": "approve"}) for who in ["lee"] * 4 + ["kim"] * 4)
    )
    assert all(a.status_code in (200, 409) for a in answers), [a.text for a in answers]
    fresh = [a for a in answers if a.status_code == 200 and not a.json()["duplicate"]]
    assert len(fresh) == 1
    handle = api.env.client.get_workflow_handle(api.pending.workflow_id, result_type=SessionResult)
    assert (await handle.result()).status is SessionStatus.COMPLETED
    events = await api.env.runtime.store.list_events(api.pending.session_id)
    refunds = [e for e in events if e.kind is EventKind.TOOL_CALL and e.skill == "payments.refund"]
    assert len(refunds) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"decision": "approve", "arguments": {"amount": "lots"}}, "arguments: "),
        ({"decision": "reject", "reason": "no", "arguments": {}}, "only when approving"),
    ],
)
async def test_a_bad_edit_is_refused_and_changes_nothing(
    api: Api, body: object, message: str
) -> None:
    answer = await api.decide("lee", body)
    assert answer.status_code == 422 and message in answer.json()["error"], answer.text
    assert await api.status() is ApprovalStatus.PENDING


async def test_an_approver_edit_runs_the_edited_call_and_is_recorded(api: Api) -> None:
    edited = {**api.pending.arguments, "amount": 20.0}
    answer = await api.decide("lee", {"decision": "approve", "arguments": edited})
    assert answer.status_code == 200, answer.text
    handle = api.env.client.get_workflow_handle(api.pending.workflow_id, result_type=SessionResult)
    assert (await handle.result()).status is SessionStatus.COMPLETED
    events = await api.env.runtime.store.list_events(api.pending.session_id)
    [refund] = [e for e in events if e.kind is EventKind.TOOL_CALL and e.skill == "payments.refund"]
    assert refund.payload["arguments"] == edited
    [decided] = [e for e in events if e.kind is EventKind.APPROVAL_DECIDED]
    assert decided.payload["edited_arguments"] == edited
    new_binding = decided.payload["edited_binding_hash"]
    assert isinstance(new_binding, str) and new_binding != api.pending.binding_hash
