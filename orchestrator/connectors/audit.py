"""Audit events of calls out to MCP servers: one `mcp_call` event per attempt.

The calling side's identity is the session (`session:<id>`); the event names the
connector, tool, contract version and outcome (`ok`, `blocked` for a definition that no
longer matches its pin, `tool_error` for the tool's own error answer, `failed`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from temporalio.exceptions import ApplicationError

from orchestrator.connectors.binding import TOOL_CHANGED
from orchestrator.exceptions import SkillToolError
from orchestrator.logs import get_logger
from orchestrator.skills.models import SkillContext, SkillSpec
from orchestrator.store.records import AuditEvent, EventKind
from orchestrator.store.store import Store

__all__ = ["audited_mcp_call", "mcp_call_key", "mcp_target"]

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


@contextlib.asynccontextmanager
async def audited_mcp_call(store: Store, spec: SkillSpec, ctx: SkillContext) -> AsyncIterator[None]:
    """Record the outcome of the call made inside the block, if the skill is MCP-bound."""
    target = mcp_target(spec)
    if target is None:
        yield
        return
    connector, tool = target
    outcome, error = "ok", None
    try:
        yield
    except BaseException as exc:
        blocked = isinstance(exc, ApplicationError) and exc.type == TOOL_CHANGED
        outcome = "blocked" if blocked else "failed"
        outcome = "tool_error" if isinstance(exc, SkillToolError) else outcome
        error = str(exc)
        raise
    finally:
        event = AuditEvent(
            event_key=mcp_call_key(ctx),
            session_id=ctx.session_id,
            workflow_id=ctx.workflow_id,
            run_id=ctx.run_id,
            step_id=ctx.step_id or None,
            kind=EventKind.MCP_CALL,
            skill=spec.name,
            payload={
                "direction": "out",
                "client": f"session:{ctx.session_id}",
                "connector": connector,
                "tool": tool,
                "version": spec.version,
                "outcome": outcome,
                "error": error,
                "call_id": ctx.call_id,
                "attempt": ctx.attempt,
            },
            created_at=datetime.now(UTC),
        )
        try:
            await store.append_event(event)
        except Exception as exc:  # the call has happened: failing now would repeat it
            log.error("mcp audit event not written", error=str(exc), skill=spec.ref)
