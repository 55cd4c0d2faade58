"""The skill server: the project's skills as MCP tools, on the SDK's low-level `Server`.

Each `tools/call` is checked against the caller's scopes (HTTP) and the contract's input
schema, then runs as a durable session (`orchestrator.mcp.calls`); every call, refused or
not, is one `mcp_call` audit event with the client identity, tool, contract version and
outcome.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio
import mcp_types as types
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from temporalio.client import Client

from orchestrator import __version__
from orchestrator.events.hub import EventHub
from orchestrator.exceptions import (
    IdempotencyKeyReusedError,
    SkillArgumentsError,
    UnknownSkillError,
)
from orchestrator.logs import get_logger
from orchestrator.mcp.auth import allows
from orchestrator.mcp.calls import (
    IDEMPOTENCY_META_KEY,
    Progress,
    call_durably,
    session_id_for,
    start_or_join,
)
from orchestrator.mcp.results import (
    RESULT_TOOL,
    call_result,
    fetch_result,
    parse_query,
    result_meta,
    result_tool,
)
from orchestrator.mcp.tasks import (
    SkillTasks,
    apply_extension,
    task_created,
    task_state,
)
from orchestrator.mcp.tools import tool_for
from orchestrator.service import workflow_id_for
from orchestrator.skills.models import SkillSpec
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store.records import AuditEvent, EventKind, SessionStatus
from orchestrator.store.store import Store
from orchestrator.types import JsonObject

__all__ = ["SkillServerDeps", "skill_server"]

log = get_logger(__name__)

STDIO_CLIENT = "stdio"
"""Identity of a stdio client: whoever started `orchestrator mcp serve` on this machine."""


@dataclass
class SkillServerDeps:
    """What the skill server needs: the project's skills, Temporal, the audit store."""

    skills: SkillRegistry
    client: Client
    store: Store
    task_queue: str
    poll_seconds: float = 1.0
    """Without `events`: how often a waiting call reads its session's new events."""
    events: EventHub | None = None
    """The process's event hub (`orchestrator.events.live_hub`), which tells a waiting
    call its session's events as they are written; None: a hub of its own that reads
    the store every `poll_seconds`."""


def _caller(ctx: ServerRequestContext[dict[str, object], object]) -> tuple[str, list[str] | None]:
    """The client identity and its scopes; None scopes: a stdio client, trusted locally."""
    token = get_access_token()
    if token is None:
        scope = getattr(ctx.request, "scope", None)
        user = scope.get("user") if isinstance(scope, dict) else None
        token = user.access_token if isinstance(user, AuthenticatedUser) else None
    if token is None:
        return STDIO_CLIENT, None
    return token.client_id, list(token.scopes)


def _current(skills: SkillRegistry) -> list[SkillSpec]:
    specs = []
    for name in skills.names():
        try:
            specs.append(skills.resolve(name).spec)
        except UnknownSkillError:
            continue  # every version deprecated: nothing to offer
    return specs


def _no_such_tool(name: str) -> MCPError:
    """The one answer for a tool the caller cannot see, whether it exists or not.

    A hidden skill must not be confirmed by a different code, message or a version in the
    data; the audit trail still tells `refused` from `unknown_tool`.
    """
    return MCPError(types.INVALID_PARAMS, f"unknown tool {name!r}")


def skill_server(deps: SkillServerDeps) -> Server[dict[str, object]]:
    """An MCP server offering the latest non-deprecated version of every project skill."""
    events = deps.events or EventHub(deps.store, recheck=deps.poll_seconds)

    async def list_tools(
        ctx: ServerRequestContext[dict[str, object], object],
        params: types.PaginatedRequestParams | None,
    ) -> types.ListToolsResult:
        _client, scopes = _caller(ctx)
        deps.skills.refresh()  # contracts synced since the server started
        specs = [s for s in _current(deps.skills) if scopes is None or allows(scopes, s.name)]
        return types.ListToolsResult(tools=[*(tool_for(spec) for spec in specs), result_tool()])

    async def call_tool(
        ctx: ServerRequestContext[dict[str, object], object],
        params: types.CallToolRequestParams,
    ) -> types.CallToolResult:
        if params.name == RESULT_TOOL:
            return await _result_call(deps, events, _caller(ctx)[0], params, _reporter(ctx))
        call = await _admit(deps, ctx, params)
        if isinstance(call, types.CallToolResult):
            return call
        spec, audit = call.spec, call.audit
        try:
            result = await call_durably(
                deps.client,
                spec,
                call.arguments,
                session_id=call.session_id,
                task_queue=deps.task_queue,
                client_id=call.client_id,
                idempotency_key=call.key,
                progress=_reporter(ctx),
                events=events,
            )
        except IdempotencyKeyReusedError as exc:
            # Nothing recorded: the key's run and its audit trail stay as they were.
            return _error(str(exc), call.session_id, spec)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await audit.write(spec, "disconnected", "the client left; the run goes on")
            raise
        except Exception as exc:
            await audit.write(spec, "failed", str(exc))
            raise
        if result.status is not SessionStatus.COMPLETED:
            await audit.write(
                spec, "failed", result.error or f"the run ended {result.status.value}"
            )
        else:
            await audit.write(spec, "ok", None)
        return call_result(result, spec.version)

    async def start_task(
        ctx: ServerRequestContext[dict[str, object], object],
        params: types.CallToolRequestParams,
    ) -> types.CallToolResult | JsonObject | None:
        if params.name == RESULT_TOOL:
            return None  # a read of a result: answered at once anyway
        call = await _admit(deps, ctx, params)
        if isinstance(call, types.CallToolResult):
            return call
        return await _as_task(deps, call)

    server: Server[dict[str, object]] = Server(
        "orchestrator-skills",
        version=__version__,
        instructions="Skills of this orchestrator project; each call runs as a durable session.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    apply_extension(
        server, SkillTasks(deps.client, deps.store, lambda ctx: _caller(ctx)[0], start_task)
    )
    return server


