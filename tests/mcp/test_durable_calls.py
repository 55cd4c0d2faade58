"""Durable calls over the real transports: an approval-gated skill called by the SDK's
client over stdio (`orchestrator mcp serve`) and streamable HTTP holds the call open with
progress while a person decides; a client that leaves can fetch the result later; calls
with one idempotency key join one run."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from conftest import REPO, Env
from mcp import Client
from mcp.shared.exceptions import MCPError
from serving import (
    REFUND,
    TOKENS,
    decide_the_approval,
    deps_for,
    http_client,
    serve_http,
    stdio_parameters,
    text_of,
)

from orchestrator.mcp.calls import IDEMPOTENCY_META_KEY
from orchestrator.store.records import EventKind

SESSION = re.compile(r"as session (\S+)$")
RUN = uuid.uuid4().hex[:8]


@pytest.fixture
async def env(env_factory: Callable[[Path], Awaitable[Env]]) -> Env:
    return await env_factory(REPO / "model_scripts" / "customer_refund.yaml")


@contextlib.asynccontextmanager
async def _connect(env: Env, transport: str) -> AsyncIterator[Client]:
    """An SDK client of the skill server over a real transport (HTTP as client `ops`)."""
    if transport == "stdio":
        async with Client(stdio_parameters(env)) as client:
            yield client
        return
    async with serve_http(deps_for(env)) as url, http_client(url, TOKENS["ops"]) as client:
        yield client


def _meta(key: str) -> types.RequestParamsMeta:
    """An idempotency key unique to this test run: the dev server outlives each test."""
    return {IDEMPOTENCY_META_KEY: f"{key}-{RUN}"}  # type: ignore[typeddict-unknown-key]


class _Progress:
    """Progress messages of one call; `waiting` is set by the first approval wait."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.waiting = anyio.Event()

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.messages.append(message or "")
        if "waiting for a person" in (message or ""):
            self.waiting.set()

    @property
    def session_id(self) -> str:
        found = SESSION.search(self.messages[0])
        assert found, self.messages
        return found.group(1)


async def _gated_call(env: Env, transport: str, *, approve: bool) -> types.CallToolResult:
    """Call payments.refund and decide its approval once the call reports the wait."""
    progress = _Progress()
    box: list[types.CallToolResult] = []
    async with _connect(env, transport) as client, anyio.create_task_group() as tg:

        async def call() -> None:
            result = await client.call_tool(
                "payments.refund",
                REFUND,
                progress_callback=progress,
                meta=_meta(f"gated-{transport}-{approve}"),
            )
            box.append(result)

        tg.start_soon(call)
        with anyio.fail_after(90):
            await progress.waiting.wait()
        assert not box, "the call returned before anyone decided"
        await decide_the_approval(env, approve=approve)
    [result] = box
    session_id = progress.session_id
    [approval] = await env.runtime.store.list_approvals(session_id=session_id, status=None)
    decided = "approved" if approve else "rejected"
    # The run's event stream, each event once and in order, then the end.
    assert progress.messages[:5] == [
        f"running payments.refund@1.0.0 as session {session_id}",
        f"session {session_id} started",
        "step call started",
        f"session {session_id}: waiting for a person to approve payments.refund@1.0.0"
        f" (approval {approval.approval_id})",
        f"approval {approval.approval_id} {decided} by maria",
    ]
    ended = "completed" if approve else "failed: step 'call' failed"
    assert progress.messages[-1].startswith(f"session {session_id} {ended}")
    return result


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_gated_call_returns_after_approval(env: Env, transport: str) -> None:
    result = await _gated_call(env, transport, approve=True)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "issued"
    session_id = str((result.meta or {})["orchestrator/session_id"])
    [event] = await env.runtime.store.list_events(session_id, kind=EventKind.MCP_CALL)
    assert event.payload["client"] == ("stdio" if transport == "stdio" else "ops")
    assert event.payload["outcome"] == "ok"


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_gated_call_is_an_error_after_rejection(env: Env, transport: str) -> None:
    result = await _gated_call(env, transport, approve=False)
    assert result.is_error
    assert "rejected by maria" in text_of(result)
    assert "not this order" in text_of(result)
    session_id = str((result.meta or {})["orchestrator/session_id"])
    assert await env.runtime.store.list_events(session_id, kind=EventKind.TOOL_CALL) == []


