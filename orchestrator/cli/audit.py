"""`orchestrator sessions`, `cost` and `inventory`: the audit trail for people and scripts.

Each command prints tables for a person or, with `--json`, one JSON document for a script;
both come from the same pydantic models, so they never disagree.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from pydantic import TypeAdapter
from rich.markup import escape
from rich.table import Table

from orchestrator.audit import Asset, CostGroup, SessionStory, build_inventory, build_story
from orchestrator.audit.cost import cost_report
from orchestrator.cli._common import console, load_settings, run_async
from orchestrator.exceptions import OrchestratorError
from orchestrator.store.records import SessionRecord, SessionStatus
from orchestrator.store.store import Store
from orchestrator.types import JsonValue

__all__ = ["cost", "inventory", "parse_since", "sessions_app"]

sessions_app = typer.Typer(help="The sessions in the audit store.", no_args_is_help=True)

Project = Annotated[Path | None, typer.Option("--project", "-p", help="Project folder.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]

_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """`7d`, `24h`, `30m`, `2w` before now, or an ISO date or time (UTC if no offset).

    Raises:
        OrchestratorError: the text is neither.
    """
    match = _RELATIVE.match(text.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: amount})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise OrchestratorError(
            f"--since {text!r}: expected a duration like 7d, 24h, 30m, 2w,"
            " or an ISO date or time like 2026-11-01 or 2026-11-01T09:00+01:00"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _dump(value: object) -> None:
    """Print JSON with no markup or wrapping, so scripts can parse it."""
    print(json.dumps(value, indent=2, sort_keys=True))


@sessions_app.command("list")
@run_async
async def sessions_list(
    project: Project = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    status: Annotated[SessionStatus | None, typer.Option(help="Only this status.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's sessions.")] = None,
    as_json: AsJson = False,
) -> None:
    """Recent sessions, newest first."""
    settings = load_settings(project)
    async with await Store.open(settings.resolved_database_url) as store:
        records = await store.list_sessions(limit=limit, status=status, tenant=tenant)
    if as_json:
        _dump(TypeAdapter(list[SessionRecord]).dump_python(records, mode="json"))
        return
    table = Table("session", "plan", "tenant", "status", "tokens", "cost ($)", "started")
    for rec in records:
        table.add_row(
            rec.session_id,
            f"{rec.plan_name} v{rec.plan_version}",
            rec.tenant,
            rec.status.value,
            str(rec.input_tokens + rec.output_tokens),
            f"{rec.cost_usd:.6f}",
            rec.started_at.isoformat(timespec="seconds"),
        )
    console.print(table)


@sessions_app.command("show")
@run_async
async def sessions_show(session_id: str, project: Project = None, as_json: AsJson = False) -> None:
    """One session's story: plan, model timeline, tool calls, approvals, outputs, cost.

    Rounds and tool calls are numbered from 1 (`2.1`: the first call of round 2).
    """
    settings = load_settings(project)
    async with await Store.open(settings.resolved_database_url) as store:
        record = await store.get_session(session_id)
        if record is None:
            raise OrchestratorError(f"no session {session_id!r} in {store.url}")
        events = await store.list_events(session_id)
        approvals = await store.list_approvals(session_id=session_id)
    story = build_story(record, events, approvals)
    if as_json:
        _dump(story.model_dump(mode="json"))
        return
    print_story(story)


def print_story(story: SessionStory) -> None:
    """The story as a header and one table per part."""
    s = story.session
    console.rule(f"session {s.session_id}")
    skills = ", ".join(f"{name}@{version}" for name, version in story.skills.items()) or "-"
    ended = s.ended_at.isoformat(timespec="seconds") if s.ended_at else "-"
    for label, value in (
        ("plan", f"{story.plan} v{story.plan_version}"),
        ("status", s.status.value + (f": {s.error}" if s.error else "")),
        ("tenant", f"{s.tenant} / team {s.team}"),
        ("requested by", story.requested_by or "-"),
        ("workflow", f"{s.workflow_id} (run {s.run_id}; {story.runs} run(s))"),
        ("started / ended", f"{s.started_at.isoformat(timespec='seconds')} / {ended}"),
        ("skills resolved", skills),
    ):
        console.print(f"[bold]{label:<16}[/] {value}", highlight=False)

    steps = Table("step", "type", "status", "error", title="Steps")
    for step in story.steps:
        steps.add_row(step.step_id, step.type or "-", step.status, step.error or "")
    console.print(steps)

    pins = Table("step", "model", "boundary", "switch", "reason", title="Model timeline")
    for pin in story.model_timeline:
        switch = f"{pin.previous} -> {pin.model}" if pin.switched else ""
        reason = (pin.reason or "") + (f" (cause: {pin.cause})" if pin.cause else "")
        if pin.rules_fired:
            reason += f" [rules: {', '.join(pin.rules_fired)}]"
        pins.add_row(pin.step_id or "-", pin.model, pin.boundary or "-", switch, reason)
    console.print(pins)

    calls = Table(
        "step", "round", "model", "asked for", "tokens in/out", "cost ($)", title="Model calls"
    )
    for call in story.model_calls:
        calls.add_row(
            call.step_id or "-",
            "-" if call.round is None else str(call.round + 1),
            call.model or "-",
            ", ".join(call.tool_calls) or "final answer",
            f"{call.input_tokens}/{call.output_tokens}",
            f"{call.cost_usd:.6f}",
        )
    console.print(calls)

    tools = Table("step", "call", "skill", "outcome", "approval", "detail", title="Tool calls")
    for tool in story.tool_calls:
        version = f"@{tool.version}" if tool.version else ""
        detail = tool.error or json.dumps(tool.arguments, sort_keys=True)
        tools.add_row(
            tool.step_id or "-",
            tool.call or "-",
            f"{tool.skill or '-'}{version}",
            tool.outcome,
            tool.approval_id or "",
            detail,
        )
    console.print(tools)

    approvals = Table("approval", "step", "action", "status", "by", "why", title="Approvals")
    for ap in story.approvals:
        action = f"{ap.skill}@{ap.skill_version}" if ap.skill else ap.summary
        approvals.add_row(
            ap.approval_id, ap.step_id, action, ap.status, ap.decided_by or "-", ap.reason or "-"
        )
    console.print(approvals)

    _print_outputs(story)

    by_model = ", ".join(f"{m} ${c:.6f}" for m, c in story.cost_by_model.items()) or "-"
    console.print(
        f"[bold]tokens[/] {story.input_tokens} in + {story.output_tokens} out"
        f"   [bold]cost[/] ${story.cost_usd:.6f} ({by_model})",
        highlight=False,
    )


def _shown(value: JsonValue) -> str:
    """An output as people read it: text as is, anything else as indented JSON."""
    return value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True)


def _print_outputs(story: SessionStory) -> None:
    """Each completed step's output, then the final output, never cut to the width."""
    console.rule("Outputs")
    for step in story.steps:
        if step.status == "completed":
            console.print(f"[bold]{escape(step.step_id)}[/]", highlight=False)
            console.print(escape(_shown(step.output)), soft_wrap=True, highlight=False)
    if story.session.status is SessionStatus.COMPLETED:
        console.print("[bold]final output[/]", highlight=False)
        console.print(escape(_shown(story.final_output)), soft_wrap=True, highlight=False)


