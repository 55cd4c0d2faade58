"""HTML of the approval inbox: plain string templates, every value escaped.

No scripts and no inline styles, so the content security policy can forbid both; the
plan diagram is an inline SVG drawn with presentation attributes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape

from orchestrator.approvals._request_parts import delegate_form, edit_form, edited_note, gate_rows
from orchestrator.session.types import PendingApproval
from orchestrator.store.records import ApprovalRecord, AuditEvent, EventKind, SessionRecord
from orchestrator.types import JsonObject, JsonValue

__all__ = ["CSS", "login_page", "plan_svg", "queue_page", "request_page"]

CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
header{background:#1d2430;color:#fff;padding:.7em 1.5em;display:flex;gap:1em;align-items:center}
header a{color:#fff}main{max-width:60em;margin:1.5em auto;padding:0 1em}
table{border-collapse:collapse;width:100%;background:#fff}
td,th{border:1px solid #d8dce3;padding:.4em .6em;text-align:left;vertical-align:top}
th{background:#eef0f4}.pending{color:#9a6700}.approved{color:#1a7f37}.rejected{color:#cf222e}
form.decide{display:flex;gap:.6em;align-items:flex-start;margin:1em 0}
textarea{width:24em;height:3.5em}button{padding:.45em 1.1em;border-radius:4px;border:0}
.approve{background:#1a7f37;color:#fff}.reject{background:#cf222e;color:#fff}
.note{background:#fff8c5;padding:.6em 1em;border:1px solid #d4a72c}
.error{background:#ffebe9;padding:.6em 1em;border:1px solid #cf222e}
label{display:block;margin:.5em 0}section{margin:1.2em 0}
details{margin:1em 0;background:#fff;padding:.6em 1em;border:1px solid #d8dce3}
summary{cursor:pointer;font-weight:600}form.delegate{display:flex;gap:.6em;align-items:end}
.edited{background:#ddf4ff;padding:.6em 1em;border:1px solid #54aeff}
form.edit label{display:grid;grid-template-columns:10em 24em;gap:.6em;align-items:start}
"""


def _layout(title: str, body: str, user: str | None = None) -> str:
    who = f'<span>{escape(user)}</span> <a href="/inbox/logout">log out</a>' if user else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title>"
        '<link rel=stylesheet href="/inbox/style.css"></head><body>'
        f'<header><strong><a href="/inbox">Approvals</a></strong>{who}</header>'
        f"<main>{body}</main></body></html>"
    )


def login_page(csrf: str, error: str | None = None) -> str:
    """The sign-in form."""
    problem = f"<p class=error role=alert>{escape(error)}</p>" if error else ""
    return _layout(
        "Sign in",
        f"<h1>Sign in</h1>{problem}"
        '<form method=post action="/inbox/login">'
        f'<input type=hidden name=csrf value="{escape(csrf)}">'
        "<label>Name <input name=user autocomplete=username required></label>"
        "<label>Password <input name=password type=password"
        " autocomplete=current-password required></label>"
        "<button class=approve type=submit>Sign in</button></form>",
    )


def _action(rec: ApprovalRecord) -> str:
    return f"{rec.skill}@{rec.skill_version}" if rec.skill else "approval step"


def queue_page(
    user: str, records: list[ApprovalRecord], groups: dict[str, str | None], status: str
) -> str:
    """The queue: requests with their group and state, filtered by status."""
    options = "".join(
        f'<option value="{s}"{" selected" if s == status else ""}>{s}</option>'
        for s in ("pending", "approved", "rejected", "all")
    )
    rows = "".join(
        "<tr>"
        f'<td><a href="/inbox/requests/{escape(r.approval_id)}">{escape(r.approval_id)}</a></td>'
        f"<td>{escape(_action(r))}</td><td>{escape(r.summary)}</td>"
        f"<td>{escape(groups.get(r.approval_id) or '-')}</td>"
        f"<td>{r.requested_at:%Y-%m-%d %H:%M:%S}</td>"
        f'<td class="{r.status.value}">{r.status.value}</td></tr>'
        for r in records
    )
    table = (
        "<table><tr><th>request</th><th>action</th><th>summary</th><th>group</th>"
        f"<th>asked at (UTC)</th><th>state</th></tr>{rows}</table>"
        if records
        else "<p>Nothing here.</p>"
    )
    return _layout(
        "Approval queue",
        "<h1>Approval queue</h1>"
        '<form method=get action="/inbox">'
        f"<label>Show <select name=status>{options}</select></label>"
        "<button type=submit>Filter</button></form>" + table,
        user,
    )


def _cell(value: JsonValue) -> str:
    if isinstance(value, str):
        return escape(value)
    return escape(json.dumps(value, ensure_ascii=False))


