"""HTML of the approval inbox: plain string templates, every value escaped.

No inline scripts or styles, so the content security policy can forbid both; the plan
diagram is an inline SVG drawn with presentation attributes. Only the queue and request
pages load a script, the inbox's own `static/live.js` (live updates), and only when the
process has an event hub; every page works without it.
The layout holds from phone width (375 px) up: one column, forms stacked, wide parts
(the plan, long tables) scrolling inside their own box.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from urllib.parse import quote

from orchestrator.approvals._queue_page import FILTER_NAMES, NO_SCRIPT_REFRESH_S, queue_body
from orchestrator.approvals._request_parts import (
    delegate_form,
    edit_form,
    edited_note,
    evidence,
    gate_rows,
)
from orchestrator.approvals.queue import Queue
from orchestrator.approvals.types import PendingApproval, SessionView
from orchestrator.approvals.wording import Reading
from orchestrator.skills.presentation import format_value, humanise
from orchestrator.store.records import (
    ApprovalRecord,
    ApprovalStatus,
    AuditEvent,
    EventKind,
    SessionRecord,
)
from orchestrator.types import JsonObject

__all__ = [
    "CSS",
    "LIVE_SCRIPT",
    "login_page",
    "plan_steps",
    "plan_svg",
    "queue_page",
    "request_page",
]

LIVE_SCRIPT = '<script src="/inbox/live.js" defer></script>'
"""The one script a live page loads."""

CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
header{background:#1d2430;color:#fff;padding:.7em 1.5em;display:flex;gap:1em;align-items:center;
flex-wrap:wrap}
header a{color:#fff}main{max-width:60em;margin:1.5em auto;padding:0 1em}main:focus{outline:0}
a{color:#0550ae}:focus-visible{outline:3px solid #0969da;outline-offset:2px}
.skip{position:absolute;left:-100em}.skip:focus{left:1em;top:.5em;background:#fff;padding:.4em}
table{border-collapse:collapse;width:100%;background:#fff}
td,th{border:1px solid #d8dce3;padding:.4em .6em;text-align:left;vertical-align:top;
overflow-wrap:break-word}td{overflow-wrap:anywhere}
th{background:#eef0f4}.pending{color:#7d5300}.approved{color:#1a7f37}.rejected{color:#b91c27}
form.decide{display:flex;flex-wrap:wrap;gap:.6em;align-items:flex-start;margin:1em 0}
textarea{width:24em;max-width:100%;height:3.5em;box-sizing:border-box}
button{padding:.45em 1.1em;border-radius:4px;border:1px solid #57606a;font:inherit}
.buttons{display:flex;gap:.6em}
.approve{background:#1a7f37;color:#fff;border-color:#1a7f37}
.reject{background:#cf222e;color:#fff;border-color:#cf222e}
.note{background:#fff8c5;padding:.6em 1em;border:1px solid #d4a72c}
.error{background:#ffebe9;padding:.6em 1em;border:1px solid #cf222e}
label{display:block;margin:.5em 0}section{margin:1.2em 0}
details{margin:1em 0;background:#fff;padding:.6em 1em;border:1px solid #d8dce3}
summary{cursor:pointer;font-weight:600}
form.delegate{display:flex;flex-wrap:wrap;gap:.6em;align-items:end}
.edited{background:#ddf4ff;padding:.6em 1em;border:1px solid #54aeff}
form.edit label{display:grid;grid-template-columns:10em minmax(0,24em);gap:.6em;align-items:start}
input,select{font:inherit;max-width:100%;box-sizing:border-box}
.plan{overflow-x:auto}
ul.filters{list-style:none;display:flex;flex-wrap:wrap;gap:.4em;padding:0;margin:1em 0}
ul.filters a{display:inline-block;padding:.3em .8em;border:1px solid #d8dce3;border-radius:1em;
background:#fff;text-decoration:none}
ul.filters a[aria-current]{background:#1d2430;color:#fff;border-color:#1d2430}
.count{font-weight:600}
ol.queue{list-style:none;padding:0;margin:0}
.card{background:#fff;border:1px solid #d8dce3;border-left:6px solid #d8dce3;margin:.8em 0;
padding:.6em 1em}
.card.decidable{border-left-color:#9a6700}.card h2{font-size:1.1em;margin:.2em 0}
.facts{display:flex;flex-wrap:wrap;gap:.3em 1.6em;margin:.4em 0}
.facts dt{font-size:.85em;color:#57606a}.facts dd{margin:0}
.ref{font-size:.85em;color:#57606a;margin:.3em 0 0;overflow-wrap:anywhere}
.live{font-size:.9em;color:#57606a}
@media (max-width:40em){
header{padding:.6em 1em}main{margin:1em auto;padding:0 .6em}
form.decide,form.delegate{flex-direction:column;align-items:stretch}
textarea{width:100%}form.edit label{grid-template-columns:1fr}
.buttons button{flex:1;padding:.7em}
}
"""


