"""Notices' pure parts and records: deep-link tokens, the config's errors, the ledger's keys."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from _notify_seed import SECRET, T0, directory

from orchestrator.approvals.notify.config import Notifications
from orchestrator.approvals.notify.links import LinkCheck, check_link, link_key, sign_link
from orchestrator.approvals.notify.notifier import resolve_channels
from orchestrator.approvals.notify.plan import plan_notices
from orchestrator.approvals.people import load_approvers
from orchestrator.exceptions import ConfigError
from orchestrator.store.notices import NoticeKeyConflict, NoticeRecord
from orchestrator.store.records import ApprovalRecord, AuditEvent, EventKind
from orchestrator.store.store import Store

KEY = link_key(SECRET)


def _check(
    token: str,
    *,
    approval_id: str = "apr_1",
    user: str = "lee",
    groups: tuple[str, ...] = ("finance",),
    later: float = 0,
) -> LinkCheck:
    return check_link(
        KEY,
        token,
        approval_id=approval_id,
        user=user,
        groups=groups,
        now=T0 + timedelta(seconds=later),
    )


def test_a_link_opens_its_request_for_its_person_until_it_expires() -> None:
    token = sign_link(KEY, "apr_1", "lee", T0 + timedelta(hours=1))
    assert _check(token) is LinkCheck.OK
    assert _check(token, later=3601) is LinkCheck.EXPIRED
    assert _check(token, approval_id="apr_2") is LinkCheck.OTHER_REQUEST
    assert _check(token, user="kim") is LinkCheck.OTHER_PERSON
    group = sign_link(KEY, "apr_1", "group:finance", T0 + timedelta(hours=1))
    assert _check(group, user="kim") is LinkCheck.OK
    assert _check(group, user="ode", groups=("ops",)) is LinkCheck.OTHER_PERSON


def test_a_tampered_or_foreign_link_is_refused() -> None:
    token = sign_link(KEY, "apr_1", "lee", T0 + timedelta(hours=1))
    _, _, signature = token.partition(".")
    forged = sign_link(KEY, "apr_1", "kim", T0 + timedelta(hours=1)).partition(".")[0]
    assert _check(f"{forged}.{signature}", user="kim") is LinkCheck.MALFORMED
    other_secret = sign_link(link_key(b"another"), "apr_1", "lee", T0 + timedelta(hours=1))
    assert _check(other_secret) is LinkCheck.MALFORMED
    assert _check("garbage") is LinkCheck.MALFORMED
    # The link key is not the inbox secret: a token never passes as a cookie's signature.
    assert KEY != SECRET


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "approvers.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_errors_name_file_and_field_and_never_the_secret(tmp_path: Path) -> None:
    secret_url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    path = _write(
        tmp_path,
        "groups: [finance]\nnotifications:\n  base_url: https://inbox.example.test\n"
        f"  chat: {{finance: {{slack: '{secret_url}'}}}}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_approvers(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "notifications.chat.finance.slack: must name an environment variable" in message
    assert "environment variable" in message and "XXXXSECRET" not in message

    path = _write(
        tmp_path,
        "groups: [finance]\nnotifications:\n  base_url: https://inbox.example.test\n"
        "  chat: {ops: {teams: TEAMS_OPS}}\n",
    )
    with pytest.raises(ConfigError, match=r"notifications.chat: unknown group\(s\) ops"):
        load_approvers(path)

    path = _write(tmp_path, "notifications: {base_url: inbox.example.test}\n")
    with pytest.raises(ConfigError, match=r"approvers.yaml: .*notifications.base_url: "):
        load_approvers(path)


def test_an_unset_secret_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCHESTRATOR_TEST_TEAMS_URL", raising=False)
    settings = Notifications.model_validate(
        {
            "base_url": "https://inbox.example.test",
            "chat": {"finance": {"teams": "ORCHESTRATOR_TEST_TEAMS_URL"}},
        }
    )
    path = tmp_path / "approvers.yaml"
    with pytest.raises(ConfigError) as caught:
        resolve_channels(path, settings)
    assert str(caught.value) == (
        f"{path}: notifications.chat.finance.teams: environment variable"
        " ORCHESTRATOR_TEST_TEAMS_URL is not set; export it before starting the API process"
    )
    monkeypatch.setenv("ORCHESTRATOR_TEST_TEAMS_URL", "http://127.0.0.1:9/hook-secret")
    assert resolve_channels(path, settings).hooks == {
        ("finance", "teams"): "http://127.0.0.1:9/hook-secret"
    }
    assert "hook-secret" not in repr(resolve_channels(path, settings))


def test_users_email_is_checked() -> None:
    with pytest.raises(ValueError, match=r"users\.lee\.email"):
        directory({"base_url": "https://x.test"}, lee={"groups": ["finance"], "email": "lee"})


async def test_a_notice_key_with_different_content_is_an_error(store: Store) -> None:
    notice = NoticeRecord(
        notice_key="apr_1|requested:finance|email|lee",
        approval_id="apr_1",
        stage="requested:finance",
        group="finance",
        channel="email",
        recipient="lee",
        due_at=T0,
        created_at=T0,
    )
    assert await store.notices.record([notice]) == 1
    # The same notice again (another pass, another process): a no-op.
    later = notice.model_copy(update={"due_at": T0 + timedelta(minutes=5)})
    assert await store.notices.record([later]) == 0
    with pytest.raises(NoticeKeyConflict) as caught:
        await store.notices.record([notice.model_copy(update={"recipient": "kim"})])
    assert "recipient differ" in str(caught.value)
    assert len(await store.notices.list_notices()) == 1


def _trail(record: ApprovalRecord, *steps: tuple[EventKind, dict[str, object]]) -> list[AuditEvent]:
    return [
        AuditEvent(
            event_key=f"k{i}",
            session_id=record.session_id,
            workflow_id=record.workflow_id,
            run_id="r1",
            kind=kind,
            payload={"approval_id": record.approval_id, **payload},
            created_at=T0,
        )
        for i, (kind, payload) in enumerate(steps)
    ]


def _record() -> ApprovalRecord:
    return ApprovalRecord(
        approval_id="apr_p",
        session_id="s",
        workflow_id="w",
        run_id="r1",
        step_id="investigate",
        kind="tool_call",
        skill="payments.refund",
        arguments={},
        summary="refund",
        binding_hash="h",
        requested_at=T0,
    )


def _who(
    events: list[AuditEvent],
    *,
    requester: str | None = None,
    tenant: str = "default",
    **notifications: object,
) -> set[tuple[str, str, str]]:
    people = directory(
        {
            "base_url": "https://x.test",
            "email": {"host": "mail", "sender": "a@x.test"},
            "chat": {"finance": {"slack": "SLACK_FINANCE"}},
            **notifications,
        },
        ode={"groups": ["ops"], "email": "ode@example.test", "tenants": ["acme"]},
    )
    found = plan_notices(_record(), events, people, requester=requester, tenant=tenant, now=T0)
    return {(n.stage, n.channel, n.recipient) for n in found}


def test_the_plan_tells_whoever_could_decide_now() -> None:
    rec = _record()
    assert _who([]) == {
        ("requested:finance", "email", "lee"),
        ("requested:finance", "email", "kim"),
        ("requested:finance", "slack", "group:finance"),
    }
    assert _who([], requester="kim") == {
        ("requested:finance", "email", "lee"),
        ("requested:finance", "slack", "group:finance"),
    }
    # Escalated to ops: ode may see only acme's sessions.
    up = _trail(rec, (EventKind.APPROVAL_ESCALATED, {"to_group": "ops"}))
    assert _who(up, tenant="acme") == {("escalated:ops", "email", "ode")}
    assert _who(up, tenant="default") == set()
    expired = _trail(rec, (EventKind.APPROVAL_ESCALATED, {"to_group": None}))
    assert _who(expired) == set()
    # Delegated: the delegate alone, by e-mail; then kim's first of two approvals hands
    # it back to the group, minus kim.
    handed = _trail(rec, (EventKind.APPROVAL_DELEGATED, {"to": "kim", "delegated_by": "lee"}))
    assert _who(handed) == {("delegated:1:kim", "email", "kim")}
    half = _trail(
        rec,
        (EventKind.APPROVAL_DELEGATED, {"to": "kim", "delegated_by": "lee"}),
        (EventKind.APPROVAL_PARTIAL, {"approved_by": "kim"}),
    )
    assert _who(half) == {
        ("requested:finance", "email", "lee"),
        ("requested:finance", "slack", "group:finance"),
    }
    # Another request's events change nothing.
    other = [e.model_copy(update={"payload": {**e.payload, "approval_id": "x"}}) for e in up]
    assert _who(other) == _who([])
    assert _who([], email=None) == {("requested:finance", "slack", "group:finance")}


def test_a_private_ca_file_is_found_beside_the_approvers_file(tmp_path: Path) -> None:
    email = {"host": "mail.example.test", "sender": "a@example.test", "ca_file": "ca.pem"}
    settings = Notifications.model_validate({"base_url": "https://x.test", "email": email})
    path = tmp_path / "approvers.yaml"
    with pytest.raises(ConfigError, match=r"notifications\.email\.ca_file: no file .*ca\.pem"):
        resolve_channels(path, settings)
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    smtp = resolve_channels(path, settings).smtp
    assert smtp is not None and smtp.ca_file == str(tmp_path / "ca.pem")
