"""`orchestrator approvals notices`: what the notifier sent, dropped or failed, and why.

Read from the store's `notices` table (see `orchestrator.approvals.notify`), so an
operator can answer "was lee told?" and see a failing channel's error, which names the
channel and the code, never a password or a webhook URL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from orchestrator.cli._common import console, load_settings, run_async
from orchestrator.store.notices import NoticeRecord, NoticeStatus
from orchestrator.store.store import Store

__all__ = ["NOTICE_FIELDS", "notices"]

NOTICE_FIELDS = (
    "notice_key",
    "approval_id",
    "stage",
    "group",
    "channel",
    "recipient",
    "status",
    "attempts",
    "due_at",
    "sent_at",
    "last_error",
)
"""The fields of each notice `--json` prints, in this order."""


def _line(notice: NoticeRecord) -> str:
    when = notice.sent_at or notice.due_at
    error = f"  [red]{escape(notice.last_error)}[/]" if notice.last_error else ""
    return (
        f"{escape(notice.approval_id)}  {notice.channel} -> {escape(notice.recipient)}"
        f"  {notice.status.value} ({notice.attempts} tries)  {when:%Y-%m-%d %H:%M:%S}Z"
        f"  {escape(notice.stage)}{error}"
    )


@run_async
async def notices(
    project: Annotated[Path | None, typer.Option("--project", "-p", help="Project folder.")] = None,
    approval: Annotated[
        str | None, typer.Option("--approval", help="Only this request's notices.")
    ] = None,
    status: Annotated[
        NoticeStatus | None, typer.Option("--status", help="Only notices in this state.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show the notices sent to approvers (e-mail, Slack, Teams), oldest first."""
    settings = load_settings(project)
    async with await Store.open(settings.resolved_database_url) as store:
        found = await store.notices.list_notices(approval_id=approval, status=status)
    if as_json:
        rows = [{field: n.model_dump(mode="json")[field] for field in NOTICE_FIELDS} for n in found]
        print(json.dumps(rows, indent=2))
        return
    if not found:
        console.print("no notices")
    for notice in found:
        console.print(_line(notice), soft_wrap=True, highlight=False)