def plan_svg(steps: list[tuple[str, str]]) -> str:
    """The session's steps left to right, each coloured by its state."""
    colours = {"done": "#1a7f37", "waiting": "#9a6700", "failed": "#cf222e", "running": "#0969da"}
    width = 170
    parts = []
    for i, (step, state) in enumerate(steps):
        x = 10 + i * width
        colour = colours.get(state, "#57606a")
        if i:
            parts.append(
                f'<line x1="{x - 30}" y1="35" x2="{x}" y2="35" stroke="#57606a" stroke-width="2"/>'
            )
        parts.append(
            f'<rect x="{x}" y="10" width="140" height="50" rx="8" fill="#fff"'
            f' stroke="{colour}" stroke-width="3"/>'
            f'<text x="{x + 70}" y="32" text-anchor="middle" font-size="14">{escape(step)}</text>'
            f'<text x="{x + 70}" y="50" text-anchor="middle" font-size="12"'
            f' fill="{colour}">{escape(state)}</text>'
        )
    total = 20 + max(len(steps), 1) * width
    return (
        f'<svg role=img aria-label="plan steps" width="{total}" height="70"'
        f' viewBox="0 0 {total} 70" xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )


def _steps(events: list[AuditEvent], rec: ApprovalRecord) -> list[tuple[str, str]]:
    state: dict[str, str] = {}
    for e in events:
        if e.step_id is None:
            continue
        if e.kind is EventKind.STEP_COMPLETED:
            state[e.step_id] = "done"
        elif e.kind is EventKind.STEP_FAILED:
            state[e.step_id] = "failed"
        else:
            state.setdefault(e.step_id, "running")
    if rec.status.value == "pending" and state.get(rec.step_id) != "done":
        state[rec.step_id] = "waiting"
    return list(state.items())


def request_page(
    user: str,
    rec: ApprovalRecord,
    *,
    group: str | None,
    session: SessionRecord | None,
    events: list[AuditEvent],
    refusal: str | None,
    csrf: str,
    error: str | None = None,
    live: PendingApproval | None = None,
    editable: bool = False,
    draft: JsonObject | None = None,
    members: Sequence[str] = (),
) -> str:
    """One request in plain words, with Approve and Reject when `user` may decide.

    `live` is the workflow's view of the waiting request (escalation, approvals so far,
    delegate); `editable` offers the edit form, filled from `draft` (a refused attempt)
    or the call's arguments; `members` are the people `user` may delegate to.
    """
    args = "".join(
        f"<tr><th>{escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in rec.arguments.items()
    )
    timeline = "".join(
        f"<tr><td>{e.created_at:%H:%M:%S}</td><td>{escape(e.kind.value.replace('_', ' '))}</td>"
        f"<td>{escape(e.step_id or '')}</td><td>{escape(e.skill or e.model or '')}</td></tr>"
        for e in events
    )
    cost = f"${session.cost_usd:.4f}" if session else "-"
    if rec.status.value != "pending":
        verdict = (
            f'<p class="{rec.status.value}">{rec.status.value} by {escape(rec.decided_by or "-")}'
            f"{': ' + escape(rec.reason) if rec.reason else ''}</p>"
        )
    elif refusal:
        verdict = f"<p class=note>You cannot decide this request: {escape(refusal)}.</p>"
    else:
        hidden = f'<input type=hidden name=csrf value="{escape(csrf)}">'
        verdict = (
            f'<form class=decide method=post action="/inbox/requests/{escape(rec.approval_id)}">'
            f"{hidden}<label>Reason (required to reject)"
            " <textarea name=reason></textarea></label>"
            "<button class=approve name=decision value=approve type=submit>Approve</button>"
            "<button class=reject name=decision value=reject type=submit>Reject</button>"
            "</form>"
            + (edit_form(rec, csrf, draft or rec.arguments) if editable else "")
            + delegate_form(rec, csrf, members)
        )
    problem = f"<p class=error role=alert>{escape(error)}</p>" if error else ""
    body = (
        f"<h1>{escape(_action(rec))}</h1>{problem}"
        f"<p><strong>What will happen:</strong> {escape(rec.summary)}</p>"
        "<table>"
        f"<tr><th>request</th><td>{escape(rec.approval_id)}</td></tr>"
        f"<tr><th>session</th><td>{escape(rec.session_id)}"
        f" ({escape(session.plan_name) if session else '-'})</td></tr>"
        f"<tr><th>step</th><td>{escape(rec.step_id)}</td></tr>"
        f"{gate_rows(group, live)}"
        f"<tr><th>cost so far</th><td>{cost}</td></tr>"
        f'<tr><th>state</th><td class="{rec.status.value}">{rec.status.value}</td></tr>'
        "</table>"
        f"<section><h2>Arguments</h2><table>{args or '<tr><td>none</td></tr>'}</table></section>"
        f"<section><h2>Decision</h2>{verdict}{edited_note(rec, events)}</section>"
        f"<section><h2>Plan</h2>{plan_svg(_steps(events, rec))}</section>"
        "<section><h2>Timeline</h2><table><tr><th>time (UTC)</th><th>event</th><th>step</th>"
        f"<th>skill or model</th></tr>{timeline}</table></section>"
    )
    return _layout(f"{_action(rec)} — approval", body, user)
