"""The approvers file: hashed secrets, groups, and which group decides what."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.approvals.api import openapi_schema
from orchestrator.approvals.people import (
    Approver,
    ApproverDirectory,
    hash_password,
    hash_token,
    load_approvers,
    new_token,
    sees_session,
    verify_password,
)
from orchestrator.exceptions import ConfigError
from orchestrator.store.records import ApprovalRecord, SessionRecord


def _record(skill: str | None) -> ApprovalRecord:
    return ApprovalRecord(
        approval_id="apr_x",
        session_id="s",
        workflow_id="session-s",
        run_id="r",
        step_id="investigate",
        kind="tool_call" if skill else "step",
        skill=skill,
        summary="refund",
        binding_hash="h",
        requested_at=datetime.now(UTC),
    )


def test_passwords_are_salted_scrypt_and_verify() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert stored != hash_password("correct horse")  # a fresh salt each time
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("correct horse", "scrypt$garbage")
    assert not verify_password("correct horse", "md5$abc")


def test_tokens_and_logins_find_their_person() -> None:
    token = new_token()
    directory = ApproverDirectory.model_validate(
        {
            "groups": ["finance", "support-leads"],
            "policy": {"default_group": "support-leads", "skills": {"payments.refund": "finance"}},
            "users": {
                "maria": {
                    "groups": ["finance"],
                    "password": hash_password("pw-maria"),
                    "tokens": [hash_token(token)],
                }
            },
        }
    )
    person = directory.by_token(token)
    assert person is not None and person.name == "maria"
    assert directory.by_token(token + "x") is None
    assert directory.login("maria", "pw-maria") == person
    assert directory.login("maria", "nope") is None
    assert directory.login("nobody", "pw-maria") is None
    assert directory.group_for(_record("payments.refund")) == "finance"
    assert directory.group_for(_record("tickets.get")) == "support-leads"
    assert directory.group_for(_record(None)) == "support-leads"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("users: {a: {groups: [ghosts]}}", "users.a: unknown group"),
        ("groups: [g]\nusers: {a: {groups: [g], password: hunter2}}", "not an scrypt hash"),
        ("groups: [g]\nusers: {a: {tokens: [apt_raw]}}", "store sha256: digests"),
        ("groups: [g]\npolicy: {default_group: h}", "policy: unknown group"),
        ("groups: [g]\nextra: 1", "extra: Extra inputs are not permitted"),
        ("groups: [g", "not valid YAML"),
    ],
)
def test_a_bad_approvers_file_names_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "approvers.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_approvers(path)
    assert str(path) in str(caught.value)


def test_no_approvers_file_means_nobody_may_decide(tmp_path: Path) -> None:
    directory = load_approvers(tmp_path / "approvers.yaml")
    assert directory.users == {}
    assert directory.policy.two_person_risks == ()  # nothing changes without the file
    assert directory.group_for(_record("payments.refund")) is None


def test_the_openapi_document_describes_list_show_decide_and_delegate() -> None:
    doc = openapi_schema()
    assert doc["openapi"] == "3.1.0"
    paths = doc["paths"]
    assert isinstance(paths, dict)
    assert set(paths) == {
        "/api/approvals",
        "/api/approvals/{approval_id}",
        "/api/approvals/{approval_id}/decision",
        "/api/approvals/{approval_id}/delegation",
    }
    components = doc["components"]
    assert isinstance(components, dict)
    assert {"Approval", "DecisionBody", "DelegationBody", "Error"} <= set(components["schemas"])


def test_a_person_limited_to_tenants_sees_only_their_tenants_sessions() -> None:
    limited = Approver(name="ann", tenants=("acme",))
    everyone = Approver(name="lee")

    def session(tenant: str) -> SessionRecord:
        return SessionRecord.model_validate(
            {
                "session_id": "s",
                "workflow_id": "w",
                "run_id": "r",
                "plan_name": "p",
                "plan_version": "1",
                "tenant": tenant,
                "started_at": datetime.now(UTC),
            }
        )

    assert sees_session(limited, session("acme")) and sees_session(everyone, session("x"))
    assert not sees_session(limited, session("globex"))
    assert not sees_session(limited, None) and sees_session(everyone, None)  # no tenant known
