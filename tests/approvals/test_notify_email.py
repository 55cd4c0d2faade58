"""Approval notices by e-mail, through a real SMTP server on loopback (aiosmtpd).

The notifier reads requests from a real store (SQLite and PostgreSQL) and sends through
`smtplib` to aiosmtpd, which checks the sign-in and keeps each message as received.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from _notify_seed import (
    SECRET,
    SMTP_PASSWORD,
    T0,
    Mailbox,
    directory,
    event,
    plain_text,
    smtp_server,
    smtp_settings,
    waiting,
)
from conftest import REPO

from orchestrator.approvals.notify.notifier import LEASE, Channels, Notifier, notifier_for
from orchestrator.approvals.people import ApproverDirectory
from orchestrator.exceptions import ConfigError
from orchestrator.settings import Settings
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store.notices import NoticeRecord, NoticeStatus
from orchestrator.store.records import ApprovalStatus, EventKind
from orchestrator.store.store import Store
from orchestrator.testing import eventually

SKILLS = SkillRegistry.load_directory(REPO / "skills")


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as running:
        yield running


def _people(port: int, **extra: Any) -> ApproverDirectory:
    return directory(
        {
            "base_url": "https://inbox.example.test",
            "digest_seconds": 60,
            "email": smtp_settings(port),
            **extra,
        }
    )


def _notifier(store: Store, people: ApproverDirectory, password: str = SMTP_PASSWORD) -> Notifier:
    assert people.notifications is not None
    channels = Channels(smtp=people.notifications.email, smtp_password=password)
    return Notifier(store, people, channels, inbox_secret=SECRET, skills=SKILLS)


async def test_a_digest_per_person_after_the_window_then_nothing_again(
    store: Store, smtp: tuple[Mailbox, int], capsys: pytest.CaptureFixture[str]
) -> None:
    box, port = smtp
    notifier = _notifier(store, _people(port))
    await waiting(store, "apr_1", amount=1290.0)
    await waiting(store, "apr_2", amount=80.5, requested_by="lee")  # lee started it

    # Within the digest window nothing goes out; the notices are recorded.
    first = await notifier.run_once(T0)
    assert first.recorded == 3 and first.sent == 0 and box.messages == []

    report = await notifier.run_once(T0 + timedelta(seconds=61))
    assert report.sent == 3
    assert box.logins == ["orchestrator", "orchestrator"]  # one connection per digest
    # lee gets one message for apr_1 only (lee started apr_2); kim one digest of both.
    lee, kim = box.for_("lee@example.test"), box.for_("kim@example.test")
    assert len(lee) == 1 and len(kim) == 1
    assert kim[0]["Subject"] == "2 approval requests are waiting for you"
    assert (
        lee[0]["Subject"] == "Approval needed: Refund 1,290.00 EUR to the customer of order A-1001"
    )
    body = plain_text(kim[0])
    assert "Refund 80.50 EUR to the customer of order A-1001" in body
    assert "Cannot be undone once approved." in body
    assert "Waiting for finance" in body
    assert "https://inbox.example.test/inbox/requests/apr_1?n=" in body
    assert box.for_("ode@example.test") == [] and box.for_("ana@example.test") == []

    # Another pass, or another process, records and sends nothing more.
    again = await notifier.run_once(T0 + timedelta(seconds=200))
    assert (again.recorded, again.sent) == (0, 0)
    assert len(box.messages) == 2
    sent = await store.notices.list_notices(status=NoticeStatus.SENT)
    assert {(n.approval_id, n.recipient) for n in sent} == {
        ("apr_1", "lee"),
        ("apr_1", "kim"),
        ("apr_2", "kim"),
    }
    captured = capsys.readouterr()
    assert SMTP_PASSWORD not in captured.out + captured.err


async def test_escalation_and_delegation_tell_the_new_holders_only(
    store: Store, smtp: tuple[Mailbox, int]
) -> None:
    box, port = smtp
    people = _people(port, digest_seconds=0)
    people.policy.timeout_seconds = 3600  # each group has an hour
    notifier = _notifier(store, people)
    record = await waiting(store, "apr_e")
    assert (await notifier.run_once(T0 + timedelta(minutes=15))).sent == 2  # lee and kim
    assert (
        "Waiting for finance. Moves on to ops in 45 minutes (10:00 UTC) unless decided."
        in plain_text(box.for_("lee@example.test")[0])
    )

    await event(
        store, record, EventKind.APPROVAL_ESCALATED, "ops", from_group="finance", to_group="ops"
    )
    assert (await notifier.run_once(T0 + timedelta(seconds=1))).sent == 1
    told = plain_text(box.for_("ode@example.test")[0])
    assert "Escalated to ops: nobody decided in time. Expires in 60 minutes" in told

    people = _people(port, digest_seconds=0)
    people.users["ines"] = people.users["ode"].model_copy(
        update={"name": "ines", "email": "ines@example.test"}
    )
    notifier = _notifier(store, people)
    await event(
        store, record, EventKind.APPROVAL_DELEGATED, "1", group="ops", delegated_by="ode", to="ines"
    )
    report = await notifier.run_once(T0 + timedelta(hours=2))
    assert report.sent == 1
    assert "Delegated to you by ode" in plain_text(box.for_("ines@example.test")[0])
    assert len(box.messages) == 4


async def test_a_decided_request_is_dropped_not_sent(
    store: Store, smtp: tuple[Mailbox, int]
) -> None:
    box, port = smtp
    notifier = _notifier(store, _people(port))
    await waiting(store, "apr_d")
    assert (await notifier.run_once(T0)).recorded == 2
    await store.decide_approval(
        "apr_d", status=ApprovalStatus.APPROVED, decided_by="kim", reason=None, decided_at=T0
    )
    report = await notifier.run_once(T0 + timedelta(minutes=5))
    assert (report.sent, report.dropped) == (0, 2)
    assert box.messages == []


async def test_a_transient_refusal_is_retried_and_a_wrong_password_is_not(
    store: Store, smtp: tuple[Mailbox, int]
) -> None:
    box, port = smtp
    box.refuse = 1
    people = _people(port, digest_seconds=0)
    people.users.pop("kim")
    notifier = _notifier(store, people)
    await waiting(store, "apr_t")
    report = await notifier.run_once(T0)
    assert (report.sent, report.retried) == (0, 1)
    [notice] = await store.notices.list_notices(approval_id="apr_t")
    assert notice.status is NoticeStatus.QUEUED and notice.last_error == (
        f"SMTP 127.0.0.1:{port} answered 451"
    )
    # Not before its retry time; then delivered once.
    assert (await notifier.run_once(T0 + timedelta(seconds=5))).sent == 0
    assert (await notifier.run_once(T0 + timedelta(seconds=16))).sent == 1
    assert len(box.for_("lee@example.test")) == 1

    wrong = _notifier(store, people, password="not-the-password")
    await waiting(store, "apr_w")
    report = await wrong.run_once(T0 + timedelta(minutes=1))
    assert report.failed == 1
    [failed] = await store.notices.list_notices(approval_id="apr_w")
    assert failed.status is NoticeStatus.FAILED
    assert failed.last_error == f"SMTP 127.0.0.1:{port} refused the sign-in (code 535)"
    assert "not-the-password" not in (failed.last_error or "")


async def test_a_notice_claimed_by_a_process_that_died_is_sent_after_its_lease(
    store: Store, smtp: tuple[Mailbox, int]
) -> None:
    box, port = smtp
    people = _people(port)  # a 60 s digest window
    people.users.pop("kim")
    notifier = _notifier(store, people)
    await waiting(store, "apr_c2", at=T0)
    assert (await notifier.run_once(T0)).recorded == 1
    # Another API process claims lee's notice once due, and dies before sending it.
    [claimed] = await store.notices.claim_due(T0 + timedelta(seconds=60), LEASE)
    assert claimed.approval_id == "apr_c2" and claimed.status is NoticeStatus.SENDING
    assert (await notifier.run_once(T0 + timedelta(minutes=2))).sent == 0
    assert (await notifier.run_once(T0 + timedelta(minutes=7))).sent == 1
    assert len(box.for_("lee@example.test")) == 1


async def test_the_api_process_runs_the_notifier_from_the_project_files(
    store: Store,
    smtp: tuple[Mailbox, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box, port = smtp
    path = tmp_path / "approvers.yaml"
    people = {"lee": {"groups": ["finance"], "email": "lee@example.test"}}
    section = {
        "base_url": "https://inbox.example.test",
        "digest_seconds": 0,
        "poll_seconds": 0.05,
        "email": smtp_settings(port),
    }

    def write() -> None:
        path.write_text(
            yaml.safe_dump(
                {
                    "groups": ["finance"],
                    "users": people,
                    "policy": {"skills": {"payments.refund": "finance"}},
                    "notifications": section,
                }
            )
        )

    write()
    monkeypatch.setenv("ORCHESTRATOR_APPROVERS_FILE", str(path))
    settings = Settings(project_dir=REPO, state_dir=tmp_path / "state")
    monkeypatch.setenv("ORCHESTRATOR_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.delenv("ORCHESTRATOR_INBOX_SECRET", raising=False)
    with pytest.raises(ConfigError, match="set ORCHESTRATOR_INBOX_SECRET"):
        async with notifier_for(settings, store):
            pass
    monkeypatch.setenv("ORCHESTRATOR_INBOX_SECRET", "a-secret-for-the-links")
    monkeypatch.delenv("ORCHESTRATOR_SMTP_PASSWORD")
    with pytest.raises(ConfigError, match=r"notifications\.email\.password_env: environment"):
        async with notifier_for(settings, store):
            pass
    monkeypatch.setenv("ORCHESTRATOR_SMTP_PASSWORD", SMTP_PASSWORD)
    await waiting(store, "apr_api", at=datetime.now(UTC))
    async with notifier_for(settings, store) as running:
        assert running is not None

        def told(address: str) -> Callable[[], Awaitable[bool | None]]:
            async def probe() -> bool | None:
                return True if box.for_(address) else None

            return probe

        await eventually(told("lee@example.test"), what="the notice e-mailed by the loop")

        # An edited file is taken up while the process runs: kim joins finance.
        people["kim"] = {"groups": ["finance"], "email": "kim@example.test"}
        write()
        await eventually(told("kim@example.test"), what="the notice to a person added since")
    assert box.logins == ["orchestrator", "orchestrator"]
    assert len(box.for_("lee@example.test")) == 1


async def test_a_value_with_line_breaks_cannot_add_headers(
    store: Store, smtp: tuple[Mailbox, int]
) -> None:
    box, port = smtp
    people = _people(port, digest_seconds=0)
    people.users.pop("kim")
    record = await waiting(store, "apr_h")
    await store.decide_approval(
        "apr_h", status=ApprovalStatus.REJECTED, decided_by="kim", reason="no", decided_at=T0
    )
    record.arguments["order_id"] = "A-1\r\nBcc: thief@example.test"
    await store.record_approval_request(record.model_copy(update={"approval_id": "apr_h2"}))
    assert (await _notifier(store, people).run_once(T0)).sent == 1
    [(to, message)] = box.messages
    assert to == ["lee@example.test"] and message["Bcc"] is None
    assert message["Subject"].endswith("order A-1 Bcc: thief@example.test")


async def test_a_key_conflict_is_an_error_that_stops_only_its_own_notice(
    store: Store, smtp: tuple[Mailbox, int], capsys: pytest.CaptureFixture[str]
) -> None:
    box, port = smtp
    notifier = _notifier(store, _people(port, digest_seconds=0))
    await waiting(store, "apr_k")
    # Something recorded lee's key for a different notice (a bug in key building).
    key = "apr_k|requested:finance|email|lee"
    wrong = NoticeRecord(
        notice_key=key,
        approval_id="apr_k",
        stage="requested:finance",
        group="finance",
        channel="email",
        recipient="kim",
        due_at=T0 + timedelta(days=1),
        created_at=T0,
    )
    await store.notices.record([wrong])
    report = await notifier.run_once(T0)
    assert (report.conflicts, report.sent) == (1, 1)
    assert len(box.for_("kim@example.test")) == 1 and box.for_("lee@example.test") == []
    captured = capsys.readouterr()
    logged = captured.out + captured.err
    assert "notice key conflict" in logged and "recipient differ" in logged


async def test_starttls_with_a_private_ca_and_refusing_an_untrusted_server(
    store: Store, tmp_path: Path
) -> None:
    """The default `security: starttls`: the password goes only over the upgraded link."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    ca_file = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with smtp_server(tls_context=server_tls) as (box, port):
        settings = {**smtp_settings(port), "security": "starttls", "ca_file": str(ca_file)}
        people = directory(
            {"base_url": "https://inbox.example.test", "digest_seconds": 0, "email": settings}
        )
        people.users.pop("kim")
        assert people.notifications is not None and people.notifications.email is not None
        channels = Channels(smtp=people.notifications.email, smtp_password=SMTP_PASSWORD)
        notifier = Notifier(store, people, channels, inbox_secret=SECRET, skills=SKILLS)
        await waiting(store, "apr_tls")
        assert (await notifier.run_once(T0)).sent == 1
        assert box.logins == ["orchestrator"] and box.tls == [True]

        # Without the private CA the server is not trusted: failed at once, no password sent.
        untrusted = people.notifications.email.model_copy(update={"ca_file": None})
        notifier.channels = Channels(smtp=untrusted, smtp_password=SMTP_PASSWORD)
        await waiting(store, "apr_tls2")
        report = await notifier.run_once(T0)
        assert report.failed == 1 and box.logins == ["orchestrator"]
        [failed] = await store.notices.list_notices(approval_id="apr_tls2")
        assert failed.last_error is not None and "certificate is not trusted" in failed.last_error
