"""Skills of the incident-triage example: read an incident's evidence, roll back a deploy.

Contracts: `incidents.alerts`, `incidents.deploys`, `incidents.logs` (read-only) and
`deploys.rollback` (a write that needs a person's approval), beside this module. The
evidence comes from `data/incidents.json`; a rollback is a row in a ledger in the
project's state folder, written once per idempotency key.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.skills import SkillContext

DATA = Path(__file__).parent / "data" / "incidents.json"


class IncidentRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    incident_id: str = Field(pattern=r"^INC-\d+$")


class Alert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    severity: Literal["page", "warn"]
    since: str


class Alerts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    incident_id: str
    service: str
    alerts: list[Alert]


class Deploy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deploy_id: str
    version: str
    at: str
    author: str


class Deploys(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str
    deploys: list[Deploy]


class Logs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str
    error_rate: float
    top_errors: list[str]


class LogStats(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error_rate: float
    top_errors: list[str]


class Incident(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str
    alerts: list[Alert]
    deploys: list[Deploy]
    logs: LogStats


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str
    deploy_id: str
    reason: str = Field(min_length=3)


class Rollback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rollback_id: str
    service: str
    deploy_id: str
    status: Literal["rolled_back"]


def _incident(incident_id: str) -> Incident:
    data: dict[str, object] = json.loads(DATA.read_text())
    if incident_id not in data:
        raise LookupError(f"no incident {incident_id}")
    return Incident.model_validate(data[incident_id])


async def alerts(args: IncidentRef, ctx: SkillContext) -> Alerts:
    """The alerts firing for an incident (e.g. INC-1), with the service they are about."""
    record = _incident(args.incident_id)
    return Alerts(incident_id=args.incident_id, service=record.service, alerts=record.alerts)


async def deploys(args: IncidentRef, ctx: SkillContext) -> Deploys:
    """Recent deploys of the incident's service, newest first."""
    record = _incident(args.incident_id)
    return Deploys(service=record.service, deploys=record.deploys)


async def logs(args: IncidentRef, ctx: SkillContext) -> Logs:
    """Error rate and the most frequent errors of the incident's service."""
    record = _incident(args.incident_id)
    return Logs(service=record.service, **record.logs.model_dump())


async def rollback(args: RollbackRequest, ctx: SkillContext) -> Rollback:
    """Roll a service back past a deploy. Needs a person's approval; runs once per key."""
    conn = sqlite3.connect(ctx.state_dir / "rollbacks.db", timeout=30)
    try:
        with conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS rollbacks (idempotency_key TEXT PRIMARY KEY,"
                " service TEXT, deploy_id TEXT, reason TEXT)"
            )
            conn.execute(
                "INSERT OR IGNORE INTO rollbacks VALUES (?, ?, ?, ?)",
                (ctx.idempotency_key, args.service, args.deploy_id, args.reason),
            )
    finally:
        conn.close()
    return Rollback(
        rollback_id=f"RB-{ctx.idempotency_key[:8].upper()}",
        service=args.service,
        deploy_id=args.deploy_id,
        status="rolled_back",
    )
