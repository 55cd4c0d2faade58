"""The MCP Tasks extension (`io.modelcontextprotocol/tasks`, spec 2026-07-28) for skill calls.

A client that declares the extension in a `tools/call` request's capabilities gets a
task handle at once (`resultType: "task"`) instead of a request held open while a person
decides: many clients give up on a request after 60 s. The task is the call's durable
session: its id is the session id, so `tasks/get` answers from any process and after any
restart (the run's state is in Temporal, its story in the store), and a call with an
idempotency key that is repeated gets the same task. `tasks/get` says `working` with the
newest event of the session's stream worth telling as its message, then `completed` with
the very `CallToolResult` a waiting call would have got (an error result when the run failed or a
person rejected it: tool-level errors are `completed`, as the extension requires).

Nothing here asks the client for input, so a task is never `input_required` and
`tasks/update` only acknowledges. `tasks/cancel` acknowledges and does not stop the run:
a skill's effect is exactly-once and may be waiting for a person's decision; a run is
stopped by rejecting its approval. Only the client identity that started a run sees its
task; for anyone else it does not exist (-32602, like an unknown id).

Built on the SDK's extension API (`mcp.server.extension`): the extension contributes the
three methods and its capability; `apply_extension` installs them on the low-level
server, as `MCPServer(extensions=...)` does on the high-level one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding, compose_tool_call_handler
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from pydantic import Field
from temporalio.client import Client, WorkflowExecutionStatus

from orchestrator.mcp.calls import MEMO_SKILL, finished, owned_description
from orchestrator.mcp.progress import TOLD_KINDS, describe_event
from orchestrator.mcp.results import call_result
from orchestrator.store.store import Store
from orchestrator.types import JsonObject

__all__ = [
    "POLL_INTERVAL_MS",
    "TASKS_EXTENSION",
    "SkillTasks",
    "TaskParams",
    "apply_extension",
    "task_created",
    "task_state",
    "wants_task",
]

TASKS_EXTENSION: Final = "io.modelcontextprotocol/tasks"
POLL_INTERVAL_MS: Final = 1000
"""What `tasks/get` asks clients to wait between polls."""

Caller = Callable[[ServerRequestContext[Any, Any]], str]
"""The client identity of a request."""
StartTask = Callable[
    [ServerRequestContext[Any, Any], types.CallToolRequestParams],
    Awaitable[types.CallToolResult | JsonObject | None],
]
"""Start a call's run and answer with its task (or a refusal); None: answer it as usual."""


class TaskParams(types.RequestParams):
    """`tasks/get`, `tasks/update` and `tasks/cancel` params: which task."""

    task_id: str = Field(min_length=1)


class UpdateTaskParams(TaskParams):
    """`tasks/update` params; the responses are ignored (nothing is ever asked)."""

    input_responses: dict[str, Any] = Field(default_factory=dict)


def wants_task(meta: Mapping[str, Any] | None) -> bool:
    """Whether a request's capabilities (its `_meta`) declare the Tasks extension."""
    capabilities = (meta or {}).get(types.CLIENT_CAPABILITIES_META_KEY)
    if not isinstance(capabilities, Mapping):
        return False
    extensions = capabilities.get("extensions")
    return isinstance(extensions, Mapping) and TASKS_EXTENSION in extensions


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


