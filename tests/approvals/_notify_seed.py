"""Requests waiting in a real store, and an approvers file with notices on, for notify tests.

The notifier reads only the store and the approvers file, so these tests write the rows a
waiting session writes (session, `session_started`, approval, `approval_requested`) and
the audit events escalation and delegation write, without a workflow.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from orchestrator.approvals.people import ApproverDirectory
from orchestrator.store.records import (
    ApprovalRecord,
    AuditEvent,
    EventKind,
    SessionRecord,
)
from orchestrator.store.store import Store

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
SECRET = b"inbox-secret-for-tests"
SMTP_PASSWORD = "smtp-pass-Zq81"


def free_port() -> int:
    """A free TCP port on loopback (aiosmtpd's controller needs one up front)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def directory(notifications: dict[str, Any], **extra_users: dict[str, Any]) -> ApproverDirectory:
    """finance (lee, kim), ops (ode), support-leads (ana), each with an address."""
    users: dict[str, Any] = {
        "lee": {"groups": ["finance"], "email": "lee@example.test"},
        "kim": {"groups": ["finance"], "email": "kim@example.test"},
        "ode": {"groups": ["ops"], "email": "ode@example.test"},
        "ana": {"groups": ["support-leads"], "email": "ana@example.test"},
        **extra_users,
    }
    return ApproverDirectory.model_validate(
        {
            "groups": ["support-leads", "finance", "ops"],
            "policy": {
                "default_group": "support-leads",
                "skills": {"payments.refund": "finance"},
                "escalation": {"finance": "ops"},
            },
            "users": users,
            "notifications": notifications,
        }
    )


async def waiting(
    store: Store,
    approval_id: str,
    *,
    requested_by: str = "support-bot",
    amount: float = 1290.0,
    at: datetime = T0,
    tenant: str = "default",
) -> ApprovalRecord:
    """A payments.refund request waiting for finance, as the session's activities record it."""
    session_id = f"s-{approval_id}"
    workflow_id = f"session-{session_id}"
    await store.record_session_start(
        SessionRecord(
            session_id=session_id,
            workflow_id=workflow_id,
            run_id="r1",
            plan_name="customer-refund",
            plan_version="1",
            tenant=tenant,
            started_at=at,
        )
    )
    record = ApprovalRecord(
        approval_id=approval_id,
        session_id=session_id,
        workflow_id=workflow_id,
        run_id="r1",
        step_id="investigate",
        kind="tool_call",
        skill="payments.refund",
        skill_version="1.0.0",
        arguments={"order_id": "A-1001", "amount": amount, "currency": "EUR", "reason": "damaged"},
        summary=f"payments.refund with amount {amount}",
        binding_hash="h-" + approval_id,
        requested_at=at,
    )
    await store.record_approval_request(record)
    await event(store, record, EventKind.SESSION_STARTED, "start", requested_by=requested_by)
    await event(store, record, EventKind.APPROVAL_REQUESTED, "requested", summary=record.summary)
    return record


async def event(
    store: Store, record: ApprovalRecord, kind: EventKind, key: str, **payload: Any
) -> None:
    """An audit event of `record`'s session about it."""
    await store.append_event(
        AuditEvent(
            event_key=f"{record.workflow_id}:{kind.value}:{record.approval_id}:{key}",
            session_id=record.session_id,
            workflow_id=record.workflow_id,
            run_id=record.run_id,
            kind=kind,
            step_id=record.step_id,
            skill=record.skill,
            payload={"approval_id": record.approval_id, **payload},
            created_at=T0 + timedelta(seconds=1),
        )
    )


@dataclass
class Mailbox:
    """What the SMTP server received; `refuse` answers the next N messages with 451."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refuse: int = 0
    logins: list[str] = field(default_factory=list)
    tls: list[bool] = field(default_factory=list)
    """Per message received: whether the session had been upgraded with STARTTLS."""

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.refuse:
            self.refuse -= 1
            return "451 4.3.0 Try again later"
        raw = envelope.original_content or b""
        self.tls.append(session.ssl is not None)
        self.messages.append(
            (
                list(envelope.rcpt_tos),
                email.message_from_bytes(raw, _class=EmailMessage, policy=email.policy.default),
            )
        )
        return "250 OK"

    def for_(self, address: str) -> list[EmailMessage]:
        return [m for to, m in self.messages if address in to]


@contextlib.contextmanager
def smtp_server(tls_context: ssl.SSLContext | None = None) -> Iterator[tuple[Mailbox, int]]:
    """aiosmtpd on loopback, checking the sign-in as `orchestrator` with SMTP_PASSWORD.

    With `tls_context` it offers STARTTLS and requires it before the sign-in and mail.
    """
    box = Mailbox()

    def authenticate(
        server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == b"orchestrator"
            and data.password == SMTP_PASSWORD.encode()
        )
        if ok:
            box.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # False: the server answers 535

    port = free_port()
    tls: dict[str, Any] = (
        {"tls_context": tls_context, "require_starttls": True, "auth_required": True}
        if tls_context
        else {"auth_require_tls": False}  # loopback: AUTH offered, and the notifier must use it
    )
    controller = Controller(box, hostname="127.0.0.1", port=port, authenticator=authenticate, **tls)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def smtp_settings(port: int) -> dict[str, Any]:
    """The `notifications.email` section for `smtp_server`."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "username": "orchestrator",
        "password_env": "ORCHESTRATOR_SMTP_PASSWORD",
        "sender": "approvals@example.test",
    }


def plain_text(message: EmailMessage) -> str:
    """The text part of a received message."""
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    content: str = part.get_content()
    return content