async def _admit(
    deps: SkillServerDeps,
    ctx: ServerRequestContext[dict[str, object], object],
    params: types.CallToolRequestParams,
) -> _Admitted | types.CallToolResult:
    """The call if it may run: a known skill, in the caller's scopes, valid arguments."""
    client_id, scopes = _caller(ctx)
    arguments: JsonObject = dict(params.arguments or {})
    raw_key = (params.meta or {}).get(IDEMPOTENCY_META_KEY)
    key = str(raw_key) if raw_key is not None else None
    session_id = session_id_for(client_id, params.name, key)
    audit = _Audit(deps.store, session_id, client_id, params.name)
    deps.skills.refresh()  # a new session: the versions synced by now
    try:
        item = deps.skills.resolve(params.name)
    except UnknownSkillError as exc:
        await audit.write(None, "unknown_tool", str(exc))
        raise _no_such_tool(params.name) from None
    spec = item.spec
    if scopes is not None and not allows(scopes, spec.name):
        await audit.write(spec, "refused", f"client {client_id!r} is not allowed to call it")
        raise _no_such_tool(params.name)
    try:
        item.validate_arguments(arguments)
    except SkillArgumentsError as exc:
        await audit.write(spec, "invalid_arguments", str(exc))
        return _error(str(exc), session_id, spec)
    return _Admitted(client_id, spec, arguments, session_id, key, audit)


@dataclass
class _Admitted:
    """A call that passed the checks, about to run."""

    client_id: str
    spec: SkillSpec
    arguments: JsonObject
    session_id: str
    key: str | None
    audit: _Audit


async def _as_task(deps: SkillServerDeps, call: _Admitted) -> types.CallToolResult | JsonObject:
    """Start (or join) the call's run and answer with its task at once (Tasks extension)."""
    try:
        await start_or_join(
            deps.client,
            call.spec,
            call.arguments,
            session_id=call.session_id,
            task_queue=deps.task_queue,
            client_id=call.client_id,
            idempotency_key=call.key,
        )
    except IdempotencyKeyReusedError as exc:
        return _error(str(exc), call.session_id, call.spec)
    state = await task_state(deps.client, deps.store, call.session_id, call.client_id)
    if state is None:  # started by this client a moment ago: cannot be another's
        raise MCPError(types.INTERNAL_ERROR, f"task {call.session_id} not found after its start")
    await call.audit.write(call.spec, "task", None)
    return task_created(state)


def _reporter(ctx: ServerRequestContext[dict[str, object], object]) -> Progress:
    """Progress notifications of one request (sent only if the client asked for them)."""
    count = 0

    async def progress(message: str) -> None:
        nonlocal count
        count += 1
        await ctx.session.report_progress(count, None, message)

    return progress


async def _result_call(
    deps: SkillServerDeps,
    events: EventHub,
    client_id: str,
    params: types.CallToolRequestParams,
    progress: Progress,
) -> types.CallToolResult:
    """Answer `session-result`: the status or outcome of one of this client's runs."""
    audit = _Audit(deps.store, "", client_id, RESULT_TOOL)
    try:
        query = parse_query(params.arguments or {})
    except ValueError as exc:
        await audit.write(None, "invalid_arguments", str(exc))
        raise MCPError(types.INVALID_PARAMS, str(exc)) from None
    audit.session_id = query.session_for(client_id)
    found = await fetch_result(
        deps.client, query, client_id=client_id, progress=progress, events=events
    )
    if found is None:
        message = f"no session {audit.session_id!r} started over MCP by client {client_id!r}"
        await audit.write(None, "unknown_session", message)
        raise MCPError(types.INVALID_PARAMS, message)
    await audit.write(None, "ok", None)
    structured = found.model_dump(mode="json")
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(structured))],
        structured_content=structured,
        is_error=found.status is SessionStatus.FAILED,
        meta={"orchestrator/session_id": found.session_id},
    )


def _error(message: str, session_id: str, spec: SkillSpec) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)],
        is_error=True,
        meta=result_meta(session_id, spec.version),
    )


@dataclass
class _Audit:
    store: Store
    session_id: str
    client_id: str
    tool: str

    async def write(self, spec: SkillSpec | None, outcome: str, error: str | None) -> None:
        """One `mcp_call` event; a store failure is logged, never fails the call."""
        event = AuditEvent(
            event_key=f"mcp:{self.session_id}:{uuid.uuid4().hex}",
            session_id=self.session_id,
            workflow_id=workflow_id_for(self.session_id),
            run_id="",
            kind=EventKind.MCP_CALL,
            skill=self.tool,
            payload={
                "direction": "in",
                "client": self.client_id,
                "tool": self.tool,
                "version": spec.version if spec else None,
                "outcome": outcome,
                "error": error,
            },
            created_at=datetime.now(UTC),
        )
        try:
            await self.store.append_event(event)
        except Exception as exc:  # the audit trail must never turn a call into an error
            log.warning("mcp audit event not written", error=str(exc), **event.payload)