async def test_client_that_left_fetches_the_result_later_over_stdio(env: Env) -> None:
    progress = _Progress()
    async with Client(stdio_parameters(env)) as client, anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: client.call_tool(
                "payments.refund", REFUND, progress_callback=progress, meta=_meta("leave")
            )
        )
        with anyio.fail_after(90):
            await progress.waiting.wait()
        tg.cancel_scope.cancel()
    # The server process is gone with its client; the run waits on in Temporal.
    session_id = progress.session_id
    async with Client(stdio_parameters(env)) as client:
        before = await client.call_tool("session-result", {"session_id": session_id})
        await decide_the_approval(env, approve=True)
        with anyio.fail_after(90):
            by_id = await client.call_tool(
                "session-result", {"session_id": session_id, "wait": True}
            )
        by_key = await client.call_tool(
            "session-result", {"tool": "payments.refund", "idempotency_key": f"leave-{RUN}"}
        )
    assert before.structured_content is not None
    assert before.structured_content["status"] == "waiting_approval"
    assert len(before.structured_content["pending_approvals"]) == 1
    for fetched in (by_id, by_key):
        assert not fetched.is_error, text_of(fetched)
        assert fetched.structured_content is not None
        assert fetched.structured_content["session_id"] == session_id
        assert fetched.structured_content["status"] == "completed"
        assert fetched.structured_content["output"]["status"] == "issued"
    events = await env.runtime.store.list_events(session_id, kind=EventKind.MCP_CALL)
    outcomes = sorted(str(e.payload["outcome"]) for e in events)
    assert outcomes == ["disconnected", "ok", "ok", "ok"]


async def test_only_the_client_that_started_a_run_reads_it(env: Env) -> None:
    async with serve_http(deps_for(env)) as url:
        async with http_client(url, TOKENS["ops"]) as ops:
            with anyio.fail_after(90):
                done = await ops.call_tool(
                    "tickets.get", {"ticket_id": "T-1001"}, meta=_meta("ticket")
                )
            session_id = str((done.meta or {})["orchestrator/session_id"])
            own = await ops.call_tool("session-result", {"session_id": session_id})
        async with http_client(url, TOKENS["support"]) as support:
            with pytest.raises(MCPError) as foreign:
                await support.call_tool("session-result", {"session_id": session_id})
            with pytest.raises(MCPError) as bad:
                await support.call_tool("session-result", {"tool": "tickets.get"})
    assert own.structured_content is not None
    assert own.structured_content["output"]["ticket_id"] == "T-1001"
    assert foreign.value.code == types.INVALID_PARAMS
    assert f"no session {session_id!r} started over MCP by client 'support'" in str(
        foreign.value.message
    )
    assert "give either session_id, or both tool and idempotency_key" in bad.value.message


async def test_calls_with_one_idempotency_key_join_one_run(env: Env) -> None:
    first, second = _Progress(), _Progress()
    results: dict[str, types.CallToolResult] = {}
    async with serve_http(deps_for(env)) as url, anyio.create_task_group() as tg:

        async def call(name: str, progress: _Progress) -> None:
            async with http_client(url, TOKENS["ops"]) as client:
                results[name] = await client.call_tool(
                    "payments.refund", REFUND, progress_callback=progress, meta=_meta("join")
                )

        tg.start_soon(call, "first", first)
        with anyio.fail_after(90):
            await first.waiting.wait()
        tg.start_soon(call, "second", second)
        with anyio.fail_after(90):
            await second.waiting.wait()
        await decide_the_approval(env, approve=True)
    assert first.session_id == second.session_id
    assert [results[n].structured_content for n in ("first", "second")] == [
        results["first"].structured_content
    ] * 2
    assert len(await env.runtime.store.list_approvals(status=None)) == 1
    refunds = await env.runtime.store.list_events(first.session_id, kind=EventKind.TOOL_CALL)
    assert len(refunds) == 1


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_a_key_reused_with_other_arguments_is_refused(env: Env, transport: str) -> None:
    meta = _meta(f"reused-{transport}")
    async with _connect(env, transport) as client:
        with anyio.fail_after(60):
            first = await client.call_tool("tickets.get", {"ticket_id": "T-1001"}, meta=meta)
            again = await client.call_tool("tickets.get", {"ticket_id": "T-1001"}, meta=meta)
            other = await client.call_tool("tickets.get", {"ticket_id": "T-1002"}, meta=meta)
    assert not first.is_error and not again.is_error, (text_of(first), text_of(again))
    assert again.structured_content == first.structured_content
    session_id = str((first.meta or {})["orchestrator/session_id"])
    calls = await env.runtime.store.list_events(session_id, kind=EventKind.MCP_CALL)
    assert other.is_error
    message = text_of(other)
    assert f"idempotency key 'reused-{transport}-{RUN}' was already used" in message
    assert "T-1002" not in message and "T-1001" not in message
    # Nothing new recorded: no second run's tool call, no audit row for the refused call.
    assert len(await env.runtime.store.list_events(session_id, kind=EventKind.TOOL_CALL)) == 1
    assert len(calls) == 2
