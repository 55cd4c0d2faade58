"""The Tasks extension (`io.modelcontextprotocol/tasks`): a client that declares it gets a
task handle at once for a gated skill call instead of a request held open, follows it with
`tasks/get` from any connection, and gets the same result as a waiting call.

The client is the SDK's `Client` over the real stdio (`orchestrator mcp serve`) and
streamable HTTP transports; the SDK ships no Tasks requester, so the test declares the
extension with its `ClientExtension` API and sends `tasks/get` as a plain request.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import anyio
import httpx2
import mcp_types as types
import pytest
from conftest import REPO, Env
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import ConfigDict
from serving import REFUND, TOKENS, decide_the_approval, deps_for, serve_http, stdio_parameters

from orchestrator.mcp.calls import IDEMPOTENCY_META_KEY
from orchestrator.mcp.tasks import TASKS_EXTENSION
from orchestrator.session.names import workflow_id_for
from orchestrator.store.records import AuditEvent, EventKind
from orchestrator.testing import wait_for_pending_approval

RUN = uuid.uuid4().hex[:8]


class TaskId(types.RequestParams):
    task_id: str


class GetTask(types.Request[TaskId, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskId
    name_param: ClassVar[str | None] = "taskId"  # Mcp-Name header, as the extension asks


class TaskView(types.Result):
    """What `tasks/get` answers."""

    model_config = ConfigDict(extra="allow")

    result_type: str
    task_id: str
    status: str
    status_message: str | None = None
    poll_interval_ms: int | None = None
    result: dict[str, Any] | None = None


class TaskHandle(TaskView):
    """A `tools/call` answered with a task (`resultType: task`)."""

    result_type: Literal["task"]


async def get_task(session: ClientSession, task_id: str) -> TaskView:
    return await session.send_request(GetTask(params=TaskId(task_id=task_id)), TaskView)


class TasksRequester(ClientExtension):
    """Declares the extension; a task answer is followed at the server's poll interval."""

    identifier = TASKS_EXTENSION

    def claims(self) -> Sequence[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=TaskHandle, resolve=self.follow)]

    async def follow(self, handle: TaskHandle, ctx: ClaimContext) -> types.CallToolResult:
        view: TaskView = handle
        while view.status not in ("completed", "failed", "cancelled"):
            await anyio.sleep((view.poll_interval_ms or 1000) / 1000)
            view = await get_task(ctx.session, handle.task_id)
        assert view.status == "completed" and view.result is not None
        return types.CallToolResult.model_validate(view.result)


def late_mcp_call(session_id: str) -> AuditEvent:
    """An `mcp_call` event of the session, as the server writes one after it answered."""
    return AuditEvent(
        event_key=f"mcp:{session_id}:late",
        session_id=session_id,
        workflow_id=workflow_id_for(session_id),
        run_id="",
        kind=EventKind.MCP_CALL,
        skill="payments.refund",
        payload={"direction": "in", "client": "ops", "outcome": "late"},
        created_at=datetime.now(UTC),
    )


@pytest.fixture
async def env(env_factory: Callable[[Path], Awaitable[Env]]) -> Env:
    return await env_factory(REPO / "model_scripts" / "customer_refund.yaml")


@contextlib.asynccontextmanager
async def connect(
    env: Env, transport: str, url: str | None, *, tasks: bool = True, token: str = "ops"
) -> AsyncIterator[Client]:
    """A client declaring the Tasks extension (or not) over a real transport."""
    extensions: list[ClientExtension] = [TasksRequester()] if tasks else []
    if transport == "stdio":
        async with Client(stdio_parameters(env), extensions=extensions) as client:
            yield client
        return
    assert url is not None
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKENS[token]}"}) as http,
        Client(streamable_http_client(url, http_client=http), extensions=extensions) as client,
    ):
        yield client


