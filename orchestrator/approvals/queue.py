"""The approval queue: what a person can decide, soonest deadline first, with counts.

A person opening the inbox wants the requests they can act on now, not every request of
every group. Whether they can is the same rule the workflow and the request page apply
(`api.standing`): in the deciding group, not the one who started the session, and not
handed to somebody else; and, under the two-person rule, not already approved by them.

The queue reads that from the audit trail, not from each workflow's live view: a few set
queries (`Store.queue`) instead of one Temporal query per request, so the page stays
cheap with many requests waiting (`bench/inbox_queue.py`) and with no worker up. The
events say everything the live view does (escalations move the group and end a
delegation, delegations name the delegate, a first approval of two names who gave it);
the deadline is the group's turn start plus the policy's `timeout_seconds`, as the
workflow computes it. The request page still asks the workflow, and the workflow still
checks every decision.

`gate_of`, `refusal` and `arrange` are pure; `load_queue` does the reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal, get_args

from orchestrator.approvals.people import Approver, ApproverDirectory
from orchestrator.approvals.rules import check_decider
from orchestrator.approvals.wording import Reading, read_request
from orchestrator.exceptions import ApprovalBySelf, ApprovalDelegated, ApprovalNotInGroup
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store.records import ApprovalRecord, ApprovalStatus, AuditEvent, EventKind
from orchestrator.store.store import Store

__all__ = [
    "MAX_ROWS",
    "QUEUE_EVENTS",
    "SHOWS",
    "Entry",
    "Gate",
    "Queue",
    "Show",
    "arrange",
    "gate_of",
    "load_queue",
    "parse_show",
    "refusal",
]

Show = Literal["mine", "pending", "approved", "rejected", "all"]
"""Which requests the queue lists: `mine` (pending, and this person may decide them) is
the default; `pending` adds those waiting on others, with why not this person."""
SHOWS: Final[tuple[Show, ...]] = get_args(Show)

QUEUE_EVENTS: Final = frozenset(
    {
        EventKind.SESSION_STARTED,
        EventKind.APPROVAL_ESCALATED,
        EventKind.APPROVAL_DELEGATED,
        EventKind.APPROVAL_PARTIAL,
        EventKind.APPROVAL_DECIDED,
    }
)
"""The audit events the queue reads: who asked (`session_started`), where a request
stands (escalations, delegations, first approvals) and an approver's edit (`decided`)."""

MAX_ROWS: Final = 200
"""Rows a page lists; the counts still cover every request."""


def parse_show(raw: str | None) -> Show:
    """The `show` filter of a query string; anything unknown is the default, `mine`."""
    for show in SHOWS:
        if raw == show:
            return show
    return "mine"


@dataclass(frozen=True)
class Gate:
    """Who decides a pending request now and by when, as its audit trail tells it."""

    group: str | None
    deadline: datetime | None = None
    """When the group's time runs out (None: no timeout, or decided)."""
    delegate: str | None = None
    approved_by: tuple[str, ...] = ()
    """Who gave the first of several required approvals."""
    requested_by: str | None = None
    """Who started the session that asked."""


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def gate_of(
    record: ApprovalRecord, events: Iterable[AuditEvent], directory: ApproverDirectory
) -> Gate:
    """Where `record` stands, from its session's audit `events` (in the order written).

    The first group is the approvers file's; each escalation moves it on (and ends a
    delegation, which holds within its group); a delegate who gives the first of two
    approvals hands the second back to the group.
    """
    group = directory.group_for(record)
    turn_start = record.requested_at
    delegate: str | None = None
    approved: list[str] = []
    requested_by: str | None = None
    for event in events:
        if event.kind is EventKind.SESSION_STARTED:
            requested_by = requested_by or _text(event.payload.get("requested_by"))
            continue
        if event.payload.get("approval_id") != record.approval_id:
            continue
        if event.kind is EventKind.APPROVAL_ESCALATED:
            group = _text(event.payload.get("to_group"))
            turn_start = event.created_at
            delegate = None
        elif event.kind is EventKind.APPROVAL_DELEGATED:
            delegate = _text(event.payload.get("to"))
        elif event.kind is EventKind.APPROVAL_PARTIAL:
            who = _text(event.payload.get("approved_by"))
            if who is not None and who not in approved:
                approved.append(who)
            if who == delegate:
                delegate = None
    timeout = directory.policy.timeout_seconds
    deadline = None
    if record.status is ApprovalStatus.PENDING and timeout is not None:
        deadline = turn_start + timedelta(seconds=timeout)
    return Gate(group, deadline, delegate, tuple(approved), requested_by)