def _layout(title: str, body: str, user: str | None = None, head: str = "") -> str:
    who = f'<span>{escape(user)}</span> <a href="/inbox/logout">log out</a>' if user else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        f'<link rel=stylesheet href="/inbox/style.css">{head}</head><body>'
        '<a class=skip href="#main">Skip to the content</a>'
        f'<header><strong><a href="/inbox">Approvals</a></strong>{who}</header>'
        f"<main id=main tabindex=-1>{body}</main></body></html>"
    )


def login_page(csrf: str, error: str | None = None, next_path: str = "/inbox") -> str:
    """The sign-in form; `next_path` is where it returns to (a path inside the inbox)."""
    problem = f"<p class=error role=alert>{escape(error)}</p>" if error else ""
    return _layout(
        "Sign in",
        f"<h1>Sign in</h1>{problem}"
        '<form method=post action="/inbox/login">'
        f'<input type=hidden name=csrf value="{escape(csrf)}">'
        f'<input type=hidden name=next value="{escape(next_path)}">'
        "<label>Name <input name=user autocomplete=username required></label>"
        "<label>Password <input name=password type=password"
        " autocomplete=current-password required></label>"
        "<button class=approve type=submit>Sign in</button></form>",
    )


def queue_page(user: str, queue: Queue, now: datetime, *, version: str, live: bool) -> str:
    """The queue (`_queue_page.queue_body`); `live` adds the script that keeps it current.

    Without the script (or without JavaScript) the page reloads itself every
    `NO_SCRIPT_REFRESH_S` seconds instead.
    """
    body = queue_body(queue, now, version)
    head = f'<noscript><meta http-equiv=refresh content="{NO_SCRIPT_REFRESH_S}"></noscript>'
    if live:
        head += LIVE_SCRIPT
    return _layout(f"Approvals: {FILTER_NAMES[queue.show].lower()}", body, user, head)


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


def plan_steps(
    state: SessionView | None, events: list[AuditEvent], rec: ApprovalRecord
) -> list[tuple[str, str]]:
    """Every step of the plan with its state.

    From the workflow's live view when it answers (all steps, started or not), else from
    the audit trail (the steps that started).
    """
    if state is not None and state.steps:
        shown = {"completed": "done", "pending": "not started"}
        steps = [(s.id, shown.get(s.status, s.status)) for s in state.steps]
        if rec.status is ApprovalStatus.PENDING:
            steps = [(i, "waiting" if i == rec.step_id else st) for i, st in steps]
        return steps
    return _started_steps(events, rec)


def _started_steps(events: list[AuditEvent], rec: ApprovalRecord) -> list[tuple[str, str]]:
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


def _detail_rows(reading: Reading, rec: ApprovalRecord) -> str:
    if reading.rows:
        return "".join(
            f"<tr><th scope=row>{escape(label)}</th><td>"
            + (f'<a href="{escape(link)}">{escape(shown)}</a>' if link else escape(shown))
            + "</td></tr>"
            for label, shown, link in reading.rows
        )
    return "".join(
        f"<tr><th scope=row>{escape(humanise(k))}</th><td>{escape(format_value(v, None))}</td></tr>"
        for k, v in rec.arguments.items()
    )


def _auditors(rec: ApprovalRecord, session: SessionRecord | None, events: list[AuditEvent]) -> str:
    timeline = "".join(
        f"<tr><td>{e.created_at:%H:%M:%S}</td><td>{escape(e.kind.value.replace('_', ' '))}</td>"
        f"<td>{escape(e.step_id or '')}</td><td>{escape(e.skill or e.model or '')}</td></tr>"
        for e in events
    )
    action = f"{rec.skill}@{rec.skill_version}" if rec.skill else "approval step"
    plan = f"{session.plan_name} {session.plan_version}" if session else "-"
    return (
        "<details><summary>Details for auditors</summary><table>"
        f"<tr><th scope=row>request</th><td>{escape(rec.approval_id)}</td></tr>"
        f"<tr><th scope=row>action</th><td>{escape(action)}</td></tr>"
        f"<tr><th scope=row>session</th><td>{escape(rec.session_id)} ({escape(plan)})</td></tr>"
        f"<tr><th scope=row>step</th><td>{escape(rec.step_id)}</td></tr>"
        f"<tr><th scope=row>asked at</th><td>{rec.requested_at:%d %b %Y, %H:%M:%S} UTC</td></tr>"
        "</table><table><caption>Timeline (UTC)</caption><tr><th scope=col>time</th>"
        "<th scope=col>event</th><th scope=col>step</th><th scope=col>skill or model</th></tr>"
        f"{timeline}</table></details>"
    )


