"""Audit events of calls out to MCP servers, and the rule that keeps a call from repeating.

One `mcp_call` event per attempt: the calling side's identity is the session
(`session:<id>`); the event names the connector, tool, contract version, outcome (`ok`,
`blocked` for a definition that no longer matches its pin, `tool_error` for the tool's own
error answer, `held` for a retry refused below, `failed`) and whether the request was
sent.

A tool whose contract says it is not idempotent gets a second row per attempt,
`mcp_sending`, written just before the request leaves (never after: a crash between the
two would hide a call that ran). Temporal retries an activity whose attempt timed out or
whose worker died, and that attempt may have reached the tool. So an attempt after the
first reads the earlier attempts' rows of the same step and call and goes on only if none
of them may have run; otherwise the call fails, typed and not retried, for a person to
decide (`may_have_run`). An attempt that failed before sending (the server refused the
connection, its tool changed) left no `mcp_sending` row, and is retried as before.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from orchestrator.exceptions import (
    SkillMayHaveRun,
    SkillToolError,
    ToolDefinitionChanged,
    from_failure,
    to_failure,
)
from orchestrator.logs import get_logger
from orchestrator.skills.models import SkillContext, SkillSpec
from orchestrator.store.records import AuditEvent, EventKind
from orchestrator.store.store import Store
from orchestrator.types import JsonObject

__all__ = ["audited_mcp_call", "may_have_run", "mcp_call_key", "mcp_target"]

log = get_logger(__name__)


def mcp_target(spec: SkillSpec) -> tuple[str, str] | None:
    """The connector and tool of an MCP-bound skill (`mcp:<connector>/<tool>`), or None."""
    implementation = spec.implementation or ""
    if not implementation.startswith("mcp:"):
        return None
    connector, _, tool = implementation.removeprefix("mcp:").partition("/")
    return connector, tool


def mcp_call_key(ctx: SkillContext) -> str:
    """The `mcp_call` event key: one per call out to a server.

    It holds the step (a loop's iteration is `id#n`), the call in it (`step` for a skill
    step; failover attempt, round and index in an agent step) and the activity attempt,
    since each Temporal retry calls the server again.
    """
    return f"mcp-out:{ctx.workflow_id}:{ctx.step_id or '-'}:{ctx.call_id}:{ctx.attempt}"


def may_have_run(events: Sequence[AuditEvent], ctx: SkillContext) -> list[int]:
    """The earlier attempts of this call that may have reached the tool, in order.

    One did if it wrote `mcp_sending`, or if it is an `mcp_call` row from a runtime older
    than that row (no `sent` field) that was not refused before sending. `events` are the
    session's; rows of other workflows, steps, calls and later attempts are ignored.
    """
    found: set[int] = set()
    for event in events:
        p = event.payload
        attempt = p.get("attempt")
        if (
            event.workflow_id != ctx.workflow_id
            or (event.step_id or "") != ctx.step_id
            or p.get("call_id") != ctx.call_id
            or p.get("direction") != "out"
            or not isinstance(attempt, int)
            or attempt >= ctx.attempt
        ):
            continue
        sending = event.kind is EventKind.MCP_SENDING
        legacy = event.kind is EventKind.MCP_CALL and "sent" not in p
        if sending or (legacy and p.get("outcome") != "blocked"):
            found.add(attempt)
    return sorted(found)


def _refusal(spec: SkillSpec, tool: str, connector: str, ctx: SkillContext, ran: list[int]) -> str:
    attempts = ", ".join(str(a) for a in ran)
    return (
        f"{spec.ref}: tool {tool!r} of MCP server {connector} may have run already: attempt"
        f" {attempts} of call {ctx.call_id} in step {ctx.step_id!r} of session"
        f" {ctx.session_id} was sent and then cut off (a timeout or a stopped worker)."
        " Its contract says it is not idempotent, so it is not sent again; check with the"
        " server whether it ran, then run what is still needed yourself"
    )


def _event(
    spec: SkillSpec, ctx: SkillContext, kind: EventKind, key: str, payload: JsonObject
) -> AuditEvent:
    return AuditEvent(
        event_key=key,
        session_id=ctx.session_id,
        workflow_id=ctx.workflow_id,
        run_id=ctx.run_id,
        step_id=ctx.step_id or None,
        kind=kind,
        skill=spec.name,
        payload=payload,
        created_at=datetime.now(UTC),
    )


@contextlib.asynccontextmanager
async def audited_mcp_call(
    store: Store, spec: SkillSpec, ctx: SkillContext
) -> AsyncIterator[SkillContext]:
    """Guard and record the call made inside the block, if the skill is MCP-bound.

    Yields the context the skill must be called with: its `before_send` records the
    attempt before the request leaves.

    Raises:
        ApplicationError: a `SkillMayHaveRun`, not retryable, on a retry of a tool that
            is not idempotent whose earlier attempt may have run.
    """
    target = mcp_target(spec)
    if target is None:
        yield ctx
        return
    connector, tool = target
    base: JsonObject = {
        "direction": "out",
        "client": f"session:{ctx.session_id}",
        "connector": connector,
        "tool": tool,
        "version": spec.version,
    }
    sent = False

    async def before_send() -> None:
        nonlocal sent
        if not spec.idempotent:
            # Written or the call is not made: an unrecorded send could repeat an effect.
            payload = base | {"call_id": ctx.call_id, "attempt": ctx.attempt}
            sending = _event(
                spec, ctx, EventKind.MCP_SENDING, mcp_call_key(ctx) + ":sending", payload
            )
            await store.append_event(sending)
        sent = True

    outcome, error = "ok", None
    try:
        if ctx.attempt > 1 and not spec.idempotent:
            ran = may_have_run(await store.list_events(ctx.session_id), ctx)
            if ran:
                outcome = "held"
                raise to_failure(SkillMayHaveRun(_refusal(spec, tool, connector, ctx, ran)))
        yield dataclasses.replace(ctx, before_send=before_send)
    except BaseException as exc:
        if outcome != "held":
            blocked = isinstance(from_failure(exc), ToolDefinitionChanged)
            outcome = "blocked" if blocked else "failed"
            outcome = "tool_error" if isinstance(exc, SkillToolError) else outcome
        error = str(exc)
        raise
    finally:
        payload = base | {
            "outcome": outcome,
            "error": error,
            "call_id": ctx.call_id,
            "attempt": ctx.attempt,
            "sent": sent,
        }
        try:
            await store.append_event(
                _event(spec, ctx, EventKind.MCP_CALL, mcp_call_key(ctx), payload)
            )
        except Exception as exc:  # the call has happened: failing now would repeat it
            log.error("mcp audit event not written", error=str(exc), skill=spec.ref)