def refusal(gate: Gate, person: Approver) -> str | None:
    """Why `person` cannot decide the pending request now, in a few words; None if they can.

    The same rules as the request page and the workflow's validator
    (`rules.check_decider`), in the queue's shorter words; and a person who gave the
    first of two approvals has nothing left to do here.
    """
    try:
        check_decider(
            "",
            person.name,
            groups=person.groups,
            group=gate.group,
            requested_by=gate.requested_by,
            delegate=gate.delegate,
            assigned_only=True,
        )
    except ApprovalBySelf:
        return "you started its session"
    except ApprovalNotInGroup:
        return f"waits on {gate.group or 'nobody'}"
    except ApprovalDelegated:
        return f"delegated to {gate.delegate}"
    if person.name in gate.approved_by:
        return "you gave the first approval; it needs another person"
    return None


@dataclass(frozen=True)
class Entry:
    """One row of the queue."""

    record: ApprovalRecord
    gate: Gate
    refusal: str | None
    """Why the person cannot decide it (pending only); None: they can, or it is decided."""
    reading: Reading | None = None
    """The request in words (filled for the rows shown)."""

    @property
    def decidable(self) -> bool:
        """Pending, and the person may decide it now."""
        return self.record.status is ApprovalStatus.PENDING and self.refusal is None


@dataclass(frozen=True)
class Queue:
    """The rows to show under a filter, and how many requests each filter holds."""

    show: Show
    entries: list[Entry]
    counts: dict[Show, int] = field(default_factory=dict)
    total: int = 0
    """Requests under the filter; more than `len(entries)` when cut at `MAX_ROWS`."""


def _order(entry: Entry) -> tuple[int, float, float, str]:
    """Pending first, soonest deadline first (none last), then oldest; decided: newest."""
    rec = entry.record
    if rec.status is ApprovalStatus.PENDING:
        deadline = entry.gate.deadline
        due = deadline.timestamp() if deadline is not None else float("inf")
        return (0, due, rec.requested_at.timestamp(), rec.approval_id)
    decided = rec.decided_at or rec.requested_at
    return (1, -decided.timestamp(), 0.0, rec.approval_id)


def _matches(entry: Entry, show: Show) -> bool:
    status = entry.record.status
    if show == "mine":
        return entry.decidable
    if show == "all":
        return True
    return status.value == show


def arrange(entries: Sequence[Entry], show: Show, limit: int = MAX_ROWS) -> Queue:
    """The entries under `show`, in queue order, cut at `limit`, with every filter's count."""
    counts: dict[Show, int] = {s: sum(_matches(e, s) for e in entries) for s in SHOWS}
    shown = sorted((e for e in entries if _matches(e, show)), key=_order)
    return Queue(show, shown[:limit], counts, len(shown))


async def load_queue(
    store: Store,
    directory: ApproverDirectory,
    person: Approver,
    show: Show,
    skills: SkillRegistry | None,
    *,
    limit: int = MAX_ROWS,
    words: bool = True,
) -> Queue:
    """The queue `person` sees under `show`, read from the store in a few set queries.

    Only requests of sessions of the person's tenants (`Approver.tenants`) are read or
    counted, the rule of the request page and the session events API (`sees_session`).
    Every such pending request is read (each needs its gate to be counted as `mine` or not);
    decided ones are counted in the database, and read only as far as the page shows
    them. With `words`, each shown request is put in its contract's words
    (`Entry.reading`; an approver's edit counts).
    """
    tenants = person.tenants  # only their tenants' sessions, as the request page shows
    pending = await store.queue.pending(tenants)
    decided: list[ApprovalRecord] = []
    if show in ("approved", "rejected", "all"):
        status = None if show == "all" else ApprovalStatus(show)
        decided = await store.queue.decided(status, limit, tenants)
    sessions = {r.session_id for r in [*pending, *decided]}
    trails = await store.queue.events_of(sessions, QUEUE_EVENTS)
    entries = [
        Entry(rec, gate, refusal(gate, person))
        for rec in pending
        for gate in [gate_of(rec, trails.get(rec.session_id, []), directory)]
    ]
    entries += [Entry(rec, Gate(directory.group_for(rec)), None) for rec in decided]
    queue = arrange(entries, show, limit)
    by_status = await store.queue.counts(tenants)
    approved, rejected = by_status[ApprovalStatus.APPROVED], by_status[ApprovalStatus.REJECTED]
    # Pending from the rows read above, not from this later count, so a request arriving
    # in between shows up in neither (the event that follows it brings the next read).
    all_ = len(pending) + approved + rejected
    counts = {**queue.counts, "approved": approved, "rejected": rejected, "all": all_}
    total = counts[show]
    shown = queue.entries
    if words:
        shown = [
            Entry(
                e.record,
                e.gate,
                e.refusal,
                read_request(e.record, trails.get(e.record.session_id, []), skills),
            )
            for e in shown
        ]
    return Queue(show, shown, counts, total)
