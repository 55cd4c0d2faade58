"""The `session-result` tool: fetch (or wait for) the result of an earlier call's run.

A call over MCP runs as a durable session that outlives the request: a client that went
away while a person decided can come back, from any connection, and ask for the result
by the session id (told in the call's first progress message and in its result's
`_meta`) or by the tool and idempotency key it called with. Only the client identity
that started a run can read it. The name has a hyphen, which no skill name can have, so
it never shadows a skill.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import mcp_types as types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from temporalio.client import Client

from orchestrator.events.hub import EventHub
from orchestrator.mcp.calls import (
    STEP_ID,
    Progress,
    current_state,
    finished,
    owned_run,
    session_id_for,
    wait_for,
)
from orchestrator.session.types import SessionResult
from orchestrator.store.records import SessionStatus
from orchestrator.types import JsonValue

__all__ = [
    "RESULT_TOOL",
    "ResultQuery",
    "RunResult",
    "call_result",
    "fetch_result",
    "result_meta",
    "result_tool",
]

RESULT_TOOL = "session-result"


class ResultQuery(BaseModel):
    """Which run: its session id, or the tool and idempotency key it was called with."""

    model_config = ConfigDict(extra="forbid")

    session_id: str | None = Field(default=None, min_length=1)
    tool: str | None = Field(default=None, min_length=1)
    idempotency_key: str | None = Field(default=None, min_length=1)
    wait: bool = False
    """Hold the request (with progress notifications) until the run ends."""

    @model_validator(mode="after")
    def _one_way(self) -> ResultQuery:
        keyed = self.tool is not None and self.idempotency_key is not None
        if (self.session_id is None) == (not keyed):
            raise ValueError("give either session_id, or both tool and idempotency_key")
        return self

    def session_for(self, client_id: str) -> str:
        """The session this query names, for this client."""
        if self.session_id is not None:
            return self.session_id
        return session_id_for(client_id, self.tool or "", self.idempotency_key)


class RunResult(BaseModel):
    """Where a run is: still going (with the approvals it waits for), or its outcome."""

    session_id: str
    status: SessionStatus
    output: JsonValue = None
    error: str | None = None
    pending_approvals: list[str] = Field(default_factory=list)


def result_tool() -> types.Tool:
    """The tool's definition: a read-only, idempotent look at a run."""
    return types.Tool(
        name=RESULT_TOOL,
        description=(
            "The status or result of an earlier call's durable run, by session_id or by"
            " tool and idempotency_key; wait=true holds the request until the run ends."
        ),
        input_schema=ResultQuery.model_json_schema(),
        output_schema=RunResult.model_json_schema(),
        annotations=types.ToolAnnotations(
            title=RESULT_TOOL, read_only_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )


def parse_query(arguments: Mapping[str, object]) -> ResultQuery:
    """The query in a call's arguments.

    Raises:
        ValueError: the arguments are not a query, naming each field at fault.
    """
    try:
        return ResultQuery.model_validate(dict(arguments))
    except ValidationError as exc:
        faults = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}:"
            f" {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ValueError(f"invalid arguments for {RESULT_TOOL}: {faults}") from None


async def fetch_result(
    client: Client,
    query: ResultQuery,
    *,
    client_id: str,
    progress: Progress,
    events: EventHub,
) -> RunResult | None:
    """The run's result or status; None when this client has no such run."""
    session_id = query.session_for(client_id)
    handle = await owned_run(client, session_id, client_id)
    if handle is None:
        return None
    if query.wait:
        return _ended(await wait_for(handle, session_id, progress=progress, events=events))
    done = await finished(handle, session_id)
    if done is not None:
        return _ended(done)
    state = await current_state(handle)
    return RunResult(
        session_id=session_id,
        status=state.status,
        pending_approvals=[p.approval_id for p in state.pending_approvals],
    )


def _ended(result: SessionResult) -> RunResult:
    return RunResult(
        session_id=result.session_id,
        status=result.status,
        output=result.outputs.get(STEP_ID),
        error=result.error,
    )


def result_meta(session_id: str, version: str | None) -> dict[str, object]:
    """The `_meta` of a skill call's result: its session and the contract version."""
    return {"orchestrator/session_id": session_id, "orchestrator/version": version}


def call_result(result: SessionResult, version: str | None) -> types.CallToolResult:
    """The `tools/call` result of a finished run: its output, or an error result naming why.

    The same whether the client waited for it or fetched it as a task.
    """
    meta = result_meta(result.session_id, version)
    if result.status is not SessionStatus.COMPLETED:
        error = result.error or f"the run ended {result.status.value}"
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=error)], is_error=True, meta=meta
        )
    output = result.outputs.get(STEP_ID)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(output))],
        structured_content=output if isinstance(output, dict) else None,
        meta=meta,
    )
