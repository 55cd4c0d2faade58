"""`orchestrator approvals`: list and decide pending approvals from a terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli._common import console, load_settings, run_async
from orchestrator.client import connect
from orchestrator.service import decide_approval
from orchestrator.store.records import ApprovalStatus
from orchestrator.store.store import Store

__all__ = ["app"]

app = typer.Typer(help="List and decide approval requests.", no_args_is_help=True)

Project = Annotated[Path | None, typer.Option("--project", "-p", help="Project folder.")]


@app.command("list")
@run_async
async def list_(
    project: Project = None,
    all_: Annotated[bool, typer.Option("--all", help="Include decided requests.")] = False,
) -> None:
    """Show approval requests (pending only, unless --all)."""
    settings = load_settings(project)
    async with await Store.open(settings.resolved_database_url) as store:
        records = await store.list_approvals(status=None if all_ else ApprovalStatus.PENDING)
    table = Table("id", "session", "step", "action", "arguments", "status", "decided by")
    for rec in records:
        table.add_row(
            rec.approval_id,
            rec.session_id,
            rec.step_id,
            f"{rec.skill}@{rec.skill_version}" if rec.skill else "approval step",
            json.dumps(rec.arguments, sort_keys=True),
            rec.status.value,
            rec.decided_by or "",
        )
    console.print(table if records else "no approval requests")


async def _decide(
    project: Path | None, approval_id: str, *, approve: bool, who: str, reason: str | None
) -> None:
    settings = load_settings(project)
    client = await connect(settings)
    async with await Store.open(settings.resolved_database_url) as store:
        result = await decide_approval(
            client, store, approval_id, approve=approve, decided_by=who, reason=reason
        )
    note = " (already decided the same way; nothing changed)" if result.duplicate else ""
    console.print(f"{result.approval_id}: {result.status} by {result.decided_by}{note}")


As = Annotated[str, typer.Option("--as", help="Who decides (recorded in the audit trail).")]


@app.command()
@run_async
async def approve(
    approval_id: str,
    who: As,
    reason: Annotated[str | None, typer.Option(help="Why.")] = None,
    project: Project = None,
) -> None:
    """Approve a pending request; the waiting session goes on at once."""
    await _decide(project, approval_id, approve=True, who=who, reason=reason)


@app.command()
@run_async
async def reject(
    approval_id: str,
    who: As,
    reason: Annotated[str, typer.Option(help="Why (required).")],
    project: Project = None,
) -> None:
    """Reject a pending request with a reason."""
    await _decide(project, approval_id, approve=False, who=who, reason=reason)
