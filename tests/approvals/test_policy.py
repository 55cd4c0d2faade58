"""The approval policy in the running workflow, on a real dev server.

Two-person rule, group and self-approval checks made by the workflow itself, escalation
on a workflow timer with a webhook to a loopback receiver, and expiry. Timeouts are one
second, waited for with deadlines, never slept.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from _demo import DEMO_SCRIPT, waiting_refund, write_approvers
from conftest import Env
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orchestrator.exceptions import ApprovalError
from orchestrator.scripted_model import LoopbackServer
from orchestrator.service import decide_approval, query_state
from orchestrator.session.types import SessionResult
from orchestrator.store.records import ApprovalStatus, EventKind, SessionStatus
from orchestrator.testing import eventually


def _approvers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: dict[str, object]) -> None:
    write_approvers(tmp_path, monkeypatch, policy)


async def _result(env: Env, workflow_id: str) -> SessionResult:
    handle = env.client.get_workflow_handle(workflow_id, result_type=SessionResult)
    return await handle.result()


async def test_two_person_rule_holds_the_action_until_a_second_person_approves(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _approvers(tmp_path, monkeypatch, {"two_person_risks": ["irreversible_write"]})
    env = await env_factory(DEMO_SCRIPT)
    pending = await waiting_refund(env, "support-bot")
    store = env.runtime.store

    async def decide(who: str) -> str:
        result = await decide_approval(
            env.client, store, pending.approval_id, approve=True, decided_by=who, groups=["finance"]
        )
        return f"{result.status}{' (duplicate)' if result.duplicate else ''}"

    assert await decide("lee") == "awaiting_more_approvals"
    assert await decide("lee") == "awaiting_more_approvals (duplicate)"
    state = await query_state(env.client, pending.session_id)
    [live] = state.pending_approvals
    assert live.required == 2 and live.approved_by == ["lee"] and live.group == "finance"
    record = await store.get_approval(pending.approval_id)
    assert record is not None and record.status is ApprovalStatus.PENDING
    events = await store.list_events(pending.session_id, kind=EventKind.TOOL_CALL)
    assert "payments.refund" not in [e.skill for e in events]

    assert await decide("kim") == "approved"
    assert (await _result(env, pending.workflow_id)).status is SessionStatus.COMPLETED
    record = await store.get_approval(pending.approval_id)
    assert record is not None and record.decided_by == "lee, kim"


async def test_the_workflow_refuses_outsiders_and_the_requester(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _approvers(tmp_path, monkeypatch, {})
    env = await env_factory(DEMO_SCRIPT)
    pending = await waiting_refund(env, "lee")
    store = env.runtime.store
    with pytest.raises(
        ApprovalError, match=r"sam is not in the group that decides this request \(finance\)"
    ):
        await decide_approval(
            env.client,
            store,
            pending.approval_id,
            approve=True,
            decided_by="sam",
            groups=["support-leads"],
        )
    with pytest.raises(ApprovalError, match="lee started this session"):
        await decide_approval(
            env.client,
            store,
            pending.approval_id,
            approve=True,
            decided_by="lee",
            groups=["finance"],
        )
    record = await store.get_approval(pending.approval_id)
    assert record is not None and record.status is ApprovalStatus.PENDING
    await decide_approval(
        env.client, store, pending.approval_id, approve=True, decided_by="kim", groups=["finance"]
    )
    assert (await _result(env, pending.workflow_id)).status is SessionStatus.COMPLETED


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[object], asyncio.Event]]:
    """A loopback webhook receiver: its URL, the bodies it got, and an event per body."""
    bodies: list[object] = []
    got = asyncio.Event()

    async def hook(request: Request) -> Response:
        bodies.append(await request.json())
        got.set()
        return Response(status_code=204)

    async with LoopbackServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as srv:
        yield f"{srv.url}/hook", bodies, got


async def test_a_timeout_escalates_to_the_next_group_and_notifies_it(
    env_factory: Callable[[Path], Awaitable[Env]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    receiver: tuple[str, list[object], asyncio.Event],
) -> None:
    url, bodies, got = receiver
    _approvers(
        tmp_path,
        monkeypatch,
        {"escalation": {"finance": "ops"}, "timeout_seconds": 1.0, "webhooks": {"ops": url}},
    )
    env = await env_factory(DEMO_SCRIPT)
    pending = await waiting_refund(env, "support-bot")
    async with asyncio.timeout(30):
        await got.wait()
    [body] = bodies
    assert isinstance(body, dict)
    assert body["event"] == "approval_escalated" and body["approval_id"] == pending.approval_id
    assert (body["from_group"], body["to_group"], body["expired"]) == ("finance", "ops", False)
    assert body["arguments"] == pending.arguments

    store = env.runtime.store
    with pytest.raises(
        ApprovalError, match=r"lee is not in the group that decides this request \(ops\)"
    ):
        await decide_approval(
            env.client,
            store,
            pending.approval_id,
            approve=True,
            decided_by="lee",
            groups=["finance"],
        )
    await decide_approval(
        env.client, store, pending.approval_id, approve=True, decided_by="ode", groups=["ops"]
    )
    assert (await _result(env, pending.workflow_id)).status is SessionStatus.COMPLETED
    kinds = [e.kind for e in await store.list_events(pending.session_id)]
    assert EventKind.APPROVAL_ESCALATED in kinds


async def test_after_the_last_timeout_the_request_expires_rejected(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _approvers(tmp_path, monkeypatch, {"timeout_seconds": 1.0})
    env = await env_factory(DEMO_SCRIPT)
    pending = await waiting_refund(env, "support-bot")
    store = env.runtime.store

    async def decided() -> object:
        record = await store.get_approval(pending.approval_id)
        assert record is not None
        return None if record.status is ApprovalStatus.PENDING else record

    await eventually(decided, what="the request to expire")
    record = await store.get_approval(pending.approval_id)
    assert record is not None and record.status is ApprovalStatus.REJECTED
    assert record.decided_by == "runtime" and "expired" in (record.reason or "")
    assert (await _result(env, pending.workflow_id)).status is SessionStatus.COMPLETED
    events = await store.list_events(pending.session_id, kind=EventKind.TOOL_CALL)
    assert "payments.refund" not in [e.skill for e in events]
