"""A skill called over MCP runs as a durable session: a one-step plan with a skill step.

The workflow id comes from the caller's idempotency key when it gives one, so a second
call with that key (after a disconnect, from another connection) joins the same run, or
reads the result of a finished one, instead of running the skill again. The MCP request
only waits: cancelling it (a client that goes away) never cancels the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from orchestrator.events.hub import EventHub
from orchestrator.exceptions import IdempotencyKeyReusedError, SkillArgumentsError
from orchestrator.mcp.progress import Describe, describe_event, report_events
from orchestrator.plans.models import Plan, SkillStep
from orchestrator.service import launch, workflow_id_for
from orchestrator.session import names
from orchestrator.session.types import SessionResult, SessionState
from orchestrator.session_start import StartOptions, build_start
from orchestrator.skills.models import SkillSpec
from orchestrator.store.records import SessionStatus
from orchestrator.types import JsonObject

__all__ = [
    "IDEMPOTENCY_META_KEY",
    "MEMO_ARGUMENTS",
    "MEMO_CLIENT",
    "MEMO_SKILL",
    "Progress",
    "call_durably",
    "current_state",
    "finished",
    "owned_description",
    "owned_run",
    "session_id_for",
    "wait_for",
]

IDEMPOTENCY_META_KEY = "orchestrator/idempotency_key"
"""The `_meta` key of a `tools/call` request that names its idempotency key."""

STEP_ID = "call"
_ARG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Progress = Callable[[str], Awaitable[None]]
"""Told, now and then while the run waits, what it waits for."""


def session_id_for(client_id: str, skill: str, idempotency_key: str | None) -> str:
    """The session of one call: derived from who calls what with which key, else random.

    A key is scoped to the client identity, so two clients can never join each other's runs.
    """
    if idempotency_key is None:
        return f"mcp-{uuid.uuid4().hex}"
    digest = hashlib.sha256(f"{client_id}|{skill}|{idempotency_key}".encode()).hexdigest()
    return f"mcp-{digest[:32]}"


def plan_for(spec: SkillSpec, arguments: JsonObject) -> Plan:
    """One skill step on exactly this version, its arguments taken whole from the input.

    Arguments go in as the session input and the step references them, so nothing a
    client sends is ever read as a template.

    Raises:
        SkillArgumentsError: an argument name cannot be referenced (not an identifier).
    """
    bad = [key for key in arguments if not _ARG_NAME.match(key)]
    if bad:
        raise SkillArgumentsError(
            f"invalid arguments for {spec.name}: unknown field(s) {', '.join(map(repr, bad))}"
        )
    return Plan(
        name="mcp-call",
        description=f"{spec.ref} called over MCP",
        steps=[
            SkillStep(
                id=STEP_ID,
                type="skill",
                skill=f"{spec.name}@{spec.version}",
                arguments={key: f"{{{{ input.{key} }}}}" for key in arguments},
            )
        ],
    )


MEMO_CLIENT = "mcp_client"
"""Memo of a run started over MCP: the client identity it belongs to."""
MEMO_ARGUMENTS = "mcp_arguments"
"""Memo of a run started over MCP: the SHA-256 of its canonical JSON arguments."""
MEMO_SKILL = "mcp_skill"
"""Memo of a run started over MCP: the `name@version` it calls (for its task's result)."""


def arguments_digest(arguments: JsonObject) -> str:
    """A fingerprint of a call's arguments that does not reveal them (key order ignored)."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def start_or_join(
    client: Client,
    spec: SkillSpec,
    arguments: JsonObject,
    *,
    session_id: str,
    task_queue: str,
    client_id: str,
    idempotency_key: str | None,
) -> WorkflowHandle[object, SessionResult]:
    """Start the call's run, or return the handle of the run its id already names.

    The run's memo names the client, so only that client can fetch its result later, and
    the digest of its arguments, so a key reused for other arguments is refused instead of
    answering with another call's result.

    Raises:
        IdempotencyKeyReusedError: the run the id names was started with other arguments.
    """
    workflow_id = workflow_id_for(session_id)
    digest = arguments_digest(arguments)
    try:
        how = StartOptions(session_id=session_id, requested_by=f"mcp:{client_id}")
        handle = await launch(
            client,
            build_start(plan_for(spec, arguments), arguments, how),
            task_queue=task_queue,
            join=True,
            memo={MEMO_CLIENT: client_id, MEMO_ARGUMENTS: digest, MEMO_SKILL: spec.ref},
        )
    except WorkflowAlreadyStartedError:
        handle = client.get_workflow_handle(workflow_id, result_type=SessionResult)
    if idempotency_key is not None:
        described = await handle.describe()
        if await described.memo_value(MEMO_ARGUMENTS, None, type_hint=str) != digest:
            raise IdempotencyKeyReusedError(
                f"idempotency key {idempotency_key!r} was already used for a call of"
                f" {spec.name} with other arguments; use a new key for a new call"
            )
    return handle


async def owned_run(
    client: Client, session_id: str, client_id: str
) -> WorkflowHandle[object, SessionResult] | None:
    """The run of `session_id` if it was started over MCP by `client_id`, else None.

    Another client's run and no run at all look the same, so ids cannot be probed.
    """
    owned = await owned_description(client, session_id, client_id)
    return None if owned is None else owned[0]


async def owned_description(
    client: Client, session_id: str, client_id: str
) -> tuple[WorkflowHandle[object, SessionResult], WorkflowExecutionDescription] | None:
    """`owned_run` with what Temporal says of the run (status, times, memo)."""
    handle = client.get_workflow_handle(workflow_id_for(session_id), result_type=SessionResult)
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    owner = await described.memo_value(MEMO_CLIENT, None, type_hint=str)
    return (handle, described) if owner == client_id else None


async def call_durably(
    client: Client,
    spec: SkillSpec,
    arguments: JsonObject,
    *,
    session_id: str,
    task_queue: str,
    client_id: str,
    idempotency_key: str | None,
    progress: Progress,
    events: EventHub,
) -> SessionResult:
    """Run (or join) the call's session and wait for its result, telling its progress.

    Args:
        client: Temporal client the run is started (or found) with.
        spec: The exact skill version to call.
        arguments: The call's arguments, already checked against the contract.
        session_id: The call's session (see `session_id_for`).
        task_queue: Where workers pick the run up.
        client_id: The MCP client identity, recorded as who requested the session.
        idempotency_key: The caller's key, if any: the arguments of the run it names
            must be these.
        progress: Told the session's id first, then each event of the session's stream
            (`orchestrator.mcp.progress`): steps, approval waits and decisions, the end.
        events: The process's event hub, where the session's events are watched.
    """
    handle = await start_or_join(
        client,
        spec,
        arguments,
        session_id=session_id,
        task_queue=task_queue,
        client_id=client_id,
        idempotency_key=idempotency_key,
    )
    await progress(f"running {spec.ref} as session {session_id}")
    return await wait_for(
        handle,
        session_id,
        progress=progress,
        events=events,
        describe=lambda event: describe_event(event, spec.ref),
    )


async def wait_for(
    handle: WorkflowHandle[object, SessionResult],
    session_id: str,
    *,
    progress: Progress,
    events: EventHub,
    describe: Describe = describe_event,
) -> SessionResult:
    """The run's result once it ends, telling each event of its session on the way.

    Cancelling the wait never cancels the run.
    """
    result = asyncio.ensure_future(handle.result())
    try:
        await report_events(events, session_id, result, progress, describe)
        await asyncio.wait({result})
        return _outcome(result, session_id)
    finally:
        result.cancel()


async def current_state(handle: WorkflowHandle[object, SessionResult]) -> SessionState:
    """What the run is doing now (its state query)."""
    state: SessionState = await handle.query(names.STATE_QUERY, result_type=SessionState)
    return state


async def finished(
    handle: WorkflowHandle[object, SessionResult], session_id: str
) -> SessionResult | None:
    """The run's result if it has ended, else None (without waiting)."""
    described = await handle.describe()
    if described.status in (None, WorkflowExecutionStatus.RUNNING):
        return None
    result = asyncio.ensure_future(handle.result())
    await asyncio.wait({result})
    return _outcome(result, session_id)


def _outcome(done: asyncio.Future[SessionResult], session_id: str) -> SessionResult:
    """The run's result; a failed run becomes a failed result naming the innermost cause."""
    try:
        return done.result()
    except WorkflowFailureError as exc:
        cause: BaseException = exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        message = getattr(cause, "message", None) or str(cause)
        return SessionResult(
            session_id=session_id, status=SessionStatus.FAILED, outputs={}, error=message
        )
