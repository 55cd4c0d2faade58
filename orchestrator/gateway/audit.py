"""What the gateway writes to the store: the session row, pins and switches, every call.

Gateway sessions share the store with plan sessions: the session row carries the key's
tenant and team (so `cost --by tenant` groups them), each request is a `model_call`
event (key, session, deployment, boundary, tokens, cost, latency, outcome), and each pin
or switch a `model_pinned` event, a forced failover with its cause.

These build the records; the gateway commits a request's records together in one batch
(`orchestrator.store.group_commit`): before it answers when the batch holds a pin or a
session row, just after its answer is written otherwise (`Gateway.run`).
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.gateway.keys import GatewayKey
from orchestrator.store.group_commit import AppendEvent, StartSession
from orchestrator.store.records import AuditEvent, EventKind, SessionRecord
from orchestrator.types import JsonObject

__all__ = ["RUN_ID", "call", "pin", "session_start"]

RUN_ID = "gateway"
"""The run id of every gateway event: a gateway session has no workflow run."""


def session_start(session_id: str, key: GatewayKey, api: str, now: datetime) -> StartSession:
    """A gateway session's start (idempotent: a known session is left as it is)."""
    return StartSession(
        SessionRecord(
            session_id=session_id,
            workflow_id=session_id,
            run_id=RUN_ID,
            plan_name="gateway",
            plan_version="1",
            tenant=key.tenant,
            team=key.team,
            input={"key": key.id, "api": api},
            started_at=now,
        )
    )


def pin(session_id: str, request_id: str, now: datetime, payload: JsonObject) -> AppendEvent:
    """A pin, a switch at a boundary, or a forced failover, with its reason or cause."""
    return AppendEvent(
        AuditEvent(
            event_key=f"{session_id}/gateway/{request_id}/pin",
            session_id=session_id,
            workflow_id=session_id,
            run_id=RUN_ID,
            kind=EventKind.MODEL_PINNED,
            model=str(payload.get("to")),
            payload={"gateway": True, **payload},
            created_at=now,
        )
    )


def call(
    session_id: str,
    request_id: str,
    now: datetime,
    *,
    deployment: str | None,
    input_tokens: int,
    output_tokens: int,
    cost_usd: float,
    duration_ms: float,
    payload: JsonObject,
) -> AppendEvent:
    """One request through the gateway, answered or not."""
    return AppendEvent(
        AuditEvent(
            event_key=f"{session_id}/gateway/{request_id}/call",
            session_id=session_id,
            workflow_id=session_id,
            run_id=RUN_ID,
            kind=EventKind.MODEL_CALL,
            model=deployment,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
            duration_ms=duration_ms,
            payload={"gateway": True, **payload},
            created_at=now,
        )
    )
