"""Serve the session routes over real HTTP on loopback for the event-stream tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from starlette.applications import Starlette

from orchestrator.approvals.people import ApproverDirectory, hash_token
from orchestrator.events import EventHub, live_hub, session_routes
from orchestrator.plans.models import AgentStep, ApprovalStep, Plan
from orchestrator.scripted_model import LoopbackServer
from orchestrator.store import AuditEvent, EventKind, SessionRecord, Store
from orchestrator.types import JsonObject

TOKENS = {"ana": "tok-ana", "bo": "tok-bo"}
DIRECTORY = ApproverDirectory.model_validate(
    {
        "groups": ["ops"],
        "users": {
            "ana": {"groups": ["ops"], "tokens": [hash_token(TOKENS["ana"])]},
            "bo": {"groups": ["ops"], "tokens": [hash_token(TOKENS["bo"])], "tenants": ["bo-co"]},
        },
    }
)


@dataclass
class Served:
    hub: EventHub
    url: str

    def client(self, who: str = "ana") -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {TOKENS[who]}"}
        )


@contextlib.asynccontextmanager
async def serving(
    store: Store, state_dir: Path | None, *, heartbeat: float = 15.0, send_timeout: float = 30.0
) -> AsyncIterator[Served]:
    async with live_hub(store, state_dir) as hub:
        routes = session_routes(hub, DIRECTORY, heartbeat=heartbeat, send_timeout=send_timeout)
        async with LoopbackServer(Starlette(routes=routes)) as server:
            yield Served(hub, server.url)


async def new_session(store: Store, session_id: str, tenant: str = "default") -> None:
    await store.record_session_start(
        SessionRecord(
            session_id=session_id,
            workflow_id=f"session-{session_id}",
            run_id="run-1",
            plan_name="p",
            plan_version="1",
            tenant=tenant,
            started_at=datetime.now(UTC),
        )
    )


async def append(
    store: Store,
    session_id: str,
    key: str,
    kind: EventKind = EventKind.STEP_STARTED,
    payload: JsonObject | None = None,
) -> None:
    written = await store.append_event(
        AuditEvent(
            event_key=f"session-{session_id}:{key}",
            session_id=session_id,
            workflow_id=f"session-{session_id}",
            run_id="run-1",
            kind=kind,
            step_id="s1",
            payload=payload or {"key": key},
            created_at=datetime.now(UTC),
        )
    )
    assert written


GATED_PLAN = Plan(
    name="gated-answer",
    steps=[
        ApprovalStep(type="approval", id="gate", summary="Go on?"),
        AgentStep(id="answer", goal="Answer the customer", model="demo-fast"),
    ],
)
"""A gate (so a watcher can connect before the model streams), then one answer."""


def answer_script(folder: Path, answer: str, fault: str = "") -> Path:
    """A model script answering `GATED_PLAN`'s step with `answer` (after `fault`, YAML)."""
    script = folder / "script.yaml"
    lines = [
        "conversations:",
        "  - name: answer",
        '    match: {contains: "Step: answer"}',
        "    turns:",
        f'      - content: "{answer}"',
    ]
    if fault:
        lines.append(f"        fault: {fault}")
    script.write_text("\n".join(lines) + "\n")
    return script