def request_page(
    user: str,
    rec: ApprovalRecord,
    reading: Reading,
    *,
    group: str | None,
    session: SessionRecord | None,
    events: list[AuditEvent],
    steps: list[tuple[str, str]],
    refusal: str | None,
    csrf: str,
    now: datetime,
    error: str | None = None,
    live: PendingApproval | None = None,
    editable: bool = False,
    draft: JsonObject | None = None,
    members: Sequence[str] = (),
    stream: str | None = None,
) -> str:
    """One request in plain words, with Approve and Reject when `user` may decide.

    `reading` is the request in words (`wording.read_request`); `live` is the workflow's
    view of the waiting request (escalation, approvals so far, delegate); `editable`
    offers the edit form, filled from `draft` (a refused attempt, shown open) or the
    call's arguments; `members` are the people `user` may delegate to. `stream` (the
    request's event stream, `request_stream`) adds the script that keeps the page
    current. Without it, or without JavaScript, the page has a Refresh link, and reloads
    itself every `NO_SCRIPT_REFRESH_S` seconds when it offers no form (a reload would
    lose what was typed); a decision posted on a stale page is refused by the workflow.
    """
    if rec.status.value != "pending":
        verdict = (
            f'<p class="{rec.status.value}">{rec.status.value} by {escape(rec.decided_by or "-")}'
            f"{': ' + escape(rec.reason) if rec.reason else ''}</p>"
        )
    elif refusal:
        verdict = f"<p class=note>You cannot decide this request: {escape(refusal)}.</p>"
    else:
        hidden = f'<input type=hidden name=csrf value="{escape(csrf)}">'
        labels = [label for label, _, _ in reading.asked]
        verdict = (
            f'<form class=decide method=post action="/inbox/requests/{escape(rec.approval_id)}">'
            f"{hidden}<label>Reason (required to reject)"
            " <textarea name=reason></textarea></label><div class=buttons>"
            "<button class=approve name=decision value=approve type=submit>Approve</button>"
            "<button class=reject name=decision value=reject type=submit>Reject</button>"
            "</div></form>"
            + (
                edit_form(rec, csrf, draft or rec.arguments, labels, opened=draft is not None)
                if editable
                else ""
            )
            + delegate_form(rec, csrf, members)
        )
    problem = f"<p class=error role=alert>{escape(error)}</p>" if error else ""
    watch = f' data-events="{escape(stream)}"' if stream else ""
    here = f"/inbox/requests/{quote(rec.approval_id)}"
    status = (
        f"<p class=live id=live-status role=status{watch}>Updated {now:%H:%M:%S} UTC."
        f' <a href="{escape(here)}">Refresh</a></p>'
    )
    risk = (
        f"<p class=risk><strong>Risk:</strong> {escape(reading.risk)}</p>" if reading.risk else ""
    )
    why = (
        f"<section><h2>Why the agent asks</h2><blockquote>{escape(reading.reason)}</blockquote>"
        "</section>"
        if reading.reason
        else ""
    )
    about = (
        f"<p class=about><strong>About this action:</strong> {escape(reading.description)}</p>"
        if reading.description and reading.description != reading.sentence
        else ""
    )
    body = (
        f"<h1>{escape(reading.title)}</h1>{problem}"
        f"<p class=lead>{escape(reading.sentence)}</p>{status}{risk}{about}"
        f'<p>State: <span class="{rec.status.value}">{rec.status.value}</span></p>'
        f"{why}"
        f"<section><h2>Details</h2><table>{_detail_rows(reading, rec)}</table>"
        f"{edited_note(reading)}</section>"
        f"{evidence(reading)}"
        f"<section><h2>Your decision</h2>{verdict}</section>"
        f"<section><h2>Who decides, and by when</h2><table class=gate>{gate_rows(group, live, now)}"
        "</table></section>"
        f"<section><h2>Plan</h2><div class=plan>{plan_svg(steps)}</div></section>"
        f"{_auditors(rec, session, events)}"
    )
    head = LIVE_SCRIPT if stream else ""
    if "<form" not in verdict:
        head += f'<noscript><meta http-equiv=refresh content="{NO_SCRIPT_REFRESH_S}"></noscript>'
    return _layout(f"{reading.title} — approval", body, user, head)
