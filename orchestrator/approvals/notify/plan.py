"""Who is told what about a waiting request: pure decisions, no I/O.

A request reaches people in stages, read from its session's audit trail: it is
*requested* at the group the policy names, *escalated* to the next group when that
group's time runs out, *delegated* to one member. Only the latest stage matters: its
recipients are the people who could decide the request now, as the inbox would let them:
members of the deciding group who did not start the session, have not already given one
of two approvals, and may see the session's tenant; or just the delegate. Each gets an
e-mail if the approvers file has their address; a group stage also goes to the group's
chat channels (recipient `group:<name>`).

A notice's key is request x stage x channel x recipient, so a stage reached once is
announced once per person and channel, however often the notifier looks. When a notice
is about to be sent, the same plan is made again: a notice no longer in it (decided,
escalated on, delegated away) is dropped rather than sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestrator.approvals.notify.links import GROUP_PREFIX
from orchestrator.approvals.people import ApproverDirectory
from orchestrator.approvals.wording import until
from orchestrator.store.notices import NoticeRecord
from orchestrator.store.records import ApprovalRecord, AuditEvent, EventKind

__all__ = ["Stage", "deadline_words", "notice_key", "plan_notices", "stage_of"]


@dataclass(frozen=True)
class Stage:
    """Where a pending request is: its deciding group, delegate, and who approved so far."""

    key: str
    """`requested:<group>`, `escalated:<group>` or `delegated:<n>:<person>`."""
    group: str | None
    delegate: str | None = None
    delegated_by: str | None = None
    approved_by: frozenset[str] = field(default_factory=frozenset)
    since: datetime | None = None
    """When the request reached its current group (its timer's start)."""


def stage_of(
    record: ApprovalRecord, events: list[AuditEvent], directory: ApproverDirectory
) -> Stage | None:
    """The stage `record` has reached by the end of `events`; None once it expired."""
    group = directory.group_for(record)
    stage: Stage | None = Stage(f"requested:{group}", group)
    group_stage = stage
    since = record.requested_at
    delegations = 0
    approved: set[str] = set()
    for event in events:
        payload = event.payload
        if payload.get("approval_id") != record.approval_id or stage is None:
            continue
        if event.kind is EventKind.APPROVAL_ESCALATED:
            to = payload.get("to_group")
            stage = Stage(f"escalated:{to}", to) if isinstance(to, str) else None
            group_stage, since = stage, event.created_at
        elif event.kind is EventKind.APPROVAL_DELEGATED:
            to, by = payload.get("to"), payload.get("delegated_by")
            if isinstance(to, str):
                delegations += 1
                stage = Stage(
                    f"delegated:{delegations}:{to}",
                    stage.group,
                    delegate=to,
                    delegated_by=by if isinstance(by, str) else None,
                )
        elif event.kind is EventKind.APPROVAL_PARTIAL:
            who = payload.get("approved_by")
            if isinstance(who, str):
                approved.add(who)
            # The delegate's turn is spent; the second approval is the group's again.
            stage = group_stage
    if stage is None:
        return None
    return Stage(
        stage.key, stage.group, stage.delegate, stage.delegated_by, frozenset(approved), since
    )


def notice_key(approval_id: str, stage: str, channel: str, recipient: str) -> str:
    """The idempotency key of one notice."""
    return f"{approval_id}|{stage}|{channel}|{recipient}"


def plan_notices(
    record: ApprovalRecord,
    events: list[AuditEvent],
    directory: ApproverDirectory,
    *,
    requester: str | None,
    tenant: str,
    now: datetime,
) -> list[NoticeRecord]:
    """The notices `record` calls for now (none unless it is pending and notices are on)."""
    settings = directory.notifications
    stage = stage_of(record, events, directory)
    if settings is None or stage is None or stage.group is None:
        return []
    if stage.delegate is not None:
        people = [stage.delegate]
    else:
        people = [name for name, p in directory.users.items() if stage.group in p.groups]
    barred = {requester, *stage.approved_by}
    due = now + timedelta(seconds=settings.digest_seconds)

    def notice(channel: str, recipient: str) -> NoticeRecord:
        return NoticeRecord(
            notice_key=notice_key(record.approval_id, stage.key, channel, recipient),
            approval_id=record.approval_id,
            stage=stage.key,
            group=stage.group,
            channel=channel,
            recipient=recipient,
            due_at=due,
            created_at=now,
        )

    found: list[NoticeRecord] = []
    if settings.email is not None:
        for name in people:
            person = directory.users.get(name)
            if (
                person is not None
                and person.email
                and name not in barred
                and stage.group in person.groups
                and person.sees_tenant(tenant)
            ):
                found.append(notice("email", name))
    hooks = settings.chat.get(stage.group)
    if hooks is not None and stage.delegate is None:
        for channel in ("slack", "teams"):
            if getattr(hooks, channel):
                found.append(notice(channel, GROUP_PREFIX + stage.group))
    return found


def deadline_words(stage: Stage, directory: ApproverDirectory, now: datetime) -> str | None:
    """When the request leaves its group, in words, or None if groups wait for ever.

    E.g. "Moves on to ops in 45 minutes (10:45 UTC) unless decided": an approver can
    tell at a glance what waiting would do.
    """
    timeout = directory.policy.timeout_seconds
    if timeout is None or stage.since is None or stage.group is None:
        return None
    at = stage.since + timedelta(seconds=timeout)
    chain = directory.chain_after(stage.group)
    then = f"Moves on to {chain[0]}" if chain else "Expires"
    return f"{then} {until(at, now)} ({at:%H:%M} UTC) unless decided"