async def task_state(
    client: Client, store: Store, session_id: str, client_id: str
) -> JsonObject | None:
    """The task of a call's run as `tasks/get` answers it; None if this client has none."""
    owned = await owned_description(client, session_id, client_id)
    if owned is None:
        return None
    handle, described = owned
    skill = await described.memo_value(MEMO_SKILL, None, type_hint=str)
    # The newest event worth telling: the server's own `mcp_call` record of this call may
    # commit after the run's first events (an approval request), and must not hide them.
    last = await store.stream.last_event(session_id, kinds=TOLD_KINDS)
    created = _iso(described.start_time)
    state: JsonObject = {
        "resultType": "complete",
        "taskId": session_id,
        "createdAt": created,
        "lastUpdatedAt": _iso(last.created_at) if last is not None else created,
        "ttlMs": None,
        "pollIntervalMs": POLL_INTERVAL_MS,
    }
    if described.status in (None, WorkflowExecutionStatus.RUNNING):
        told = describe_event(last, skill) if last is not None else None
        return {**state, "status": "working", "statusMessage": told or "starting"}
    result = await finished(handle, session_id)
    if result is None:  # closed between the two looks: report it next time
        return {**state, "status": "working", "statusMessage": "finishing"}
    answer = call_result(result, skill.partition("@")[2] if skill else None)
    return {
        **state,
        "status": "completed",
        "statusMessage": f"session {session_id} {result.status.value}",
        "lastUpdatedAt": _iso(described.close_time) or state["lastUpdatedAt"],
        "result": answer.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


def task_created(state: JsonObject) -> JsonObject:
    """The `CreateTaskResult` answering a `tools/call` with the task `state`."""
    return {**state, "resultType": "task"}


class SkillTasks(Extension):
    """`tasks/get`, `tasks/update`, `tasks/cancel` over the runs of skill calls.

    Args:
        client: Temporal, where the runs are.
        store: The audit store, whose event stream says what a run is doing.
        caller: The client identity of a request (a task is only its starter's).
        start: Answers a `tools/call` of a client that declared the extension.
    """

    identifier = TASKS_EXTENSION

    def __init__(self, client: Client, store: Store, caller: Caller, start: StartTask) -> None:
        self._client = client
        self._store = store
        self._caller = caller
        self._start = start

    async def intercept_tool_call(
        self,
        params: types.CallToolRequestParams,
        ctx: ServerRequestContext[Any, Any],
        call_next: CallNext,
    ) -> HandlerResult:
        """A task for a client that declared the extension; else the call as usual."""
        if wants_task(ctx.meta):
            answer = await self._start(ctx, params)
            if answer is not None:
                return answer
        return await call_next(ctx)

    async def _state(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> JsonObject:
        if not wants_task(ctx.meta):
            raise MCPError(
                -32021,
                "Missing required client capability",
                {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}},
            )
        state = await task_state(self._client, self._store, params.task_id, self._caller(ctx))
        if state is None:
            raise MCPError(
                types.INVALID_PARAMS, f"Failed to retrieve task: no task {params.task_id!r}"
            )
        return state

    async def get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> JsonObject:
        """`tasks/get`: the task's status, with the result once the run ended."""
        return await self._state(ctx, params)

    async def acknowledge(
        self, ctx: ServerRequestContext[Any, Any], params: TaskParams
    ) -> JsonObject:
        """`tasks/update` and `tasks/cancel`: an acknowledgement, for a known task only."""
        await self._state(ctx, params)
        return {"resultType": "complete"}

    def methods(self) -> Sequence[MethodBinding]:
        """The three methods of the extension."""
        return (
            MethodBinding("tasks/get", TaskParams, self.get),
            MethodBinding("tasks/update", UpdateTaskParams, self.acknowledge),
            MethodBinding("tasks/cancel", TaskParams, self.acknowledge),
        )


def apply_extension(server: Server[Any], extension: Extension) -> None:
    """Install an extension on a low-level server as `MCPServer(extensions=...)` would.

    Its methods are added, its `tools/call` interceptor wraps the server's handler, and
    it is advertised under `capabilities.extensions`.

    Raises:
        ValueError: a method the extension binds is already served.
    """
    for method in extension.methods():
        if server.get_request_handler(method.method) is not None:
            raise ValueError(f"{extension.identifier}: {method.method!r} is already served")
        server.add_request_handler(method.method, method.params_type, method.handler)
    tools_call = server.get_request_handler("tools/call")
    if tools_call is not None:
        server.add_request_handler(
            "tools/call",
            types.CallToolRequestParams,
            compose_tool_call_handler([extension], tools_call.handler),
        )
    server.extensions[extension.identifier] = extension.settings()