@contextlib.asynccontextmanager
async def server_url(env: Env, transport: str) -> AsyncIterator[str | None]:
    if transport == "stdio":
        yield None
        return
    async with serve_http(deps_for(env)) as url:
        yield url


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_a_gated_call_is_a_task_followed_from_another_connection(
    env: Env, transport: str
) -> None:
    meta: types.RequestParamsMeta = {IDEMPOTENCY_META_KEY: f"task-{transport}-{RUN}"}  # type: ignore[typeddict-unknown-key]
    async with server_url(env, transport) as url:
        async with connect(env, transport, url) as client:
            assert TASKS_EXTENSION in (client.server_capabilities.extensions or {})
            with anyio.fail_after(60):
                handle = await client.session.call_tool(
                    "payments.refund", REFUND, meta=meta, allow_claimed=True
                )
        # The handle came back at once, before anyone decided.
        assert isinstance(handle, TaskHandle)
        assert (handle.status, handle.poll_interval_ms) == ("working", 1000)
        task_id = handle.task_id

        async with connect(env, transport, url) as client:  # another connection
            with anyio.fail_after(60):
                while "waiting" not in (
                    (view := await get_task(client.session, task_id)).status_message or ""
                ):
                    assert view.status == "working"
                    await anyio.sleep(0.05)
            [approval] = await env.runtime.store.list_approvals(session_id=task_id)
            waiting = (
                f"session {task_id}: waiting for a person to approve payments.refund@1.0.0"
                f" (approval {approval.approval_id})"
            )
            assert view.status_message == waiting
            # The server's own record of a call may commit after the run's approval
            # request (a slow server, a fast worker): it must not hide the wait.
            await env.runtime.store.append_event(late_mcp_call(task_id))
            assert (await get_task(client.session, task_id)).status_message == waiting
            await decide_the_approval(env, approve=True)
            with anyio.fail_after(60):
                while (view := await get_task(client.session, task_id)).status == "working":
                    await anyio.sleep(0.05)
            # The same call again is the same task, followed to its result by the client.
            with anyio.fail_after(60):
                followed = await client.call_tool("payments.refund", REFUND, meta=meta)
        # A client without the extension joins the same run and waits for its result.
        async with connect(env, transport, url, tasks=False) as client:
            with anyio.fail_after(60):
                waited = await client.call_tool("payments.refund", REFUND, meta=meta)

    assert (view.status, view.result_type) == ("completed", "complete")
    assert view.result is not None
    result = types.CallToolResult.model_validate(view.result)
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["status"] == "issued"
    assert (result.meta or {})["orchestrator/session_id"] == task_id
    assert (result.meta or {})["orchestrator/version"] == "1.0.0"
    # The task's result is the result a waiting call gets (the server's stamp aside).
    bodies = [r.model_dump(by_alias=True, exclude_none=True) for r in (result, followed, waited)]
    for body in bodies:
        body.get("_meta", {}).pop("io.modelcontextprotocol/serverInfo", None)
    assert bodies[0] == bodies[1] == bodies[2]
    calls = await env.runtime.store.list_events(task_id, kind=EventKind.MCP_CALL)
    assert [e.payload["outcome"] for e in calls] == ["task", "late", "task", "ok"]


async def test_tasks_are_their_starters_only_and_need_the_extension(env: Env) -> None:
    meta: types.RequestParamsMeta = {IDEMPOTENCY_META_KEY: f"owner-{RUN}"}  # type: ignore[typeddict-unknown-key]
    async with serve_http(deps_for(env)) as url:
        async with connect(env, "http", url) as client:
            with anyio.fail_after(60):
                handle = await client.session.call_tool(
                    "payments.refund", REFUND, meta=meta, allow_claimed=True
                )
        assert isinstance(handle, TaskHandle)
        task_id = handle.task_id
        async with connect(env, "http", url, token="support") as other:
            with pytest.raises(MCPError) as unknown:
                await get_task(other.session, task_id)
            with pytest.raises(MCPError) as never:
                await get_task(other.session, "mcp-nope")
        async with connect(env, "http", url, tasks=False) as plain:
            with pytest.raises(MCPError) as undeclared:
                await get_task(plain.session, task_id)
        await wait_for_pending_approval(env.runtime.store, task_id, timeout=60)
        await decide_the_approval(env, approve=False)  # the run ends; nothing is paid
    # Another client's task and no task look the same.
    assert unknown.value.error.code == never.value.error.code == types.INVALID_PARAMS
    assert unknown.value.error.message == f"Failed to retrieve task: no task {task_id!r}"
    assert undeclared.value.error.code == -32021
