"""HTML of the approval queue: filter links with counts, one card per request.

Cards rather than a table, so the queue reads the same at phone width (375 px) as on a
desk. Every value is escaped. The one script (`live.js`, served from the inbox, no
build step) only re-fetches this page when the queue's live stream says it changed;
without it the page refreshes itself every `NO_SCRIPT_REFRESH_S` seconds (a `noscript`
meta refresh) and carries a Refresh link.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Final
from urllib.parse import quote

from orchestrator.approvals.queue import Entry, Queue, Show
from orchestrator.approvals.wording import until
from orchestrator.skills.presentation import humanise

__all__ = ["FILTER_NAMES", "NO_SCRIPT_REFRESH_S", "queue_body"]

NO_SCRIPT_REFRESH_S: Final = 60
"""Without JavaScript the queue page reloads itself this often."""

FILTER_NAMES: Final[dict[Show, str]] = {
    "mine": "To decide",
    "pending": "All waiting",
    "approved": "Approved",
    "rejected": "Rejected",
    "all": "Everything",
}


def _filters(queue: Queue) -> str:
    links = "".join(
        f'<li><a href="/inbox?show={show}"'
        + (' aria-current="page"' if show == queue.show else "")
        + f">{escape(name)} <span class=count>{queue.counts.get(show, 0)}</span></a></li>"
        for show, name in FILTER_NAMES.items()
    )
    return f'<nav aria-label="Which requests"><ul class=filters>{links}</ul></nav>'


def _when(moment: datetime) -> str:
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def _facts(entry: Entry, now: datetime) -> str:
    rec, gate = entry.record, entry.gate
    rows: list[tuple[str, str, str]] = []
    if gate.deadline is not None:
        rows.append(
            ("Deadline", f"{until(gate.deadline, now)} ({_when(gate.deadline)})", "deadline")
        )
    elif rec.status.value == "pending":
        rows.append(("Deadline", "none", "deadline"))
    rows.append(("Decided by group", gate.group or "-", "group"))
    if rec.status.value == "pending":
        if gate.delegate is not None and entry.refusal is None:
            rows.append(("Delegated", "to you", "delegate"))
        if gate.approved_by:
            rows.append(("Approved so far", ", ".join(gate.approved_by), "so-far"))
    else:
        who = rec.decided_by or "-"
        rows.append((rec.status.value.capitalize(), f"by {who}", rec.status.value))
    rows.append(("Asked", _when(rec.requested_at), "asked"))
    if entry.refusal is not None:
        rows.append(("Not yours to decide", entry.refusal, "not-yours"))
    return "".join(
        f'<div class="{cls}"><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>' for k, v, cls in rows
    )


def _card(entry: Entry, now: datetime) -> str:
    rec, reading = entry.record, entry.reading
    title = reading.title if reading else (humanise(rec.skill) if rec.skill else rec.summary)
    sentence = reading.sentence if reading else rec.summary
    lead = f"<p class=sentence>{escape(sentence)}</p>" if sentence != title else ""
    state = "decidable" if entry.decidable else rec.status.value
    return (
        f'<li class="card {state}" data-approval="{escape(rec.approval_id)}">'
        f'<h2><a href="/inbox/requests/{quote(rec.approval_id)}">{escape(title)}</a></h2>'
        f"{lead}<dl class=facts>{_facts(entry, now)}</dl>"
        f"<p class=ref>Request {escape(rec.approval_id)}</p></li>"
    )


def _empty(queue: Queue) -> str:
    if queue.show == "mine":
        waiting = queue.counts.get("pending", 0)
        others = (
            f' {waiting} waiting on others: <a href="/inbox?show=pending">show them</a>.'
            if waiting
            else ""
        )
        return f"<p class=empty>Nothing for you to decide.{others}</p>"
    return "<p class=empty>Nothing here.</p>"


def queue_body(queue: Queue, now: datetime, version: str) -> str:
    """The queue page's content: filters with counts, the cards, and the live status line.

    `version` (`queue_stream.version`) tells the live stream what this page shows.
    """
    cards = "".join(_card(e, now) for e in queue.entries)
    listing = f"<ol class=queue>{cards}</ol>" if cards else _empty(queue)
    more = (
        f"<p class=note>Showing the first {len(queue.entries)} of {queue.total}.</p>"
        if queue.total > len(queue.entries)
        else ""
    )
    heading = FILTER_NAMES[queue.show]
    return (
        f"<h1>Approvals: {escape(heading.lower())}</h1>{_filters(queue)}"
        f"<p class=live id=live-status role=status"
        f' data-events="/inbox/queue/events?show={queue.show}&amp;version={escape(version)}">'
        f"Updated {now:%H:%M:%S} UTC. "
        f'<a href="/inbox?show={queue.show}">Refresh</a></p>'
        f"<div id=queue-list>{listing}{more}</div>"
    )