@run_async
async def cost(
    by: Annotated[CostGroup, typer.Option(help="Group spend by tenant, model or skill.")],
    since: Annotated[
        str | None, typer.Option(help="7d, 24h, 30m, 2w, or an ISO date or time.")
    ] = None,
    project: Project = None,
    as_json: AsJson = False,
) -> None:
    """Model spend, grouped by tenant, model or skill, from the audit store."""
    settings = load_settings(project)
    start = parse_since(since) if since else None
    async with await Store.open(settings.resolved_database_url) as store:
        rows = await cost_report(store, by, since=start)
    if as_json:
        _dump(
            {
                "by": by,
                "since": start.isoformat() if start else None,
                "rows": [row.model_dump(mode="json") for row in rows],
                "total_usd": sum(row.cost_usd for row in rows),
            }
        )
        return
    title = f"Spend by {by}" + (f" since {start.isoformat(timespec='seconds')}" if start else "")
    table = Table(
        by,
        "sessions",
        "model calls",
        "tokens in",
        "cached in",
        "tokens out",
        "cost ($)",
        title=title,
    )
    for row in rows:
        table.add_row(
            row.key,
            str(row.sessions),
            str(row.model_calls),
            str(row.input_tokens),
            str(row.cached_input_tokens),
            str(row.output_tokens),
            f"{row.cost_usd:.6f}",
        )
    console.print(table)
    console.print(f"[bold]total[/] ${sum(row.cost_usd for row in rows):.6f}", highlight=False)


def inventory(
    project: Project = None,
    kind: Annotated[
        str | None,
        typer.Option(help="Only this kind: model, skill, connector, plan or gateway_key."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Every model deployment, skill version, connector, plan and gateway key of the project."""
    settings = load_settings(project)
    try:
        assets = [a for a in build_inventory(settings) if kind is None or a.kind == kind]
    except OrchestratorError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        _dump(TypeAdapter(list[Asset]).dump_python(assets, mode="json"))
        return
    table = Table("kind", "name", "version", "owner", "region", "data classes", "risk", "details")
    for a in assets:
        table.add_row(
            a.kind,
            a.name,
            a.version or "-",
            a.owner or "-",
            a.region or "-",
            ", ".join(a.data_classes) or "-",
            a.risk or "-",
            "\n".join(f"{k}: {v}" for k, v in a.details.items()),
        )
    console.print(table)
