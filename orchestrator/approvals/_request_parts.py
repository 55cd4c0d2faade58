"""Pieces of the inbox's request page: who decides until when, the evidence, the forms.

Plain HTML, every value escaped, no script: the edit form and each piece of evidence sit
in a `<details>` element, which opens without JavaScript.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from orchestrator.approvals.edits import FIELD_PREFIX, form_value
from orchestrator.approvals.types import PendingApproval
from orchestrator.approvals.wording import Reading, until
from orchestrator.skills.presentation import format_value, humanise
from orchestrator.store.records import ApprovalRecord
from orchestrator.types import JsonObject, JsonValue

__all__ = ["delegate_form", "edit_form", "edited_note", "evidence", "gate_rows", "value_html"]


def gate_rows(group: str | None, live: PendingApproval | None, now: datetime) -> str:
    """Table rows: the deciding group, where it escalates and when, approvals so far."""
    rows = [("decided by group", group or "-")]
    if live is not None:
        if live.deadline is not None:
            after = f"moves to {live.chain[0]}" if live.chain else "expires, rejected"
            rows.append(
                (
                    "group's deadline",
                    f"{until(live.deadline, now)} ({live.deadline:%d %b %Y, %H:%M} UTC),"
                    f" then it {after}",
                )
            )
        if live.chain:
            rows.append(("escalation chain", " → ".join([group or "-", *live.chain])))
        if live.required > 1:
            who = f" ({', '.join(live.approved_by)})" if live.approved_by else ""
            rows.append(("approvals", f"{len(live.approved_by)} of {live.required}{who}"))
        if live.delegate is not None:
            rows.append(("delegated to", f"{live.delegate}, who alone decides it now"))
    return "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)


def edit_form(
    rec: ApprovalRecord,
    csrf: str,
    values: JsonObject,
    labels: Sequence[str] = (),
    *,
    opened: bool = False,
) -> str:
    """Approve with changed arguments; `values` fill the fields (the last attempt's).

    `labels` name the fields as the page does; `opened` keeps the panel open, as after a
    refused attempt, so the person sees the error beside what they wrote.
    """
    names = list(rec.arguments)
    shown = [*labels, *(humanise(n) for n in names[len(labels) :])]
    fields = "".join(
        f'<label>{escape(label)} <input name="{escape(FIELD_PREFIX + name)}"'
        f' value="{escape(form_value(values.get(name, rec.arguments[name])))}"></label>'
        for name, label in zip(names, shown, strict=True)
    )
    return (
        f"<details class=edit{' open' if opened else ''}>"
        "<summary>Change the arguments before approving</summary>"
        f'<form class=edit method=post action="/inbox/requests/{escape(rec.approval_id)}">'
        f'<input type=hidden name=csrf value="{escape(csrf)}">'
        "<input type=hidden name=edit value=1>"
        "<p>The changed call is checked against the skill's contract before it runs.</p>"
        f"{fields}<label>Reason (optional) <textarea name=reason></textarea></label>"
        "<button class=approve name=decision value=approve type=submit>"
        "Approve with these arguments</button></form></details>"
    )


def delegate_form(rec: ApprovalRecord, csrf: str, members: Sequence[str]) -> str:
    """Hand the request to another member of its group (none: no form)."""
    if not members:
        return ""
    options = "".join(f'<option value="{escape(m)}">{escape(m)}</option>' for m in members)
    return (
        f'<form class=delegate method=post action="/inbox/requests/{escape(rec.approval_id)}'
        '/delegate">'
        f'<input type=hidden name=csrf value="{escape(csrf)}">'
        f"<label>Delegate to <select name=to>{options}</select></label>"
        "<label>Note <input name=reason></label>"
        "<button type=submit>Delegate</button></form>"
    )


def edited_note(reading: Reading) -> str:
    """What an approver changed, in the page's words (empty if nothing)."""
    if not reading.edited:
        return ""
    changes = ", ".join(
        f"{label}: {before} → {after}"
        for (label, before, _), (_, after, _) in zip(reading.asked, reading.rows, strict=False)
        if before != after
    )
    return f"<p class=edited>Approved with changed arguments: {escape(changes)}</p>"


def value_html(value: JsonValue, depth: int = 0) -> str:
    """A tool result as nested lists of labelled values: readable, never raw JSON."""
    if isinstance(value, dict) and depth < 4:
        items = "".join(
            f"<dt>{escape(humanise(k))}</dt><dd>{value_html(v, depth + 1)}</dd>"
            for k, v in value.items()
        )
        return f"<dl>{items}</dl>"
    if isinstance(value, list) and depth < 4 and any(isinstance(v, dict) for v in value):
        return "<ol>" + "".join(f"<li>{value_html(v, depth + 1)}</li>" for v in value) + "</ol>"
    return escape(format_value(value, None))


def evidence(reading: Reading) -> str:
    """The tool results the agent read before asking, each collapsed under its title."""
    if not reading.evidence:
        return ""
    parts = "".join(
        f"<details><summary>{escape(item.label)}</summary>{value_html(item.output)}</details>"
        for item in reading.evidence
    )
    return f"<section><h2>What the agent read</h2>{parts}</section>"
