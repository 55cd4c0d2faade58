"""Pieces of the inbox's request page: who decides until when, the edit and delegate forms.

Plain HTML, every value escaped, no script: the edit form sits in a `<details>` element,
which opens without JavaScript.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from orchestrator.approvals.edits import FIELD_PREFIX, form_value
from orchestrator.session.types import PendingApproval
from orchestrator.store.records import ApprovalRecord, AuditEvent, EventKind
from orchestrator.types import JsonObject

__all__ = ["delegate_form", "edit_form", "edited_note", "gate_rows"]


def gate_rows(group: str | None, live: PendingApproval | None) -> str:
    """Table rows: the deciding group, where it escalates and when, approvals so far."""
    rows = [("decided by group", group or "-")]
    if live is not None:
        if live.deadline is not None:
            after = f"moves to {live.chain[0]}" if live.chain else "expires, rejected"
            rows.append(
                ("group's deadline", f"{live.deadline:%Y-%m-%d %H:%M:%S} UTC, then it {after}")
            )
        if live.chain:
            rows.append(("escalation chain", " → ".join([group or "-", *live.chain])))
        if live.required > 1:
            who = f" ({', '.join(live.approved_by)})" if live.approved_by else ""
            rows.append(("approvals", f"{len(live.approved_by)} of {live.required}{who}"))
        if live.delegate is not None:
            rows.append(("delegated to", f"{live.delegate}, who alone decides it now"))
    return "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)


def edit_form(rec: ApprovalRecord, csrf: str, values: JsonObject) -> str:
    """Approve with changed arguments; `values` fill the fields (the last attempt's)."""
    fields = "".join(
        f'<label>{escape(name)} <input name="{escape(FIELD_PREFIX + name)}"'
        f' value="{escape(form_value(values.get(name, value)))}"></label>'
        for name, value in rec.arguments.items()
    )
    return (
        "<details><summary>Change the arguments before approving</summary>"
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


def edited_note(rec: ApprovalRecord, events: list[AuditEvent]) -> str:
    """What an approver changed, from the decision's audit event (empty if nothing)."""
    for event in events:
        edited = event.payload.get("edited_arguments")
        if (
            event.kind is EventKind.APPROVAL_DECIDED
            and event.payload.get("approval_id") == rec.approval_id
            and isinstance(edited, dict)
        ):
            changes = ", ".join(
                f"{name}: {form_value(rec.arguments.get(name))} → {form_value(value)}"
                for name, value in edited.items()
                if rec.arguments.get(name) != value
            )
            return f"<p class=edited>Approved with changed arguments: {escape(changes)}</p>"
    return ""
