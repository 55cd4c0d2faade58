"""Render a session's audit trail as a readable transcript."""

from __future__ import annotations

from rich.console import Console

from orchestrator.store.records import AuditEvent, EventKind, SessionRecord

__all__ = ["print_transcript"]


def _pin_line(event: AuditEvent) -> str:
    p = event.payload
    line = f"  model pinned: [magenta]{event.model}[/] ({p.get('boundary')}: {p.get('reason')})"
    if p.get("cause"):
        line += f"\n  [red]forced switch[/] from {p.get('previous')}: {p.get('cause')}"
    return line


def _line(event: AuditEvent) -> str | None:
    p = event.payload
    match event.kind:
        case EventKind.SESSION_STARTED:
            pinned = p.get("skills")
            skills = ", ".join(
                f"{k}@{v}" for k, v in (pinned.items() if isinstance(pinned, dict) else [])
            )
            plan = f"{p.get('plan')} v{p.get('plan_version')}"
            return f"[bold]session started[/] plan {plan}; skills: {skills}"
        case EventKind.STEP_STARTED:
            return f"\n[bold cyan]step {event.step_id}[/] ({p.get('type')})"
        case EventKind.MODEL_PINNED:
            return _pin_line(event)
        case EventKind.MODEL_CALL:
            calls = p.get("tool_calls")
            names = ", ".join(str(c) for c in calls) if isinstance(calls, list) else ""
            what = f"asks for {names}" if names else "final answer"
            recorded = p.get("round")  # 0-based; people count rounds from 1
            number = recorded + 1 if isinstance(recorded, int) else "?"
            return (
                f"  model call {number} -> [magenta]{event.model}[/]: {what}"
                f"  [dim]{event.input_tokens}+{event.output_tokens} tok, ${event.cost_usd:.6f}[/]"
            )
        case EventKind.TOOL_CALL:
            return f"  tool [green]{event.skill}[/] {p.get('arguments')} ok"
        case EventKind.TOOL_ERROR:
            return f"  tool [red]{event.skill or p.get('tool')}[/] error: {p.get('error')}"
        case EventKind.APPROVAL_REQUESTED:
            return f"  [yellow]approval requested[/] {p.get('approval_id')}: {p.get('summary')}"
        case EventKind.APPROVAL_DECIDED:
            return (
                f"  [yellow]approval {p.get('status')}[/] by {p.get('decided_by')}"
                f" ({p.get('reason') or 'no reason given'})"
            )
        case EventKind.STEP_FAILED:
            return f"  [red]step failed[/]: {p.get('error')}"
        case EventKind.SESSION_FAILED:
            return f"\n[bold red]session failed[/]: {p.get('error')}"
        case EventKind.SESSION_COMPLETED:
            return "\n[bold green]session completed[/]"
        case _:
            return None


def print_transcript(
    console: Console, session: SessionRecord, events: list[AuditEvent], ui_url: str | None
) -> None:
    """Print steps, model per step, tool calls, approvals, cost and where to look further."""
    console.rule(f"session {session.session_id} - {session.plan_name}")
    for event in events:
        line = _line(event)
        if line is not None:
            console.print(line, highlight=False)
    if session.output is not None:
        console.print(f"\n[bold]final output[/]: {session.output}", highlight=False)
    console.print(
        f"\n[bold]cost[/]: ${session.cost_usd:.6f}"
        f" ({session.input_tokens} input + {session.output_tokens} output tokens)"
    )
    if ui_url:
        console.print(
            f"[bold]Temporal UI[/]: {ui_url}/namespaces/default/workflows/{session.workflow_id}"
        )
