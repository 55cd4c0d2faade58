"""What the gateway writes to the store: the session row, pins and switches, every call.

Gateway sessions share the store with plan sessions: the session row carries the key's
tenant and team (so `cost --by tenant` groups them), each request is a `model_call`
event (key, session, deployment, boundary, tokens, cost, latency, outcome), and each pin
or switch a `model_pinned` event, a forced failover with its cause.
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.gateway.keys import GatewayKey
from orchestrator.store.records import AuditEvent, EventKind, SessionRecord
from orchestrator.store.store import Store
from orchestrator.types import JsonObject

__all__ = ["RUN_ID", "record_call", "record_pin", "record_session"]

RUN_ID = "gateway"
"""The run id of every gateway event: a gateway session has no workflow run."""


async def record_session(
    store: Store, session_id: str, key: GatewayKey, api: str, now: datetime
) -> None:
    """Record a gateway session's start (idempotent: a known session is left as it is)."""
    await store.record_session_start(
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


async def record_pin(
    store: Store, session_id: str, request_id: str, now: datetime, payload: JsonObject
) -> None:
    """A pin, a switch at a boundary, or a forced failover, with its reason or cause."""
    await store.append_event(
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


async def record_call(
    store: Store,
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
) -> None:
    """One request through the gateway, answered or not."""
    await store.append_event(
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
